/* Sandboxes through the sandbox API on runc and runsc. Partial output survives a kill (issue 12
 * item 2): a program that printed and flushed before its wall timeout, its out-of-memory kill,
 * its process limit or a SIGKILL of the sandbox from outside keeps that prefix in the result,
 * and the output callback (sandbox_on_output, the daemon's live output events) saw it while the
 * task ran. A sandbox that fails says why (issue 15 item 1): an invalid runsc platform, a
 * runtime state directory that cannot be written, a rootfs the sandbox's user cannot enter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/spawn.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "proto/json.h"
#include "proto/proto.h"
#include "sandbox/sandbox.h"
#include "tests/integration/sandbox-fixture.h"

static struct event_base *base;
static sandbox_ctx *ctx;
static sandbox_runtime *rt_runc, *rt_runsc;
static sandbox_image img;
static char state_dir[128];

typedef struct live_run {
	proto_task task;
	proto_limits lim;
	sandbox *sb;
	const char *kill_after; /* SIGKILL the sandbox's init once the output holds this */
	bool ready, failed, done, gone, killed;
	buf live;             /* stdout as the output callback saw it */
	bool live_before_end; /* it held the prefix before the run ended */
	const char *prefix;
	proto_status status;
	int exit_code, sig;
	buf out;
	char error[512];
} live_run;

static void loop_until(bool *flag, int64_t timeout_ms)
{
	int64_t end = now_mono_ms() + timeout_ms;
	while (!*flag && now_mono_ms() < end) {
		struct timeval tv = {0, 20000};
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	assert_true(*flag);
}

static void on_output(sandbox *sb, sandbox_stream st, const uint8_t *p, size_t n, void *arg)
{
	live_run *r = arg;
	if (st != SANDBOX_STDOUT)
		return;
	buf_append(&r->live, p, n);
	if (r->kill_after && !r->killed && strstr(buf_str(&r->live), r->kill_after)) {
		r->killed = true;
		assert_true(sandbox_pid(sb) > 0);
		kill(sandbox_pid(sb),
		     SIGKILL); /* from outside: the agent (runc), the sandbox (runsc) */
	}
}

static void on_done(sandbox *sb, const proto_output *o, const proto_usage *u, void *arg)
{
	live_run *r = arg;
	r->live_before_end = strncmp(buf_str(&r->live), r->prefix, strlen(r->prefix)) == 0;
	r->status = o->status;
	r->exit_code = o->exit_code;
	r->sig = o->signal;
	buf_append(&r->out, o->out.data, o->out.len);
	snprintf(r->error, sizeof(r->error), "%s", o->error ? o->error : "");
	r->done = true;
}

static void on_ready(sandbox *sb, const err *e, void *arg)
{
	live_run *r = arg;
	r->ready = true;
	if (e) {
		fprintf(stderr, "# not ready: %s\n", err_msg(e));
		r->failed = r->done = true;
		return;
	}
	sandbox_on_output(sb, on_output, r);
	err *e2 = NULL;
	assert_int_equal(sandbox_run(sb, &r->task, &r->lim, on_done, r, &e2), 0);
}

static void on_gone(void *arg)
{
	((live_run *)arg)->gone = true;
}

/* Runs code (python) in a fresh sandbox with these limits; r holds the outcome. */
static void live(sandbox_runtime *rt, const char *code, const proto_limits *over, live_run *r)
{
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	proto_json_gen_open(g, true);
	proto_json_gen_kstr(g, "id", "live");
	proto_json_gen_kstr(g, "lang", "python");
	proto_json_gen_kstr(g, "code", code);
	proto_json_gen_close(g, true);
	buf json = BUF_INIT;
	proto_json_gen_take_valid(g, &json);
	err *e = NULL;
	proto_task_init(&r->task);
	assert_int_equal(proto_task_parse((const char *)json.data, json.len, &r->task, NULL, &e),
	                 0);
	buf_deinit(&json);
	proto_limits_default(&r->lim);
	for (size_t i = 0; i < PROTO_LIMIT_COUNT; i++) {
		int64_t v = proto_limit_get(over, &proto_limit_fields[i]);
		if (v)
			*proto_limit_at(&r->lim, &proto_limit_fields[i]) = v;
	}
	sandbox_spec spec = {.rt = rt, .rootfs = img.rootfs, .image_digest = img.digest};
	spec.lang = PROTO_LANG_PYTHON;
	sandbox_spec_set_limits(&spec, &r->lim);
	assert_int_equal(sandbox_create(ctx, &spec, on_ready, r, &r->sb, &e), 0);
	loop_until(&r->done, 180000);
	assert_false(r->failed);
	sandbox_destroy(r->sb, on_gone, r);
	loop_until(&r->gone, 120000);
	proto_task_deinit(&r->task);
	char shown[41]; /* one TAP comment line: the output's newlines shown as spaces */
	snprintf(shown, sizeof(shown), "%s", buf_str(&r->out));
	for (char *c = shown; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	print_message("# %s: status %s exit %d signal %d stdout \"%s\" error \"%s\"\n",
	              sandbox_runtime_name(rt), proto_status_name(r->status), r->exit_code, r->sig,
	              shown, r->error);
}

static void live_free(live_run *r)
{
	buf_deinit(&r->live);
	buf_deinit(&r->out);
}

/* The result's stdout starts with the prefix, and the callback had it before the end. */
static void check_prefix(live_run *r)
{
	if (strncmp(buf_str(&r->out), r->prefix, strlen(r->prefix)))
		fail_msg("stdout \"%s\" does not start with \"%s\"", buf_str(&r->out), r->prefix);
	assert_true(r->live_before_end);
}

static void timeout_keeps_prefix(sandbox_runtime *rt)
{
	live_run r = {.prefix = "before the timeout\n"};
	proto_limits l = {.timeout_ms = 3000};
	live(rt,
	     "import time\nprint('before the timeout', "
	     "flush=True)\ntime.sleep(120)\nprint('never')\n",
	     &l, &r);
	assert_int_equal(r.status, PROTO_STATUS_TIMEOUT);
	check_prefix(&r);
	assert_string_equal(buf_str(&r.out), r.prefix);
	live_free(&r);
}

static void oom_keeps_prefix(sandbox_runtime *rt)
{
	live_run r = {.prefix = "before the oom\n"};
	proto_limits l = {.timeout_ms = 60000, .memory_bytes = 96 * PROTO_MIB};
	live(rt,
	     "print('before the oom', flush=True)\nb = []\nwhile True:\n"
	     "    b.append(bytearray(8 << 20))\n",
	     &l, &r);
	assert_int_equal(r.status, PROTO_STATUS_OOM);
	assert_int_equal(r.sig, SIGKILL); /* runsc too: the OOM killer's signal */
	/* the agent's report says nothing; a killed sandbox (runsc) says it was the memory */
	if (r.error[0] && !strstr(r.error, "reached its memory limit"))
		fail_msg("an OOM says \"%s\"", r.error);
	check_prefix(&r);
	live_free(&r);
}

/* A fork bomb against the pids limit. Under runc the program lives on at its limit until the
 * wall timeout (or ends). Under runsc the host's pids limit also counts gVisor's own processes
 * (a warm Python sandbox holds some 45; 32 never gets one ready, test_why_pids_runsc), and when
 * the bomb reaches it the sentry cannot make a thread and panics: the whole sandbox dies. That
 * is the program's doing: status ok, killed by SIGKILL, saying so, with the prefix kept. */
static void pids_keeps_prefix(sandbox_runtime *rt, int64_t pids)
{
	live_run r = {.prefix = "before the fork bomb\n"};
	proto_limits l = {.timeout_ms = 20000, .pids = pids};
	live(rt,
	     "import os, time\nprint('before the fork bomb', flush=True)\nwhile True:\n"
	     "    try:\n        os.fork()\n    except OSError:\n        time.sleep(0.01)\n",
	     &l, &r);
	assert_true(r.status == PROTO_STATUS_OK || r.status == PROTO_STATUS_TIMEOUT);
	if (r.status == PROTO_STATUS_OK && rt == rt_runsc) {
		assert_int_equal(r.sig, SIGKILL);
		assert_non_null(strstr(r.error, "reached its process limit"));
	}
	check_prefix(&r);
	live_free(&r);
}

static void test_pids_keeps_prefix_runc(void **state)
{
	pids_keeps_prefix(rt_runc, 32);
}

static void test_pids_keeps_prefix_runsc(void **state)
{
	pids_keeps_prefix(rt_runsc, 64);
}

static void sigkill_keeps_prefix(sandbox_runtime *rt)
{
	live_run r = {.prefix = "before the kill\n", .kill_after = "before the kill\n"};
	proto_limits l = {.timeout_ms = 120000};
	live(rt, "import time\nprint('before the kill', flush=True)\ntime.sleep(120)\n", &l, &r);
	assert_true(r.killed);
	assert_int_equal(r.status, PROTO_STATUS_SANDBOX_ERROR);
	check_prefix(&r);
	assert_string_equal(buf_str(&r.out), r.prefix);
	live_free(&r);
}

/* ---- why a sandbox failed (issue 15 item 1): each cause its own, accurate message ---- */

typedef struct why_run {
	bool ready, gone;
	char error[1024];
} why_run;

static void on_why_ready(sandbox *sb, const err *e, void *arg)
{
	why_run *w = arg;
	snprintf(w->error, sizeof(w->error), "%s", e ? err_msg(e) : "(ready)");
	w->ready = true;
}

static void on_why_gone(void *arg)
{
	((why_run *)arg)->gone = true;
}

/* Creates a sandbox of rt on rootfs (with this pids limit, 0: the default) and returns why it
 * failed (or "(ready)"). */
static void why_pids(sandbox_runtime *rt, const char *rootfs, int64_t pids, why_run *w)
{
	sandbox_spec spec = {.rt = rt, .rootfs = rootfs, .lang = PROTO_LANG_PYTHON};
	proto_limits l;
	proto_limits_default(&l);
	if (pids)
		l.pids = pids;
	sandbox_spec_set_limits(&spec, &l);
	sandbox *sb = NULL;
	err *e = NULL;
	if (sandbox_create(ctx, &spec, on_why_ready, w, &sb, &e) < 0) {
		snprintf(w->error, sizeof(w->error), "%s", err_msg(e));
		err_free(e);
		return;
	}
	loop_until(&w->ready, 120000);
	sandbox_destroy(sb, on_why_gone, w);
	loop_until(&w->gone, 120000);
	print_message("# %s: %s\n", sandbox_runtime_name(rt), w->error);
}

static void why(sandbox_runtime *rt, const char *rootfs, why_run *w)
{
	why_pids(rt, rootfs, 0, w);
}

static void expect_why(const why_run *w, const char *want)
{
	if (!strstr(w->error, want))
		fail_msg("got \"%s\", want \"%s\"", w->error, want);
	assert_null(strstr(w->error, "agent exited before it was ready"));
}

/* An invalid runsc platform: runsc's own words (this runsc, 2022-12, predates systrap). Its
 * exit status is runsc's business (its fatal errors exit 128): only that it exited is ours. */
static void test_why_platform(void **state)
{
	sandbox_runtime *bad = NULL;
	sandbox_runtime_opts o = {.name = "runsc", .kind = SANDBOX_RT_RUNSC, .platform = "systrap"};
	err *e = NULL;
	assert_int_equal(sandbox_runtime_new(&bad, &o, state_dir, &e), 0);
	why_run w = {0};
	why(bad, img.rootfs, &w);
	expect_why(&w, "runsc run: exited ");
	expect_why(&w, ": FATAL ERROR: unknown platform: systrap");
	sandbox_runtime_free(bad);
}

/* A runtime state directory that cannot be written: the runtime says where. */
static void test_why_unwritable_state(void **state)
{
	_cleanup_free_ char *ro = xasprintf("%s/ro-root", state_dir);
	assert_int_equal(mkdir(ro, 0700), 0);
	_cleanup_free_ char *cmd = xasprintf("mount -t tmpfs -o ro,size=1m tmpfs %s", ro);
	assert_int_equal(system(cmd), 0);
	sandbox_runtime *bad = NULL;
	sandbox_runtime_opts o = {.name = "runc", .kind = SANDBOX_RT_RUNC, .root = ro};
	err *e = NULL;
	assert_int_equal(sandbox_runtime_new(&bad, &o, state_dir, &e), 0);
	why_run w = {0};
	why(bad, img.rootfs, &w);
	sandbox_runtime_free(bad);
	_cleanup_free_ char *um = xasprintf("umount %s", ro);
	assert_int_equal(system(um), 0);
	expect_why(&w, "runc run: exited 1: ");
	expect_why(&w, "read-only file system");
}

/* A rootfs whose /usr the sandbox's user may not enter (a directory made 0700): the agent's
 * warm-up says what it could not start, and why. */
static void rootfs_unreadable(sandbox_runtime *rt)
{
	_cleanup_free_ char *root =
	    xasprintf("%s/rootfs-0700-%s", state_dir, sandbox_runtime_name(rt));
	static const char *const dirs[] = {"",     "/.aisp",     "/proc", "/dev",
	                                   "/sys", "/workspace", "/tmp",  "/usr"};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		_cleanup_free_ char *d = xasprintf("%s%s", root, dirs[i]);
		assert_int_equal(mkdir(d, 0755), 0);
	}
	_cleanup_free_ char *usr = xasprintf("%s/usr", root);
	assert_int_equal(chmod(usr, 0700), 0);
	why_run w = {0};
	why(rt, root, &w);
	expect_why(&w, "agent failed before READY: warm-up: start /usr/bin/python3: ");
	expect_why(&w, "ermission denied");
}

/* A pids limit below what runsc itself needs on the host: the sandbox never gets ready, and says
 * it was the process limit (not only that the agent went away). */
static void test_why_pids_runsc(void **state)
{
	why_run w = {0};
	why_pids(rt_runsc, img.rootfs, 32, &w);
	expect_why(&w, "the sandbox reached its process limit of 32 before it was ready (on the "
	               "host that limit counts gVisor's own processes too)");
}

static void test_why_rootfs_runc(void **state)
{
	rootfs_unreadable(rt_runc);
}

static void test_why_rootfs_runsc(void **state)
{
	rootfs_unreadable(rt_runsc);
}

#define BOTH(name)                                                                                 \
	static void test_##name##_runc(void **state)                                               \
	{                                                                                          \
		name(rt_runc);                                                                     \
	}                                                                                          \
	static void test_##name##_runsc(void **state)                                              \
	{                                                                                          \
		name(rt_runsc);                                                                    \
	}
BOTH(timeout_keeps_prefix)
BOTH(oom_keeps_prefix)
BOTH(sigkill_keeps_prefix)

static sandbox_fixture fx;

static int setup(void **state)
{
	if (sandbox_fixture_setup(&fx, "live", "aisp-livetest-") < 0)
		return -1;
	base = fx.base, ctx = fx.ctx, rt_runc = fx.runc, rt_runsc = fx.runsc, img = fx.img;
	snprintf(state_dir, sizeof(state_dir), "%s", fx.state_dir);
	return 0;
}

static int teardown(void **state)
{
	assert_int_equal(sandbox_ctx_live(ctx), 0);
	sandbox_fixture_teardown(&fx);
	return 0;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_timeout_keeps_prefix_runc),
	    cmocka_unit_test(test_timeout_keeps_prefix_runsc),
	    cmocka_unit_test(test_oom_keeps_prefix_runc),
	    cmocka_unit_test(test_oom_keeps_prefix_runsc),
	    cmocka_unit_test(test_pids_keeps_prefix_runc),
	    cmocka_unit_test(test_pids_keeps_prefix_runsc),
	    cmocka_unit_test(test_sigkill_keeps_prefix_runc),
	    cmocka_unit_test(test_sigkill_keeps_prefix_runsc),
	    cmocka_unit_test(test_why_platform),
	    cmocka_unit_test(test_why_unwritable_state),
	    cmocka_unit_test(test_why_rootfs_runc),
	    cmocka_unit_test(test_why_rootfs_runsc),
	    cmocka_unit_test(test_why_pids_runsc),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
