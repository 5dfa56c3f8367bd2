/* The credential proxy in documents (PROTOCOL.md, "The credential proxy"): a task's
 * "services" and a result's "proxy" audit trail (the entries; their hash chain is attest's:
 * attest_proxy_entry_digest). */
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/xalloc.h"
#include "proto/internal.h"
#include "proto/json.h"
#include "proto/proto.h"

bool proto_service_name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > PROTO_SERVICE_NAME_MAX || s[0] < 'a' || s[0] > 'z')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		      s[i] == '-'))
			return false;
	return true;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A JSON array of service names into a sorted, unique, NULL-terminated list. */
static int names_of(yajl_val v, const char *what, char ***out, size_t *n, err **e)
{
	if (!YAJL_IS_ARRAY(v) || v->u.array.len > PROTO_SERVICES_MAX)
		return err_set(e, 0, "%s must be an array of at most %d service names", what,
		               PROTO_SERVICES_MAX);
	size_t k = v->u.array.len;
	char **l = xcalloc(k + 1, sizeof(char *));
	for (size_t i = 0; i < k; i++) {
		const char *s = YAJL_GET_STRING(v->u.array.values[i]);
		if (!s || !proto_service_name_valid(s)) {
			for (size_t j = 0; j < i; j++)
				free(l[j]);
			free(l);
			return err_set(e, 0,
			               "%s[%zu] must be a service name ([a-z][a-z0-9_-]{0,63})",
			               what, i);
		}
		l[i] = xstrdup(s);
	}
	qsort(l, k, sizeof(char *), cmp_str);
	size_t u = 0;
	for (size_t i = 0; i < k; i++) {
		if (u && !strcmp(l[u - 1], l[i]))
			free(l[i]);
		else
			l[u++] = l[i];
	}
	l[u] = NULL;
	*out = l;
	*n = u;
	return 0;
}

int proto_services_parse(yajl_val root, proto_task *t, err **e)
{
	yajl_val v = proto_json_get(root, "services");
	if (!v)
		return 0;
	return names_of(v, "field \"services\"", &t->services, &t->n_services, e);
}

proto_proxy_audit *proto_proxy_audit_new(void)
{
	return xzalloc(sizeof(proto_proxy_audit));
}

proto_proxy_audit *proto_proxy_audit_free(proto_proxy_audit *a)
{
	if (!a)
		return NULL;
	for (size_t i = 0; i < a->n_services; i++)
		free(a->services[i]);
	free(a->services);
	for (size_t i = 0; i < a->n_calls; i++) {
		proto_proxy_call *c = &a->calls[i];
		free(c->service), free(c->method), free(c->host), free(c->path), free(c->prev);
	}
	free(a->calls);
	free(a->head);
	free(a);
	return NULL;
}

static void gen_call(proto_gen *g, const proto_proxy_call *c)
{
	/* the keys in sorted order: this is also the entry's canonical form (attest) */
	proto_json_gen_open(g, true);
	proto_json_gen_kstr(g, "host", c->host);
	proto_json_gen_kstr(g, "method", c->method);
	proto_json_gen_kint(g, "ms", c->ms);
	proto_json_gen_kstr(g, "path", c->path);
	proto_json_gen_kstr(g, "prev", c->prev);
	proto_json_gen_kint(g, "request_bytes", c->request_bytes);
	proto_json_gen_kint(g, "response_bytes", c->response_bytes);
	proto_json_gen_kint(g, "seq", c->seq);
	proto_json_gen_kstr(g, "service", c->service);
	proto_json_gen_kint(g, "status", c->status);
	proto_json_gen_close(g, true);
}

void proto_proxy_call_json(const proto_proxy_call *c, buf *out)
{
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	gen_call(g, c);
	proto_json_gen_take_valid(g, out);
}

void proto_proxy_audit_gen(proto_gen *g, const proto_proxy_audit *a)
{
	if (!a)
		return;
	proto_json_gen_str(g, "proxy");
	proto_json_gen_open(g, true);
	proto_json_gen_kstrs(g, "services", (const char *const *)a->services);
	proto_json_gen_str(g, "calls");
	proto_json_gen_open(g, false);
	for (size_t i = 0; i < a->n_calls; i++)
		gen_call(g, &a->calls[i]);
	proto_json_gen_close(g, false);
	proto_json_gen_kstr_or_null(g, "head", a->head);
	proto_json_gen_kint(g, "refused", a->refused);
	proto_json_gen_close(g, true);
}

static int get_call(yajl_val v, size_t i, proto_proxy_call *c, err **e)
{
	const char *keys[] = {"service", "method", "host", "path", "prev"};
	char **dst[] = {&c->service, &c->method, &c->host, &c->path, &c->prev};
	for (size_t k = 0; k < 5; k++) {
		const char *s = proto_json_get_str(v, keys[k]);
		if (!s)
			return err_set(e, 0,
			               "result field \"proxy\": calls[%zu].%s is not a string", i,
			               keys[k]);
		*dst[k] = xstrdup(s);
	}
	const char *nums[] = {"seq", "status", "request_bytes", "response_bytes", "ms"};
	int64_t *ndst[] = {&c->seq, &c->status, &c->request_bytes, &c->response_bytes, &c->ms};
	for (size_t k = 0; k < 5; k++)
		if (proto_json_get_int(v, nums[k], ndst[k]) < 0 || *ndst[k] < 0)
			return err_set(
			    e, 0,
			    "result field \"proxy\": calls[%zu].%s is not a non-negative "
			    "integer",
			    i, nums[k]);
	if (!YAJL_IS_OBJECT(v) || v->u.object.len != 10)
		return err_set(e, 0, "result field \"proxy\": calls[%zu] has unknown fields", i);
	return 0;
}

int proto_proxy_audit_parse(yajl_val root, proto_proxy_audit **out, err **e)
{
	yajl_val v = proto_json_get(root, "proxy");
	if (!v || YAJL_IS_NULL(v))
		return 0;
	yajl_val calls = proto_json_get(v, "calls");
	yajl_val head = proto_json_get(v, "head");
	if (!YAJL_IS_OBJECT(v) || !YAJL_IS_ARRAY(calls) ||
	    calls->u.array.len > PROTO_PROXY_CALLS_MAX || !head ||
	    !(YAJL_IS_NULL(head) || YAJL_IS_STRING(head)))
		return err_set(
		    e, 0,
		    "result field \"proxy\" must be {\"services\", \"calls\": [at most %d "
		    "entries], \"head\", \"refused\"}",
		    PROTO_PROXY_CALLS_MAX);
	proto_proxy_audit *a = *out = proto_proxy_audit_new();
	if (names_of(proto_json_get(v, "services"), "result field \"proxy\".services", &a->services,
	             &a->n_services, e) < 0 ||
	    proto_json_get_int(v, "refused", &a->refused) < 0)
		return err_set(e, 0, "result field \"proxy\": bad services or refused");
	a->head = YAJL_IS_STRING(head) ? xstrdup(head->u.string) : NULL;
	a->calls = xcalloc(calls->u.array.len + 1, sizeof(*a->calls));
	for (size_t i = 0; i < calls->u.array.len; i++, a->n_calls++)
		if (get_call(calls->u.array.values[i], i, &a->calls[i], e) < 0)
			return -1;
	return 0;
}
