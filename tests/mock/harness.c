/* The harness of the tests that talk to tests/mock/llm_server.py (see harness.h). */
#include "tests/mock/harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/spawn.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "proto/json.h"

struct event_base *base;
http_client *hc;
char key[64];
char cert_file[128];
int mock_port, tls_port;

static char tmpdir[] = "/tmp/aisp-test-llm-XXXXXX";
static char key_file[128], certkey_file[128];
static spawn_child *mock_child, *tls_child;
static int children_running;
static bool guard_fired;

static void on_guard(evutil_socket_t fd, short what, void *arg)
{
	guard_fired = true;
	event_base_loopbreak(base);
}

/* Runs the loop until *flag; a guard fails the test if nothing ends it within 60 s (a hang
 * guard, not a timing assertion). */
void run_until(const bool *flag)
{
	struct event *g = evtimer_new(base, on_guard, NULL);
	struct timeval tv = {60, 0};
	evtimer_add(g, &tv);
	guard_fired = false;
	while (!*flag && !guard_fired)
		if (event_base_loop(base, EVLOOP_ONCE) < 0)
			fail_msg("event_base_loop failed (a test failed inside a callback?)");
	event_free(g);
	if (guard_fired)
		fail_msg("the loop made no progress for 60 s");
}

static int listen_loopback(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		return -1;
	*port = ntohs(a.sin_port);
	return fd;
}

static void on_mock_exit(const spawn_result *r, void *arg)
{
	children_running--;
}

/* Starts the mock on a new listening socket (its stdin); extra arguments after ours. */
static spawn_child *start_mock(int *port, const char *tls_cert, const char *tls_key)
{
	const char *root =
	    getenv("AISP_SOURCE_ROOT") ? getenv("AISP_SOURCE_ROOT") : AISP_SOURCE_DIR;
	_cleanup_free_ char *script = xasprintf("%s/tests/mock/llm_server.py", root);
	_cleanup_close_ int fd = listen_loopback(port);
	if (fd < 0)
		return NULL;
	const char *argv[] = {"/usr/bin/python3",
	                      script,
	                      "--listen-fd",
	                      "0",
	                      "--key-file",
	                      key_file,
	                      tls_cert ? "--tls-cert" : NULL,
	                      tls_cert,
	                      "--tls-key",
	                      tls_key,
	                      NULL};
	spawn_opts o = SPAWN_OPTS_INIT;
	o.argv = argv;
	o.stdin_fd = fd;
	o.stdout_fd = SPAWN_NULL;
	o.stderr_fd = 2;
	spawn_child *c = NULL;
	err *e = NULL;
	if (spawn_start(&o, on_mock_exit, NULL, &c, &e) < 0) {
		fprintf(stderr, "# mock: %s\n", err_msg(e));
		err_free(e);
		return NULL;
	}
	children_running++;
	return c;
}

static int make_cert(void)
{
	snprintf(cert_file, sizeof(cert_file), "%s/cert.pem", tmpdir);
	snprintf(certkey_file, sizeof(certkey_file), "%s/cert.key", tmpdir);
	const char *argv[] = {"openssl",
	                      "req",
	                      "-x509",
	                      "-newkey",
	                      "ec",
	                      "-pkeyopt",
	                      "ec_paramgen_curve:prime256v1",
	                      "-nodes",
	                      "-keyout",
	                      certkey_file,
	                      "-out",
	                      cert_file,
	                      "-days",
	                      "2",
	                      "-subj",
	                      "/CN=localhost",
	                      "-addext",
	                      "subjectAltName=IP:127.0.0.1,DNS:localhost",
	                      NULL};
	spawn_opts o = SPAWN_OPTS_INIT;
	o.argv = argv;
	o.timeout_ms = 60000;
	spawn_result r = {0};
	err *e = NULL;
	int rc = spawn_run(&o, &r, &e);
	if (rc < 0 || r.status != 0)
		fprintf(stderr, "# openssl req: %s %s\n", rc < 0 ? err_msg(e) : "failed", r.errout);
	rc = rc < 0 || r.status != 0 ? -1 : 0;
	spawn_result_deinit(&r);
	err_free(e);
	return rc;
}

int mock_setup(void **state)
{
	err *e = NULL;
	if (!mkdtemp(tmpdir))
		return -1;
	uint8_t rnd[16];
	FILE *f = fopen("/dev/urandom", "r");
	if (!f || fread(rnd, 1, sizeof(rnd), f) != sizeof(rnd))
		return -1;
	fclose(f);
	char hex[33];
	hex_encode(rnd, sizeof(rnd), hex);
	snprintf(key, sizeof(key), "sk-canary-%s", hex);
	snprintf(key_file, sizeof(key_file), "%s/key", tmpdir);
	_cleanup_free_ char *line = xasprintf("%s\n", key);
	_cleanup_close_ int dfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	base = event_base_new();
	if (!base || spawn_loop_init(base, &e) < 0 || !(hc = http_client_new(base, &e)) ||
	    write_file_at(dfd, "key", line, strlen(line), 0600, &e) < 0 || make_cert() < 0) {
		fprintf(stderr, "# setup: %s\n", err_msg(e));
		return -1;
	}
	mock_child = start_mock(&mock_port, NULL, NULL);
	tls_child = start_mock(&tls_port, cert_file, certkey_file);
	return mock_child && tls_child ? 0 : -1;
}

int mock_teardown(void **state)
{
	if (mock_child)
		kill(spawn_child_pid(mock_child), SIGTERM);
	if (tls_child)
		kill(spawn_child_pid(tls_child), SIGTERM);
	bool done = false;
	while (children_running > 0 && !done)
		done = event_base_loop(base, EVLOOP_ONCE) != 0;
	http_client_free(hc);
	spawn_loop_deinit();
	event_base_free(base);
	err *e = NULL;
	rm_rf_at(AT_FDCWD, tmpdir, &e);
	err_free(e);
	return 0;
}

/* ---- plain HTTP calls (the mock's own endpoints) ---- */

/* Array access for trees the mock sent (checked, so a wrong shape fails the test). */
size_t arr_len(yajl_val v)
{
	if (!YAJL_IS_ARRAY(v))
		fail_msg("not a JSON array");
	return v->u.array.len;
}

yajl_val arr_at(yajl_val v, size_t i)
{
	if (i >= arr_len(v))
		fail_msg("index %zu out of range", i);
	return v->u.array.values[i];
}

const char *arr_str(yajl_val v, size_t i)
{
	yajl_val s = arr_at(v, i);
	if (!YAJL_IS_STRING(s))
		fail_msg("not a JSON string");
	return s->u.string;
}

void fetch_deinit(fetch *f)
{
	free(f->err);
	free(f->content_type);
	buf_deinit(&f->body);
}

static void on_fetch(http_response *r, const err *e, void *arg)
{
	fetch *f = arg;
	f->done = true;
	f->status = r->status;
	f->outcome = r->outcome;
	f->err = e ? xstrdup(err_msg(e)) : NULL;
	const char *ct = http_response_header(r, "content-TYPE");
	f->content_type = ct ? xstrdup(ct) : NULL;
	f->body = r->body; /* taken: the call frees an empty buffer */
	buf_init(&r->body);
}

/* Runs rq to its end into f. Returns 0, or -1 when submit refused it (f->err says why). */
int run_http(http_request *rq, fetch *f)
{
	memset(f, 0, sizeof(*f));
	err *e = NULL;
	if (!http_client_submit(hc, rq, on_fetch, f, &e)) {
		f->err = xstrdup(err_msg(e));
		err_free(e);
		return -1;
	}
	run_until(&f->done);
	return 0;
}

http_request mock_get_request(const char *path)
{
	static char url[256];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", mock_port, path);
	return (http_request){.url = url,
	                      .allow_http = true,
	                      .allow_private = true,
	                      .max_response_bytes = 64 * 1024 * 1024};
}

/* The requests the plain mock recorded (a yajl tree, caller frees). */
yajl_val mock_requests(void)
{
	http_request rq = mock_get_request("/_mock/requests");
	fetch f;
	run_http(&rq, &f);
	if (f.err || f.status != 200)
		fail_msg("GET /_mock/requests: %s %ld", f.err ? f.err : "", f.status);
	yajl_val v = NULL;
	err *e = NULL;
	if (proto_json_parse(buf_str(&f.body), f.body.len, &v, &e) < 0)
		fail_msg("/_mock/requests: %s", err_msg(e));
	fetch_deinit(&f);
	yajl_val reqs = proto_json_get(v, "requests");
	assert_true(YAJL_IS_ARRAY(reqs));
	return v;
}

/* How many recorded requests have needle in their body. */
int mock_count(const char *needle)
{
	_cleanup_(yajl_tree_freep) yajl_val v = mock_requests();
	yajl_val reqs = proto_json_get(v, "requests");
	int n = 0;
	for (size_t i = 0; i < arr_len(reqs); i++) {
		const char *body = proto_json_get_str(arr_at(reqs, i), "body");
		if (body && strstr(body, needle))
			n++;
	}
	return n;
}

int mock_total(void)
{
	_cleanup_(yajl_tree_freep) yajl_val v = mock_requests();
	return (int)arr_len(proto_json_get(v, "requests"));
}
