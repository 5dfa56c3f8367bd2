/* aisp-gateway's HTTP side on evhttp: one generic callback routes every request (so that
 * unknown paths and wrong methods get problem+json, never evhttp's HTML), each call carries a
 * call record from its arrival to its reply, replies and NDJSON streams go through the
 * connection layer (conn.c), and the API key gate (401/429) is here. */
#include "gateway/gateway.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "proto/json.h"

char *gw_b64(const void *p, size_t n)
{
	char *out = xmalloc(4 * ((n + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	return out;
}

gw_call *gw_call_begin(gw *g, struct evhttp_request *req, gw_route route, const char *path)
{
	gw_call *c = xzalloc(sizeof(*c));
	c->g = g;
	c->req = req;
	c->route = route;
	c->path = xstrndup(path, 512);
	c->start_us = now_mono_us();
	c->ts_ms = now_wall_ms();
	uint8_t r[16];
	if (RAND_bytes(r, sizeof(r)) != 1)
		abort();
	hex_encode(r, sizeof(r), c->call_id);
	return c;
}

static void call_free(gw_call *c)
{
	free(c->path);
	free(c->agent_id);
	free(c->tool);
	free(c->task_id);
	free(c->node);
	free(c->status);
	free(c->proof_hash);
	gw_decision_deinit(&c->decision);
	free(c);
}

void gw_gen_str_or_null(proto_gen *g, const char *v)
{
	if (v)
		proto_json_gen_text(g, v, strlen(v));
	else
		proto_json_gen_null(g);
}

void gw_gen_kstr_or_null(proto_gen *g, const char *k, const char *v)
{
	proto_json_gen_str(g, k);
	gw_gen_str_or_null(g, v);
}

/* "endpoint": the request path, at most GW_RECORD_PATH_MAX bytes (cut at a UTF-8 character
 * boundary), as valid UTF-8 (a byte that is not is U+FFFD): a record is always JSON that
 * PostgreSQL's jsonb takes, whatever bytes the client sent. */
static void gen_endpoint(proto_gen *g, const char *path)
{
	size_t n = strlen(path);
	if (n > GW_RECORD_PATH_MAX) {
		n = GW_RECORD_PATH_MAX;
		while (n > 0 && ((unsigned char)path[n] & 0xc0) == 0x80)
			n--;
	}
	proto_json_gen_str(g, "endpoint");
	proto_json_gen_text(g, path, n);
}

/* The call record (the columns of secureexec_calls, calllog.c). */
static void call_record(const gw_call *c, int64_t latency_ms, buf *out)
{
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	const gw_config *cfg = c->g->cfg;
	proto_json_gen_open(g, true);
	proto_json_gen_kstr(g, "call_id", c->call_id);
	proto_json_gen_kint(g, "ts_ms", c->ts_ms);
	proto_json_gen_kstr(g, "gateway_id", cfg->id);
	gen_endpoint(g, c->path);
	gw_gen_kstr_or_null(g, "key_id", c->key ? c->key->id : NULL);
	gw_gen_kstr_or_null(g, "caller_agent_id", c->agent_id);
	gw_gen_kstr_or_null(g, "tool_name", c->tool);
	proto_json_gen_kbool(g, "dry_run", c->dry_run);
	gw_gen_kstr_or_null(g, "status", c->status);
	proto_json_gen_kint(g, "http_status", c->http_status);
	proto_json_gen_kbool(g, "iam_approved", c->decided && c->decision.verdict == GW_ALLOW);
	gw_gen_kstr_or_null(g, "iam_decision",
	                    c->decided ? gw_verdict_name(c->decision.verdict) : NULL);
	gw_gen_kstr_or_null(g, "iam_detail", c->decision.detail);
	gw_gen_kstr_or_null(g, "trust_level", c->key ? c->key->trust_level : NULL);
	gw_gen_kstr_or_null(g, "proof_hash", c->proof_hash);
	proto_json_gen_kint(g, "latency_ms", latency_ms);
	gw_gen_kstr_or_null(g, "node_id", c->node);
	gw_gen_kstr_or_null(g, "task_id", c->task_id);
	proto_json_gen_kint(g, "cost_micros", c->cost_micros);
	proto_json_gen_kstr(g, "currency", cfg->currency);
	gw_gen_kstr_or_null(g, "payment_protocol", NULL);
	proto_json_gen_kstr(g, "schema_version", GW_SCHEMA_VERSION);
	proto_json_gen_close(g, true);
	proto_json_gen_take_valid(g, out);
}

/* Which calls make a record. /health, /healthz and /metrics are not calls. A call that failed
 * authentication (401) or hit no endpoint (404, 405) has no accountable caller, and anyone can
 * send them as fast as the network carries them (one keep-alive client: over 4000 a second,
 * +4.4 MB/s of Redis with 500-byte paths when each was logged): they are counted in /metrics
 * (aisp_gateway_calls_unlogged_total{reason}, next to requests_total and
 * iam_decisions_total) and not logged. Logging them under a per-address rate limit instead
 * was rejected: behind the reverse proxy that terminates TLS every client has the proxy's
 * address, and an attacker has many addresses. A call with a valid key is logged, refused or
 * not (429, 402, 403 are the key's): that key is whom the record is about.
 * Without PostgreSQL nothing is logged (calllog.c). Returns true to log c, false after counting
 * why not (or for a route that is not a call). */
static bool call_logged(const gw_call *c)
{
	gw_metrics *m = &c->g->m;
	if (c->route == GW_ROUTE_OTHER) {
		m->calls_unlogged[GW_UNLOGGED_NO_ROUTE]++;
		return false;
	}
	if (c->route > GW_ROUTE_NODES)
		return false;
	if (c->decided &&
	    (c->decision.verdict == GW_DENY_NO_KEY || c->decision.verdict == GW_DENY_BAD_KEY)) {
		m->calls_unlogged[GW_UNLOGGED_UNAUTHENTICATED]++;
		return false;
	}
	if (!gw_calllog_enabled(c->g->log)) {
		m->calls_unlogged[GW_UNLOGGED_NO_POSTGRES]++;
		return false;
	}
	return true;
}

static void call_finish(gw_call *c)
{
	gw *g = c->g;
	int64_t us = now_mono_us() - c->start_us;
	int cls = c->http_status / 100 - 1;
	g->m.requests[c->route][cls >= 0 && cls < 5 ? cls : 4]++;
	metrics_hist_observe(&g->m.latency, (double)us / 1e6);
	if (call_logged(c)) {
		buf rec = BUF_INIT;
		call_record(c, us / 1000, &rec);
		gw_calllog_record(g->log, &rec);
		buf_deinit(&rec);
	}
	log_debug("call %s %s -> %d (%lld us)", c->call_id, c->path, c->http_status, (long long)us);
	call_free(c);
}

static void common_headers(gw_call *c, const char *ctype)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(c->req);
	evhttp_add_header(h, "Content-Type", ctype);
	evhttp_add_header(h, "X-Call-Id", c->call_id);
	evhttp_add_header(h, "Cache-Control", "no-store");
}

void gw_send(gw_call *c, int status, const char *ctype, const char *body, size_t len)
{
	struct evbuffer *b = evbuffer_new();
	evbuffer_add(b, body, len);
	common_headers(c, ctype);
	c->http_status = status;
	gw_conn_send_reply(c->g->conns, c->req, status, gw_status_reason(status), b);
	evbuffer_free(b);
	call_finish(c);
}

void gw_send_json(gw_call *c, int status, const buf *body)
{
	gw_send(c, status, "application/json", buf_str(body), body->len);
}

void gw_send_gen(gw_call *c, int status, proto_gen *g)
{
	buf b = BUF_INIT;
	err *e = NULL;
	if (proto_json_gen_take(g, &b, &e) < 0) {
		log_error("call %s: generating the response: %s", c->call_id, err_msg(e));
		err_free(e);
		gw_send_problem(c, 500, "internal", "the response could not be generated", NULL);
		return;
	}
	gw_send_json(c, status, &b);
	buf_deinit(&b);
}

void gw_send_problem(gw_call *c, int status, const char *slug, const char *detail,
                     const char *const *extra)
{
	buf b = BUF_INIT;
	gw_problem_render(&b, status, slug, detail, c->path, extra);
	if (!c->status)
		c->status = xstrdup("error");
	gw_send(c, status, "application/problem+json", buf_str(&b), b.len);
	buf_deinit(&b);
}

void gw_stream_begin(gw_call *c)
{
	common_headers(c, "application/x-ndjson");
	c->http_status = 200;
	c->streaming = true;
	gw_conn_reply_start(c->g->conns, c->req, 200, "OK");
}

void gw_stream_line(gw_call *c, const buf *line)
{
	struct evbuffer *b = evbuffer_new();
	evbuffer_add(b, line->data, line->len);
	evbuffer_add(b, "\n", 1);
	gw_conn_reply_chunk(c->g->conns, c->req, b);
	evbuffer_free(b);
}

void gw_stream_end(gw_call *c)
{
	gw_conn_reply_end(c->g->conns, c->req);
	call_finish(c);
}

bool gw_accepts_ndjson(const gw_call *c)
{
	const char *a = evhttp_find_header(evhttp_request_get_input_headers(c->req), "Accept");
	return a && strcasestr(a, "application/x-ndjson");
}

void gw_call_decide(gw_call *c, const gw_decision *d)
{
	if (c->decided)
		return;
	c->decided = true;
	c->decision.verdict = d->verdict;
	c->decision.detail = d->detail ? xstrdup(d->detail) : NULL;
	c->g->m.decisions[d->verdict < GW_VERDICT__COUNT ? d->verdict : 0]++;
}

void gw_send_denied(gw_call *c)
{
	static const char *const slugs[GW_VERDICT__COUNT] = {
	    "ok",        "unauthorized",   "unauthorized",    "rate-limited",
	    "forbidden", "forbidden",      "forbidden",       "forbidden",
	    "forbidden", "limit-exceeded", "payment-required"};
	gw_verdict v = c->decision.verdict;
	const char *extra[] = {"decision", gw_verdict_name(v), NULL};
	c->status = xstrdup("denied");
	gw_send_problem(c, gw_verdict_status(v), slugs[v], c->decision.detail, extra);
}

static void deny_auth(gw_call *c, gw_verdict v, const char *detail)
{
	gw_decision d = {v, (char *)detail};
	gw_call_decide(c, &d);
	struct evkeyvalq *h = evhttp_request_get_output_headers(c->req);
	evhttp_add_header(h, "WWW-Authenticate", "Bearer realm=\"aisp-gateway\"");
	gw_send_denied(c);
}

/* "Authorization: Bearer <key>" or "X-API-Key: <key>". */
static const char *presented_key(struct evhttp_request *req)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	const char *x = evhttp_find_header(in, "X-API-Key");
	if (x)
		return x;
	const char *a = evhttp_find_header(in, "Authorization");
	if (a && !strncasecmp(a, "Bearer ", 7))
		return a + 7 + strspn(a + 7, " ");
	return NULL;
}

int gw_authenticate(gw_call *c)
{
	gw *g = c->g;
	const char *k = presented_key(c->req);
	if (!k || !k[0]) {
		deny_auth(
		    c, GW_DENY_NO_KEY,
		    "no API key: send \"Authorization: Bearer <key>\" or \"X-API-Key: <key>\"");
		return -1;
	}
	const gw_key *key = strlen(k) <= 256 ? gw_keys_find(&g->keys, k, strlen(k)) : NULL;
	if (!key) {
		deny_auth(c, GW_DENY_BAD_KEY, "the API key is not valid");
		return -1;
	}
	c->key = key;
	int64_t retry = 0;
	gw_bucket *b = &g->buckets[key - g->keys.keys];
	if (!gw_bucket_take(b, key->rate_milli, key->burst, now_mono_ms(), &retry)) {
		_cleanup_free_ char *rate =
		    xasprintf("%lld.%03lld", (long long)key->rate_milli / 1000,
		              (long long)key->rate_milli % 1000);
		_cleanup_free_ char *d =
		    xasprintf("key %s is limited to %s calls per second (burst "
		              "%lld): retry in %lld s",
		              key->id, rate, (long long)key->burst, (long long)retry);
		_cleanup_free_ char *ra = xasprintf("%lld", (long long)retry);
		evhttp_add_header(evhttp_request_get_output_headers(c->req), "Retry-After", ra);
		gw_decision dec = {GW_DENY_RATE, d};
		gw_call_decide(c, &dec);
		gw_send_denied(c);
		return -1;
	}
	if (c->route != GW_ROUTE_EXEC && c->route != GW_ROUTE_SIMULATE) {
		gw_decision allow = {GW_ALLOW, NULL}; /* the key is all these routes ask for */
		gw_call_decide(c, &allow);
	}
	return 0;
}

char *gw_read_json_body(gw_call *c, size_t *len)
{
	const char *ct =
	    evhttp_find_header(evhttp_request_get_input_headers(c->req), "Content-Type");
	size_t n = ct ? strcspn(ct, "; ") : 0;
	if (!ct || n != strlen("application/json") || strncasecmp(ct, "application/json", n)) {
		_cleanup_free_ char *d =
		    xasprintf("Content-Type must be application/json (got %s)", ct ? ct : "none");
		gw_send_problem(c, 415, "unsupported-media-type", d, NULL);
		return NULL;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(c->req);
	*len = evbuffer_get_length(in);
	char *body = xmalloc(*len + 1);
	evbuffer_copyout(in, body, *len);
	body[*len] = '\0';
	return body;
}
