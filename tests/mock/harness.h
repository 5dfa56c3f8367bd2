/* A harness for C tests that talk to the mock LLM server (tests/mock/llm_server.py).
 *
 * mock_setup() (a cmocka group setup) makes a libevent loop and an http_client, a random
 * canary API key in a 0600 key file, a self-signed certificate (the openssl command), and
 * starts two mocks as children on loopback sockets it listened on itself (handed over as the
 * child's stdin, so there is no port race): a plain-HTTP one on mock_port and an HTTPS one on
 * tls_port whose certificate is cert_file. mock_teardown() stops them by pid and removes
 * everything. The helpers fail the running test (cmocka) on anything unexpected. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <yajl/yajl_tree.h>

#include "common/buf.h"
#include "daemon/http-client.h"

extern struct event_base *base;
extern http_client *hc;
extern char key[64];        /* the canary API key both mocks expect */
extern char cert_file[128]; /* the HTTPS mock's certificate, also its CA */
extern int mock_port, tls_port;

int mock_setup(void **state);
int mock_teardown(void **state);

/* Runs the loop until *flag; fails the test if nothing ends it within 60 s (a hang guard,
 * not a timing assertion). */
void run_until(const bool *flag);

/* One plain HTTP call, run to its end. */
typedef struct fetch {
	bool done;
	long status;
	http_outcome outcome;
	char *err;
	buf body;
	char *content_type;
} fetch;
void fetch_deinit(fetch *f);
/* Returns 0, or -1 when http_client_submit() refused rq (f->err says why). */
int run_http(http_request *rq, fetch *f);

/* A GET of path on the plain mock (allow_http and allow_private set, a 64 MiB cap). The URL
 * is a static buffer, valid until the next call (http_client_submit() copies it). */
http_request mock_get_request(const char *path);

/* The requests the plain mock recorded ({"requests": [...]}, caller frees). */
yajl_val mock_requests(void);
/* How many recorded requests have needle in their body; how many there are. */
int mock_count(const char *needle);
int mock_total(void);

/* Checked access to arrays in a tree (a wrong shape fails the test). */
size_t arr_len(yajl_val v);
yajl_val arr_at(yajl_val v, size_t i);
const char *arr_str(yajl_val v, size_t i);
