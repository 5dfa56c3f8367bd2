/* Tests of the in-sandbox agent: the real aisp-agent binary runs on the host (no container)
 * with pipes for its stdin and stdout and a temporary directory standing in for /workspace;
 * the test speaks the frame protocol to it exactly as the host does. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "sandbox/agent/agent.h"
#include "sandbox/agent/frame.h"
#include "tests/unit/agent-harness.h"

/* argv, env, stdin, stdout, stderr and the exit code, in script mode. */
static void script_basics(const char *lang, const char *code)
{
	sandbox_frame_buf b = {0};
	put_mode(&b, 0);
	put_str(&b, FIELD_CODE, code);
	put_str(&b, FIELD_ARG, "first arg");
	put_str(&b, FIELD_ARG, "second");
	put_str(&b, FIELD_ENV, "TASK_VAR=from task");
	put_str(&b, FIELD_ENV, "BASE_VAR=overridden");
	put_str(&b, FIELD_STDIN, "line from stdin\n");
	result r;
	run(lang, &b, &r);
	assert_string_equal(out_str(&r), "args=first arg|second\n"
	                                 "task=from task base=overridden\n"
	                                 "stdin=line from stdin\n");
	assert_string_equal(buf_str(&r.err), "to stderr\n");
	assert_int_equal(r.flags, 0);
	assert_int_equal(r.code, 3);
	sandbox_frame_buf_free(&b);
	result_free(&r);
}

static void test_python_script(void **state)
{
	script_basics("python", "import sys, os\n"
	                        "print('args=' + '|'.join(sys.argv[1:]))\n"
	                        "print('task=%s base=%s' % (os.environ['TASK_VAR'], "
	                        "os.environ['BASE_VAR']))\n"
	                        "print('stdin=' + sys.stdin.read(), end='')\n"
	                        "print('to stderr', file=sys.stderr)\n"
	                        "sys.exit(3)\n");
}

static void test_javascript_script(void **state)
{
	script_basics("javascript",
	              "console.log('args=' + process.argv.slice(2).join('|'));\n"
	              "console.log(`task=${process.env.TASK_VAR} base=${process.env.BASE_VAR}`);\n"
	              "process.stdout.write('stdin=' + require('fs').readFileSync(0, 'utf8'));\n"
	              "console.error('to stderr');\n"
	              "process.exitCode = 3;\n");
}

static void test_shell_script(void **state)
{
	script_basics("shell", "IFS='|'; echo \"args=$*\"\n"
	                       "echo \"task=$TASK_VAR base=$BASE_VAR\"\n"
	                       "printf 'stdin=%s\\n' \"$(cat)\"\n"
	                       "echo to stderr >&2\n"
	                       "exit 3\n");
}

/* The environment is exactly the agent's own plus the task's, and argv[0] is main.py. */
static void test_python_env_exact(void **state)
{
	sandbox_frame_buf b = {0};
	put_mode(&b, 0);
	put_str(&b, FIELD_CODE,
	        "import os, sys\n"
	        "print(sorted(os.environ.items()))\n"
	        "print(sys.argv[0], __name__, os.getcwd() == os.path.dirname(__file__))\n");
	put_str(&b, FIELD_ENV, "A=1");
	result r;
	run("python", &b, &r);
	assert_string_equal(out_str(&r), "[('A', '1'), ('BASE_VAR', 'base'), ('LANG', 'C.UTF-8'), "
	                                 "('PATH', '/usr/bin:/bin'), ('PYTHONHASHSEED', '0')]\n"
	                                 "main.py __main__ True\n");
	assert_int_equal(r.code, 0);
	sandbox_frame_buf_free(&b);
	result_free(&r);
}

static void test_script_errors(void **state)
{
	result r;
	run_code("python", 0, "print('before')\n1/0\n", &r);
	assert_string_equal(out_str(&r), "before\n");
	assert_non_null(strstr(buf_str(&r.err), "ZeroDivisionError"));
	assert_non_null(strstr(buf_str(&r.err), "main.py\", line 2"));
	assert_int_equal(r.code, 1);
	assert_int_equal(r.flags, 0);
	result_free(&r);

	run_code("javascript", 0, "console.log('a'); process.exit(7); console.log('b');", &r);
	assert_string_equal(out_str(&r), "a\n");
	assert_int_equal(r.code, 7);
	result_free(&r);

	run_code("javascript", 0, "throw new Error('bad thing')", &r);
	assert_non_null(strstr(buf_str(&r.err), "bad thing"));
	assert_int_equal(r.code, 1);
	result_free(&r);

	/* A timer keeps the event loop alive; the process still ends when it is drained. */
	run_code("javascript", 0, "setTimeout(() => console.log('later'), 20)", &r);
	assert_string_equal(out_str(&r), "later\n");
	assert_int_equal(r.code, 0);
	result_free(&r);

	run_code("shell", 0, "kill -9 $$", &r);
	assert_int_equal(r.flags, EXIT_F_SIGNALED);
	assert_int_equal(r.code, SIGKILL);
	result_free(&r);
}

static void run_function(const char *lang, const char *code, const char *args, result *r)
{
	sandbox_frame_buf b = {0};
	put_mode(&b, 1);
	put_str(&b, FIELD_CODE, code);
	if (args)
		put_str(&b, FIELD_ARGS_JSON, args);
	run(lang, &b, r);
	sandbox_frame_buf_free(&b);
}

static void expect_function_error(const char *lang, const char *code, const char *in_msg)
{
	result r;
	run_function(lang, code, "{}", &r);
	assert_null(r.ret);
	assert_true(r.flags & EXIT_F_FUNCTION_ERROR);
	if (!strstr(r.msg, in_msg))
		fail_msg("message \"%s\" lacks \"%s\"", r.msg, in_msg);
	result_free(&r);
}

static void test_python_function(void **state)
{
	result r;
	run_function("python",
	             "def main(args):\n    print('side')\n"
	             "    return {'sum': args['a'] + args['b'], 'l': [None, True]}\n",
	             "{\"a\": 2, \"b\": 40}", &r);
	assert_string_equal(r.ret, "{\"sum\": 42, \"l\": [null, true]}");
	assert_string_equal(out_str(&r), "side\n");
	assert_int_equal(r.flags, 0);
	assert_int_equal(r.code, 0);
	result_free(&r);

	expect_function_error("python", "def main(a):\n    raise ValueError('boom')\n",
	                      "ValueError: boom");
	expect_function_error("python", "def main(a):\n    return object()\n",
	                      "not JSON serializable");
	expect_function_error("python", "def main(a):\n    return 'x' * 5000\n", "over 4096");
	expect_function_error("python", "x = 1\n", "needs a function main");
	expect_function_error("python", "import sys\ndef main(a):\n    sys.exit(0)\n",
	                      "ended before main returned");
}

static void test_javascript_function(void **state)
{
	result r;
	run_function("javascript",
	             "async function main(args) {\n"
	             "  await new Promise((r) => setTimeout(r, 10));\n"
	             "  return {sum: args.a + args.b};\n"
	             "}\n",
	             "{\"a\": 2, \"b\": 40}", &r);
	assert_string_equal(r.ret, "{\"sum\":42}");
	assert_int_equal(r.flags, 0);
	assert_int_equal(r.code, 0);
	result_free(&r);

	run_function("javascript", "module.exports.main = (a) => a.length;", "[1,2,3]", &r);
	assert_string_equal(r.ret, "3");
	result_free(&r);

	expect_function_error("javascript", "function main() { throw new TypeError('boom'); }",
	                      "TypeError: boom");
	expect_function_error("javascript", "async function main() { throw new Error('later'); }",
	                      "Error: later");
	expect_function_error("javascript", "function main() { return 1n; }", "BigInt");
	expect_function_error("javascript", "function main() { return 'x'.repeat(5000); }",
	                      "over 4096");
	expect_function_error("javascript", "const x = 1;", "needs a function main");

	run_function("shell", "echo hi", NULL, &r);
	assert_int_equal(r.flags, EXIT_F_SETUP_ERROR);
	assert_string_equal(r.msg, "function mode is not supported for shell");
	result_free(&r);
}

/* Starts a python agent and sends it a script-mode TASK of code, leaving stdin open (the host
 * has not hung up). Returns the agent's pid. */
static pid_t start_python_task(const char *code, int *to, int *from, sandbox_frame_reader *r)
{
	pid_t pid = start_ready("python", to, from, r);
	sandbox_frame_buf b = {0}, f = {0};
	put_mode(&b, 0);
	put_str(&b, FIELD_CODE, code);
	sandbox_frame_put(&f, FRAME_TASK, b.data, b.len);
	assert_int_equal(write_all(*to, f.data, f.len), 0);
	sandbox_frame_buf_free(&b);
	sandbox_frame_buf_free(&f);
	return pid;
}

/* Output reaches the host as the program prints it, in chunks: what was flushed before the
 * agent is killed (a wall timeout, an OOM of the whole sandbox, SIGKILL from outside) is
 * already on the host's side of the pipe (issue 12 item 2). */
static void test_output_streamed(void **state)
{
	int to, from;
	sandbox_frame_reader r;
	pid_t pid = start_python_task(
	    "import sys, time\nprint('before', flush=True)\nsys.stderr.write('e1')\n"
	    "sys.stderr.flush()\ntime.sleep(3)\nprint('never')\n",
	    &to, &from, &r);
	uint8_t type;
	uint8_t *p;
	size_t n;
	buf out = BUF_INIT, errs = BUF_INIT;
	while ((out.len < 7 || errs.len < 2) && read_frame(from, &r, &type, &p, &n) == 1) {
		assert_true(type == FRAME_STDOUT || type == FRAME_STDERR);
		assert_true(n > 0 && n <= FRAME_CHUNK_MAX);
		buf_append(type == FRAME_STDOUT ? &out : &errs, p, n);
		free(p);
	}
	assert_string_equal(buf_str(&out), "before\n");
	assert_string_equal(buf_str(&errs), "e1");
	/* the program is still sleeping: kill the agent and its program, as a kill from outside
	 * would; nothing else came, nothing is lost */
	_cleanup_free_ char *kids = xasprintf("/proc/%d/task/%d/children", (int)pid, (int)pid);
	buf k = BUF_INIT;
	assert_int_equal(read_file_at(AT_FDCWD, kids, 4096, &k, NULL), 0);
	kill(pid, SIGKILL);
	kill((pid_t)strtol(buf_str(&k), NULL, 10), SIGKILL);
	assert_int_equal(read_frame(from, &r, &type, &p, &n), 0);
	waitpid(pid, NULL, 0);
	close(to);
	close(from);
	buf_deinit(&k);
	buf_deinit(&out);
	buf_deinit(&errs);
	sandbox_frame_reader_deinit(&r);
}

/* Python's main may be async: its value is awaited (issue 16 item 6). */
static void test_python_async_main(void **state)
{
	sandbox_frame_buf b = {0};
	put_mode(&b, 1);
	put_str(&b, FIELD_CODE,
	        "import asyncio\nasync def main(args):\n    await asyncio.sleep(0.01)\n"
	        "    return {'n': args['n'] * 2}\n");
	put_str(&b, FIELD_ARGS_JSON, "{\"n\": 21}");
	result r;
	run("python", &b, &r);
	assert_int_equal(r.flags, 0);
	assert_string_equal(r.ret, "{\"n\": 42}");
	result_free(&r);
	sandbox_frame_buf_free(&b);
}

/* rlimits reach the program: set with prlimit() on the warm interpreter, with setrlimit()
 * in the shell's child. */
static void rlimit_case(const char *lang, const char *code, const char *expect)
{
	sandbox_frame_buf b = {0};
	put_mode(&b, 0);
	put_str(&b, FIELD_CODE, code);
	sandbox_frame_put_field_u64(&b, FIELD_FSIZE_MAX, 1000);
	sandbox_frame_put_field_u64(&b, FIELD_NOFILE_MAX, 77);
	result r;
	run(lang, &b, &r);
	assert_string_equal(out_str(&r), expect);
	assert_int_equal(r.code, 0);
	result_free(&r);
	sandbox_frame_buf_free(&b);
}

static void test_rlimits(void **state)
{
	rlimit_case("python",
	            "import os, resource\n"
	            "print(resource.getrlimit(resource.RLIMIT_NOFILE))\n"
	            "try:\n"
	            "    with open('big', 'wb') as f: f.write(b'x' * 5000)\n"
	            "except OSError:\n"
	            "    pass\n"
	            "print(os.path.getsize('big'))\n",
	            "(77, 77)\n1000\n");
	rlimit_case("shell", "ulimit -n; head -c 5000 /dev/zero > big; echo $?; wc -c < big",
	            "77\n153\n1000\n");
}

static void expect_cap(const char *lang, const char *code, uint8_t tag, uint8_t trunc)
{
	sandbox_frame_buf b = {0};
	put_mode(&b, 0);
	put_str(&b, FIELD_CODE, code);
	sandbox_frame_put_field_u64(&b, tag, 1000);
	result r;
	run(lang, &b, &r);
	assert_int_equal(r.flags, EXIT_F_OUTPUT_LIMIT | trunc | EXIT_F_SIGNALED);
	assert_int_equal(r.code, SIGKILL);
	buf *s = tag == FIELD_STDOUT_MAX ? &r.out : &r.err;
	assert_int_equal(s->len, 1000);
	assert_int_equal(s->data[0], 'x');
	assert_int_equal(s->data[999], 'x');
	result_free(&r);
	sandbox_frame_buf_free(&b);
}

static void test_output_caps(void **state)
{
	/* Programs that never stop printing: the agent has to kill them. */
	expect_cap("python", "import sys\nwhile True: sys.stdout.write('x' * 100)\n",
	           FIELD_STDOUT_MAX, EXIT_F_STDOUT_TRUNC);
	expect_cap("shell", "while :; do echo xxxxxxxxxxxxxxx >&2; done", FIELD_STDERR_MAX,
	           EXIT_F_STDERR_TRUNC);
	expect_cap("javascript", "for (;;) process.stdout.write('x'.repeat(100));",
	           FIELD_STDOUT_MAX, EXIT_F_STDOUT_TRUNC);

	/* Exactly the cap is not over it. */
	sandbox_frame_buf b = {0};
	put_mode(&b, 0);
	put_str(&b, FIELD_CODE, "head -c 1000 /dev/zero");
	sandbox_frame_put_field_u64(&b, FIELD_STDOUT_MAX, 1000);
	result r;
	run("shell", &b, &r);
	assert_int_equal(r.flags, 0);
	assert_int_equal(r.out.len, 1000);
	result_free(&r);
	sandbox_frame_buf_free(&b);
}

/* Runs script-mode code in lang and checks its end: the EXIT flags (unless flags < 0), the
 * exit code and stdout. */
static void expect_end(const char *lang, const char *code, int flags, int32_t exit_code,
                       const char *out)
{
	result r;
	run_code(lang, 0, code, &r);
	if (flags >= 0)
		assert_int_equal(r.flags, flags);
	assert_int_equal(r.code, exit_code);
	assert_string_equal(out_str(&r), out);
	result_free(&r);
}

/* The bootstrap's exit status (fd 7, agent-boot.c "The exit") is the program's end: a byte
 * written there ends the task with that status, whatever the program would have done next; a
 * program that closed fd 7 is reaped as before; a process left holding stdout after a normal
 * end is killed and the result still comes. */
static void test_exit_status_pipe(void **state)
{
	(void)state;
	result r;
	run_code("python", 0,
	         "import os, time\nprint('before', flush=True)\nos.write(7, b'\\x05')\n"
	         "time.sleep(30)\nprint('after')\n",
	         &r);
	assert_true(r.got_exit);
	assert_int_equal(r.flags, 0);
	assert_int_equal(r.code, 5);
	assert_string_equal(out_str(&r), "before\n");
	result_free(&r);

	expect_end("python", "import os\nos.close(7)\nprint('no pipe')\n", 0, 0, "no pipe\n");
	expect_end("python",
	           "import subprocess\nsubprocess.Popen(['sleep', '30'])\nprint('left one')\n", 0,
	           0, "left one\n");
	/* JavaScript parks after the program's own 'exit' listeners, which still print; a code
	 * set by the program takes the interpreter's own exit */
	expect_end("javascript",
	           "process.on('exit', () => console.log('bye'));\nconsole.log('hi');", 0, 0,
	           "hi\nbye\n");
	/* a library that wraps process.emit after the bootstrap (signal-exit does) runs its own
	 * exit handlers after the bootstrap's: Node's own exit then, not the park */
	expect_end("javascript",
	           "const orig = process.emit;\n"
	           "process.emit = function (ev, ...a) {\n"
	           "  const r = orig.apply(this, [ev, ...a]);\n"
	           "  if (ev === 'exit') require('fs').writeSync(1, 'late\\n');\n"
	           "  return r;\n"
	           "};\n"
	           "console.log('hi');",
	           -1, 0, "hi\nlate\n");
	expect_end("javascript", "console.log('three');\nprocess.exitCode = 3;", -1, 3, "three\n");
}

/* True once pid is gone or a zombie (killed, not reaped): waits up to 10 s, a liveness bound
 * far above the agent's own (AGENT_PARKED_MS), not a timing. */
static bool ends_within_10s(pid_t pid)
{
	_cleanup_free_ char *stat = xasprintf("/proc/%d/stat", (int)pid);
	for (int i = 0; i < 1000; i++) {
		buf b = BUF_INIT;
		int r = read_file_at(AT_FDCWD, stat, 4096, &b, NULL);
		const char *close_paren = r == 0 ? strrchr(buf_str(&b), ')') : NULL;
		bool gone =
		    r < 0 || (close_paren && close_paren[1] == ' ' && close_paren[2] == 'Z');
		buf_deinit(&b);
		if (gone)
			return true;
		usleep(10000);
	}
	return false;
}

/* A program that writes the exit byte itself, lets go of stdout and stderr and runs on gets
 * its EXIT; while the host has not hung up, the agent still kills it, AGENT_PARKED_MS later. */
static void test_exit_byte_then_run_on(void **state)
{
	(void)state;
	int to, from;
	sandbox_frame_reader r;
	pid_t pid = start_python_task(
	    "import os\nopen('pid', 'w').write(str(os.getpid()))\nos.write(7, b'\\x03')\n"
	    "os.close(1)\nos.close(2)\nwhile True:\n    pass\n",
	    &to, &from, &r);
	uint8_t type;
	uint8_t *p;
	size_t n;
	bool exited = false;
	while (!exited && read_frame(from, &r, &type, &p, &n) == 1) {
		exited = type == FRAME_EXIT;
		free(p);
	}
	assert_true(exited);
	_cleanup_free_ char *pidfile = xasprintf("%s/pid", ws);
	buf pb = BUF_INIT;
	assert_int_equal(read_file_at(AT_FDCWD, pidfile, 64, &pb, NULL), 0);
	assert_true(ends_within_10s((pid_t)strtol(buf_str(&pb), NULL, 10)));
	close(to); /* the hang-up: the agent exits */
	assert_int_equal(read_frame(from, &r, &type, &p, &n), 0);
	waitpid(pid, NULL, 0);
	close(from);
	buf_deinit(&pb);
	sandbox_frame_reader_deinit(&r);
}

/* Frame-like bytes in the output are data; the program sees none of the agent's fds, only its
 * own ends of the credential proxy's pipes (fds 5 and 6, frame.h) and of the exit status's (7). */
static void test_no_injection(void **state)
{
	result r;
	run_code(
	    "python", 0,
	    "import os, sys\n"
	    "fake = b'X\\x00\\x00\\x00\\x05\\x00\\x00\\x00\\x00\\x2a' + b'V\\x00\\x00\\x00\\x01' "
	    "+ b'7'\n"
	    "sys.stdout.buffer.write(fake)\n"
	    "sys.stdout.flush()\n"
	    "sys.stderr.buffer.write(fake)\n"
	    "bad = []\n"
	    "for fd in range(3, 256):\n"
	    "    try:\n"
	    "        os.fstat(fd)\n"
	    "        bad.append(fd)\n"
	    "    except OSError:\n"
	    "        pass\n"
	    "print(bad, file=sys.stderr)\n"
	    "sys.exit(9)\n",
	    &r);
	assert_int_equal(r.out.len, 16);
	assert_memory_equal(r.out.data,
	                    "X\0\0\0\5\0\0\0\0\x2aV\0\0\0\1"
	                    "7",
	                    16);
	/* the proxy's pipes (5, 6) and the exit status's (7): the bootstrap's, open to the
	 * program in its own process only (non-inheritable) */
	assert_int_equal(r.err.len, 16 + 10);
	assert_memory_equal(r.err.data + 16, "[5, 6, 7]\n", 10);
	assert_null(r.ret);
	assert_int_equal(r.flags, 0);
	assert_int_equal(r.code, 9);
	result_free(&r);

	run_code("shell", 0, "ls /proc/self/fd", &r);
	assert_string_equal(out_str(&r), "0\n1\n2\n3\n"); /* 3: ls's own directory fd */
	result_free(&r);
}

static void big_echo(const char *lang, const char *code)
{
	size_t n = 4u * 1024 * 1024;
	uint8_t *in = xmalloc(n);
	for (size_t i = 0; i < n; i++)
		in[i] = (uint8_t)(i * 7 + i / 4096);
	sandbox_frame_buf b = {0};
	put_mode(&b, 0);
	put_str(&b, FIELD_CODE, code);
	sandbox_frame_put_field(&b, FIELD_STDIN, in, n);
	sandbox_frame_put_field_u64(&b, FIELD_STDOUT_MAX, 8u * 1024 * 1024);
	result r;
	run(lang, &b, &r);
	assert_int_equal(r.flags, 0);
	assert_int_equal(r.code, 0);
	assert_int_equal(r.out.len, n);
	assert_memory_equal(r.out.data, in, n);
	result_free(&r);
	sandbox_frame_buf_free(&b);
	free(in);
}

static void test_large_stdin(void **state)
{
	big_echo("shell", "cat");
	big_echo("python", "import sys\n"
	                   "while True:\n"
	                   "    b = sys.stdin.buffer.read1(4096)\n"
	                   "    if not b: break\n"
	                   "    sys.stdout.buffer.write(b); sys.stdout.flush()\n");
}

static void test_malformed_task(void **state)
{
	/* A field that runs past the end of the TASK payload. */
	uint8_t bad_field[] = {FIELD_CODE, 0, 0, 1, 0, 'x'};
	sandbox_frame_buf f = {0};
	sandbox_frame_put(&f, FRAME_TASK, bad_field, sizeof(bad_field));
	result r;
	run_raw("python", &f, &r);
	assert_int_equal(r.flags, EXIT_F_SETUP_ERROR);
	assert_non_null(strstr(r.msg, "malformed"));
	result_free(&r);
	sandbox_frame_buf_free(&f);

	/* A frame of an unknown type. */
	sandbox_frame_put_header(&f, 'Z', 3);
	run_raw("shell", &f, &r);
	assert_int_equal(r.flags, EXIT_F_SETUP_ERROR);
	result_free(&r);
	sandbox_frame_buf_free(&f);

	/* A header announcing more than FRAME_MAX. */
	sandbox_frame_put_header(&f, FRAME_TASK, FRAME_MAX + 1);
	run_raw("javascript", &f, &r);
	assert_int_equal(r.flags, EXIT_F_SETUP_ERROR);
	result_free(&r);
	sandbox_frame_buf_free(&f);
}

static void test_warm_timing(void **state)
{
	const char *langs[][2] = {
	    {"python", "print(1+1)"}, {"javascript", "console.log(1+1)"}, {"shell", "echo 2"}};
	for (size_t i = 0; i < ARRAY_SIZE(langs); i++) {
		result r;
		run_code(langs[i][0], 0, langs[i][1], &r);
		assert_string_equal(out_str(&r), "2\n");
		print_message("# warm %s print(1+1): TASK to EXIT %.2f ms\n", langs[i][0],
		              r.task_us / 1000.0);
		result_free(&r);
	}
}

/* The frame codec itself: split feeds, field iteration, exit payloads, bounds. */
static void test_frame_codec(void **state)
{
	sandbox_frame_buf b = {0};
	sandbox_frame_put_field(&b, FIELD_CODE, "abc", 3);
	sandbox_frame_put_field_u64(&b, FIELD_STDOUT_MAX, 0x0102030405060708ull);
	sandbox_frame_buf f = {0};
	sandbox_frame_put(&f, FRAME_TASK, b.data, b.len);
	sandbox_frame_put_exit(&f, EXIT_F_SIGNALED, -9, "msg");
	sandbox_frame_reader r;
	sandbox_frame_reader_init(&r);
	uint8_t type;
	const uint8_t *p;
	size_t n, off = 0;
	for (size_t i = 0; i < f.len; i++) /* byte by byte */
		assert_int_equal(sandbox_frame_reader_feed(&r, f.data + i, 1), 0);
	assert_int_equal(sandbox_frame_reader_next(&r, &type, &p, &n), 1);
	assert_int_equal(type, FRAME_TASK);
	assert_int_equal(n, b.len);
	uint8_t tag;
	const uint8_t *v;
	size_t vn;
	assert_int_equal(sandbox_frame_next_field(p, n, &off, &tag, &v, &vn), 1);
	assert_int_equal(tag, FIELD_CODE);
	assert_memory_equal(v, "abc", 3);
	assert_int_equal(sandbox_frame_next_field(p, n, &off, &tag, &v, &vn), 1);
	assert_int_equal(sandbox_frame_get_u64(v, vn), 0x0102030405060708ull);
	assert_int_equal(sandbox_frame_next_field(p, n, &off, &tag, &v, &vn), 0);
	assert_int_equal(sandbox_frame_next_field(p, n - 1, &(size_t){0}, &tag, &v, &vn), 1);
	assert_int_equal(sandbox_frame_reader_next(&r, &type, &p, &n), 1);
	sandbox_frame_exit ex;
	assert_int_equal(sandbox_frame_parse_exit(p, n, &ex), 0);
	assert_int_equal(ex.flags, EXIT_F_SIGNALED);
	assert_int_equal(ex.code, -9);
	assert_int_equal(ex.msg_len, 3);
	assert_int_equal(sandbox_frame_reader_next(&r, &type, &p, &n), 0);
	assert_int_equal(sandbox_frame_parse_exit(p, 4, &ex), -1);
	assert_int_equal(sandbox_frame_get_u64(v, 7), 0);

	/* The truncated second field of a cut payload. */
	off = 0;
	assert_int_equal(sandbox_frame_next_field(b.data, b.len - 1, &off, &tag, &v, &vn), 1);
	assert_int_equal(sandbox_frame_next_field(b.data, b.len - 1, &off, &tag, &v, &vn), -1);

	sandbox_frame_buf_free(&f);
	sandbox_frame_put_header(&f, FRAME_STDOUT, FRAME_MAX + 1);
	assert_int_equal(sandbox_frame_reader_feed(&r, f.data, f.len), -1);
	assert_true(r.error);
	assert_int_equal(sandbox_frame_reader_next(&r, &type, &p, &n), -1);
	sandbox_frame_reader_deinit(&r);
	sandbox_frame_buf_free(&f);
	sandbox_frame_buf_free(&b);
}

/* ---- the program's identity (--user; needs root, as in a sandbox) ---- */

#define AS_USER_OK "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n"

/* As a sandbox does: the program runs as 65534 in a workspace it can write. */
static void as_user_65534(void)
{
	if (geteuid() != 0)
		skip();
	agent_user = "65534";
	assert_int_equal(chmod(ws, 01777), 0);
}

/* The program runs as 65534 with no other group, what the agent wrote for it is 65534's, and
 * while it runs the agent (its parent) is back to uid and gid 0: real, effective, saved and fs
 * ids alike. */
static void test_user_shell(void **state)
{
	as_user_65534();
	sandbox_frame_buf b = {0};
	put_mode(&b, 0);
	put_str(&b, FIELD_CODE,
	        "id -u; id -g; id -G; grep -E '^(Uid|Gid):' /proc/$PPID/status; cat in/data.txt;"
	        " echo made > out/o.txt");
	sandbox_frame_put_field(&b, FIELD_FILE, "in/data.txt\0input", 18);
	result r;
	run("shell", &b, &r);
	assert_string_equal(out_str(&r), "65534\n65534\n65534\n" AS_USER_OK "input");
	assert_int_equal(r.code, 0);
	assert_int_equal(r.nfiles, 1);
	assert_string_equal(r.files[0].path, "o.txt");
	assert_memory_equal(r.files[0].data, "made\n", 5);
	const char *owned[] = {"in", "in/data.txt", "out", "out/o.txt", NULL};
	for (const char **f = owned; *f; f++) {
		char *p = xasprintf("%s/%s", ws, *f);
		struct stat st;
		assert_int_equal(lstat(p, &st), 0);
		assert_int_equal(st.st_uid, 65534);
		assert_int_equal(st.st_gid, 65534);
		free(p);
	}
	result_free(&r);
	sandbox_frame_buf_free(&b);
}

/* The warm interpreter gets its limits through prlimit(), for which the agent takes the
 * program's real ids too: afterwards all of them are back. */
static void test_user_python(void **state)
{
	as_user_65534();
	sandbox_frame_buf b = {0};
	put_mode(&b, 0);
	put_str(&b, FIELD_CODE,
	        "import os, resource, sys\n"
	        "print(os.getuid(), os.geteuid(), os.getgid(), os.getgroups())\n"
	        "print(resource.getrlimit(resource.RLIMIT_NOFILE))\n"
	        "s = open('/proc/%d/status' % os.getppid()).read().splitlines()\n"
	        "sys.stdout.write(''.join(l + '\\n' for l in s if l[:4] in ('Uid:', 'Gid:')))\n");
	sandbox_frame_put_field_u64(&b, FIELD_NOFILE_MAX, 77);
	result r;
	run("python", &b, &r);
	assert_string_equal(out_str(&r), "65534 65534 65534 [65534]\n(77, 77)\n" AS_USER_OK);
	assert_int_equal(r.code, 0);
	result_free(&r);
	sandbox_frame_buf_free(&b);
}

/* A failing step as the program's user (an input file it may not write) is a setup error; the
 * agent is itself again to report it. */
static void test_user_setup_error(void **state)
{
	as_user_65534();
	char *d = xasprintf("%s/ro", ws);
	assert_int_equal(mkdir(d, 0755), 0); /* root's: 65534 cannot write in it */
	free(d);
	sandbox_frame_buf b = {0};
	put_mode(&b, 0);
	put_str(&b, FIELD_CODE, "echo never");
	sandbox_frame_put_field(&b, FIELD_FILE, "ro/x.txt\0data", 13);
	result r;
	run("shell", &b, &r);
	assert_int_equal(r.flags, EXIT_F_SETUP_ERROR);
	assert_non_null(strstr(r.msg, "input file ro/x.txt"));
	assert_non_null(strstr(r.msg, "Permission denied"));
	assert_int_equal(r.out.len, 0);
	result_free(&r);
	sandbox_frame_buf_free(&b);
}

/* agent_as_program() itself (agent-child.c, linked into this test), in a child process so that
 * the test's own ids stay. */
typedef struct ids_seen {
	uid_t ruid, euid;
	gid_t egid;
} ids_seen;

static int record_and_fail(void *arg)
{
	ids_seen *s = arg;
	s->ruid = getuid();
	s->euid = geteuid();
	s->egid = getegid();
	errno = EACCES;
	return -1;
}

/* 0 when every check holds, else the number of the first that failed */
static int check_as_program(bool real)
{
	agent_prog_uid = 65534;
	ids_seen s = {0};
	char msg[128] = "";
	if (agent_as_program(real, record_and_fail, &s, msg, sizeof(msg)) != -1 || errno != EACCES)
		return 1;
	if (s.euid != 65534 || s.egid != 65534 || s.ruid != (real ? 65534 : 0))
		return 2;
	uid_t r, e, sv;
	gid_t gr, ge, gs;
	if (getresuid(&r, &e, &sv) < 0 || r || e || sv || getresgid(&gr, &ge, &gs) < 0 || gr ||
	    ge || gs)
		return 3;
	return msg[0] ? 4 : 0;
}

static int in_child(int (*fn)(bool), bool arg)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn(arg));
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static int ran_fn(void *arg)
{
	*(bool *)arg = true;
	return 0;
}

/* Without the right to become the program's user: fn does not run, and since the agent cannot
 * be sure of its ids either it ends itself (3) rather than run on. */
static int check_cannot_switch(bool unused)
{
	if (setresuid(1234, 1234, 1234) < 0)
		return 10;
	agent_prog_uid = 65534;
	bool ran = false;
	char msg[128];
	agent_as_program(false, ran_fn, &ran, msg, sizeof(msg));
	return ran ? 11 : 12; /* not reached: agent_as_program() exits 3 */
}

static void test_as_program(void **state)
{
	if (geteuid() != 0)
		skip();
	assert_int_equal(in_child(check_as_program, false), 0);
	assert_int_equal(in_child(check_as_program, true), 0);
	assert_int_equal(in_child(check_cannot_switch, false), 3);
}

/* fds open in this process */
static int count_fds(void)
{
	int n = 0;
	for (int fd = 0; fd < 4096; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

/* A child that cannot exec its program says why (the agent's warm-up and shell launch report
 * "start PATH: REASON", where they only saw exit status 127 before) and leaves nothing behind:
 * no pipe, no child. One that can exec returns 0 and runs. */
static void test_start_child_fails(void **state)
{
	char *noexec = xasprintf("%s/not-executable", ws);
	assert_int_equal(write_file_path(noexec, "#!/bin/sh\n", 10, 0644, NULL), 0);
	const struct {
		const char *path;
		int err;
		const char *msg;
	} cases[] = {
	    {"/nonexistent/python3", ENOENT,
	     "start /nonexistent/python3: No such file or directory"},
	    {noexec, EACCES, NULL},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int fds = count_fds();
		agent_child c = AGENT_CHILD_INIT;
		const char *argv[] = {cases[i].path, NULL};
		char *envp[] = {NULL};
		errno = 0;
		assert_int_equal(agent_start_child(&c, argv, envp, i == 0, NULL), -1);
		assert_int_equal(errno, cases[i].err);
		char msg[256];
		agent_start_why(&c, cases[i].path, msg, sizeof(msg));
		char *want = cases[i].msg ? xstrdup(cases[i].msg)
		                          : xasprintf("start %s: Permission denied", noexec);
		assert_string_equal(msg, want);
		free(want);
		assert_int_equal(c.pid, -1);
		assert_int_equal(count_fds(), fds);
		assert_int_equal(waitpid(-1, NULL, WNOHANG), -1); /* reaped already */
		assert_int_equal(errno, ECHILD);
	}
	agent_child c = AGENT_CHILD_INIT;
	const char *argv[] = {"/bin/sh", "-c", "exit 7", NULL};
	char *envp[] = {NULL};
	assert_int_equal(agent_start_child(&c, argv, envp, false, NULL), 0);
	int st;
	assert_int_equal(waitpid(c.pid, &st, 0), c.pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 7);
	close(c.in), close(c.out), close(c.err);
	free(noexec);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_frame_codec),
	    cmocka_unit_test_setup_teardown(test_python_script, setup_ws, teardown_ws),
	    cmocka_unit_test_setup_teardown(test_javascript_script, setup_ws, teardown_ws),
	    cmocka_unit_test_setup_teardown(test_shell_script, setup_ws, teardown_ws),
	    cmocka_unit_test_setup_teardown(test_python_env_exact, setup_ws, teardown_ws),
	    cmocka_unit_test_setup_teardown(test_script_errors, setup_ws, teardown_ws),
	    cmocka_unit_test_setup_teardown(test_python_function, setup_ws, teardown_ws),
	    cmocka_unit_test_setup_teardown(test_javascript_function, setup_ws, teardown_ws),
	    cmocka_unit_test_setup_teardown(test_output_streamed, setup_ws, teardown_ws),
	    cmocka_unit_test_setup_teardown(test_python_async_main, setup_ws, teardown_ws),
	    cmocka_unit_test_setup_teardown(test_rlimits, setup_ws, teardown_ws),
	    cmocka_unit_test_setup_teardown(test_output_caps, setup_ws, teardown_ws),
	    cmocka_unit_test_setup_teardown(test_no_injection, setup_ws, teardown_ws),
	    cmocka_unit_test_setup_teardown(test_exit_status_pipe, setup_ws, teardown_ws),
	    cmocka_unit_test_setup_teardown(test_exit_byte_then_run_on, setup_ws, teardown_ws),
	    cmocka_unit_test_setup_teardown(test_large_stdin, setup_ws, teardown_ws),
	    cmocka_unit_test_setup_teardown(test_malformed_task, setup_ws, teardown_ws),
	    cmocka_unit_test_setup_teardown(test_warm_timing, setup_ws, teardown_ws),
	    cmocka_unit_test_setup_teardown(test_user_shell, setup_ws, teardown_ws),
	    cmocka_unit_test_setup_teardown(test_user_python, setup_ws, teardown_ws),
	    cmocka_unit_test_setup_teardown(test_user_setup_error, setup_ws, teardown_ws),
	    cmocka_unit_test(test_as_program),
	    cmocka_unit_test_setup_teardown(test_start_child_fails, setup_ws, teardown_ws),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
