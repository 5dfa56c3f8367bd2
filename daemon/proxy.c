/* The credential proxy (daemon/proxy.h): one task's session serves its sandbox's
 * PROXY_REQUESTs one at a time. A request is judged (proxy-judge.c) and counted against the
 * budgets, the service's credential is read from the secret store at each call (a rotated
 * secret is used from the next call on) and put into the header the service names, and the
 * call goes out through the proxy's own http_client on the loop (https only, the SSRF veto
 * after DNS, no redirects, the response capped while it is read, a fresh connection per
 * call). The answer goes back without Set-Cookie; each call that left the node becomes the
 * next entry of the task's hash chain (attest_proxy_entry_digest). The credential lives only
 * in this call's header list and libcurl's copy: never in a message, a log line, the result
 * or the sandbox. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "attest/attest.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "daemon/http-client.h"
#include "daemon/proxy-internal.h"

struct proxy {
	const proxy_config *c;
	secrets *store; /* NULL when no service has a secret */
	http_client *hc;
};

struct proxy_session {
	proxy *p;
	char **services; /* the task's; NULL-terminated */
	size_t n_services;
	int64_t *used; /* calls made, per service of the task */
	int64_t total;
	proto_proxy_audit *audit;
	char prev[ATTEST_DIGEST_LEN]; /* the last entry's digest, "" before the first */
	sandbox *sb;
	http_call *call;      /* in flight, or NULL */
	proto_proxy_call cur; /* its entry, filled when it ends */
	int64_t t0_ms;
	proxy_log_fn log;
	void *log_arg;
};

int proxy_new(proxy **out, struct event_base *base, const proxy_config *c, const secrets_config *sc,
              err **e)
{
	*out = NULL;
	if (!c->n_services)
		return 0;
	proxy *p = xzalloc(sizeof(*p));
	p->c = c;
	bool any_secret = false;
	for (size_t i = 0; i < c->n_services; i++)
		any_secret |= c->services[i].secret != NULL;
	if ((any_secret && secrets_open(&p->store, sc, e) < 0) ||
	    !(p->hc = http_client_new(base, e))) {
		err_prefix(e, "[proxy]");
		proxy_free(p);
		return -1;
	}
	*out = p;
	return 0;
}

proxy *proxy_free(proxy *p)
{
	if (!p)
		return NULL;
	http_client_free(p->hc);
	secrets_free(p->store);
	free(p);
	return NULL;
}

char *proxy_check_task(const proxy *p, const proto_task *t)
{
	for (size_t i = 0; i < t->n_services; i++)
		if (!p || !proxy_config_find(p->c, t->services[i])) {
			_cleanup_free_ char *mine = NULL;
			if (p) {
				char **names = xcalloc(p->c->n_services + 1, sizeof(char *));
				for (size_t k = 0; k < p->c->n_services; k++)
					names[k] = p->c->services[k].name;
				mine = proxy_join(names);
				free(names);
			}
			return xasprintf("service \"%s\" is not served by this node (its services: "
			                 "%s)",
			                 t->services[i], mine ? mine : "none");
		}
	return NULL;
}

proxy_session *proxy_session_new(proxy *p, const proto_task *t, proxy_log_fn log, void *arg)
{
	proxy_session *s = xzalloc(sizeof(*s));
	s->p = p;
	s->n_services = t->n_services;
	s->services = xcalloc(t->n_services + 1, sizeof(char *));
	for (size_t i = 0; i < t->n_services; i++)
		s->services[i] = xstrdup(t->services[i]);
	s->used = xcalloc(t->n_services + 1, sizeof(int64_t));
	s->audit = proto_proxy_audit_new();
	s->log = log;
	s->log_arg = arg;
	return s;
}

static void entry_clear(proto_proxy_call *c)
{
	free(c->service), free(c->method), free(c->host), free(c->path), free(c->prev);
	memset(c, 0, sizeof(*c));
}

proxy_session *proxy_session_free(proxy_session *s)
{
	if (!s)
		return NULL;
	s->sb = NULL; /* not touched: it may be gone (proxy_session_end() detached it, if it ran) */
	proto_proxy_audit_free(proxy_session_end(s));
	for (size_t i = 0; i < s->n_services; i++)
		free(s->services[i]);
	free(s->services);
	free(s->used);
	proto_proxy_audit_free(s->audit);
	entry_clear(&s->cur);
	free(s);
	return NULL;
}

/* The entry of the call that just ended goes on the chain. */
static void append(proxy_session *s, int64_t status, int64_t response_bytes)
{
	proto_proxy_audit *a = s->audit;
	s->cur.status = status;
	s->cur.response_bytes = response_bytes;
	s->cur.ms = now_mono_ms() - s->t0_ms;
	a->calls = xreallocarray(a->calls, a->n_calls + 1, sizeof(*a->calls));
	a->calls[a->n_calls++] = s->cur;
	memset(&s->cur, 0, sizeof(s->cur));
	attest_proxy_entry_digest(&a->calls[a->n_calls - 1], s->prev);
	free(a->head);
	a->head = xstrdup(s->prev);
	if (s->log)
		s->log(s->log_arg, &a->calls[a->n_calls - 1], NULL);
}

proto_proxy_audit *proxy_session_end(proxy_session *s)
{
	if (s->call) { /* the program's run is over: the call was made, its answer is lost */
		http_call_cancel(steal_pointer(&s->call));
		append(s, 0, 0);
	}
	if (s->sb)
		sandbox_on_proxy(steal_pointer(&s->sb), NULL, NULL);
	if (!s->audit)
		return NULL;
	proto_proxy_audit *a = steal_pointer(&s->audit);
	a->services = steal_pointer(&s->services);
	a->n_services = s->n_services;
	s->n_services = 0;
	return a;
}

static void refuse(proxy_session *s, const char *service, const char *why)
{
	s->audit->refused++;
	if (s->log)
		s->log(s->log_arg, NULL, why);
	_cleanup_free_ char *msg =
	    xasprintf("proxy_fetch refused (service %.64s): %s", service, why);
	sandbox_proxy_reply_error(s->sb, msg);
}

/* The answer for the program: status, headers but Set-Cookie, body. */
static void answer(proxy_session *s, const http_response *r)
{
	sandbox_frame_buf f = {0};
	sandbox_frame_put_field_u64(&f, PX_STATUS, (uint64_t)r->status);
	for (size_t i = 0; i < r->n_headers; i++) {
		const http_header *h = &r->headers[i];
		if (!strcasecmp(h->name, "set-cookie") || !strcasecmp(h->name, "set-cookie2"))
			continue;
		_cleanup_free_ char *line = xasprintf("%s: %s", h->name, h->value);
		sandbox_frame_put_field(&f, PX_HEADER, line, strlen(line));
	}
	sandbox_frame_put_field(&f, PX_BODY, r->body.data, r->body.len);
	sandbox_proxy_reply(s->sb, f.data, f.len);
	sandbox_frame_buf_free(&f);
}

static void on_done(http_response *r, const err *e, void *arg)
{
	proxy_session *s = arg;
	s->call = NULL;
	_cleanup_free_ char *service = xstrdup(s->cur.service);
	append(s, e ? 0 : r->status, e ? 0 : (int64_t)r->body.len);
	if (!e)
		return answer(s, r);
	_cleanup_free_ char *msg =
	    xasprintf("proxy_fetch failed (service %s): %s", service, err_msg(e));
	sandbox_proxy_reply_error(s->sb, msg);
}

/* A field as a C string; NULL when it holds a NUL byte. Caller frees. */
static char *field_str(const sandbox_frame_bytes *b)
{
	return memchr(b->p, '\0', b->n) ? NULL : xstrndup((const char *)b->p, b->n);
}

/* The index of service in the task's list, or -1. */
static int task_service(const proxy_session *s, const char *service)
{
	for (size_t i = 0; i < s->n_services; i++)
		if (!strcmp(s->services[i], service))
			return (int)i;
	return -1;
}

/* NULL when the task may call the service now (declared, served, budgets), else why not. */
static char *judge_budget(proxy_session *s, const char *service, const proxy_service **svc,
                          int *idx)
{
	*idx = task_service(s, service);
	*svc = proxy_config_find(s->p->c, service);
	if (*idx < 0) {
		_cleanup_free_ char *l = proxy_join(s->services);
		return xasprintf("service %.64s is not one of this task's services (%s)", service,
		                 l);
	}
	if (!*svc)
		return xstrdup("this node does not serve it");
	if (s->total >= s->p->c->max_calls)
		return xasprintf("the task's budget of %lld proxy calls is spent",
		                 (long long)s->p->c->max_calls);
	if (s->used[*idx] >= (*svc)->max_calls)
		return xasprintf("the task's budget of %lld calls to this service is spent",
		                 (long long)(*svc)->max_calls);
	return NULL;
}

/* The credential header of svc ("Name: value" with the secret), or NULL without a secret; -1
 * when the secret cannot be read (logged for the operator, not told to the program). */
static int credential(const proxy *p, const proxy_service *svc, char **out)
{
	*out = NULL;
	if (!svc->secret)
		return 0;
	secret_value *v = NULL;
	_cleanup_err_ err *e = NULL;
	if (secrets_lookup_node(p->store, svc->secret, &v, &e) < 0 ||
	    strpbrk((const char *)v->value, "\r\n")) {
		buf b = BUF_INIT;
		log_kv(&b, "event", "proxy_credential");
		log_kv(&b, "service", svc->name);
		log_kv(&b, "error", e ? err_msg(e) : "the secret holds a line break");
		log_warn("%s", buf_str(&b) + 1);
		buf_deinit(&b);
		secrets_values_free(v, v ? 1 : 0);
		return -1;
	}
	const char *at = strstr(svc->header, "{secret}");
	*out = xasprintf("%.*s%s%s", (int)(at - svc->header), svc->header, (const char *)v->value,
	                 at + strlen("{secret}"));
	secrets_values_free(v, 1);
	return 0;
}

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* Sends the judged request; NULL, or why it could not start. */
static char *submit(proxy_session *s, const proxy_service *svc, const char *method, const char *url,
                    const sandbox_proxy_request *rq)
{
	char *cred = NULL;
	if (credential(s->p, svc, &cred) < 0)
		return xstrdup("the service's credential is not available on this node");
	const char **hs = xcalloc(rq->n_headers + 2, sizeof(char *));
	size_t k = 0;
	for (size_t i = 0; i < rq->n_headers; i++)
		hs[k++] = xstrndup((const char *)rq->headers[i].p, rq->headers[i].n);
	if (cred)
		hs[k++] = cred;
	http_request hr = {.method = method,
	                   .url = url,
	                   .headers = hs,
	                   .body = rq->has_body ? rq->body.p : NULL,
	                   .body_len = rq->body.n,
	                   .connect_timeout_ms = svc->connect_timeout_ms,
	                   .timeout_ms = svc->timeout_ms,
	                   .max_response_bytes = (size_t)svc->max_response_bytes,
	                   .ca_file = svc->ca_file,
	                   .allow_private = svc->allow_private};
	_cleanup_err_ err *e = NULL;
	s->call = http_client_submit(s->p->hc, &hr, on_done, s, &e);
	for (size_t i = 0; i < k; i++)
		wipe_free((char *)hs[i]);
	free(hs);
	return s->call ? NULL : xstrdup(err_msg(e));
}

static void on_request(sandbox *sb, const sandbox_proxy_request *rq, void *arg)
{
	proxy_session *s = arg;
	_cleanup_free_ char *method = field_str(&rq->method), *url = field_str(&rq->url);
	_cleanup_free_ char *service = field_str(&rq->service), *why = NULL;
	const proxy_service *svc = NULL;
	int idx = -1;
	proxy_target t = {0};
	if (!method || !url || !service)
		why = xstrdup("a NUL byte in the method, URL or service");
	else if (!(why = judge_budget(s, service, &svc, &idx)))
		why = proxy_judge(svc, method, url, rq, &t);
	if (!why) {
		s->cur = (proto_proxy_call){.seq = (int64_t)s->audit->n_calls + 1,
		                            .service = xstrdup(service),
		                            .method = xstrdup(method),
		                            .host = steal_pointer(&t.host),
		                            .path = steal_pointer(&t.path),
		                            .prev = xstrdup(s->prev),
		                            .request_bytes = (int64_t)rq->body.n};
		s->t0_ms = now_mono_ms();
		why = submit(s, svc, method, url, rq);
		if (why)
			entry_clear(&s->cur);
		else
			s->used[idx]++, s->total++;
	}
	proxy_target_deinit(&t);
	if (why)
		refuse(s, service ? service : "?", why);
}

void proxy_session_attach(proxy_session *s, sandbox *sb)
{
	s->sb = sb;
	sandbox_on_proxy(sb, on_request, s);
}
