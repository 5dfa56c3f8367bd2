/* [proxy] and [proxy.NAME] of aispd.conf (daemon/proxy.h): parsed key by key, validated as a
 * whole, then const. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/xalloc.h"
#include "daemon/proxy.h"

static void free_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static char **split(const char *s, size_t *n)
{
	size_t k = 0;
	char **v = xcalloc(1, sizeof(*v));
	_cleanup_free_ char *copy = xstrdup(s);
	char *save = NULL;
	for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
		v = xreallocarray(v, k + 2, sizeof(*v));
		v[k++] = xstrdup(t);
		v[k] = NULL;
	}
	*n = k;
	return v;
}

void proxy_config_defaults(proxy_config *c)
{
	memset(c, 0, sizeof(*c));
	c->max_calls = PROXY_TASK_CALLS_DEFAULT;
}

static void service_deinit(proxy_service *s)
{
	free(s->name);
	free_strv(s->hosts);
	free_strv(s->methods);
	free_strv(s->paths);
	free(s->secret);
	free(s->header);
	free(s->ca_file);
}

void proxy_config_deinit(proxy_config *c)
{
	for (size_t i = 0; i < c->n_services; i++)
		service_deinit(&c->services[i]);
	free(c->services);
	memset(c, 0, sizeof(*c));
}

const proxy_service *proxy_config_find(const proxy_config *c, const char *name)
{
	for (size_t i = 0; c && i < c->n_services; i++)
		if (!strcmp(c->services[i].name, name))
			return &c->services[i];
	return NULL;
}

static proxy_service *service_for(proxy_config *c, const char *name, err **e)
{
	proxy_service *s = (proxy_service *)proxy_config_find(c, name);
	if (s)
		return s;
	if (!proto_service_name_valid(name))
		return err_set(e, 0, "[proxy.%s]: not a service name ([a-z][a-z0-9_-]{0,63})",
		               name),
		       NULL;
	if (c->n_services == PROXY_SERVICES_MAX)
		return err_set(e, 0, "[proxy.%s]: more than %d services", name, PROXY_SERVICES_MAX),
		       NULL;
	c->services = xreallocarray(c->services, c->n_services + 1, sizeof(*c->services));
	s = &c->services[c->n_services++];
	*s = (proxy_service){.name = xstrdup(name),
	                     .header = xstrdup(PROXY_HEADER_TEMPLATE_DEFAULT),
	                     .connect_timeout_ms = 5000,
	                     .timeout_ms = 30000,
	                     .max_response_bytes = 1024 * 1024,
	                     .max_calls = 16};
	s->methods = split("GET", &s->n_methods);
	s->paths = split("/", &s->n_paths);
	return s;
}

static int number(const char *sec, const char *key, const char *v, int64_t min, int64_t max,
                  int64_t *out, err **e)
{
	char *end;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (errno || end == v || *end || n < min || n > max)
		return err_set(e, 0, "[%s] %s = \"%s\": expected an integer in %lld..%lld", sec,
		               key, v, (long long)min, (long long)max);
	*out = n;
	return 0;
}

static int boolean(const char *sec, const char *key, const char *v, bool *out, err **e)
{
	if (!strcmp(v, "true") || !strcmp(v, "false"))
		return *out = !strcmp(v, "true"), 0;
	return err_set(e, 0, "[%s] %s = \"%s\": expected true or false", sec, key, v);
}

/* hosts: lower-case names or IP literals, each with an optional :port. */
static int set_hosts(proxy_service *s, const char *sec, const char *v, err **e)
{
	free_strv(s->hosts);
	s->hosts = split(v, &s->n_hosts);
	if (!s->n_hosts || s->n_hosts > PROXY_HOSTS_MAX)
		return err_set(e, 0, "[%s] hosts: 1..%d hosts", sec, PROXY_HOSTS_MAX);
	for (size_t i = 0; i < s->n_hosts; i++)
		for (char *p = s->hosts[i]; *p; p++) {
			*p = (char)tolower((unsigned char)*p);
			if (!isalnum((unsigned char)*p) && !strchr(".-:[]", *p))
				return err_set(e, 0, "[%s] hosts: \"%s\" is not host or host:port",
				               sec, s->hosts[i]);
		}
	return 0;
}

static int set_list(char ***dst, size_t *n, const char *sec, const char *key, const char *v,
                    err **e)
{
	free_strv(*dst);
	*dst = split(v, n);
	for (size_t i = 0; i < *n; i++) {
		const char *x = (*dst)[i];
		bool ok = !strcmp(key, "paths")
		              ? x[0] == '/'
		              : strspn(x, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == strlen(x);
		if (!ok)
			return err_set(e, 0, "[%s] %s: \"%s\" is not %s", sec, key, x,
			               !strcmp(key, "paths") ? "a path prefix starting with /"
			                                     : "an upper-case method");
	}
	return *n ? 0 : err_set(e, 0, "[%s] %s is empty", sec, key);
}

static int set_service(proxy_service *s, const char *sec, const char *key, const char *v, err **e)
{
	static const struct {
		const char *key;
		int64_t min, max;
		size_t off;
	} nums[] = {
	    {"connect_timeout_ms", 1, 600000, offsetof(proxy_service, connect_timeout_ms)},
	    {"timeout_ms", 1, 3600000, offsetof(proxy_service, timeout_ms)},
	    {"max_response_bytes", 1, PROXY_RESPONSE_BODY_MAX,
	     offsetof(proxy_service, max_response_bytes)},
	    {"max_calls", 1, PROXY_TASK_CALLS_MAX, offsetof(proxy_service, max_calls)},
	};
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
		if (!strcmp(key, nums[i].key))
			return number(sec, key, v, nums[i].min, nums[i].max,
			              (int64_t *)(void *)((char *)s + nums[i].off), e);
	if (!strcmp(key, "hosts"))
		return set_hosts(s, sec, v, e);
	if (!strcmp(key, "methods"))
		return set_list(&s->methods, &s->n_methods, sec, key, v, e);
	if (!strcmp(key, "paths"))
		return set_list(&s->paths, &s->n_paths, sec, key, v, e);
	if (!strcmp(key, "allow_private_addresses"))
		return boolean(sec, key, v, &s->allow_private, e);
	char **str = !strcmp(key, "secret")    ? &s->secret
	             : !strcmp(key, "header")  ? &s->header
	             : !strcmp(key, "ca_file") ? &s->ca_file
	                                       : NULL;
	if (!str)
		return err_set(e, 0, "[%s] unknown key \"%s\"", sec, key);
	if (str == &s->ca_file && v[0] != '/')
		return err_set(e, 0, "[%s] ca_file = \"%s\": must be an absolute path", sec, v);
	free(*str);
	*str = xstrdup(v);
	return 0;
}

int proxy_config_set(proxy_config *c, const char *service, const char *key, const char *value,
                     err **e)
{
	if (!service) {
		if (!strcmp(key, "max_calls"))
			return number("proxy", key, value, 1, PROXY_TASK_CALLS_MAX, &c->max_calls,
			              e);
		return err_set(e, 0, "[proxy] unknown key \"%s\"", key);
	}
	proxy_service *s = service_for(c, service, e);
	if (!s)
		return -1;
	_cleanup_free_ char *sec = xasprintf("proxy.%s", service);
	return set_service(s, sec, key, value, e);
}

/* The header template: "Name: value" with a token name and {secret} in the value once. */
static int check_template(const proxy_service *s, err **e)
{
	const char *colon = strchr(s->header, ':');
	const char *at = strstr(s->header, "{secret}");
	if (!colon || colon == s->header ||
	    strspn(s->header,
	           "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	           "abcdefghijklmnopqrstuvwxyz0123456789-") != (size_t)(colon - s->header))
		return err_set(e, 0, "[proxy.%s] header = \"%s\": expected \"Name: value\"",
		               s->name, s->header);
	if (s->secret && (!at || at < colon || strstr(at + 1, "{secret}")))
		return err_set(e, 0, "[proxy.%s] header must hold {secret} once, in its value",
		               s->name);
	return 0;
}

int proxy_config_validate(const proxy_config *c, err **e)
{
	for (size_t i = 0; i < c->n_services; i++) {
		const proxy_service *s = &c->services[i];
		if (!s->n_hosts)
			return err_set(e, 0, "[proxy.%s] needs hosts", s->name);
		if (check_template(s, e) < 0)
			return -1;
	}
	return 0;
}
