/* The LLM client: OpenAI-compatible chat completions over http-client.h (see llm.h, LLM.md).
 *
 * A call is a small state machine on the loop: SENDING (an http_call in flight) and WAITING
 * (a retry timer armed). Only on_http_done() and on_retry_timer() move it, and each path ends
 * in finish(), which calls fn once and frees the call. Cancelling frees it from either state.
 * The cost arithmetic is in llm-cost.c. */
#include "daemon/llm.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "common/cleanup.h"
#include "common/xalloc.h"
#include "proto/json.h"
#include "proto/proto.h"

#define PROVIDER_MESSAGE_MAX 300 /* bytes of a provider's text quoted in a message */
#define REDACTED             "[REDACTED]"
#define BACKOFF_MAX_MS       30000

struct llm {
	http_client *hc;
	char *url;     /* <base_url>/chat/completions */
	char *url_msg; /* the same, fit for messages */
	char *key;
	size_t key_len;
	char *auth_header; /* "Authorization: Bearer <key>" */
	char **models;     /* NULL-terminated */
	llm_price *prices;
	size_t n_prices;
	int64_t max_tokens, connect_timeout_ms, timeout_ms, retry_budget_ms, retry_base_ms;
	int max_attempts;
	size_t max_response_bytes;
	char *ca_file;
	bool allow_http, allow_private;
	LIST_HEAD(, llm_call) calls;
};

struct llm_call {
	llm *l;
	llm_done_fn fn;
	void *arg;
	LIST_ENTRY(llm_call) link;
	char *model; /* as requested: the key of the price table */
	http_call *http;
	struct event *retry_ev;
	int64_t waited_ms;
	char *last; /* the last retryable failure: "429 Too Many Requests from <url>: <msg>" */
	bool in_fn;
	llm_result res;
};

/* ---- text handed back: redacted, bounded ---- */

/* A copy of s (n bytes) with every occurrence of the API key replaced. */
static char *redact(const llm *l, const char *s, size_t n, size_t *out_len)
{
	buf b = BUF_INIT;
	const char *p = s, *end = s + n, *hit;
	while ((hit = memmem(p, (size_t)(end - p), l->key, l->key_len))) {
		buf_append(&b, p, (size_t)(hit - p));
		buf_append_str(&b, REDACTED);
		p = hit + l->key_len;
	}
	buf_append(&b, p, (size_t)(end - p));
	return buf_steal(&b, out_len);
}

/* A provider's text for a message: redacted, control characters as spaces, at most
 * PROVIDER_MESSAGE_MAX bytes cut at a UTF-8 boundary ("..." then). */
static char *quote_text(const llm *l, const char *s, size_t n)
{
	size_t len;
	char *t = redact(l, s, n, &len);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)t[i] < 0x20 || t[i] == 0x7f)
			t[i] = ' ';
	if (len > PROVIDER_MESSAGE_MAX) {
		size_t cut = PROVIDER_MESSAGE_MAX;
		while (cut && ((unsigned char)t[cut] & 0xc0) == 0x80)
			cut--;
		char *c = xasprintf("%.*s...", (int)cut, t);
		free(t);
		return c;
	}
	return t;
}

/* What a provider's body says: {"error": {"message", "code"}} or {"error": "text"} when it
 * is JSON, else the raw text. */
static char *describe_body(const llm *l, const char *body, size_t len)
{
	_cleanup_(yajl_tree_freep) yajl_val root = NULL;
	if (!len)
		return xstrdup("(empty body)");
	if (proto_json_parse(body, len, &root, NULL) < 0 || !YAJL_IS_OBJECT(root))
		return quote_text(l, body, len);
	yajl_val er = proto_json_get(root, "error");
	const char *msg =
	    YAJL_IS_STRING(er) ? YAJL_GET_STRING(er) : proto_json_get_str(er, "message");
	if (!msg)
		return quote_text(l, body, len);
	yajl_val code = proto_json_get(er, "code");
	_cleanup_free_ char *text = NULL;
	if (YAJL_IS_STRING(code))
		text = xasprintf("%s (code %s)", msg, YAJL_GET_STRING(code));
	else if (YAJL_IS_NUMBER(code))
		text = xasprintf("%s (code %s)", msg, YAJL_GET_NUMBER(code));
	else
		text = xstrdup(msg);
	return quote_text(l, text, strlen(text));
}

static const char *reason_phrase(long status)
{
	static const struct {
		long code;
		const char *text;
	} t[] = {{400, "Bad Request"},       {401, "Unauthorized"},
	         {402, "Payment Required"},  {403, "Forbidden"},
	         {404, "Not Found"},         {408, "Request Timeout"},
	         {413, "Content Too Large"}, {422, "Unprocessable Content"},
	         {429, "Too Many Requests"}, {500, "Internal Server Error"},
	         {502, "Bad Gateway"},       {503, "Service Unavailable"},
	         {504, "Gateway Timeout"}};
	for (size_t i = 0; i < ARRAY_SIZE(t); i++)
		if (t[i].code == status)
			return t[i].text;
	return "";
}

/* ---- options ---- */

/* base_url: an absolute https URL (http only with allow_http) without user-info, query or
 * fragment; trailing slashes are dropped. */
static int check_base_url(const char *base, bool allow_http, err **e)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *part = NULL;
	if (!u)
		abort();
	int r = 0;
	CURLUcode rc = curl_url_set(u, CURLUPART_URL, base, 0);
	if (rc == CURLUE_OK)
		rc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
	if (rc != CURLUE_OK)
		r = err_set(e, 0, "llm: base_url is not a URL: %s", curl_url_strerror(rc));
	else if (strcmp(scheme, "https") != 0 && !(allow_http && !strcmp(scheme, "http")))
		r = err_set(e, 0, "llm: base_url must be https (not %s)", scheme);
	else if (curl_url_get(u, CURLUPART_USER, &part, 0) == CURLUE_OK)
		r = err_set(e, 0,
		            "llm: base_url must not carry user-info (put the key in api_key_file)");
	else if (curl_url_get(u, CURLUPART_QUERY, &part, 0) == CURLUE_OK ||
	         curl_url_get(u, CURLUPART_FRAGMENT, &part, 0) == CURLUE_OK)
		r = err_set(e, 0, "llm: base_url must not have a query or a fragment");
	curl_free(scheme);
	curl_free(part);
	curl_url_cleanup(u);
	return r;
}

/* The key goes into a header: 1..LLM_MAX_API_KEY_BYTES bytes from the set API keys use
 * (letters, digits, "-._~+/="), so no escaping can hide it from redaction. The message never
 * quotes the key. */
static int check_api_key(const char *key, err **e)
{
	if (!key || !*key)
		return err_set(e, 0, "llm: the API key is empty");
	size_t n = strlen(key);
	if (n > LLM_MAX_API_KEY_BYTES)
		return err_set(e, 0, "llm: the API key is longer than %d bytes",
		               LLM_MAX_API_KEY_BYTES);
	size_t bad = strspn(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                         "0123456789-._~+/=");
	if (bad != n)
		return err_set(e, 0,
		               "llm: the API key has a byte outside [A-Za-z0-9-._~+/=] at "
		               "offset %zu",
		               bad);
	return 0;
}

static int check_prices(const llm_price *p, size_t n, err **e)
{
	for (size_t i = 0; i < n; i++) {
		if (!p[i].model || !*p[i].model)
			return err_set(e, 0, "llm: price %zu has no model", i + 1);
		if (p[i].prompt_per_mtok < 0 || p[i].prompt_per_mtok > LLM_MAX_PRICE_PER_MTOK ||
		    p[i].completion_per_mtok < 0 ||
		    p[i].completion_per_mtok > LLM_MAX_PRICE_PER_MTOK)
			return err_set(e, 0,
			               "llm: price of %s: out of range [0, %lld] micro-USD per "
			               "million tokens",
			               p[i].model, LLM_MAX_PRICE_PER_MTOK);
	}
	return 0;
}

static int check_options(const llm_options *o, err **e)
{
	if (check_base_url(o->base_url ? o->base_url : LLM_DEFAULT_BASE_URL, o->allow_http, e) <
	        0 ||
	    check_api_key(o->api_key, e) < 0 || check_prices(o->prices, o->n_prices, e) < 0)
		return -1;
	if (!o->models || !o->models[0])
		return err_set(e, 0, "llm: no models are allowed (set models)");
	for (size_t i = 0; o->models[i]; i++)
		if (!*o->models[i] || strlen(o->models[i]) > LLM_MAX_MODEL_BYTES)
			return err_set(e, 0, "llm: model %zu: empty or longer than %d bytes", i + 1,
			               LLM_MAX_MODEL_BYTES);
	if (o->max_tokens < 0 || o->connect_timeout_ms < 0 || o->timeout_ms < 0 ||
	    o->max_attempts < 0 || o->retry_budget_ms < 0 || o->retry_base_ms < 0)
		return err_set(e, 0, "llm: negative limit in the options");
	if (o->max_response_bytes > PROTO_TASK_MAX_BYTES)
		return err_set(e, 0, "llm: max_response_bytes above %u", PROTO_TASK_MAX_BYTES);
	return 0;
}

static int64_t or_default(int64_t v, int64_t def)
{
	return v > 0 ? v : def;
}

static void copy_options(llm *l, const llm_options *o)
{
	_cleanup_free_ char *base = xstrdup(o->base_url ? o->base_url : LLM_DEFAULT_BASE_URL);
	size_t n = strlen(base);
	while (n && base[n - 1] == '/')
		base[--n] = 0;
	l->url = xasprintf("%s/chat/completions", base);
	l->url_msg = http_url_for_message(l->url);
	l->key = xstrdup(o->api_key);
	l->key_len = strlen(l->key);
	l->auth_header = xasprintf("Authorization: Bearer %s", l->key);
	size_t nm = 0;
	while (o->models[nm])
		nm++;
	l->models = xcalloc(nm + 1, sizeof(char *));
	for (size_t i = 0; i < nm; i++)
		l->models[i] = xstrdup(o->models[i]);
	l->prices = xcalloc(o->n_prices ? o->n_prices : 1, sizeof(llm_price));
	for (size_t i = 0; i < o->n_prices; i++) {
		l->prices[i] = o->prices[i];
		l->prices[i].model = xstrdup(o->prices[i].model);
	}
	l->n_prices = o->n_prices;
	l->max_tokens = or_default(o->max_tokens, LLM_DEFAULT_MAX_TOKENS);
	l->connect_timeout_ms = or_default(o->connect_timeout_ms, LLM_DEFAULT_CONNECT_TIMEOUT_MS);
	l->timeout_ms = or_default(o->timeout_ms, LLM_DEFAULT_TIMEOUT_MS);
	l->max_attempts = (int)or_default(o->max_attempts, LLM_DEFAULT_MAX_ATTEMPTS);
	l->retry_budget_ms = or_default(o->retry_budget_ms, LLM_DEFAULT_RETRY_BUDGET_MS);
	l->retry_base_ms = or_default(o->retry_base_ms, LLM_DEFAULT_RETRY_BASE_MS);
	l->max_response_bytes =
	    (size_t)or_default((int64_t)o->max_response_bytes, LLM_DEFAULT_MAX_RESPONSE_BYTES);
	l->ca_file = o->ca_file ? xstrdup(o->ca_file) : NULL;
	l->allow_http = o->allow_http;
	l->allow_private = o->allow_private;
}

int llm_new(llm **out, http_client *hc, const llm_options *o, err **e)
{
	*out = NULL;
	if (check_options(o, e) < 0)
		return -1;
	llm *l = xzalloc(sizeof(*l));
	l->hc = hc;
	LIST_INIT(&l->calls);
	copy_options(l, o);
	*out = l;
	return 0;
}

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

llm *llm_free(llm *l)
{
	if (!l)
		return NULL;
	while (!LIST_EMPTY(&l->calls))
		llm_call_cancel(LIST_FIRST(&l->calls));
	free(l->url);
	free(l->url_msg);
	wipe_free(l->key);
	wipe_free(l->auth_header);
	for (size_t i = 0; l->models[i]; i++)
		free(l->models[i]);
	free(l->models);
	for (size_t i = 0; i < l->n_prices; i++)
		free((char *)l->prices[i].model);
	free(l->prices);
	free(l->ca_file);
	free(l);
	return NULL;
}

const llm_price *llm_price_for(const llm *l, const char *model)
{
	const llm_price *star = NULL;
	for (size_t i = 0; i < l->n_prices; i++) {
		if (!strcmp(l->prices[i].model, model))
			return &l->prices[i];
		if (!strcmp(l->prices[i].model, "*"))
			star = &l->prices[i];
	}
	return star;
}

/* ---- the request ---- */

static bool model_allowed(const llm *l, const char *model)
{
	for (size_t i = 0; l->models[i]; i++)
		if (!strcmp(l->models[i], model))
			return true;
	return false;
}

int llm_check_request(const llm *l, const llm_request *rq, err **e)
{
	if (!rq->model || !*rq->model)
		return err_set(e, 0, "llm: no model");
	if (!model_allowed(l, rq->model))
		return err_set(e, 0, "llm: model \"%.*s\" is not allowed on this node",
		               LLM_MAX_MODEL_BYTES, rq->model);
	if (rq->max_tokens < 0 || rq->max_tokens > l->max_tokens)
		return err_set(e, 0, "llm: max_tokens %lld is outside [1, %lld], this node's cap",
		               (long long)rq->max_tokens, (long long)l->max_tokens);
	if (rq->temperature_milli != LLM_TEMPERATURE_UNSET &&
	    (rq->temperature_milli < 0 || rq->temperature_milli > LLM_TEMPERATURE_MAX_MILLI))
		return err_set(e, 0, "llm: temperature %d/1000 is outside [0, 2]",
		               rq->temperature_milli);
	if (!rq->input && rq->input_len)
		return err_set(e, 0, "llm: no input");
	return 0;
}

/* 700 -> "0.7", 0 -> "0", 1250 -> "1.25": exact decimal text of a milli value. */
static void milli_text(int v, char out[16])
{
	snprintf(out, 16, "%d.%03d", v / 1000, v % 1000);
	size_t n = strlen(out);
	while (out[n - 1] == '0')
		out[--n] = 0;
	if (out[n - 1] == '.')
		out[n - 1] = 0;
}

/* The body: {"model", "messages": [system?, user], "max_tokens", "temperature"?, "stream"}.
 * The generator validates UTF-8, so an input that is not UTF-8 is refused, not mangled. */
static int build_body(const llm *l, const llm_request *rq, buf *out, err **e)
{
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	proto_json_gen_open(g, true);
	proto_json_gen_kstr(g, "model", rq->model);
	proto_json_gen_str(g, "messages");
	proto_json_gen_open(g, false);
	if (rq->system_prompt &&
	    !proto_utf8_valid((const uint8_t *)rq->system_prompt, strlen(rq->system_prompt)))
		return err_set(e, 0, "llm: the system prompt is not valid UTF-8");
	if (rq->input && !proto_utf8_valid((const uint8_t *)rq->input, rq->input_len))
		return err_set(e, 0, "llm: the input is not valid UTF-8");
	if (rq->system_prompt && *rq->system_prompt) {
		proto_json_gen_open(g, true);
		proto_json_gen_kstr(g, "role", "system");
		proto_json_gen_str(g, "content");
		proto_json_gen_str(g, rq->system_prompt);
		proto_json_gen_close(g, true);
	}
	proto_json_gen_open(g, true);
	proto_json_gen_kstr(g, "role", "user");
	proto_json_gen_str(g, "content");
	proto_json_gen_strn(g, rq->input, rq->input_len);
	proto_json_gen_close(g, true);
	proto_json_gen_close(g, false);
	proto_json_gen_kint(g, "max_tokens", rq->max_tokens ? rq->max_tokens : l->max_tokens);
	if (rq->temperature_milli != LLM_TEMPERATURE_UNSET) {
		char t[16];
		milli_text(rq->temperature_milli, t);
		proto_json_gen_str(g, "temperature");
		proto_json_gen_number(g, t);
	}
	proto_json_gen_kbool(g, "stream", false);
	proto_json_gen_close(g, true);
	return proto_json_gen_take(g, out, e);
}

/* ---- a call ---- */

void llm_result_deinit(llm_result *r)
{
	free(r->content);
	free(r->model);
	free(r->id);
	free(r->finish_reason);
	free(r->request_json);
	free(r->response_json);
}

static void call_free(llm_call *c)
{
	LIST_REMOVE(c, link);
	if (c->retry_ev)
		event_free(c->retry_ev);
	llm_result_deinit(&c->res);
	free(c->model);
	free(c->last);
	free(c);
}

/* Ends the call: fn once, then the call is freed. e is consumed. */
static void finish(llm_call *c, err *e)
{
	c->in_fn = true;
	c->fn(&c->res, e, c->arg);
	err_free(e);
	call_free(c);
}

static void finish_error(llm_call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void finish_error(llm_call *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *m = xvasprintf(fmt, ap);
	va_end(ap);
	err *e = NULL;
	err_set(&e, 0, "%s", m);
	/* A failed call returns no answer, only how far it got (and the bodies). */
	llm_result *r = &c->res;
	free(steal_pointer(&r->content));
	free(steal_pointer(&r->model));
	free(steal_pointer(&r->id));
	free(steal_pointer(&r->finish_reason));
	r->content_len = 0;
	r->usage_reported = false;
	r->prompt_tokens = r->completion_tokens = r->cost_micro_usd = 0;
	r->cost_source = LLM_COST_NONE;
	finish(c, e);
}

static void on_http_done(http_response *r, const err *e, void *arg);

static int send_attempt(llm_call *c, err **e)
{
	llm *l = c->l;
	const char *headers[] = {l->auth_header, "Content-Type: application/json",
	                         "Accept: application/json", NULL};
	http_request rq = {
	    .method = "POST",
	    .url = l->url,
	    .headers = headers,
	    .body = c->res.request_json,
	    .body_len = c->res.request_len,
	    .connect_timeout_ms = l->connect_timeout_ms,
	    .timeout_ms = l->timeout_ms,
	    .max_response_bytes = l->max_response_bytes,
	    .ca_file = l->ca_file,
	    .allow_http = l->allow_http,
	    .allow_private = l->allow_private,
	};
	c->http = http_client_submit(l->hc, &rq, on_http_done, c, e);
	if (!c->http)
		return -1;
	c->res.attempts++;
	return 0;
}

static void on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
	llm_call *c = arg;
	err *e = NULL;
	if (send_attempt(c, &e) < 0) {
		err_prefix(&e, "llm: retry %d", c->res.attempts + 1);
		finish(c, e);
	}
}

llm_call *llm_call_start(llm *l, const llm_request *rq, llm_done_fn fn, void *arg, err **e)
{
	if (!l->hc) {
		err_set(e, 0, "llm: no HTTP client");
		return NULL;
	}
	if (llm_check_request(l, rq, e) < 0)
		return NULL;
	buf body = BUF_INIT;
	if (build_body(l, rq, &body, e) < 0) {
		buf_deinit(&body);
		return NULL;
	}
	llm_call *c = xzalloc(sizeof(*c));
	c->l = l;
	c->fn = fn;
	c->arg = arg;
	c->model = xstrdup(rq->model);
	c->res.request_json = buf_steal(&body, &c->res.request_len);
	c->retry_ev = evtimer_new(http_client_base(l->hc), on_retry_timer, c);
	if (!c->retry_ev)
		abort();
	LIST_INSERT_HEAD(&l->calls, c, link);
	if (send_attempt(c, e) < 0) {
		_cleanup_free_ char *m = xstrdup(err_msg(e ? *e : NULL));
		err_set(e, 0, "llm: %s", strncmp(m, "http: ", 6) ? m : m + 6);
		call_free(c);
		return NULL;
	}
	return c;
}

void llm_call_cancel(llm_call *c)
{
	if (!c || c->in_fn)
		return;
	http_call_cancel(c->http);
	call_free(c);
}

llm_call_state llm_call_get_state(const llm_call *c)
{
	return c->http ? LLM_CALL_SENDING : LLM_CALL_WAITING;
}

int llm_call_attempts(const llm_call *c)
{
	return c->res.attempts;
}

/* ---- the response ---- */

/* A string member, redacted again after parsing (an escaped spelling of the key survives the
 * redaction of the raw text). NULL when missing or not a string. */
static char *take_str(const llm *l, yajl_val obj, const char *key, size_t *len)
{
	const char *s = proto_json_get_str(obj, key);
	size_t n;
	char *r = s ? redact(l, s, strlen(s), &n) : NULL;
	if (len)
		*len = r ? n : 0;
	return r;
}

/* {"error": ...} anywhere a provider puts one (the top level, choices[0]) is an error. */
static int check_error_member(const llm *l, yajl_val obj, long status, const char *where, err **e)
{
	yajl_val er = proto_json_get(obj, "error");
	if (!er || YAJL_IS_NULL(er))
		return 0;
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	proto_json_gen_open(g, true);
	proto_json_gen_str(g, "error");
	proto_json_gen_value(g, er);
	proto_json_gen_close(g, true);
	buf b = BUF_INIT;
	proto_json_gen_take_valid(g, &b);
	_cleanup_free_ char *d = describe_body(l, buf_str(&b), b.len);
	buf_deinit(&b);
	return err_set(e, 0, "llm: error%s in an HTTP %ld response from %s: %s", where, status,
	               l->url_msg, d);
}

static int take_count(const llm *l, yajl_val usage, const char *key, int64_t *out, err **e)
{
	yajl_val v = proto_json_get(usage, key);
	if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0 ||
	    YAJL_GET_INTEGER(v) > LLM_MAX_TOKENS_REPORTED)
		return err_set(e, 0,
		               "llm: response from %s: usage.%s is not an integer in [0, %lld]",
		               l->url_msg, key, LLM_MAX_TOKENS_REPORTED);
	*out = YAJL_GET_INTEGER(v);
	return 0;
}

/* usage.{prompt_tokens, completion_tokens, cost}, then the cost: the provider's, else the
 * price table's. A response without usage is accepted (cost source NONE). */
static int take_usage(const llm *l, const char *model, yajl_val root, llm_result *res, err **e)
{
	yajl_val usage = proto_json_get(root, "usage");
	if (!usage || YAJL_IS_NULL(usage))
		return 0;
	if (!YAJL_IS_OBJECT(usage))
		return err_set(e, 0, "llm: response from %s: usage is not an object", l->url_msg);
	if (take_count(l, usage, "prompt_tokens", &res->prompt_tokens, e) < 0 ||
	    take_count(l, usage, "completion_tokens", &res->completion_tokens, e) < 0)
		return -1;
	res->usage_reported = true;
	yajl_val cost = proto_json_get(usage, "cost");
	if (cost && !YAJL_IS_NULL(cost)) {
		if (!YAJL_IS_NUMBER(cost))
			return err_set(e, 0, "llm: response from %s: usage.cost is not a number",
			               l->url_msg);
		if (llm_cost_from_decimal(YAJL_GET_NUMBER(cost), &res->cost_micro_usd, e) < 0)
			return err_prefix(e, "llm: response from %s: usage", l->url_msg);
		res->cost_source = LLM_COST_PROVIDER;
		return 0;
	}
	const llm_price *p = llm_price_for(l, model);
	if (!p)
		return 0;
	if (llm_cost_from_prices(p, res->prompt_tokens, res->completion_tokens,
	                         &res->cost_micro_usd, e) < 0)
		return err_prefix(e, "llm: model %s", model);
	res->cost_source = LLM_COST_PRICE_TABLE;
	return 0;
}

static int take_choice(const llm *l, yajl_val root, long status, llm_result *res, err **e)
{
	yajl_val choices = proto_json_get(root, "choices");
	if (!YAJL_IS_ARRAY(choices) || !YAJL_GET_ARRAY(choices)->len ||
	    !YAJL_IS_OBJECT(YAJL_GET_ARRAY(choices)->values[0]))
		return err_set(e, 0, "llm: response from %s has no choices[0]", l->url_msg);
	yajl_val ch = YAJL_GET_ARRAY(choices)->values[0];
	if (check_error_member(l, ch, status, " in choices[0]", e) < 0)
		return -1;
	res->finish_reason = take_str(l, ch, "finish_reason", NULL);
	res->content = take_str(l, proto_json_get(ch, "message"), "content", &res->content_len);
	if (!res->content)
		return err_set(e, 0,
		               "llm: response from %s has no choices[0].message.content "
		               "(finish_reason %s)",
		               l->url_msg, res->finish_reason ? res->finish_reason : "missing");
	return 0;
}

int llm_parse_response(const llm *l, const char *model, const char *body, size_t len, long status,
                       llm_result *res, err **e)
{
	res->response_json = redact(l, body ? body : "", body ? len : 0, &res->response_len);
	_cleanup_(yajl_tree_freep) yajl_val root = NULL;
	_cleanup_err_ err *pe = NULL;
	if (proto_json_parse(res->response_json, res->response_len, &root, &pe) < 0) {
		_cleanup_free_ char *q = quote_text(l, err_msg(pe), strlen(err_msg(pe)));
		return err_set(e, 0, "llm: response from %s is not JSON: %s", l->url_msg, q);
	}
	if (!YAJL_IS_OBJECT(root))
		return err_set(e, 0, "llm: response from %s is not a JSON object", l->url_msg);
	if (check_error_member(l, root, status, "", e) < 0 ||
	    take_choice(l, root, status, res, e) < 0 || take_usage(l, model, root, res, e) < 0)
		return -1;
	res->model = take_str(l, root, "model", NULL);
	if (!res->model)
		res->model = xstrdup(model);
	res->id = take_str(l, root, "id", NULL);
	return 0;
}

/* ---- retries ---- */

static int64_t backoff_ms(int64_t base, int attempt)
{
	int64_t d = base;
	for (int i = 1; i < attempt && d < BACKOFF_MAX_MS; i++)
		d *= 2;
	if (d > BACKOFF_MAX_MS)
		d = BACKOFF_MAX_MS;
	return d / 2 + (int64_t)(random() % (d / 2 + 1)); /* half fixed, half jitter */
}

/* How long to wait before the next attempt, or -1 (and *why) when the budget forbids it. */
static int64_t next_wait(llm_call *c, const http_response *r, char **why)
{
	llm *l = c->l;
	int64_t left = l->retry_budget_ms - c->waited_ms;
	if (r->retry_after_s >= 0) {
		if (r->retry_after_s > left / 1000) {
			*why =
			    xasprintf("its Retry-After of %lld s is beyond the %lld ms left of the "
			              "retry budget",
			              (long long)r->retry_after_s, (long long)left);
			return -1;
		}
		int64_t wait = r->retry_after_s * 1000;
		int64_t spread = wait / 10 > 100 ? wait / 10 : 100; /* up to 10 % more, >= 100 ms */
		if (spread > left - wait)
			spread = left - wait;
		return wait + (int64_t)(random() % (spread + 1));
	}
	if (left <= 0) {
		*why = xasprintf("the retry budget of %lld ms is spent",
		                 (long long)l->retry_budget_ms);
		return -1;
	}
	int64_t wait = backoff_ms(l->retry_base_ms, c->res.attempts);
	return wait < left ? wait : left;
}

static void retry_or_give_up(llm_call *c, const http_response *r)
{
	llm *l = c->l;
	_cleanup_free_ char *d = describe_body(l, (const char *)r->body.data, r->body.len);
	free(c->last);
	c->last =
	    xasprintf("%ld %s from %s: %s", r->status, reason_phrase(r->status), l->url_msg, d);
	int n = c->res.attempts;
	_cleanup_free_ char *why = NULL;
	int64_t wait = n < l->max_attempts ? next_wait(c, r, &why) : -1;
	if (wait < 0) {
		finish_error(c, "llm: gave up after %d attempt%s (last: %s%s%s)", n,
		             n == 1 ? "" : "s", c->last, why ? "; " : "", why ? why : "");
		return;
	}
	c->waited_ms += wait;
	struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};
	evtimer_add(c->retry_ev, &tv);
}

static void on_http_done(http_response *r, const err *e, void *arg)
{
	llm_call *c = arg;
	llm *l = c->l;
	c->http = NULL;
	c->res.status = r->status;
	if (e) {
		const char *m = err_msg(e);
		finish_error(c, "llm: %s", strncmp(m, "http: ", 6) ? m : m + 6);
		return;
	}
	if (r->status == 429 || r->status == 502 || r->status == 503) {
		retry_or_give_up(c, r);
		return;
	}
	if (r->status < 200 || r->status > 299) {
		_cleanup_free_ char *d = describe_body(l, (const char *)r->body.data, r->body.len);
		finish_error(c, "llm: HTTP %ld from %s: %s", r->status, l->url_msg, d);
		return;
	}
	err *pe = NULL;
	if (llm_parse_response(l, c->model, (const char *)r->body.data, r->body.len, r->status,
	                       &c->res, &pe) < 0) {
		finish_error(c, "%s", err_msg(pe));
		err_free(pe);
		return;
	}
	finish(c, NULL);
}
