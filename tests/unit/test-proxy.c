/* Unit tests for the credential proxy (daemon/proxy*.c, attest/proxy.c, proto/proxy.c): the
 * [proxy] keys and their errors, the policy on every part of a request (method, scheme, host
 * and port, path prefixes and tricks, user-info, header names and values, the headers the node
 * owns), the PROXY_REQUEST grammar, and the audit trail's hash chain (a trail verifies; an
 * edited, removed, reordered or renumbered entry, or a wrong head, does not). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest/attest.h"
#include "common/cleanup.h"
#include "common/xalloc.h"
#include "daemon/proxy-internal.h"
#include "proto/proto.h"

static proxy_config cfg;

static int setup(void **state)
{
	proxy_config_defaults(&cfg);
	const char *kv[][3] = {
	    {"api", "hosts", "api.example.com, Other.Example:8443, [::1]:9443"},
	    {"api", "methods", "GET, POST"},
	    {"api", "paths", "/v1/, /status"},
	    {"api", "secret", "API_TOKEN"},
	    {"api", "header", "X-Api-Key: {secret}"},
	};
	err *e = NULL;
	for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
		assert_int_equal(proxy_config_set(&cfg, kv[i][0], kv[i][1], kv[i][2], &e), 0);
	assert_int_equal(proxy_config_validate(&cfg, &e), 0);
	return 0;
}

static int teardown(void **state)
{
	proxy_config_deinit(&cfg);
	return 0;
}

static void expect_config_error(const char *svc, const char *key, const char *v, const char *want)
{
	proxy_config c;
	proxy_config_defaults(&c);
	err *e = NULL;
	int rc = proxy_config_set(&c, svc, key, v, &e);
	if (rc == 0) {
		rc = proxy_config_validate(&c, &e);
	}
	assert_int_equal(rc, -1);
	assert_string_equal(err_msg(e), want);
	err_free(e);
	proxy_config_deinit(&c);
}

static void test_config(void **state)
{
	const proxy_service *s = proxy_config_find(&cfg, "api");
	assert_non_null(s);
	assert_string_equal(s->hosts[1], "other.example:8443"); /* lower-cased */
	assert_int_equal(s->max_calls, 16);
	assert_int_equal(s->max_response_bytes, 1024 * 1024);
	assert_false(s->allow_private); /* off by default */
	assert_int_equal(cfg.max_calls, PROXY_TASK_CALLS_DEFAULT);
	expect_config_error("Bad", "hosts", "x",
	                    "[proxy.Bad]: not a service name ([a-z][a-z0-9_-]{0,63})");
	expect_config_error("a", "max_response_bytes", "9999999999",
	                    "[proxy.a] max_response_bytes = \"9999999999\": expected an integer in "
	                    "1..8388608");
	expect_config_error("a", "methods", "get",
	                    "[proxy.a] methods: \"get\" is not an upper-case method");
	expect_config_error("a", "paths", "v1",
	                    "[proxy.a] paths: \"v1\" is not a path prefix starting with /");
	expect_config_error("a", "allow_private_addresses", "yes",
	                    "[proxy.a] allow_private_addresses = \"yes\": expected true or false");
	expect_config_error("a", "nope", "1", "[proxy.a] unknown key \"nope\"");
	expect_config_error(NULL, "max_calls", "0",
	                    "[proxy] max_calls = \"0\": expected an integer in 1..256");
	expect_config_error("a", "secret", "T", "[proxy.a] needs hosts");
	proxy_config c;
	proxy_config_defaults(&c);
	err *e = NULL;
	assert_int_equal(proxy_config_set(&c, "a", "hosts", "h", &e), 0);
	assert_int_equal(proxy_config_set(&c, "a", "secret", "T", &e), 0);
	assert_int_equal(proxy_config_set(&c, "a", "header", "X-Key: static", &e), 0);
	assert_int_equal(proxy_config_validate(&c, &e), -1);
	assert_string_equal(err_msg(e), "[proxy.a] header must hold {secret} once, in its value");
	err_free(e);
	proxy_config_deinit(&c);
}

/* The policy's verdict on a request: NULL (allowed) or its message. */
static char *judge(const char *method, const char *url, const char *const *headers, proxy_target *t)
{
	sandbox_proxy_request rq = {0};
	for (size_t i = 0; headers && headers[i]; i++)
		rq.headers[rq.n_headers++] =
		    (sandbox_frame_bytes){(const uint8_t *)headers[i], strlen(headers[i])};
	return proxy_judge(proxy_config_find(&cfg, "api"), method, url, &rq, t);
}

static void expect_refused(const char *method, const char *url, const char *header,
                           const char *want)
{
	const char *hs[] = {header, NULL};
	proxy_target t = {0};
	_cleanup_free_ char *why = judge(method, url, header ? hs : NULL, &t);
	if (!why)
		fail_msg("%s %s was allowed", method, url);
	if (!strstr(why, want))
		fail_msg("%s %s: \"%s\" lacks \"%s\"", method, url, why, want);
	proxy_target_deinit(&t);
}

static void expect_allowed(const char *method, const char *url, const char *host, const char *path)
{
	proxy_target t = {0};
	_cleanup_free_ char *why = judge(method, url, NULL, &t);
	if (why)
		fail_msg("%s %s refused: %s", method, url, why);
	assert_string_equal(t.host, host);
	assert_string_equal(t.path, path);
	proxy_target_deinit(&t);
}

static void test_policy(void **state)
{
	expect_allowed("GET", "https://api.example.com/v1/x?token=q#f", "api.example.com", "/v1/x");
	expect_allowed("POST", "https://API.example.com:443/status", "api.example.com", "/status");
	expect_allowed("GET", "https://other.example:8443/v1/", "other.example:8443", "/v1/");
	expect_allowed("GET", "https://[::1]:9443/status/x", "[::1]:9443", "/status/x");
	expect_refused("DELETE", "https://api.example.com/v1/", NULL,
	               "method DELETE is not allowed for service api (allowed: GET, POST)");
	expect_refused("GET", "http://api.example.com/v1/", NULL, "only https URLs are allowed");
	expect_refused("GET", "ftp://api.example.com/v1/", NULL, "only https URLs are allowed");
	expect_refused("GET", "api.example.com/v1/", NULL, "does not parse");
	expect_refused("GET", "https://evil.example/v1/", NULL, "host evil.example is not one");
	expect_refused("GET", "https://api.example.com:444/v1/", NULL, "host api.example.com:444");
	expect_refused("GET", "https://other.example/v1/", NULL,
	               "is not one of service api's hosts");
	expect_refused("GET", "https://api.example.com.evil/v1/", NULL, "is not one");
	expect_refused("GET", "https://u:p@api.example.com/v1/", NULL, "user-info");
	expect_refused("GET", "https://api.example.com/v2/", NULL, "outside the prefixes");
	expect_refused("GET", "https://api.example.com/statusx", NULL, "outside the prefixes");
	expect_refused("GET", "https://api.example.com/v1/../admin", NULL, "dot segments");
	expect_refused("GET", "https://api.example.com/v1/%2E%2E/admin", NULL, "dot segments");
	expect_refused("GET", "https://api.example.com/v1/a%2fb", NULL, "encoded separators");
	expect_refused("GET", "https://api.example.com/v1/..", NULL, "dot segments");
	expect_refused("GET", "https://api.example.com/v1/x", "X-A: 1\r\nX-B: 2", "CR, LF or NUL");
	expect_refused("GET", "https://api.example.com/v1/x", "X-A: 1\n", "CR, LF or NUL");
	expect_refused("GET", "https://api.example.com/v1/x", "Bad Name: 1", "token name");
	expect_refused("GET", "https://api.example.com/v1/x", "no colon", "token name");
	const char *owned[] = {
	    "Host",           "authorization",     "COOKIE",     "Proxy-Authorization",
	    "Content-Length", "Transfer-Encoding", "Connection", "X-Api-Key"};
	for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++) {
		_cleanup_free_ char *h = xasprintf("%s: x", owned[i]);
		expect_refused("GET", "https://api.example.com/v1/x", h, "is set by the node");
	}
}

static void put(sandbox_frame_buf *b, uint8_t tag, const char *s)
{
	sandbox_frame_put_field(b, tag, s, strlen(s));
}

static void test_request_grammar(void **state)
{
	sandbox_frame_buf b = {0};
	put(&b, PX_METHOD, "GET");
	put(&b, PX_URL, "https://x/");
	put(&b, PX_SERVICE, "api");
	put(&b, PX_HEADER, "A: 1");
	sandbox_frame_put_field(&b, PX_BODY, NULL, 0);
	sandbox_proxy_request rq;
	char msg[256];
	assert_int_equal(sandbox_proxy_request_parse(b.data, b.len, &rq, msg, sizeof(msg)), 0);
	assert_int_equal(rq.n_headers, 1);
	assert_true(rq.has_body);
	put(&b, PX_SERVICE, "again");
	assert_int_equal(sandbox_proxy_request_parse(b.data, b.len, &rq, msg, sizeof(msg)), -1);
	assert_string_equal(msg, "field 98 twice in a proxy request");
	sandbox_frame_buf_free(&b);
	put(&b, PX_METHOD, "get");
	assert_int_equal(sandbox_proxy_request_parse(b.data, b.len, &rq, msg, sizeof(msg)), -1);
	assert_string_equal(msg, "the method is not upper-case letters");
	sandbox_frame_buf_free(&b);
	put(&b, PX_METHOD, "GET");
	assert_int_equal(sandbox_proxy_request_parse(b.data, b.len, &rq, msg, sizeof(msg)), -1);
	assert_string_equal(msg, "a proxy request needs a method, a URL and a service");
	put(&b, 7, "x");
	assert_int_equal(sandbox_proxy_request_parse(b.data, b.len, &rq, msg, sizeof(msg)), -1);
	assert_string_equal(msg, "unknown field 7 in a proxy request");
	sandbox_frame_buf_free(&b);
	for (unsigned i = 0; i <= PROXY_HEADERS_MAX; i++)
		put(&b, PX_HEADER, "A: 1");
	assert_int_equal(sandbox_proxy_request_parse(b.data, b.len, &rq, msg, sizeof(msg)), -1);
	assert_string_equal(msg, "more than 64 request headers");
	b.data[b.len - 1] = 0; /* a field that runs past the end */
	assert_int_equal(sandbox_proxy_request_parse(b.data, b.len - 2, &rq, msg, sizeof(msg)), -1);
	sandbox_frame_buf_free(&b);
}

/* A trail of n entries, chained as the node chains it. */
static proto_proxy_audit *trail(size_t n)
{
	proto_proxy_audit *a = proto_proxy_audit_new();
	a->calls = xcalloc(n, sizeof(*a->calls));
	char prev[ATTEST_DIGEST_LEN] = "";
	for (size_t i = 0; i < n; i++, a->n_calls++) {
		a->calls[i] = (proto_proxy_call){.seq = (int64_t)i + 1,
		                                 .service = xstrdup("api"),
		                                 .method = xstrdup("GET"),
		                                 .host = xstrdup("api.example.com"),
		                                 .path = xasprintf("/v1/%zu", i),
		                                 .prev = xstrdup(prev),
		                                 .status = 200,
		                                 .response_bytes = 10,
		                                 .ms = 3};
		attest_proxy_entry_digest(&a->calls[i], prev);
	}
	a->head = n ? xstrdup(prev) : NULL;
	return a;
}

static void expect_broken(proto_proxy_audit *a, const char *want)
{
	_cleanup_free_ char *why = attest_proxy_chain_why(a);
	assert_non_null(why);
	if (!strstr(why, want))
		fail_msg("\"%s\" lacks \"%s\"", why, want);
	proto_proxy_audit_free(a);
}

static void test_chain(void **state)
{
	proto_proxy_audit *a = trail(3);
	assert_null(attest_proxy_chain_why(a));
	/* the canonical form: sorted keys, no white space; the digest of the first entry */
	buf b = BUF_INIT;
	proto_proxy_call_json(&a->calls[0], &b);
	assert_string_equal(
	    buf_str(&b), "{\"host\":\"api.example.com\",\"method\":\"GET\",\"ms\":3,\"path\":\"/v1/"
	                 "0\",\"prev\":\"\",\"request_bytes\":0,\"response_bytes\":10,\"seq\":1,"
	                 "\"service\":\"api\",\"status\":200}");
	char d[ATTEST_DIGEST_LEN];
	attest_sha256_str(b.data, b.len, d);
	assert_string_equal(d, a->calls[1].prev);
	buf_deinit(&b);
	proto_proxy_audit_free(a);
	a = trail(0);
	assert_null(attest_proxy_chain_why(a));
	proto_proxy_audit_free(a);

	a = trail(3);
	a->calls[0].status = 201;
	expect_broken(a, "calls[1].prev is not the digest of the entry before it");
	a = trail(3);
	a->calls[2].ms = 1; /* the last entry: only the head covers it */
	expect_broken(a, "the head is not the digest of the last entry");
	a = trail(3);
	proto_proxy_call c0 = a->calls[0];
	a->calls[0] = a->calls[1];
	a->calls[1] = c0;
	expect_broken(a, "calls[0] has seq 2, not 1");
	a = trail(3);
	a->calls[1].seq = 7;
	expect_broken(a, "calls[1] has seq 7, not 2");
	a = trail(2);
	free(a->head);
	a->head = NULL;
	expect_broken(a, "the head is not the digest of the last entry");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config),
	    cmocka_unit_test(test_policy),
	    cmocka_unit_test(test_request_grammar),
	    cmocka_unit_test(test_chain),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
