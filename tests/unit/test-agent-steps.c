/* Tests of the agent's step mode (sandbox/agent/agent-steps.c, the bootstraps' step mode): the
 * real aisp-agent binary runs on the host with pipes for its stdin and stdout and a temporary
 * directory as its workspace, and the test sends it STEP frames as the host does for a chain's
 * script steps. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "sandbox/agent/frame.h"

/* One agent serving steps. */
typedef struct agent {
	pid_t pid;
	int to, from;
	sandbox_frame_reader r;
	char ws[64];
} agent;

/* What one step reported. */
typedef struct step_out {
	buf out, err;
	char *result; /* the STEP_RESULT payload (NUL-terminated), or NULL */
	uint8_t flags;
	int32_t code;
	char *msg;
} step_out;

static void step_out_free(step_out *s)
{
	buf_deinit(&s->out);
	buf_deinit(&s->err);
	free(s->result);
	free(s->msg);
	memset(s, 0, sizeof(*s));
}

/* A whole frame (blocking): 1 with an owned payload, 0 at EOF. */
static int next_frame(agent *a, uint8_t *type, char **payload, size_t *len)
{
	for (;;) {
		const uint8_t *p;
		int k = sandbox_frame_reader_next(&a->r, type, &p, len);
		assert_true(k >= 0);
		if (k == 1) {
			*payload = xmalloc(*len + 1);
			memcpy(*payload, p, *len);
			(*payload)[*len] = 0;
			return 1;
		}
		uint8_t chunk[65536];
		ssize_t n = read(a->from, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		assert_true(n >= 0);
		if (n == 0)
			return 0;
		assert_int_equal(sandbox_frame_reader_feed(&a->r, chunk, (size_t)n), 0);
	}
}

static void start(agent *a, const char *lang)
{
	const char *root = getenv("AISP_BUILD_ROOT");
	_cleanup_free_ char *bin = xasprintf("%s/sandbox/agent/aisp-agent", root ? root : ".");
	strcpy(a->ws, "/tmp/aisp-steps-XXXXXX");
	assert_non_null(mkdtemp(a->ws));
	int in[2], out[2];
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	a->pid = fork();
	assert_true(a->pid >= 0);
	if (a->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		const char *argv[] = {bin, "--lang", lang, "--workspace", a->ws, NULL};
		const char *envp[] = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8", NULL};
		execve(argv[0], (char *const *)argv, (char *const *)envp);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	a->to = in[1];
	a->from = out[0];
	sandbox_frame_reader_init(&a->r);
	uint8_t type;
	char *p;
	size_t n;
	assert_int_equal(next_frame(a, &type, &p, &n), 1);
	assert_int_equal(type, FRAME_READY);
	free(p);
}

/* Closes the host's end: the agent ends, exit status 0. */
static void stop(agent *a)
{
	close(a->to);
	int st = -1;
	assert_int_equal(waitpid(a->pid, &st, 0), a->pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	close(a->from);
	sandbox_frame_reader_deinit(&a->r);
	_cleanup_err_ err *e = NULL;
	assert_int_equal(rm_rf_at(AT_FDCWD, a->ws, &e), 0);
}

/* Sends a STEP (lang 0 python / 1 javascript; next -1: no further step) and reads the report. */
static void step(agent *a, int lang, const char *code, const char *input, int next, uint64_t outmax,
                 step_out *s)
{
	sandbox_frame_buf body = {0}, f = {0};
	uint8_t l = (uint8_t)lang, nl = (uint8_t)next;
	sandbox_frame_put_field(&body, FIELD_STEP_LANG, &l, 1);
	sandbox_frame_put_field(&body, FIELD_CODE, code, strlen(code));
	sandbox_frame_put_field(&body, FIELD_STEP_INPUT, input, strlen(input));
	sandbox_frame_put_field_u64(&body, FIELD_STEP_OUTPUT_MAX, outmax);
	if (next >= 0)
		sandbox_frame_put_field(&body, FIELD_STEP_NEXT_LANG, &nl, 1);
	sandbox_frame_put(&f, FRAME_STEP, body.data, body.len);
	assert_int_equal(write_all(a->to, f.data, f.len), 0);
	sandbox_frame_buf_free(&body);
	sandbox_frame_buf_free(&f);
	memset(s, 0, sizeof(*s));
	for (;;) {
		uint8_t type;
		char *p;
		size_t n;
		assert_int_equal(next_frame(a, &type, &p, &n), 1);
		if (type == FRAME_STDOUT || type == FRAME_STDERR)
			buf_append(type == FRAME_STDOUT ? &s->out : &s->err, p, n);
		else if (type == FRAME_STEP_RESULT)
			s->result = steal_pointer(&p);
		assert_true(type != FRAME_RETURN && type != FRAME_FILE);
		if (type == FRAME_EXIT) {
			sandbox_frame_exit x;
			assert_int_equal(sandbox_frame_parse_exit((uint8_t *)p, n, &x), 0);
			s->flags = x.flags;
			s->code = x.code;
			s->msg = xstrndup(x.msg, x.msg_len);
			free(p);
			return;
		}
		free(p);
	}
}

#define JS  1
#define PY  0
#define CAP 65536

/* The seed's JavaScript step: `input` as a string, `return` a value. */
static void test_js_seed(void **state)
{
	agent a;
	start(&a, "javascript");
	step_out s;
	step(&a, JS,
	     "const data = JSON.parse(input);\n"
	     "const result = {total: data.items.reduce((s, i) => s + i.price, 0),\n"
	     "  count: data.items.length, currency: data.currency || 'USD'};\n"
	     "console.log('seen', data.items.length);\n"
	     "return JSON.stringify(result);",
	     "{\"items\":[{\"price\":2},{\"price\":3.5}]}", -1, CAP, &s);
	assert_int_equal(s.flags, 0);
	assert_int_equal(s.code, 0);
	assert_string_equal(s.result,
	                    "\"{\\\"total\\\":5.5,\\\"count\\\":2,\\\"currency\\\":\\\"USD\\\"}\"");
	assert_int_equal(s.out.len, 7);
	assert_memory_equal(s.out.data, "seen 2\n", 7);
	step_out_free(&s);
	stop(&a);
}

/* Python: `input` a str, `output` assigned; a non-string output is JSON. */
static void test_python_seed(void **state)
{
	agent a;
	start(&a, "python");
	step_out s;
	step(&a, PY,
	     "import json\ndata = json.loads(input)\n"
	     "output = {\"total\": sum(i[\"price\"] for i in data[\"items\"]), \"n\": "
	     "len(data[\"items\"]), \"s\": \"\\u00e9\"}",
	     "{\"items\":[{\"price\":2},{\"price\":3.5}]}", -1, CAP, &s);
	assert_int_equal(s.flags, 0);
	assert_string_equal(s.result, "{\"total\":5.5,\"n\":2,\"s\":\"\xc3\xa9\"}");
	step_out_free(&s);
	stop(&a);
}

/* Several steps in one agent, of both languages, each in a fresh interpreter: globals do not
 * survive a step, the workspace does. */
static void test_steps_in_one_agent(void **state)
{
	agent a;
	start(&a, "javascript");
	step_out s;
	step(&a, JS, "globalThis.leak = 1; require('fs').writeFileSync('note', 'n'); return 41", "",
	     PY, CAP, &s);
	assert_string_equal(s.result, "41");
	step_out_free(&s);
	step(&a, PY, "output = str(int(input) + 1) + open('note').read()", "41", JS, CAP, &s);
	assert_int_equal(s.flags, 0);
	assert_string_equal(s.result, "\"42n\"");
	step_out_free(&s);
	step(&a, JS, "return typeof globalThis.leak + ':' + input", "x", -1, CAP, &s);
	assert_string_equal(s.result, "\"undefined:x\"");
	step_out_free(&s);
	/* a step of the same lang without a pre-warmed interpreter (next said none) */
	step(&a, JS, "return await Promise.resolve([input])", "y", -1, CAP, &s);
	assert_string_equal(s.result, "[\"y\"]");
	step_out_free(&s);
	stop(&a);
}

/* Failures are the step's (function error with a message); the agent serves the next step. */
static void test_step_failures(void **state)
{
	static const struct {
		int lang;
		const char *code, *msg;
	} cases[] = {
	    {JS, "throw new TypeError('boom')", "TypeError: boom"},
	    {JS, "const x = 1;",
	     "TypeError: the script returned no value: return a string or a "
	     "JSON value"},
	    {JS, "return () => 1", "TypeError: the return value is not JSON-serialisable"},
	    {JS, "return 'x'.repeat(100)", "RangeError: output is 102 bytes of JSON, over 64"},
	    {JS, "process.exit(0)", "the script ended before it returned its output"},
	    {PY, "x = 1", "NameError: a python step sets the variable output"},
	    {PY, "output = float('nan')",
	     "ValueError: Out of range float values are not JSON "
	     "compliant"},
	    {PY, "output = 'x' * 100", "ValueError: output is 102 bytes of JSON, over 64"},
	    {PY, "raise KeyError('k')", "KeyError: 'k'"},
	};
	agent a;
	start(&a, "python");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		step_out s;
		step(&a, cases[i].lang, cases[i].code, "", -1, 64, &s);
		if (!(s.flags & EXIT_F_FUNCTION_ERROR) || strcmp(s.msg, cases[i].msg))
			fail_msg("case %zu: flags %#x, message \"%s\", want \"%s\"", i, s.flags,
			         s.msg, cases[i].msg);
		assert_null(s.result);
		step_out_free(&s);
	}
	step_out s;
	step(&a, PY, "output = input", "still here", -1, 64, &s);
	assert_string_equal(s.result, "\"still here\"");
	step_out_free(&s);
	stop(&a);
}

/* A STEP the agent cannot run is a setup error; the agent ends. */
static void test_malformed_step(void **state)
{
	agent a;
	start(&a, "javascript");
	sandbox_frame_buf f = {0};
	uint8_t l = 1;
	sandbox_frame_buf body = {0};
	sandbox_frame_put_field(&body, FIELD_STEP_LANG, &l, 1);
	sandbox_frame_put(&f, FRAME_STEP, body.data, body.len);
	assert_int_equal(write_all(a.to, f.data, f.len), 0);
	uint8_t type;
	char *p;
	size_t n;
	assert_int_equal(next_frame(&a, &type, &p, &n), 1);
	assert_int_equal(type, FRAME_EXIT);
	sandbox_frame_exit x;
	assert_int_equal(sandbox_frame_parse_exit((uint8_t *)p, n, &x), 0);
	assert_true(x.flags & EXIT_F_SETUP_ERROR);
	assert_memory_equal(x.msg, "malformed STEP: no code", x.msg_len);
	free(p);
	sandbox_frame_buf_free(&f);
	sandbox_frame_buf_free(&body);
	stop(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_js_seed),
	    cmocka_unit_test(test_python_seed),
	    cmocka_unit_test(test_steps_in_one_agent),
	    cmocka_unit_test(test_step_failures),
	    cmocka_unit_test(test_malformed_step),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
