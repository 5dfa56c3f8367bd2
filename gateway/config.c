/* aisp-gateway's configuration (core.h): defaults in one function, an inih handler with
 * strict integers that names file:line on the first error, then whole-file checks. Every key is
 * documented in deploy/aisp-gateway.conf.example. */
#include "gateway/core.h"

#include <errno.h>
#include <event2/util.h>
#include <ini.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"

static void set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = xstrdup(v);
}

void gw_config_defaults(gw_config *c)
{
	memset(c, 0, sizeof(*c));
	char host[256] = "gateway";
	if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
		strcpy(host, "gateway");
	host[GW_ID_MAX] = '\0';
	for (char *p = host; *p; p++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
		            *p))
			*p = '-';
	c->id = xstrdup(host);
	c->listen = xstrdup("127.0.0.1:8080");
	c->key_path = xstrdup("/etc/aisp/gateway-key/private.pem");
	c->keys_file = xstrdup("/etc/aisp/gateway-keys.conf");
	c->log_level = LOG_LVL_INFO;
	c->wait_ms = 60000;
	c->poll_ms = 2000;
	c->max_body_bytes = 4LL * 1024 * 1024;
	c->max_headers_bytes = 16384;
	c->idle_timeout_s = 30;
	c->request_timeout_s = 15;
	c->max_connections = 1024;
	c->redis_address = xstrdup("127.0.0.1:6379");
	c->redis_timeout_ms = 2000;
	c->block_ms = 1000;
	c->outbox = xstrdup("aisp:gw:calls");
	c->outbox_max = 100000;
	c->postgres = xstrdup("");
	c->batch = 200;
	c->interval_ms = 500;
	c->pg_timeout_ms = 5000;
	c->claim_idle_ms = 60000;
	c->currency = xstrdup("USDC");
	c->per_call_micros = 0;
	c->per_cpu_second_micros = 0;
	c->per_gib_second_micros = 0;
}

void gw_config_deinit(gw_config *c)
{
	char **strs[] = {
	    &c->path,          &c->id,         &c->listen,         &c->key_path, &c->keys_file,
	    &c->redis_address, &c->redis_user, &c->redis_password, &c->outbox,   &c->postgres,
	    &c->currency};
	for (size_t i = 0; i < ARRAY_SIZE(strs); i++)
		free(*strs[i]);
	memset(c, 0, sizeof(*c));
}

struct parse_ctx {
	gw_config *c;
	char *error;
};

int gw_ini_fail(char **error, const char *fmt, ...)
{
	if (!*error) {
		va_list ap;
		va_start(ap, fmt);
		*error = xvasprintf(fmt, ap);
		va_end(ap);
	}
	return 0;
}

#define fail(p, ...) gw_ini_fail(&(p)->error, __VA_ARGS__)

/* A whole decimal integer within [min, max]. Returns the inih status (1 ok, 0 error). */
static int num(struct parse_ctx *p, const char *sec, const char *key, const char *v, int64_t min,
               int64_t max, int64_t *out)
{
	size_t len = strlen(v), sign = v[0] == '-';
	if (len <= sign || strspn(v + sign, "0123456789") != len - sign)
		return fail(p, "[%s] %s = \"%s\": not an integer", sec, key, v);
	if (parse_i64(v, min, max, out) < 0)
		return fail(p, "[%s] %s = \"%s\": out of range %lld..%lld", sec, key, v,
		            (long long)min, (long long)max);
	return 1;
}

static int boolean(struct parse_ctx *p, const char *sec, const char *key, const char *v, bool *out)
{
	if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "1") || !strcmp(v, "on"))
		*out = true;
	else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "0") || !strcmp(v, "off"))
		*out = false;
	else
		return fail(p, "[%s] %s = \"%s\": expected true or false", sec, key, v);
	return 1;
}

static bool id_ok(const char *s)
{
	size_t n = strlen(s);
	return n > 0 && n <= GW_ID_MAX &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static int address(struct parse_ctx *p, const char *sec, const char *key, const char *v,
                   bool unix_ok, char **dst)
{
	const char *colon = strrchr(v, ':');
	int64_t port;
	struct sockaddr_storage ss;
	int sl = sizeof(ss);
	/* a listen address is an IP address and a port, never a name to resolve */
	if (!unix_ok && evutil_parse_sockaddr_port(v, (struct sockaddr *)&ss, &sl) < 0)
		return fail(p,
		            "[%s] %s = \"%s\": expected an IP address and port (127.0.0.1:8080, "
		            "[::1]:8080)",
		            sec, key, v);
	if (unix_ok && strncmp(v, "unix:/", 6) &&
	    (!colon || colon == v || parse_i64(colon + 1, 1, 65535, &port) < 0))
		return fail(p, "[%s] %s = \"%s\": expected host:port or unix:/path", sec, key, v);
	set_str(dst, v);
	return 1;
}

static int handle_gateway(struct parse_ctx *p, const char *key, const char *v)
{
	gw_config *c = p->c;
	if (!strcmp(key, "id")) {
		if (!id_ok(v))
			return fail(p, "[gateway] id = \"%s\": expected [A-Za-z0-9._-]{1,24}", v);
		set_str(&c->id, v);
	} else if (!strcmp(key, "listen")) {
		return address(p, "gateway", key, v, false, &c->listen);
	} else if (!strcmp(key, "key") || !strcmp(key, "keys_file")) {
		if (v[0] != '/')
			return fail(p, "[gateway] %s = \"%s\": must be an absolute path", key, v);
		set_str(!strcmp(key, "key") ? &c->key_path : &c->keys_file, v);
	} else if (!strcmp(key, "create_key")) {
		return boolean(p, "gateway", key, v, &c->create_key);
	} else if (!strcmp(key, "log_level")) {
		int l = log_level_parse(v);
		if (l < 0)
			return fail(p,
			            "[gateway] log_level = \"%s\": expected debug, info, warn or "
			            "error",
			            v);
		c->log_level = l;
	} else if (!strcmp(key, "wait_ms")) {
		return num(p, "gateway", key, v, 100, 3600000, &c->wait_ms);
	} else if (!strcmp(key, "poll_ms")) {
		return num(p, "gateway", key, v, 50, 600000, &c->poll_ms);
	} else {
		return fail(p, "[gateway] unknown key \"%s\"", key);
	}
	return 1;
}

static int handle_http(struct parse_ctx *p, const char *key, const char *v)
{
	gw_config *c = p->c;
	if (!strcmp(key, "max_body_bytes"))
		return num(p, "http", key, v, 1024, PROTO_TASK_MAX_BYTES + 65536,
		           &c->max_body_bytes);
	if (!strcmp(key, "max_headers_bytes"))
		return num(p, "http", key, v, 1024, 1024 * 1024, &c->max_headers_bytes);
	if (!strcmp(key, "idle_timeout_s"))
		return num(p, "http", key, v, 1, 3600, &c->idle_timeout_s);
	if (!strcmp(key, "request_timeout_s"))
		return num(p, "http", key, v, 1, 3600, &c->request_timeout_s);
	if (!strcmp(key, "max_connections"))
		return num(p, "http", key, v, 1, 1000000, &c->max_connections);
	return fail(p, "[http] unknown key \"%s\"", key);
}

static int handle_redis(struct parse_ctx *p, const char *key, const char *v)
{
	gw_config *c = p->c;
	if (!strcmp(key, "address"))
		return address(p, "redis", key, v, true, &c->redis_address);
	if (!strcmp(key, "user"))
		return set_str(&c->redis_user, v), 1;
	if (!strcmp(key, "password"))
		return set_str(&c->redis_password, v), 1;
	if (!strcmp(key, "timeout_ms"))
		return num(p, "redis", key, v, 10, 600000, &c->redis_timeout_ms);
	if (!strcmp(key, "block_ms"))
		return num(p, "redis", key, v, 10, 60000, &c->block_ms);
	return fail(p, "[redis] unknown key \"%s\"", key);
}

static int handle_calllog(struct parse_ctx *p, const char *key, const char *v)
{
	gw_config *c = p->c;
	if (!strcmp(key, "outbox")) {
		size_t n = strlen(v);
		if (n == 0 || n > PROTO_NAME_MAX ||
		    strspn(v,
		           "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:._-") !=
		        n)
			return fail(p, "[calllog] outbox = \"%s\": expected [A-Za-z0-9:._-]{1,128}",
			            v);
		return set_str(&c->outbox, v), 1;
	}
	if (!strcmp(key, "outbox_max"))
		return num(p, "calllog", key, v, 1000, 100000000, &c->outbox_max);
	if (!strcmp(key, "postgres"))
		return set_str(&c->postgres, v), 1;
	if (!strcmp(key, "batch"))
		return num(p, "calllog", key, v, 1, 1000, &c->batch);
	if (!strcmp(key, "interval_ms"))
		return num(p, "calllog", key, v, 10, 600000, &c->interval_ms);
	if (!strcmp(key, "pg_timeout_ms"))
		return num(p, "calllog", key, v, 100, 600000, &c->pg_timeout_ms);
	if (!strcmp(key, "claim_idle_ms"))
		return num(p, "calllog", key, v, 1000, 86400000, &c->claim_idle_ms);
	return fail(p, "[calllog] unknown key \"%s\"", key);
}

static int handle_cost(struct parse_ctx *p, const char *key, const char *v)
{
	gw_config *c = p->c;
	const int64_t max = 1000000000000LL; /* a million currency units */
	if (!strcmp(key, "currency")) {
		size_t n = strlen(v);
		if (n == 0 || n > 16 || strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != n)
			return fail(p, "[cost] currency = \"%s\": expected [A-Z0-9]{1,16}", v);
		return set_str(&c->currency, v), 1;
	}
	if (!strcmp(key, "per_call_micros"))
		return num(p, "cost", key, v, 0, max, &c->per_call_micros);
	if (!strcmp(key, "per_cpu_second_micros"))
		return num(p, "cost", key, v, 0, max, &c->per_cpu_second_micros);
	if (!strcmp(key, "per_gib_second_micros"))
		return num(p, "cost", key, v, 0, max, &c->per_gib_second_micros);
	return fail(p, "[cost] unknown key \"%s\"", key);
}

static int handler(void *user, const char *section, const char *key, const char *v)
{
	struct parse_ctx *p = user;
	if (p->error)
		return 0;
	if (!strcmp(section, "gateway"))
		return handle_gateway(p, key, v);
	if (!strcmp(section, "http"))
		return handle_http(p, key, v);
	if (!strcmp(section, "redis"))
		return handle_redis(p, key, v);
	if (!strcmp(section, "calllog"))
		return handle_calllog(p, key, v);
	if (!strcmp(section, "cost"))
		return handle_cost(p, key, v);
	return fail(p, "unknown section [%s]", section);
}

static int finish(gw_config *c, struct parse_ctx *p, int rc, const char *name, err **e)
{
	if (rc == -1)
		return err_set(e, errno, "%s: cannot open", name);
	if (rc == -2)
		return err_set(e, ENOMEM, "%s: out of memory", name);
	if (rc > 0 || p->error) {
		int r = err_set(e, 0, "%s:%d: %s", name, rc,
		                p->error ? p->error
		                         : "syntax error (expected [section] or key = value)");
		free(p->error);
		return r;
	}
	if (c->poll_ms > c->wait_ms)
		return err_set(e, 0, "%s: [gateway] poll_ms %lld is above wait_ms %lld", name,
		               (long long)c->poll_ms, (long long)c->wait_ms);
	return 0;
}

int gw_config_load(gw_config *c, const char *path, err **e)
{
	struct parse_ctx p = {.c = c};
	set_str(&c->path, path);
	return finish(c, &p, ini_parse(path, handler, &p), path, e);
}

int gw_config_load_string(gw_config *c, const char *name, const char *text, err **e)
{
	struct parse_ctx p = {.c = c};
	return finish(c, &p, ini_parse_string(text, handler, &p), name, e);
}
