/* Unit tests for common/: errors, buffers, strict parsing, atomic files, the spawn helper. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/cleanup.h"
#include "common/err.h"
#include "common/log.h"
#include "common/spawn.h"
#include "common/util.h"
#include "common/xalloc.h"

static void test_err_context(void **state)
{
	err *e = NULL;
	assert_int_equal(err_set(&e, 2, "open %s", "x"), -1);
	assert_string_equal(err_msg(e), "open x: No such file or directory");
	assert_int_equal(e->code, 2);
	err_prefix(&e, "sandbox %d", 7);
	assert_string_equal(err_msg(e), "sandbox 7: open x: No such file or directory");
	err_set(&e, 0, "plain");
	assert_string_equal(err_msg(e), "plain");
	err_free(e);
	assert_int_equal(err_set(NULL, 1, "ignored"), -1);
	assert_null(err_free(NULL));
}

static void test_buf(void **state)
{
	buf b = BUF_INIT;
	assert_string_equal(buf_str(&b), "");
	buf_append_str(&b, "ab");
	buf_appendf(&b, "%d", 42);
	buf_append_u32be(&b, 0x01020304);
	assert_int_equal(b.len, 8);
	assert_memory_equal(b.data, "ab42\x01\x02\x03\x04", 8);
	size_t n;
	char *s = buf_steal(&b, &n);
	assert_int_equal(n, 8);
	assert_null(b.data);
	free(s);
	/* an empty buffer is stolen as an empty, terminated string */
	s = buf_steal(&b, &n);
	assert_int_equal(n, 0);
	assert_string_equal(s, "");
	free(s);
}

static void test_parse_i64(void **state)
{
	int64_t v;
	assert_int_equal(parse_i64("42", 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(parse_i64("101", 0, 100, &v), -1);
	assert_int_equal(parse_i64("4x", 0, 100, &v), -1);
	assert_int_equal(parse_i64("", 0, 100, &v), -1);
	assert_int_equal(parse_i64("-1", 0, 100, &v), -1);
	assert_int_equal(parse_i64("99999999999999999999", 0, INT64_MAX, &v), -1);
}

static void test_cleanup_steal(void **state)
{
	_cleanup_free_ char *a = xstrdup("x");
	char *b = steal_pointer(&a);
	assert_null(a);
	assert_string_equal(b, "x");
	free(b);
	int fd = open("/dev/null", O_RDONLY);
	int fd2 = fd;
	assert_int_equal(steal_fd(&fd), fd2);
	assert_int_equal(fd, -1);
	close(fd2);
}

static void test_atomic_files(void **state)
{
	char dir[] = "/tmp/aisp-test-XXXXXX";
	assert_non_null(mkdtemp(dir));
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	err *e = NULL;
	assert_int_equal(write_file_at(dfd, "a.json", "{}", 2, 0644, &e), 0);
	buf b = BUF_INIT;
	assert_int_equal(read_file_at(dfd, "a.json", 100, &b, &e), 0);
	assert_string_equal(buf_str(&b), "{}");
	buf_deinit(&b);
	/* a planted link is neither followed for reading nor written through */
	assert_int_equal(symlinkat("/etc/passwd", dfd, "link"), 0);
	assert_int_equal(read_file_at(dfd, "link", 1 << 20, &b, &e), -1);
	e = err_free(e);
	assert_int_equal(write_file_at(dfd, "link", "x", 1, 0644, &e), 0);
	struct stat st;
	assert_int_equal(fstatat(dfd, "link", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISREG(st.st_mode)); /* the link was replaced, /etc/passwd untouched */
	/* the mode asked for, whatever the umask (issue 15 item 2) */
	mode_t old = umask(077);
	assert_int_equal(write_file_at(dfd, "agent", "x", 1, 0555, &e), 0);
	umask(old);
	assert_int_equal(fstatat(dfd, "agent", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(st.st_mode & 07777, 0555);
	assert_int_equal(mkdirat(dfd, "sub", 0755), 0);
	assert_int_equal(symlinkat("/etc", dfd, "sub/etc"), 0);
	close(dfd);
	assert_int_equal(rm_rf_at(AT_FDCWD, dir, &e), 0);
	assert_int_equal(access(dir, F_OK), -1);
	assert_int_equal(access("/etc/passwd", F_OK), 0);
}

static void test_spawn_ok_and_exit_code(void **state)
{
	/* the loop burns CPU, which wait4's rusage reports (cpu_ns) */
	const char *argv[] = {
	    "sh", "-c",
	    "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo out; echo err >&2; exit 3",
	    NULL};
	spawn_opts o = SPAWN_OPTS_INIT;
	o.argv = argv;
	spawn_result r;
	err *e = NULL;
	assert_int_equal(spawn_run(&o, &r, &e), 0);
	assert_int_equal(r.status, 3);
	assert_false(r.timed_out);
	assert_string_equal(r.out, "out\n");
	assert_string_equal(r.errout, "err");
	assert_true(r.cpu_ns > 1000000); /* a 300000-step shell loop: far above 1 ms of CPU */
	char *d = spawn_describe(&r);
	assert_string_equal(d, "exited 3: err");
	free(d);
	spawn_result_deinit(&r);
}

static void test_spawn_missing_binary(void **state)
{
	const char *argv[] = {"/nonexistent/aisp-no-such-binary", NULL};
	spawn_opts o = SPAWN_OPTS_INIT;
	o.argv = argv;
	spawn_result r;
	err *e = NULL;
	assert_int_equal(spawn_run(&o, &r, &e), -1);
	assert_non_null(strstr(err_msg(e), "exec /nonexistent/aisp-no-such-binary"));
	assert_int_equal(e->code, ENOENT);
	err_free(e);
}

static void test_spawn_deadline(void **state)
{
	/* the child and its grandchild both die at the deadline (process group kill) */
	const char *argv[] = {"sh", "-c", "sleep 30 & sleep 30", NULL};
	spawn_opts o = SPAWN_OPTS_INIT;
	o.argv = argv;
	o.timeout_ms = 200;
	spawn_result r;
	err *e = NULL;
	int64_t t0 = now_mono_ms();
	assert_int_equal(spawn_run(&o, &r, &e), 0);
	assert_true(r.timed_out);
	assert_int_equal(r.status, 128 + 9);
	assert_true(now_mono_ms() - t0 < 10000);
	/* no process of the group is left (the reparented grandchild may linger as a zombie
	 * for a moment until init reaps it) */
	int alive = 0;
	for (int i = 0; i < 200 && (alive = kill(-r.pid, 0) == 0); i++)
		usleep(10000);
	assert_false(alive);
	spawn_result_deinit(&r);
}

static void test_spawn_fds_closed_and_signals_reset(void **state)
{
	int leak = open("/dev/null", O_RDONLY); /* not CLOEXEC on purpose */
	assert_true(leak > 2);
	char *script = xasprintf("ls /proc/self/fd | sort -n | tr '\\n' ' '; "
	                         "grep SigBlk /proc/self/status");
	const char *argv[] = {"sh", "-c", script, NULL};
	spawn_opts o = SPAWN_OPTS_INIT;
	o.argv = argv;
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, &old);
	spawn_result r;
	err *e = NULL;
	assert_int_equal(spawn_run(&o, &r, &e), 0);
	sigprocmask(SIG_SETMASK, &old, NULL);
	/* ls itself opens one fd (3) for the directory; nothing else above 2 */

	assert_non_null(strstr(r.out, "0 1 2 3 SigBlk"));
	assert_non_null(strstr(r.out, "SigBlk:\t0000000000000000"));
	spawn_result_deinit(&r);
	free(script);
	close(leak);
}

struct async_state {
	int done;
	int status;
	bool timed_out;
	uint64_t cpu_ns;
	char out[64];
	char err[96];
};

static void on_done(const spawn_result *r, void *arg)
{
	struct async_state *s = arg;
	s->done++;
	s->status = r->status;
	s->timed_out = r->timed_out;
	s->cpu_ns = r->cpu_ns;
	snprintf(s->out, sizeof(s->out), "%s", r->out);
	snprintf(s->err, sizeof(s->err), "%s", r->errout);
}

static void test_spawn_async(void **state)
{
	struct event_base *base = event_base_new();
	err *e = NULL;
	assert_int_equal(spawn_loop_init(base, &e), 0);
	struct async_state a = {0}, b = {0};
	const char *argv1[] = {
	    "sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo hi; exit 5", NULL};
	const char *argv2[] = {"sleep", "30", NULL};
	spawn_opts o1 = SPAWN_OPTS_INIT, o2 = SPAWN_OPTS_INIT;
	o1.argv = argv1;
	o2.argv = argv2;
	o2.timeout_ms = 100;
	assert_int_equal(spawn_start(&o1, on_done, &a, NULL, &e), 0);
	assert_int_equal(spawn_start(&o2, on_done, &b, NULL, &e), 0);
	assert_int_equal(spawn_active(), 2);
	while (spawn_active() > 0)
		event_base_loop(base, EVLOOP_ONCE);
	assert_int_equal(a.done, 1);
	assert_int_equal(a.status, 5);
	assert_string_equal(a.out, "hi\n");
	assert_true(a.cpu_ns > 1000000); /* its loop's CPU, from wait4 */
	assert_int_equal(b.done, 1);
	assert_true(b.timed_out);
	assert_int_equal(b.status, 137);
	const char *argv3[] = {"/nonexistent/x", NULL};
	o1.argv = argv3;
	assert_int_equal(spawn_start(&o1, on_done, &a, NULL, &e), -1);
	assert_non_null(strstr(err_msg(e), "exec /nonexistent/x"));
	err_free(e);
	e = NULL;
	/* a name found on no PATH entry: the loop does not wait for the exec, the child tells */
	const char *argv4[] = {"aisp-no-such-program", NULL};
	o1.argv = argv4;
	o1.stderr_fd = SPAWN_CAPTURE;
	struct async_state c = {0};
	assert_int_equal(spawn_start(&o1, on_done, &c, NULL, &e), 0);
	while (spawn_active() > 0)
		event_base_loop(base, EVLOOP_ONCE);
	assert_int_equal(c.done, 1);
	assert_int_equal(c.status, 127);
	assert_string_equal(c.err, "exec aisp-no-such-program: No such file or directory");
	spawn_loop_deinit();
	event_base_free(base);
}

/* A cgroup of this test's own, in the v1 cpu hierarchy or the v2 one; its cgroup.procs, or
 * NULL (then *dir says why). */
static char *test_cgroup(char **dir)
{
	const char *roots[] = {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup"};
	for (size_t i = 0; i < 2; i++) {
		char *d = xasprintf("%s/aisp-unit-spawn-%d", roots[i], (int)getpid());
		if (mkdir(d, 0755) == 0) {
			*dir = d;
			return xasprintf("%s/cgroup.procs", d);
		}
		free(d);
	}
	*dir = xasprintf("no cgroup can be made here: %s", strerror(errno));
	return NULL;
}

/* A child that must live in a cgroup gets there, through the helper (`aisp-agent --cgexec`,
 * after the spawner's vfork returned) or by itself before its exec; an exec error behind the
 * helper is still the spawn's error, with its errno. */
static void test_spawn_cgroup(void **state)
{
	char *dir = NULL, *procs = test_cgroup(&dir);
	if (!procs) {
		print_message("# %s\n", dir);
		free(dir);
		skip();
	}
	char *agent = xasprintf("%s/sandbox/agent/aisp-agent", getenv("AISP_BUILD_ROOT"));
	char *want = xasprintf(":%s\n", strrchr(dir, '/'));
	const char *argv[] = {"cat", "/proc/self/cgroup", NULL};
	for (int helper = 0; helper < 2; helper++) {
		spawn_opts o = SPAWN_OPTS_INIT;
		o.argv = argv;
		o.cgroup_procs = procs;
		o.cgroup_exec = helper ? agent : NULL;
		spawn_result r;
		err *e = NULL;
		assert_int_equal(spawn_run(&o, &r, &e), 0);
		assert_int_equal(r.status, 0);
		if (!strstr(r.out, want))
			fail_msg("helper %d: %s not in:\n%s", helper, want, r.out);
		spawn_result_deinit(&r);
	}
	const char *missing[] = {"aisp-no-such-program", NULL};
	spawn_opts o = SPAWN_OPTS_INIT;
	o.argv = missing;
	o.cgroup_procs = procs;
	o.cgroup_exec = agent;
	spawn_result r;
	err *e = NULL;
	assert_int_equal(spawn_run(&o, &r, &e), -1);
	assert_non_null(strstr(err_msg(e), "exec aisp-no-such-program"));
	assert_int_equal(e->code, ENOENT);
	e = err_free(e);
	/* the same on the loop: the exec error comes with the reaped helper; a missing helper is
	 * refused at once, naming itself */
	struct event_base *base = event_base_new();
	assert_int_equal(spawn_loop_init(base, &e), 0);
	struct async_state a = {0};
	o.stderr_fd = SPAWN_CAPTURE;
	assert_int_equal(spawn_start(&o, on_done, &a, NULL, &e), 0);
	while (spawn_active() > 0)
		event_base_loop(base, EVLOOP_ONCE);
	assert_int_equal(a.status, 127);
	assert_string_equal(a.err, "exec aisp-no-such-program: No such file or directory");
	o.cgroup_exec = "/nonexistent/aisp-agent";
	assert_int_equal(spawn_start(&o, on_done, &a, NULL, &e), -1);
	assert_non_null(strstr(err_msg(e), "exec /nonexistent/aisp-agent (the cgroup helper of "
	                                   "aisp-no-such-program)"));
	err_free(e);
	spawn_loop_deinit();
	event_base_free(base);
	assert_int_equal(rmdir(dir), 0); /* empty again: every child has gone */
	free(procs), free(dir), free(agent), free(want);
}

static void test_split_address(void **state)
{
	char *h, *u;
	int p;
	err *e = NULL;
	assert_int_equal(addr_split("127.0.0.1:6379", &h, &p, &u, &e), 0);
	assert_string_equal(h, "127.0.0.1");
	assert_int_equal(p, 6379);
	assert_null(u);
	free(h);
	assert_int_equal(addr_split("[::1]:7000", &h, &p, &u, &e), 0);
	assert_string_equal(h, "::1");
	assert_int_equal(p, 7000);
	free(h);
	assert_int_equal(addr_split("unix:/run/r.sock", &h, &p, &u, &e), 0);
	assert_null(h);
	assert_string_equal(u, "/run/r.sock");
	free(u);
	assert_int_equal(addr_split("unix:rel", &h, &p, &u, &e), -1);
	err_free(e);
	e = NULL;
	assert_int_equal(addr_split(":80", &h, &p, &u, &e), -1);
	err_free(e);
	e = NULL;
	assert_int_equal(addr_split("localhost:0", &h, &p, &u, &e), -1);
	err_free(e);
	e = NULL;
	assert_int_equal(addr_split("[::1]:70000", &h, &p, &u, &e), -1);
	err_free(e);
}

/* kv VALUE: what log_kv(b, "k", VALUE) appends */
static char *kv(const char *value)
{
	buf b = BUF_INIT;
	log_kv(&b, "k", value);
	return buf_steal(&b, NULL);
}

static void test_log_kv(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"task-1.a_B", " k=task-1.a_B"},
	    {"", " k=\"\""},
	    {"two words", " k=\"two words\""},
	    /* a value cannot fake a field, a quote, or a second line */
	    /* ... nor match grep 'task=victim ' ('=' is escaped in a quoted value) */
	    {"x sandbox=evil", " k=\"x sandbox\\x3devil\""},
	    {"a=b", " k=\"a\\x3db\""},
	    {"x task=victim event=published", " k=\"x task\\x3dvictim event\\x3dpublished\""},
	    {"say \"hi\" \\ bye", " k=\"say \\\"hi\\\" \\\\ bye\""},
	    {"line1\nline2\r\t", " k=\"line1\\x0aline2\\x0d\\x09\""},
	    {"caf\xc3\xa9\x7f", " k=\"caf\\xc3\\xa9\\x7f\""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *s = kv(cases[i].in);
		assert_string_equal(s, cases[i].out);
		free(s);
	}
	char *s = kv(NULL);
	assert_string_equal(s, "");
	free(s);
	/* over LOG_VALUE_MAX: cut, quoted, marked */
	char big[LOG_VALUE_MAX + 2];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	s = kv(big);
	assert_int_equal(strlen(s), strlen(" k=\"") + LOG_VALUE_MAX + strlen("...\""));
	assert_string_equal(s + strlen(s) - 5, "a...\"");
	free(s);
	/* exactly LOG_VALUE_MAX: whole and bare */
	big[LOG_VALUE_MAX] = '\0';
	s = kv(big);
	assert_int_equal(strlen(s), strlen(" k=") + LOG_VALUE_MAX);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_err_context),
	    cmocka_unit_test(test_buf),
	    cmocka_unit_test(test_parse_i64),
	    cmocka_unit_test(test_cleanup_steal),
	    cmocka_unit_test(test_atomic_files),
	    cmocka_unit_test(test_spawn_ok_and_exit_code),
	    cmocka_unit_test(test_spawn_missing_binary),
	    cmocka_unit_test(test_spawn_deadline),
	    cmocka_unit_test(test_spawn_fds_closed_and_signals_reset),
	    cmocka_unit_test(test_spawn_async),
	    cmocka_unit_test(test_spawn_cgroup),
	    cmocka_unit_test(test_split_address),
	    cmocka_unit_test(test_log_kv),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
