/* Tests of the HTTP client (daemon/http-client.h): the address classifier behind the SSRF
 * veto and URL redaction (pure functions), then the client's rules on a real libevent loop
 * against the mock server of tests/mock (plain HTTP on loopback, so allow_http and
 * allow_private are set where a test needs to reach it; the veto tests leave allow_private
 * off): bad requests refused at the door, the veto after resolution in every spelling of
 * loopback, an extra veto, statuses as values, caps, cancellation by freeing the client, no
 * proxy from the environment. */
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
#include <sys/un.h>

#include "common/buf.h"
#include "common/cleanup.h"
#include "common/err.h"
#include "common/xalloc.h"
#include "daemon/http-client.h"
#include "proto/json.h"
#include "tests/mock/harness.h"

/* ---- pure functions ---- */

typedef struct addr_case {
	const char *text;
	http_addr_class cls;
} addr_case;

static http_addr_class classify_text(const char *text)
{
	struct sockaddr_in s4 = {.sin_family = AF_INET};
	struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
	if (inet_pton(AF_INET, text, &s4.sin_addr) == 1)
		return http_addr_classify((struct sockaddr *)&s4, sizeof(s4));
	if (inet_pton(AF_INET6, text, &s6.sin6_addr) == 1)
		return http_addr_classify((struct sockaddr *)&s6, sizeof(s6));
	fail_msg("not an address: %s", text);
	return HTTP_ADDR_UNKNOWN;
}

static const addr_case v4_cases[] = {
    {"127.0.0.1", HTTP_ADDR_LOOPBACK},
    {"127.255.255.254", HTTP_ADDR_LOOPBACK},
    {"10.1.2.3", HTTP_ADDR_PRIVATE},
    {"172.15.255.255", HTTP_ADDR_PUBLIC},
    {"172.16.0.1", HTTP_ADDR_PRIVATE},
    {"172.31.255.255", HTTP_ADDR_PRIVATE},
    {"172.32.0.0", HTTP_ADDR_PUBLIC},
    {"192.168.0.1", HTTP_ADDR_PRIVATE},
    {"169.254.169.254", HTTP_ADDR_LINK_LOCAL},
    {"169.253.255.255", HTTP_ADDR_PUBLIC},
    {"100.64.0.1", HTTP_ADDR_SHARED},
    {"100.127.255.255", HTTP_ADDR_SHARED},
    {"100.63.255.255", HTTP_ADDR_PUBLIC},
    {"100.128.0.0", HTTP_ADDR_PUBLIC},
    {"0.0.0.0", HTTP_ADDR_THIS_NETWORK},
    {"0.1.2.3", HTTP_ADDR_THIS_NETWORK},
    {"224.0.0.1", HTTP_ADDR_MULTICAST},
    {"239.255.255.250", HTTP_ADDR_MULTICAST},
    {"255.255.255.255", HTTP_ADDR_BROADCAST},
    {"240.0.0.1", HTTP_ADDR_RESERVED},
    {"255.255.255.254", HTTP_ADDR_RESERVED},
    {"192.0.2.1", HTTP_ADDR_RESERVED},
    {"192.0.0.8", HTTP_ADDR_RESERVED},
    {"198.18.0.1", HTTP_ADDR_RESERVED},
    {"198.19.255.255", HTTP_ADDR_RESERVED},
    {"198.20.0.0", HTTP_ADDR_PUBLIC},
    {"198.51.100.7", HTTP_ADDR_RESERVED},
    {"203.0.113.9", HTTP_ADDR_RESERVED},
    {"8.8.8.8", HTTP_ADDR_PUBLIC},
    {"1.1.1.1", HTTP_ADDR_PUBLIC},
    {"93.184.216.34", HTTP_ADDR_PUBLIC},
    {"223.255.255.255", HTTP_ADDR_PUBLIC},
};

static const addr_case v6_cases[] = {
    {"::1", HTTP_ADDR_LOOPBACK},
    {"::", HTTP_ADDR_THIS_NETWORK},
    {"::ffff:127.0.0.1", HTTP_ADDR_LOOPBACK},
    {"::ffff:10.0.0.1", HTTP_ADDR_PRIVATE},
    {"::ffff:169.254.169.254", HTTP_ADDR_LINK_LOCAL},
    {"::ffff:100.64.1.1", HTTP_ADDR_SHARED},
    {"::ffff:8.8.8.8", HTTP_ADDR_PUBLIC},
    {"::127.0.0.1", HTTP_ADDR_LOOPBACK}, /* IPv4-compatible */
    {"64:ff9b::7f00:1", HTTP_ADDR_LOOPBACK},
    {"64:ff9b::a9fe:a9fe", HTTP_ADDR_LINK_LOCAL},
    {"64:ff9b::c0a8:1", HTTP_ADDR_PRIVATE},
    {"64:ff9b::808:808", HTTP_ADDR_PUBLIC},
    {"64:ff9b:1::1", HTTP_ADDR_RESERVED},
    {"fc00::1", HTTP_ADDR_UNIQUE_LOCAL},
    {"fd12:3456::1", HTTP_ADDR_UNIQUE_LOCAL},
    {"fe80::1", HTTP_ADDR_LINK_LOCAL},
    {"febf:ffff::1", HTTP_ADDR_LINK_LOCAL},
    {"fec0::1", HTTP_ADDR_UNIQUE_LOCAL},
    {"ff02::1", HTTP_ADDR_MULTICAST},
    {"2001:db8::1", HTTP_ADDR_RESERVED},
    {"2001::1", HTTP_ADDR_RESERVED}, /* Teredo */
    {"2001:1ff::1", HTTP_ADDR_RESERVED},
    {"2001:200::1", HTTP_ADDR_PUBLIC},
    {"2002:7f00:1::1", HTTP_ADDR_LOOPBACK}, /* 6to4 of 127.0.0.1 */
    {"2002:a9fe:a9fe::", HTTP_ADDR_LINK_LOCAL},
    {"2002:808:808::1", HTTP_ADDR_PUBLIC},
    {"3fff::1", HTTP_ADDR_RESERVED},
    {"100::1", HTTP_ADDR_RESERVED},
    {"4000::1", HTTP_ADDR_RESERVED},
    {"2606:4700:4700::1111", HTTP_ADDR_PUBLIC},
    {"2a00:1450:4001::200e", HTTP_ADDR_PUBLIC},
};

static void check_cases(const addr_case *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		http_addr_class got = classify_text(c[i].text);
		if (got != c[i].cls)
			fail_msg("%s: got %s, want %s", c[i].text, http_addr_class_name(got),
			         http_addr_class_name(c[i].cls));
	}
}

static void test_addr_classify(void **state)
{
	check_cases(v4_cases, ARRAY_SIZE(v4_cases));
	check_cases(v6_cases, ARRAY_SIZE(v6_cases));
	struct sockaddr_in s4 = {.sin_family = AF_INET};
	assert_int_equal(http_addr_classify((struct sockaddr *)&s4, sizeof(s4) - 1),
	                 HTTP_ADDR_UNKNOWN);
	struct sockaddr_un su = {.sun_family = AF_UNIX};
	assert_int_equal(http_addr_classify((struct sockaddr *)&su, sizeof(su)), HTTP_ADDR_UNKNOWN);
	assert_int_equal(http_addr_classify(NULL, 0), HTTP_ADDR_UNKNOWN);
	struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &s6.sin6_addr);
	char text[64];
	http_addr_format((struct sockaddr *)&s6, sizeof(s6), text, sizeof(text));
	assert_string_equal(text, "::ffff:127.0.0.1");
	http_addr_format((struct sockaddr *)&su, sizeof(su), text, sizeof(text));
	assert_string_equal(text, "?");
	assert_string_equal(http_addr_class_name(HTTP_ADDR_PRIVATE), "private (RFC 1918)");
}

static void test_url_for_message(void **state)
{
	char *m = http_url_for_message("https://user:pass@host.example:8443/p/a?token=SECRET#frag");
	assert_string_equal(m, "https://host.example:8443/p/a");
	free(m);
	m = http_url_for_message("http://[::1]/x");
	assert_string_equal(m, "http://[::1]/x");
	free(m);
	m = http_url_for_message("not a url");
	assert_string_equal(m, "(invalid URL)");
	free(m);
	char longurl[400] = "https://h/";
	memset(longurl + 10, 'a', 300);
	m = http_url_for_message(longurl);
	assert_int_equal(strlen(m), 200);
	assert_string_equal(m + 197, "...");
	free(m);
}

/* ---- the HTTP client's rules ---- */

static void expect_refused(http_request rq, const char *want)
{
	fetch f;
	assert_int_equal(run_http(&rq, &f), -1);
	if (strcmp(f.err, want) != 0)
		fail_msg("got:  %s\nwant: %s", f.err, want);
	fetch_deinit(&f);
}

static void test_http_bad_requests(void **state)
{
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/_mock/requests", mock_port);
	expect_refused((http_request){.url = url},
	               "http: URL scheme \"http\" is not allowed (https only)");
	expect_refused((http_request){.url = "ftp://127.0.0.1/x", .allow_http = true},
	               "http: URL scheme \"ftp\" is not allowed (https only)");
	expect_refused((http_request){.url = "file:///etc/passwd", .allow_http = true},
	               "http: URL scheme \"file\" is not allowed (https only)");
	expect_refused((http_request){.url = "https://"},
	               "http: invalid URL: No host part in the URL");
	expect_refused((http_request){.url = NULL}, "http: no URL");
	const char *inject[] = {"X-A: b\r\nX-Injected: 1", NULL};
	expect_refused((http_request){.url = "https://h/", .headers = inject},
	               "http: request header 1 (X-A): CR or LF in the value");
	const char *badname[] = {"Good: 1", "Bad Name: x", NULL};
	expect_refused((http_request){.url = "https://h/", .headers = badname},
	               "http: request header 2: the name is not an HTTP token");
	const char *nocolon[] = {"NoColon", NULL};
	expect_refused((http_request){.url = "https://h/", .headers = nocolon},
	               "http: request header 1 is not \"Name: value\"");
	expect_refused((http_request){.url = "https://h/", .method = "TRACE"},
	               "http: method \"TRACE\" is not supported");
	expect_refused((http_request){.url = "https://h/", .body = "x", .body_len = 1},
	               "http: a GET request has no body");
}

/* The SSRF veto: loopback in every spelling is refused after resolution, nothing is sent. */
static void test_http_veto(void **state)
{
	const char *hosts[] = {"127.0.0.1", "[::ffff:127.0.0.1]", "2130706433",
	                       "0x7f.1",    "localhost",          "[::1]",
	                       "0.0.0.0"};
	int before = mock_total();
	for (size_t i = 0; i < ARRAY_SIZE(hosts); i++) {
		_cleanup_free_ char *url =
		    xasprintf("http://%s:%d/_mock/requests", hosts[i], mock_port);
		fetch f;
		http_request rq = {.url = url, .allow_http = true};
		assert_int_equal(run_http(&rq, &f), 0);
		assert_int_equal(f.outcome, HTTP_E_VETOED);
		if (!f.err || !strstr(f.err, ": refused to connect (SSRF defence): ") ||
		    (!strstr(f.err, " is loopback") && !strstr(f.err, " is unspecified")))
			fail_msg("%s: %s", hosts[i], f.err ? f.err : "(no error)");
		fetch_deinit(&f);
	}
	assert_int_equal(mock_total(), before);
	/* The message names the address the name resolved to. */
	_cleanup_free_ char *url = xasprintf("http://2130706433:%d/x", mock_port);
	_cleanup_free_ char *want = xasprintf("http: GET http://127.0.0.1:%d/x: refused to connect "
	                                      "(SSRF defence): 127.0.0.1 is loopback",
	                                      mock_port);
	fetch f;
	http_request rq = {.url = url, .allow_http = true};
	run_http(&rq, &f);
	assert_string_equal(f.err, want);
	fetch_deinit(&f);
}

static bool veto_all(const struct sockaddr *sa, socklen_t len, char *why, size_t n, void *arg)
{
	(*(int *)arg)++;
	snprintf(why, n, "not on the service's list");
	return true;
}

static void test_http_extra_veto(void **state)
{
	int calls = 0;
	http_request rq = mock_get_request("/_mock/requests");
	rq.veto_fn = veto_all;
	rq.veto_arg = &calls;
	fetch f;
	run_http(&rq, &f);
	assert_int_equal(f.outcome, HTTP_E_VETOED);
	_cleanup_free_ char *want =
	    xasprintf("http: GET http://127.0.0.1:%d/_mock/requests: refused "
	              "to connect (SSRF defence): 127.0.0.1: not on the "
	              "service's list",
	              mock_port);
	assert_string_equal(f.err, want);
	assert_int_equal(calls, 1);
	fetch_deinit(&f);
}

static void test_http_response(void **state)
{
	_cleanup_free_ char *url = xasprintf("http://127.0.0.1:%d/nowhere", mock_port);
	http_request rq = {.url = url, .allow_http = true, .allow_private = true};
	fetch f;
	run_http(&rq, &f);
	assert_null(f.err);
	assert_int_equal(f.outcome, HTTP_OK);
	assert_int_equal(f.status, 404); /* a status is a value, not an error */
	assert_string_equal(f.content_type, "application/json");
	assert_string_equal(buf_str(&f.body),
	                    "{\"error\": {\"code\": 404, \"message\": \"no such endpoint: GET "
	                    "/nowhere\"}}");
	fetch_deinit(&f);
	/* The cap applies to plain calls too. */
	rq.url = url;
	rq.max_response_bytes = 10;
	run_http(&rq, &f);
	assert_int_equal(f.outcome, HTTP_E_TOO_LARGE);
	fetch_deinit(&f);
}

static void on_never(http_response *r, const err *e, void *arg)
{
	fail_msg("a cancelled HTTP call finished");
}

/* Freeing the client cancels what is in flight; a fresh client still works after. */
static void test_http_client_free(void **state)
{
	err *e = NULL;
	http_client *c = http_client_new(base, &e);
	assert_non_null(c);
	http_request rq = mock_get_request("/_mock/requests");
	for (int i = 0; i < 3; i++)
		assert_non_null(http_client_submit(c, &rq, on_never, NULL, &e));
	assert_int_equal(http_client_active(c), 3);
	/* One pass of the loop (not NONBLOCK alone, which goes on while anything is ready):
	 * the transfers start, none can have finished. */
	event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	http_client_free(c);
	fetch f;
	run_http(&rq, &f);
	assert_int_equal(f.status, 200);
	fetch_deinit(&f);
}

/* No proxy from the environment: with every proxy variable pointing at a dead port, calls
 * still go straight to the server. */
static void test_http_no_env_proxy(void **state)
{
	const char *vars[] = {"http_proxy",  "HTTP_PROXY", "https_proxy",
	                      "HTTPS_PROXY", "all_proxy",  "ALL_PROXY"};
	for (size_t i = 0; i < ARRAY_SIZE(vars); i++)
		setenv(vars[i], "http://127.0.0.1:1", 1);
	http_request rq = mock_get_request("/_mock/requests");
	fetch f;
	run_http(&rq, &f);
	for (size_t i = 0; i < ARRAY_SIZE(vars); i++)
		unsetenv(vars[i]);
	if (f.err || f.status != 200)
		fail_msg("%s %ld", f.err ? f.err : "", f.status);
	fetch_deinit(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_addr_classify),     cmocka_unit_test(test_url_for_message),
	    cmocka_unit_test(test_http_bad_requests), cmocka_unit_test(test_http_veto),
	    cmocka_unit_test(test_http_extra_veto),   cmocka_unit_test(test_http_response),
	    cmocka_unit_test(test_http_client_free),  cmocka_unit_test(test_http_no_env_proxy),
	};
	return cmocka_run_group_tests(tests, mock_setup, mock_teardown);
}
