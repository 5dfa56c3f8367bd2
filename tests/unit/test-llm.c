/* Tests of the LLM client (daemon/llm.h): cost arithmetic (pure), then every behaviour on a
 * real libevent loop against tests/mock/llm_server.py (tests/mock/harness.h starts a plain and
 * an HTTPS mock and stops them): the answer and what went on the wire, each failure mode of
 * the mock with its documented message, retries counted by the requests the mock recorded
 * (never by time), the budgets, the cap, cancellation in every state, costs from the provider
 * and from the table, fresh connections, the production https path. The API key is a random
 * canary that must never come back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "common/buf.h"
#include "common/cleanup.h"
#include "common/err.h"
#include "common/xalloc.h"
#include "daemon/http-client.h"
#include "daemon/llm.h"
#include "proto/json.h"
#include "tests/mock/harness.h"

/* ---- pure functions ---- */

typedef struct cost_case {
	const char *text;
	int64_t micro; /* -1: an error */
} cost_case;

static const cost_case cost_cases[] = {
    {"0", 0},
    {"0.0", 0},
    {"1", 1000000},
    {"0.95", 950000},
    {"19", 19000000},
    {"0.3", 300000},
    {"0.000001", 1},
    {"0.0000005", 1}, /* exactly half: up */
    {"0.00000049", 0},
    {"0.0000004999999999", 0},
    {"0.00000050", 1},
    {"0.0000015", 2},
    {"0.000123", 123},
    {"0.0001234", 123},
    {"0.0001235", 124},
    {"0.000022", 22},
    {"1.5e-05", 15},
    {"1.5E-5", 15},
    {"15e-6", 15},
    {"2.5e-7", 0},
    {"5e-7", 1},
    {"1e+2", 100000000},
    {"0.00012345678901234567890123456789", 123},
    {"1e-400", 0},
    {"1e6", 1000000000000LL}, /* the limit itself */
    {"1000000.000001", -1},   /* one micro-USD above */
    {"12345678901234567890", -1},
    {"1e400", -1},
    {"-0.1", -1},
    {"-0", -1},
    {"abc", -1},
    {"01", -1},
    {"1.", -1},
    {".5", -1},
    {"1e", -1},
    {"1e+", -1},
    {"", -1},
    {"0x10", -1},
    {"1 ", -1},
    {"0.000000000000000000000000000000000000000000000000000000000000001", -1}, /* 65 bytes */
};

static void test_cost_decimal(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(cost_cases); i++) {
		int64_t v = -7;
		err *e = NULL;
		int r = llm_cost_from_decimal(cost_cases[i].text, &v, &e);
		if (cost_cases[i].micro < 0) {
			if (r == 0)
				fail_msg("\"%s\": accepted as %lld", cost_cases[i].text,
				         (long long)v);
			assert_non_null(strstr(err_msg(e), "cost"));
		} else if (r < 0 || v != cost_cases[i].micro) {
			fail_msg("\"%s\": got %lld (%s), want %lld", cost_cases[i].text,
			         (long long)v, r < 0 ? err_msg(e) : "ok",
			         (long long)cost_cases[i].micro);
		}
		err_free(e);
	}
	err *e = NULL;
	int64_t v;
	assert_int_equal(llm_cost_from_decimal("-0.1", &v, &e), -1);
	assert_string_equal(err_msg(e), "cost -0.1 is negative");
	assert_int_equal(llm_cost_from_decimal("2e6", &v, &e), -1);
	assert_string_equal(err_msg(e),
	                    "cost 2e6 USD is above the limit of 1000000000000 micro-USD");
	assert_int_equal(llm_cost_from_decimal("1.", &v, &e), -1);
	assert_string_equal(err_msg(e), "cost \"1.\" is not a decimal number");
	err_free(e);
}

static void test_cost_prices(void **state)
{
	/* $0.15 and $0.60 per million tokens. */
	llm_price p = {"m", 150000, 600000};
	int64_t v = -1;
	err *e = NULL;
	assert_int_equal(llm_cost_from_prices(&p, 1000, 500, &v, &e), 0);
	assert_int_equal(v, 450);
	assert_int_equal(llm_cost_from_prices(&p, 1, 1, &v, &e), 0);
	assert_int_equal(v, 1); /* 0.75 -> 1: rounded once, not per part (0 + 1) */
	assert_int_equal(llm_cost_from_prices(&p, 3, 0, &v, &e), 0);
	assert_int_equal(v, 0); /* 0.45 */
	assert_int_equal(llm_cost_from_prices(&p, 4, 0, &v, &e), 0);
	assert_int_equal(v, 1); /* 0.6 */
	assert_int_equal(llm_cost_from_prices(&p, 0, 0, &v, &e), 0);
	assert_int_equal(v, 0);
	llm_price half = {"h", 500000, 0};
	assert_int_equal(llm_cost_from_prices(&half, 1, 0, &v, &e), 0);
	assert_int_equal(v, 1); /* exactly 0.5: up */
	llm_price dear = {"d", LLM_MAX_PRICE_PER_MTOK, LLM_MAX_PRICE_PER_MTOK};
	assert_int_equal(llm_cost_from_prices(&dear, 1000000, 0, &v, &e), 0);
	assert_int_equal(v, LLM_MAX_COST_MICRO_USD);
	assert_int_equal(llm_cost_from_prices(&dear, 1000000, 1, &v, &e), -1);
	assert_int_equal(llm_cost_from_prices(&dear, LLM_MAX_TOKENS_REPORTED, 0, &v, &e), -1);
	assert_string_equal(err_msg(e), "cost of 1000000000 prompt + 0 completion tokens is above "
	                                "the limit of 1000000000000 micro-USD");
	assert_int_equal(llm_cost_from_prices(&p, -1, 0, &v, &e), -1);
	err_free(e);
}

/* ---- LLM calls ---- */

typedef struct outcome {
	bool done;
	bool refused; /* llm_call_start() refused the request */
	char *err;
	llm_result r;
} outcome;

static void outcome_deinit(outcome *o)
{
	free(o->err);
	llm_result_deinit(&o->r);
}

static void on_llm_done(llm_result *r, const err *e, void *arg)
{
	outcome *o = arg;
	o->done = true;
	o->err = e ? xstrdup(err_msg(e)) : NULL;
	o->r = *r;
	r->content = r->model = r->id = r->finish_reason = NULL; /* taken */
	r->request_json = r->response_json = NULL;
}

static const char *const models[] = {"test/model", "test/other", NULL};

static llm_options options(void)
{
	static char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1", mock_port);
	return (llm_options){.base_url = url,
	                     .api_key = key,
	                     .models = models,
	                     .allow_http = true,
	                     .allow_private = true,
	                     .retry_base_ms = 10,
	                     .max_response_bytes = 65536};
}

static llm_request request(const char *system, const char *input)
{
	return (llm_request){.model = "test/model",
	                     .system_prompt = system,
	                     .input = input,
	                     .input_len = strlen(input),
	                     .temperature_milli = LLM_TEMPERATURE_UNSET};
}

static void run_llm(const llm_options *opt, const llm_request *rq, outcome *o)
{
	llm *l = NULL;
	err *e = NULL;
	memset(o, 0, sizeof(*o));
	if (llm_new(&l, hc, opt, &e) < 0)
		fail_msg("llm_new: %s", err_msg(e));
	if (!llm_call_start(l, rq, on_llm_done, o, &e)) {
		o->refused = o->done = true;
		o->err = xstrdup(err_msg(e));
		err_free(e);
	}
	run_until(&o->done);
	llm_free(l);
}

/* The URL of the plain mock's chat endpoint, as messages name it. */
static char *chat_url(void)
{
	return xasprintf("http://127.0.0.1:%d/v1/chat/completions", mock_port);
}

/* Runs the default request with input, expecting the error want (with the URL in place of
 * each "@"), and that the mock saw the input `attempts` times. */
static void expect_llm_error(const llm_options *opt, const char *input, const char *want,
                             int attempts)
{
	_cleanup_free_ char *url = chat_url();
	buf w = BUF_INIT;
	for (const char *p = want; *p; p++)
		if (*p == '@')
			buf_append_str(&w, url);
		else
			buf_append(&w, p, 1);
	llm_request rq = request("Be brief.", input);
	outcome o;
	run_llm(opt, &rq, &o);
	if (!o.err || strcmp(o.err, buf_str(&w)) != 0)
		fail_msg("input %s\ngot:  %s\nwant: %s", input, o.err ? o.err : "(success)",
		         buf_str(&w));
	assert_null(o.r.content);
	assert_int_equal(o.r.attempts, attempts);
	assert_int_equal(mock_count(input), attempts);
	buf_deinit(&w);
	outcome_deinit(&o);
}

/* ---- the LLM client against the mock ---- */

static int64_t mock_tokens(const char *s)
{
	return (int64_t)(strlen(s) + 3) / 4;
}

static void test_llm_success(void **state)
{
	llm_options opt = options();
	llm_request rq = request("Be brief.", "hello [[mock id=ok1]]");
	rq.temperature_milli = 700;
	rq.max_tokens = 100;
	outcome o;
	run_llm(&opt, &rq, &o);
	if (o.err)
		fail_msg("%s", o.err);
	const char *want = "[test/model] Be brief. | hello [[mock id=ok1]]";
	assert_string_equal(o.r.content, want);
	assert_int_equal(o.r.content_len, strlen(want));
	assert_string_equal(o.r.model, "test/model");
	assert_string_equal(o.r.finish_reason, "stop");
	assert_true(o.r.id && !strncmp(o.r.id, "gen-", 4));
	assert_true(o.r.usage_reported);
	int64_t p = mock_tokens("Be brief.") + mock_tokens("hello [[mock id=ok1]]");
	int64_t c = mock_tokens(want);
	assert_int_equal(o.r.prompt_tokens, p);
	assert_int_equal(o.r.completion_tokens, c);
	assert_int_equal(o.r.cost_source, LLM_COST_PROVIDER);
	assert_int_equal(o.r.cost_micro_usd, p + 2 * c); /* the mock's $1 / $2 per Mtok */
	assert_int_equal(o.r.attempts, 1);
	assert_int_equal(o.r.status, 200);
	assert_string_equal(
	    o.r.request_json,
	    "{\"model\":\"test/model\",\"messages\":[{\"role\":\"system\",\"content\":"
	    "\"Be brief.\"},{\"role\":\"user\",\"content\":\"hello [[mock id=ok1]]\"}],"
	    "\"max_tokens\":100,\"temperature\":0.7,\"stream\":false}");
	assert_non_null(strstr(o.r.response_json, "\"object\": \"chat.completion\""));
	assert_int_equal(mock_count("id=ok1"), 1);
	outcome_deinit(&o);
}

/* What the mock received: the path, the headers, the body exactly as request_json. */
static void test_llm_wire(void **state)
{
	llm_options opt = options();
	llm_request rq = request(NULL, "wire [[mock id=wire1]]");
	outcome o;
	run_llm(&opt, &rq, &o);
	assert_null(o.err);
	_cleanup_(yajl_tree_freep) yajl_val v = mock_requests();
	yajl_val reqs = proto_json_get(v, "requests");
	yajl_val last = arr_at(reqs, arr_len(reqs) - 1);
	assert_string_equal(proto_json_get_str(last, "method"), "POST");
	assert_string_equal(proto_json_get_str(last, "path"), "/v1/chat/completions");
	assert_string_equal(proto_json_get_str(last, "body"), o.r.request_json);
	/* No system message without a system prompt; max_tokens is the node's cap. */
	assert_non_null(strstr(o.r.request_json, "\"messages\":[{\"role\":\"user\""));
	assert_non_null(strstr(o.r.request_json, "\"max_tokens\":4096"));
	assert_null(strstr(o.r.request_json, "temperature"));
	yajl_val hs = proto_json_get(last, "headers");
	bool auth = false, ctype = false;
	for (size_t i = 0; i < arr_len(hs); i++) {
		yajl_val h = arr_at(hs, i);
		const char *n = arr_str(h, 0);
		const char *val = arr_str(h, 1);
		if (!strcasecmp(n, "Authorization")) {
			_cleanup_free_ char *want = xasprintf("Bearer %s", key);
			assert_string_equal(val, want);
			auth = true;
		}
		ctype |= !strcasecmp(n, "Content-Type") && !strcmp(val, "application/json");
		assert_true(strcasecmp(n, "Expect") != 0);
	}
	assert_true(auth && ctype);
	outcome_deinit(&o);
}

/* [[mock echo]] hands the input back unchanged (how chain tests feed JSON to a script step);
 * temperatures are written as exact decimals. */
static void test_llm_echo_and_temperature(void **state)
{
	llm_options opt = options();
	const char *input = "{\"items\": [{\"price\": 2.5}], \"currency\": \"EUR\"}";
	struct {
		int milli;
		const char *text;
	} t[] = {{0, "\"temperature\":0,"},
	         {1250, "\"temperature\":1.25,"},
	         {2000, "\"temperature\":2,"}};
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		llm_request rq = request("Extract. [[mock echo]]", input);
		rq.temperature_milli = t[i].milli;
		outcome o;
		run_llm(&opt, &rq, &o);
		assert_null(o.err);
		assert_string_equal(o.r.content, input);
		if (!strstr(o.r.request_json, t[i].text))
			fail_msg("%s not in %s", t[i].text, o.r.request_json);
		outcome_deinit(&o);
	}
}

static void test_llm_max_tokens(void **state)
{
	llm_options opt = options();
	llm_request rq = request("Be brief.", "a long answer please [[mock id=mt1]]");
	rq.max_tokens = 2;
	outcome o;
	run_llm(&opt, &rq, &o);
	assert_null(o.err);
	assert_string_equal(o.r.content, "[test/mo"); /* 4 * max_tokens bytes */
	assert_string_equal(o.r.finish_reason, "length");
	assert_int_equal(o.r.completion_tokens, 2);
	outcome_deinit(&o);
}

static void test_llm_refused_requests(void **state)
{
	llm_options opt = options();
	opt.max_tokens = 1000;
	struct {
		llm_request rq;
		const char *want;
	} cases[] = {
	    {{.model = "evil/model", .input = "x", .input_len = 1},
	     "llm: model \"evil/model\" is not allowed on this node"},
	    {{.model = "test/model", .input = "x", .input_len = 1, .max_tokens = 1001},
	     "llm: max_tokens 1001 is outside [1, 1000], this node's cap"},
	    {{.model = "test/model", .input = "x", .input_len = 1, .temperature_milli = 2001},
	     "llm: temperature 2001/1000 is outside [0, 2]"},
	    {{.model = "test/model", .input = "\xff\xfe", .input_len = 2},
	     "llm: the input is not valid UTF-8"},
	    {{.model = "test/model", .system_prompt = "\xc3", .input = "x", .input_len = 1},
	     "llm: the system prompt is not valid UTF-8"},
	    {{.model = "", .input = "x", .input_len = 1}, "llm: no model"},
	};
	int before = mock_total();
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		outcome o;
		run_llm(&opt, &cases[i].rq, &o);
		assert_true(o.refused);
		assert_string_equal(o.err, cases[i].want);
		outcome_deinit(&o);
	}
	assert_int_equal(mock_total(), before); /* nothing was sent */
}

static void expect_options_error(llm_options o, const char *want)
{
	llm *l = NULL;
	err *e = NULL;
	assert_int_equal(llm_new(&l, hc, &o, &e), -1);
	assert_null(l);
	if (strcmp(err_msg(e), want) != 0)
		fail_msg("got:  %s\nwant: %s", err_msg(e), want);
	assert_null(strstr(err_msg(e), key));
	err_free(e);
}

static void test_llm_options(void **state)
{
	llm_options o = options();
	o.base_url = "ftp://x/v1";
	expect_options_error(o, "llm: base_url must be https (not ftp)");
	o = options();
	o.allow_http = false;
	expect_options_error(o, "llm: base_url must be https (not http)");
	o.base_url = "https://user:pw@x/v1";
	expect_options_error(o, "llm: base_url must not carry user-info (put the key in "
	                        "api_key_file)");
	o.base_url = "https://x/v1?a=b";
	expect_options_error(o, "llm: base_url must not have a query or a fragment");
	o = options();
	o.api_key = "";
	expect_options_error(o, "llm: the API key is empty");
	o.api_key = "sk-abc\r\nX-Injected: 1";
	expect_options_error(o,
	                     "llm: the API key has a byte outside [A-Za-z0-9-._~+/=] at offset 6");
	o = options();
	static const char *const none[] = {NULL};
	o.models = none;
	expect_options_error(o, "llm: no models are allowed (set models)");
	o = options();
	llm_price bad = {"test/model", -1, 0};
	o.prices = &bad;
	o.n_prices = 1;
	expect_options_error(o, "llm: price of test/model: out of range [0, 1000000000000] "
	                        "micro-USD per million tokens");
	/* The default base URL is OpenRouter's. */
	o = options();
	o.base_url = NULL;
	o.allow_http = false;
	llm *l = NULL;
	err *e = NULL;
	assert_int_equal(llm_new(&l, hc, &o, &e), 0);
	llm_free(l);
}

/* Runs a request that must succeed after `attempts` requests, as the mock counted them (the
 * request carries needle). */
static void expect_success_after(const llm_options *opt, const char *system, const char *input,
                                 const char *needle, int attempts)
{
	llm_request rq = request(system, input);
	outcome o;
	run_llm(opt, &rq, &o);
	if (o.err)
		fail_msg("%s", o.err);
	assert_int_equal(o.r.attempts, attempts);
	assert_int_equal(mock_count(needle), attempts);
	assert_int_equal(o.r.status, 200);
	outcome_deinit(&o);
}

static void test_llm_retry_after_then_success(void **state)
{
	llm_options opt = options();
	expect_success_after(&opt, "Be brief.", "[[mock fail=429 times=2 retry-after=0 id=r1]]",
	                     "id=r1", 3);
}

static void test_llm_retry_502_503(void **state)
{
	llm_options opt = options();
	expect_success_after(&opt, "[[mock fail=502 times=1 id=r2a]]",
	                     "[[mock fail=503 times=1 id=r2b]]", "id=r2a", 3);
}

static void test_llm_gives_up_after_attempts(void **state)
{
	llm_options opt = options();
	opt.max_attempts = 3;
	expect_llm_error(&opt, "[[mock fail=429 retry-after=0 id=r3]]",
	                 "llm: gave up after 3 attempts (last: 429 Too Many Requests from @: mock "
	                 "failure 429 (attempt 3) (code 429))",
	                 3);
	opt.max_attempts = 1;
	expect_llm_error(&opt, "[[mock fail=503 id=r3b]]",
	                 "llm: gave up after 1 attempt (last: 503 Service Unavailable from @: mock "
	                 "failure 503 (attempt 1) (code 503))",
	                 1);
}

static void test_llm_retry_after_beyond_budget(void **state)
{
	llm_options opt = options();
	opt.retry_budget_ms = 30000;
	expect_llm_error(&opt, "[[mock fail=429 retry-after=3600 id=r4]]",
	                 "llm: gave up after 1 attempt (last: 429 Too Many Requests from @: mock "
	                 "failure 429 (attempt 1) (code 429); its Retry-After of 3600 s is beyond "
	                 "the 30000 ms left of the retry budget)",
	                 1);
}

/* Retry-After as an HTTP date: one hour ahead is beyond the budget (the message shows the
 * seconds libcurl computed from the date), one in the past means "now". */
static void test_llm_retry_after_date(void **state)
{
	llm_options opt = options();
	llm_request rq = request("Be brief.", "[[mock fail=429 retry-after=date+3600 id=r5]]");
	outcome o;
	run_llm(&opt, &rq, &o);
	assert_non_null(o.err);
	if (!strstr(o.err, "its Retry-After of 3600 s") &&
	    !strstr(o.err, "its Retry-After of 3599 s"))
		fail_msg("%s", o.err);
	assert_int_equal(mock_count("id=r5"), 1);
	outcome_deinit(&o);
	expect_success_after(&opt, "Be brief.",
	                     "[[mock fail=429 times=1 retry-after=date-30 id=r6]]", "id=r6", 2);
}

/* Without Retry-After the backoff spends the time budget, then the call gives up. */
static void test_llm_retry_budget_spent(void **state)
{
	llm_options opt = options();
	opt.max_attempts = 50;
	opt.retry_base_ms = 40;
	opt.retry_budget_ms = 100;
	llm_request rq = request("Be brief.", "[[mock fail=503 id=r7]]");
	outcome o;
	run_llm(&opt, &rq, &o);
	assert_non_null(o.err);
	if (!strstr(o.err, "; the retry budget of 100 ms is spent)"))
		fail_msg("%s", o.err);
	assert_true(o.r.attempts >= 2 && o.r.attempts < 50);
	assert_int_equal(mock_count("id=r7"), o.r.attempts);
	outcome_deinit(&o);
}

static void test_llm_http_errors(void **state)
{
	llm_options opt = options();
	expect_llm_error(&opt, "[[mock fail=500 id=e1]]",
	                 "llm: HTTP 500 from @: mock failure 500 (attempt 1) (code 500)", 1);
	expect_llm_error(&opt, "[[mock fail=400 id=e2]]",
	                 "llm: HTTP 400 from @: mock failure 400 (attempt 1) (code 400)", 1);
	expect_llm_error(&opt, "[[mock redirect id=e3]]", "llm: HTTP 302 from @: (empty body)", 1);
	/* A proxy's HTML page: quoted, cut at 300 bytes. */
	llm_request rq = request("Be brief.", "[[mock html=500 id=e4]]");
	outcome o;
	run_llm(&opt, &rq, &o);
	_cleanup_free_ char *url = chat_url();
	_cleanup_free_ char *head = xasprintf("llm: HTTP 500 from %s: <html><head><title>500", url);
	assert_true(o.err && !strncmp(o.err, head, strlen(head)));
	assert_int_equal(strlen(o.err), strlen(head) - strlen("<html><head><title>500") + 303);
	assert_string_equal(o.err + strlen(o.err) - 3, "...");
	outcome_deinit(&o);
}

static void test_llm_bad_bodies(void **state)
{
	llm_options opt = options();
	expect_llm_error(&opt, "[[mock error200 id=b1]]",
	                 "llm: error in an HTTP 200 response from @: Upstream provider error: mock "
	                 "model crashed (code 502)",
	                 1);
	expect_llm_error(&opt, "[[mock choice-error id=b2]]",
	                 "llm: error in choices[0] in an HTTP 200 response from @: mock provider "
	                 "failed mid-generation (code 502)",
	                 1);
	expect_llm_error(&opt, "[[mock nochoices id=b3]]", "llm: response from @ has no choices[0]",
	                 1);
	expect_llm_error(&opt, "[[mock nocontent id=b4]]",
	                 "llm: response from @ has no choices[0].message.content (finish_reason "
	                 "stop)",
	                 1);
	expect_llm_error(&opt, "[[mock cost=-0.5 id=b5]]",
	                 "llm: response from @: usage: cost -0.5 is negative", 1);
	llm_request rq = request("Be brief.", "[[mock malformed id=b6]]");
	outcome o;
	run_llm(&opt, &rq, &o);
	_cleanup_free_ char *url = chat_url();
	_cleanup_free_ char *head = xasprintf("llm: response from %s is not JSON: ", url);
	if (!o.err || strncmp(o.err, head, strlen(head)) != 0)
		fail_msg("%s", o.err ? o.err : "(success)");
	assert_non_null(o.r.response_json); /* kept for the record */
	outcome_deinit(&o);
}

static void test_llm_transport_errors(void **state)
{
	llm_options opt = options();
	opt.max_response_bytes = 65536;
	expect_llm_error(&opt, "[[mock oversized=100000 id=t1]]",
	                 "llm: POST @: response body above the 65536-byte limit", 1);
	expect_llm_error(&opt, "[[mock oversized-chunked=100000 id=t2]]",
	                 "llm: POST @: response body above the 65536-byte limit", 1);
	opt.timeout_ms = 300;
	llm_request rq = request("Be brief.", "[[mock delay=5000 id=t3]]");
	outcome o;
	run_llm(&opt, &rq, &o);
	_cleanup_free_ char *url = chat_url();
	_cleanup_free_ char *head = xasprintf("llm: POST %s: ", url);
	if (!o.err || strncmp(o.err, head, strlen(head)) != 0 || !strstr(o.err, "timed out"))
		fail_msg("%s", o.err ? o.err : "(success)");
	assert_int_equal(o.r.attempts, 1); /* a timeout is not retried: it may have cost money */
	outcome_deinit(&o);
	rq = request("Be brief.", "[[mock drop id=t4]]");
	run_llm(&opt, &rq, &o);
	if (!o.err || strncmp(o.err, head, strlen(head)) != 0)
		fail_msg("%s", o.err ? o.err : "(success)");
	assert_int_equal(o.r.status, 0);
	outcome_deinit(&o);
}

static void test_llm_costs(void **state)
{
	llm_options opt = options();
	llm_price prices[] = {{"test/model", 3000000, 5000000}, {"*", 1000000, 0}};
	opt.prices = prices;
	opt.n_prices = 2;
	/* The provider's cost wins over the table, converted from its text exactly. */
	llm_request rq = request("Be brief.", "[[mock cost=1.5e-05 id=c1]]");
	outcome o;
	run_llm(&opt, &rq, &o);
	assert_null(o.err);
	assert_int_equal(o.r.cost_source, LLM_COST_PROVIDER);
	assert_int_equal(o.r.cost_micro_usd, 15);
	outcome_deinit(&o);
	/* No cost: the table ($3 and $5 per Mtok: 3 and 5 micro-USD per token). */
	rq = request("Be brief.", "[[mock nocost id=c2]]");
	run_llm(&opt, &rq, &o);
	assert_null(o.err);
	assert_int_equal(o.r.cost_source, LLM_COST_PRICE_TABLE);
	assert_int_equal(o.r.cost_micro_usd, 3 * o.r.prompt_tokens + 5 * o.r.completion_tokens);
	outcome_deinit(&o);
	/* "*" for a model without an entry. */
	rq = request("Be brief.", "[[mock nocost id=c3]]");
	rq.model = "test/other";
	run_llm(&opt, &rq, &o);
	assert_null(o.err);
	assert_int_equal(o.r.cost_source, LLM_COST_PRICE_TABLE);
	assert_int_equal(o.r.cost_micro_usd, o.r.prompt_tokens);
	outcome_deinit(&o);
	/* No usage at all: no cost, and it says so. */
	rq = request("Be brief.", "[[mock nousage id=c4]]");
	run_llm(&opt, &rq, &o);
	assert_null(o.err);
	assert_false(o.r.usage_reported);
	assert_int_equal(o.r.cost_source, LLM_COST_NONE);
	assert_int_equal(o.r.cost_micro_usd, 0);
	outcome_deinit(&o);
	llm *l = NULL;
	err *e = NULL;
	assert_int_equal(llm_new(&l, hc, &opt, &e), 0);
	assert_int_equal(llm_price_for(l, "test/model")->prompt_per_mtok, 3000000);
	assert_string_equal(llm_price_for(l, "unknown")->model, "*");
	llm_free(l);
}

static void assert_no_key(const char *s)
{
	if (s && strstr(s, key))
		fail_msg("the API key leaked: %s", s);
}

/* The canary key: never in a message, a result, or anywhere the mock saw but the header. */
static void test_llm_key_canary(void **state)
{
	llm_options opt = options();
	const char *inputs[] = {"[[mock echo-auth id=k1]]",
	                        "[[mock leak-key id=k2]]",
	                        "[[mock fail=500 id=k3]]",
	                        "[[mock malformed id=k4]]",
	                        "[[mock fail=429 retry-after=0 id=k5]]",
	                        "[[mock id=k6]]"};
	opt.max_attempts = 2;
	for (size_t i = 0; i < ARRAY_SIZE(inputs); i++) {
		llm_request rq = request("Be brief.", inputs[i]);
		outcome o;
		run_llm(&opt, &rq, &o);
		assert_no_key(o.err);
		assert_no_key(o.r.content);
		assert_no_key(o.r.model);
		assert_no_key(o.r.id);
		assert_no_key(o.r.request_json);
		assert_no_key(o.r.response_json);
		if (i == 0)
			assert_non_null(strstr(o.err, "Invalid credentials: Bearer [REDACTED]"));
		if (i == 1)
			assert_non_null(strstr(o.r.content, "(the key: Bearer [REDACTED])"));
		outcome_deinit(&o);
	}
	_cleanup_(yajl_tree_freep) yajl_val v = mock_requests();
	yajl_val reqs = proto_json_get(v, "requests");
	for (size_t i = 0; i < arr_len(reqs); i++) {
		yajl_val r = arr_at(reqs, i);
		assert_no_key(proto_json_get_str(r, "body"));
		yajl_val hs = proto_json_get(r, "headers");
		for (size_t j = 0; j < arr_len(hs); j++) {
			yajl_val h = arr_at(hs, j);
			const char *n = arr_str(h, 0);
			if (strcasecmp(n, "Authorization") != 0)
				assert_no_key(arr_str(h, 1));
		}
	}
}

/* A wrong key: the provider's 401, not retried. */
static void test_llm_unauthorized(void **state)
{
	llm_options opt = options();
	opt.api_key = "sk-wrong-key-0000";
	expect_llm_error(&opt, "[[mock id=u1]]",
	                 "llm: HTTP 401 from @: No auth credentials found (code 401)", 1);
}

/* ---- cancellation ---- */

typedef struct canceller {
	llm_call *c;
	const char *needle; /* cancel once the mock has recorded this (SENDING case) */
	bool when_waiting;  /* cancel once the call waits to retry */
	struct event *tick;
	bool cancelled;
	bool probing;
} canceller;

static void arm(canceller *k)
{
	struct timeval tv = {0, 10000};
	evtimer_add(k->tick, &tv);
}

static void on_probe(http_response *r, const err *e, void *arg)
{
	canceller *k = arg;
	k->probing = false;
	if (!e && r->body.len && strstr(buf_str(&r->body), k->needle)) {
		assert_int_equal(llm_call_get_state(k->c), LLM_CALL_SENDING);
		llm_call_cancel(k->c);
		k->cancelled = true;
		return;
	}
	arm(k);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	canceller *k = arg;
	if (k->when_waiting) {
		if (llm_call_get_state(k->c) == LLM_CALL_WAITING) {
			llm_call_cancel(k->c);
			k->cancelled = true;
		} else {
			arm(k);
		}
		return;
	}
	http_request rq = mock_get_request("/_mock/requests");
	assert_non_null(http_client_submit(hc, &rq, on_probe, k, NULL));
	k->probing = true;
}

static void on_llm_must_not_finish(llm_result *r, const err *e, void *arg)
{
	fail_msg("a cancelled call finished: %s", e ? err_msg(e) : "success");
}

static void cancel_when(const char *input, bool when_waiting)
{
	llm_options opt = options();
	llm *l = NULL;
	err *e = NULL;
	assert_int_equal(llm_new(&l, hc, &opt, &e), 0);
	int events = event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED);
	llm_request rq = request("Be brief.", input);
	canceller k = {.needle = input, .when_waiting = when_waiting};
	k.tick = evtimer_new(base, on_tick, &k);
	k.c = llm_call_start(l, &rq, on_llm_must_not_finish, NULL, &e);
	assert_non_null(k.c);
	arm(&k);
	run_until(&k.cancelled);
	event_free(k.tick);
	assert_int_equal(http_client_active(hc), 0);
	/* Nothing of the call is left on the loop: no socket event, no timer. */
	assert_int_equal(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED), events);
	assert_int_equal(mock_count(input), 1);
	llm_free(l);
}

static void test_llm_cancel(void **state)
{
	/* In flight: the mock holds the request. */
	cancel_when("[[mock delay=3000 id=x1]]", false);
	/* Waiting to retry after a 429 asking for 30 s. */
	cancel_when("[[mock fail=429 retry-after=30 id=x2]]", true);
	/* At once, before the loop ran: nothing is sent. */
	llm_options opt = options();
	llm *l = NULL;
	err *e = NULL;
	assert_int_equal(llm_new(&l, hc, &opt, &e), 0);
	llm_request rq = request("Be brief.", "[[mock id=x3]]");
	llm_call_cancel(llm_call_start(l, &rq, on_llm_must_not_finish, NULL, &e));
	assert_int_equal(http_client_active(hc), 0);
	/* llm_free() cancels what is still running. */
	rq = request("Be brief.", "[[mock delay=3000 id=x4]]");
	assert_non_null(llm_call_start(l, &rq, on_llm_must_not_finish, NULL, &e));
	assert_int_equal(http_client_active(hc), 1);
	llm_free(l);
	assert_int_equal(http_client_active(hc), 0);
	assert_int_equal(mock_count("id=x3"), 0);
}

/* No connection is reused: two calls in a row come from two client ports. */
static void test_llm_fresh_connections(void **state)
{
	llm_options opt = options();
	for (int i = 0; i < 2; i++) {
		llm_request rq = request("Be brief.", "[[mock id=fresh1]]");
		outcome o;
		run_llm(&opt, &rq, &o);
		assert_null(o.err);
		outcome_deinit(&o);
	}
	_cleanup_(yajl_tree_freep) yajl_val v = mock_requests();
	yajl_val reqs = proto_json_get(v, "requests");
	const char *peers[2];
	int n = 0;
	for (size_t i = 0; i < arr_len(reqs) && n < 2; i++) {
		const char *body = proto_json_get_str(arr_at(reqs, i), "body");
		if (body && strstr(body, "id=fresh1"))
			peers[n++] = proto_json_get_str(arr_at(reqs, i), "peer");
	}
	assert_int_equal(n, 2);
	assert_non_null(peers[0]);
	assert_non_null(peers[1]);
	assert_string_not_equal(peers[0], peers[1]);
}

/* ---- HTTPS: the production path (https only, verification on) against the TLS mock ---- */

static void test_https(void **state)
{
	char url[64];
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/api/v1", tls_port);
	llm_options opt = options();
	opt.base_url = url;
	opt.allow_http = false;
	opt.ca_file = cert_file;
	llm_request rq = request("Be brief.", "over TLS");
	outcome o;
	run_llm(&opt, &rq, &o);
	if (o.err)
		fail_msg("%s", o.err);
	assert_string_equal(o.r.content, "[test/model] Be brief. | over TLS");
	outcome_deinit(&o);
	/* Without the test CA the certificate is not trusted. */
	opt.ca_file = NULL;
	run_llm(&opt, &rq, &o);
	_cleanup_free_ char *head =
	    xasprintf("llm: POST %s/chat/completions: SSL certificate problem", url);
	if (!o.err || strncmp(o.err, head, strlen(head)) != 0)
		fail_msg("%s", o.err ? o.err : "(success)");
	outcome_deinit(&o);
	/* And a plain http:// URL is refused at the door when allow_http is off. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1", mock_port);
	llm *l = NULL;
	err *e = NULL;
	assert_int_equal(llm_new(&l, hc, &opt, &e), -1);
	assert_string_equal(err_msg(e), "llm: base_url must be https (not http)");
	err_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cost_decimal),
	    cmocka_unit_test(test_cost_prices),
	    cmocka_unit_test(test_llm_options),
	    cmocka_unit_test(test_llm_refused_requests),
	    cmocka_unit_test(test_llm_success),
	    cmocka_unit_test(test_llm_wire),
	    cmocka_unit_test(test_llm_echo_and_temperature),
	    cmocka_unit_test(test_llm_max_tokens),
	    cmocka_unit_test(test_llm_retry_after_then_success),
	    cmocka_unit_test(test_llm_retry_502_503),
	    cmocka_unit_test(test_llm_gives_up_after_attempts),
	    cmocka_unit_test(test_llm_retry_after_beyond_budget),
	    cmocka_unit_test(test_llm_retry_after_date),
	    cmocka_unit_test(test_llm_retry_budget_spent),
	    cmocka_unit_test(test_llm_http_errors),
	    cmocka_unit_test(test_llm_bad_bodies),
	    cmocka_unit_test(test_llm_transport_errors),
	    cmocka_unit_test(test_llm_costs),
	    cmocka_unit_test(test_llm_unauthorized),
	    cmocka_unit_test(test_llm_key_canary),
	    cmocka_unit_test(test_llm_cancel),
	    cmocka_unit_test(test_llm_fresh_connections),
	    cmocka_unit_test(test_https),
	};
	return cmocka_run_group_tests(tests, mock_setup, mock_teardown);
}
