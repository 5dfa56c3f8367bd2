/* Unit tests for sandbox/: golden config.json per runtime profile and cgroup hierarchy, the
 * environment facts, the spec/limit matching, and the lifecycle's failure paths with a
 * "runtime" that starts nothing (/usr/bin/true: every command succeeds, no agent ever speaks).
 * (Real containers are exercised by tests/integration/test-sandbox.sh and test-pool.c.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/cleanup.h"
#include "common/spawn.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "sandbox/bundle.h"
#include "sandbox/cgroup.h"
#include "sandbox/lifecycle.h"
#include "sandbox/runtime.h"
#include "sandbox/sandbox.h"

static void check_golden(const char *name, const buf *got)
{
	char *path = xasprintf("%s/tests/unit/golden/%s", getenv("AISP_SOURCE_ROOT"), name);
	if (getenv("AISP_REGEN_GOLDEN")) {
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		fwrite(got->data, 1, got->len, f);
		fputc('\n', f);
		fclose(f);
	}
	buf want = BUF_INIT;
	err *e = NULL;
	assert_int_equal(read_file_at(AT_FDCWD, path, 1 << 20, &want, &e), 0);
	while (want.len && want.data[want.len - 1] == '\n')
		want.data[--want.len] = 0;
	assert_string_equal(buf_str(got), buf_str(&want));
	buf_deinit(&want);
	free(path);
}

/* cg: the cgroup fields a backend gives (NULL: a path and the runtime's default priority) */
static void golden_for(sandbox_runtime_kind kind, const char *name, const sandbox_cgroup_config *cg)
{
	const char *args[] = {"/.aisp/aisp-agent", "--lang", "python", NULL};
	sandbox_bundle_spec b = {
	    .kind = kind,
	    .rootfs = "/var/lib/aisp/images/rootfs/abc/rootfs",
	    .agent_dir = "/run/aisp/agent",
	    .args = args,
	    .env = sandbox_base_env,
	    .cgroups_path = "/aisp/aisp-1-1-0001",
	    .cpus_milli = 4000,
	    .memory_bytes = 4LL << 30,
	    .pids = 512,
	    .nofile = 4096,
	    .workspace_bytes = 512LL << 20,
	};
	if (cg) {
		b.cgroups_path = cg->path;
		b.cpu_shares = cg->cpu_shares;
		b.cpu_weight = cg->cpu_weight;
	}
	buf got = BUF_INIT;
	sandbox_bundle_config_json(&b, &got);
	check_golden(name, &got);
	/* properties the hardening depends on, independent of the golden text */
	const char *s = buf_str(&got);
	assert_non_null(strstr(s, "\"readonly\":true"));
	assert_non_null(strstr(s, "\"noNewPrivileges\":true"));
	/* the agent: container uid 0 with exactly four capabilities, never the dangerous ones */
	assert_non_null(strstr(s, "\"uid\":0"));
	assert_non_null(strstr(s, "\"bounding\":[\"CAP_SETUID\",\"CAP_SETGID\",\"CAP_SETPCAP\","
	                          "\"CAP_KILL\"]"));
	assert_non_null(strstr(s, "\"inheritable\":[]"));
	assert_non_null(strstr(s, "\"ambient\":[]"));
	for (const char *cap = "CAP_SYS_ADMIN\0CAP_NET_RAW\0CAP_SYS_PTRACE\0CAP_DAC_OVERRIDE\0";
	     *cap; cap += strlen(cap) + 1)
		assert_null(strstr(s, cap));
	assert_non_null(strstr(s, "\"type\":\"network\""));
	assert_non_null(strstr(s, "\"hostname\":\"sandbox\""));
	assert_non_null(strstr(s, "\"quota\":400000"));
	assert_non_null(strstr(s, "\"swap\":4294967296"));
	bool seccomp = strstr(s, "\"seccomp\"") != NULL;
	assert_int_equal(seccomp, kind != SANDBOX_RT_RUNSC);
	/* linux.resources.unified only for cgroup v2 (runc refuses it on v1) */
	assert_int_equal(strstr(s, "\"unified\"") != NULL, cg && cg->cpu_weight > 0);
	/* socket families: AF_VSOCK (40) and everything from AF_PACKET (17) on refused */
	if (seccomp)
		assert_non_null(strstr(s,
		                       "{\"names\":[\"socket\",\"socketpair\"],\"action\":"
		                       "\"SCMP_ACT_ERRNO\",\"errnoRet\":97,\"args\":[{\"index\":0,"
		                       "\"value\":17,\"op\":\"SCMP_CMP_GE\"}]}"));
	if (seccomp)
		for (const char *sc = "keyctl\0bpf\0ptrace\0mount\0unshare\0io_uring_setup\0"; *sc;
		     sc += strlen(sc) + 1) {
			char *q = xasprintf("\"%s\"", sc);
			assert_non_null(strstr(s, q));
			free(q);
		}
	buf_deinit(&got);
}

static void test_golden_runsc(void **state)
{
	golden_for(SANDBOX_RT_RUNSC, "config-runsc.json", NULL);
}

static void test_golden_runc(void **state)
{
	golden_for(SANDBOX_RT_RUNC, "config-runc.json", NULL);
}

static void test_golden_oci(void **state)
{
	golden_for(SANDBOX_RT_OCI, "config-oci.json", NULL);
}

/* The cgroup fields each backend puts in config.json for a sandbox warming up. */
static void golden_cgroup(sandbox_cgroup_version v, sandbox_runtime_kind kind, const char *name)
{
	sandbox_cgroup *cg = NULL;
	sandbox_cgroup_opts o = {.root = "/nonexistent", .version = v};
	assert_int_equal(sandbox_cgroup_new(&cg, &o, NULL), 0);
	sandbox_cgroup_config c;
	sandbox_cgroup_config_for(cg, "aisp-1-1-0001", SANDBOX_CGROUP_WARMING, &c);
	golden_for(kind, name, &c);
	sandbox_cgroup_config_deinit(&c);
	sandbox_cgroup_free(cg);
}

static void test_golden_cgroup_v1(void **state)
{
	golden_cgroup(SANDBOX_CGROUP_V1, SANDBOX_RT_RUNC, "config-runc-cgroup-v1.json");
}

static void test_golden_cgroup_v2(void **state)
{
	golden_cgroup(SANDBOX_CGROUP_V2, SANDBOX_RT_RUNC, "config-runc-cgroup-v2.json");
	golden_cgroup(SANDBOX_CGROUP_V2, SANDBOX_RT_RUNSC, "config-runsc-cgroup-v2.json");
}

static void test_environment_facts(void **state)
{
	sandbox_runtime *rt;
	err *e = NULL;
	char dir[] = "/tmp/aisp-rt-XXXXXX";
	assert_non_null(mkdtemp(dir));
	sandbox_runtime_opts ro = {.name = "runc", .kind = SANDBOX_RT_RUNC};
	assert_int_equal(sandbox_runtime_new(&rt, &ro, dir, &e), 0);
	assert_non_null(strstr(sandbox_runtime_version(rt), "runc version"));
	sandbox_spec spec = {.rt = rt, .rootfs = "/r", .image_digest = "sha256:00", .lang = 0};
	proto_limits l;
	proto_limits_default(&l);
	sandbox_spec_set_limits(&spec, &l);
	assert_true(sandbox_spec_fits(&spec, &l));
	proto_limits l2 = l;
	l2.memory_bytes /= 2;
	assert_false(sandbox_spec_fits(&spec, &l2));
	l2 = l;
	l2.timeout_ms = 5; /* per-task limits do not need another sandbox */
	assert_true(sandbox_spec_fits(&spec, &l2));

	proto_env env[] = {{(char *)"ALPHA", (char *)"x"}, {(char *)"ZED", (char *)"1"}};
	proto_task t = {.n_env = 2, .env = env};
	proto_env *kv;
	size_t n = sandbox_environment(&spec, &t, &l, &kv);
	assert_true(n > 20);
	for (size_t i = 1; i < n; i++)
		assert_true(strcmp(kv[i - 1].name, kv[i].name) < 0);
	bool saw_alpha = false, saw_tz = false, saw_rt = false;
	for (size_t i = 0; i < n; i++) {
		saw_alpha |= !strcmp(kv[i].name, "env.ALPHA") && !strcmp(kv[i].value, "x");
		saw_tz |= !strcmp(kv[i].name, "env.TZ") && !strcmp(kv[i].value, "UTC");
		saw_rt |= !strcmp(kv[i].name, "runtime.name") && !strcmp(kv[i].value, "runc");
	}
	assert_true(saw_alpha && saw_tz && saw_rt);
	proto_env_list_free(kv, n);
	sandbox_runtime_free(rt);
	rm_rf_at(AT_FDCWD, dir, NULL);
}

static void test_runtime_missing(void **state)
{
	sandbox_runtime *rt = NULL;
	err *e = NULL;
	sandbox_runtime_opts ro = {
	    .name = "kata", .path = "/nonexistent/kata-runtime", .kind = SANDBOX_RT_OCI};
	assert_int_equal(sandbox_runtime_new(&rt, &ro, "/tmp/aisp-rt-missing", &e), -1);
	assert_non_null(strstr(err_msg(e), "runtime kata is not usable"));
	assert_non_null(strstr(err_msg(e), "/nonexistent/kata-runtime"));
	err_free(e);
	rm_rf_at(AT_FDCWD, "/tmp/aisp-rt-missing", NULL);
}

/* ---- the lifecycle with a runtime that starts nothing ---- */

typedef struct noop {
	char dir[64];
	struct event_base *base;
	sandbox_ctx *ctx;
	sandbox_runtime *rt;
	int ready_calls, gone_calls;
	char ready_err[512];
} noop;

/* A runtime that is a shell script (body: what it does for every command). */
static char *fake_runtime(const noop *n, const char *body)
{
	char *path = xasprintf("%s/fake-runtime", n->dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "#!/bin/sh\ncase \"$*\" in *--version*) echo fake 1; exit 0;; esac\n%s\n", body);
	fclose(f);
	assert_int_equal(chmod(path, 0755), 0);
	return path;
}

static void noop_setup_with(noop *n, const char *runtime_body)
{
	memset(n, 0, sizeof(*n));
	snprintf(n->dir, sizeof(n->dir), "/tmp/aisp-noop-XXXXXX");
	assert_non_null(mkdtemp(n->dir));
	n->base = event_base_new();
	err *e = NULL;
	assert_int_equal(spawn_loop_init(n->base, &e), 0);
	char *state = xasprintf("%s/state", n->dir);
	char *cg = xasprintf("%s/cgroup", n->dir); /* never the host's cgroups */
	assert_int_equal(mkdir(cg, 0755), 0);
	/* the real agent: the host also runs it, as the plumbing cgroup's helper (--cgexec) */
	_cleanup_free_ char *agent =
	    xasprintf("%s/sandbox/agent/aisp-agent", getenv("AISP_BUILD_ROOT"));
	sandbox_ctx_opts co = {
	    .state_dir = state, .agent_path = agent, .cgroup_root = cg, .id_prefix = "aisp-unit-"};
	assert_int_equal(sandbox_ctx_new(&n->ctx, n->base, &co, &e), 0);
	assert_string_equal(sandbox_ctx_cgroup(n->ctx), "v1"); /* a plain directory */
	_cleanup_free_ char *fake = runtime_body ? fake_runtime(n, runtime_body) : NULL;
	sandbox_runtime_opts ro = {
	    .name = "noop", .path = fake ? fake : "/usr/bin/true", .kind = SANDBOX_RT_OCI};
	assert_int_equal(sandbox_runtime_new(&n->rt, &ro, state, &e), 0);
	free(state);
	free(cg);
}

static void noop_setup(noop *n)
{
	noop_setup_with(n, NULL);
}

/* The bundles left in the state dir. */
static int bundles_left(const noop *n)
{
	char *p = xasprintf("%s/state/bundles", n->dir);
	DIR *d = opendir(p);
	assert_non_null(d);
	int k = 0;
	for (struct dirent *de; (de = readdir(d));)
		k += de->d_name[0] != '.';
	closedir(d);
	free(p);
	return k;
}

static void noop_teardown(noop *n)
{
	assert_int_equal(sandbox_ctx_live(n->ctx), 0);
	assert_int_equal(bundles_left(n), 0);
	sandbox_runtime_free(n->rt);
	sandbox_ctx_free(n->ctx);
	spawn_loop_deinit();
	event_base_free(n->base);
	rm_rf_at(AT_FDCWD, n->dir, NULL);
}

static void loop_while(noop *n, const int *counter, int below)
{
	for (int i = 0; *counter < below && i < 1000; i++) {
		struct timeval tv = {0, 20000};
		event_base_loopexit(n->base, &tv);
		event_base_dispatch(n->base);
	}
	assert_int_equal(*counter, below);
}

static void on_noop_ready(sandbox *sb, const err *e, void *arg)
{
	noop *n = arg;
	n->ready_calls++;
	snprintf(n->ready_err, sizeof(n->ready_err), "%s", e ? err_msg(e) : "(ready)");
}

static void on_noop_gone(void *arg)
{
	((noop *)arg)->gone_calls++;
}

static sandbox *noop_create(noop *n)
{
	sandbox_spec spec = {.rt = n->rt, .rootfs = "/nonexistent", .lang = PROTO_LANG_SHELL};
	proto_limits l;
	proto_limits_default(&l);
	sandbox_spec_set_limits(&spec, &l);
	sandbox *sb = NULL;
	err *e = NULL;
	assert_int_equal(sandbox_create(n->ctx, &spec, on_noop_ready, n, &sb, &e), 0);
	assert_int_equal(sandbox_get_state(sb), SANDBOX_CREATING);
	assert_int_equal(sandbox_ctx_live(n->ctx), 1);
	assert_int_equal(bundles_left(n), 1);
	return sb;
}

/* `run` succeeds but no agent ever speaks: the sandbox is DEAD, the owner hears why once, a task
 * is refused, and destroying it removes everything. */
static void test_lifecycle_no_agent(void **state)
{
	noop n;
	noop_setup(&n);
	sandbox *sb = noop_create(&n);
	loop_while(&n, &n.ready_calls, 1);
	assert_int_equal(sandbox_get_state(sb), SANDBOX_DEAD);
	assert_non_null(strstr(n.ready_err, "agent exited before it was ready"));
	assert_non_null(strstr(n.ready_err, "(noop)"));
	proto_task t;
	proto_task_init(&t);
	proto_limits l;
	proto_limits_default(&l);
	err *e = NULL;
	assert_int_equal(sandbox_run(sb, &t, &l, NULL, NULL, &e), -1);
	assert_non_null(strstr(err_msg(e), "is not ready"));
	err_free(e);
	sandbox_destroy(sb, on_noop_gone, &n);
	loop_while(&n, &n.gone_calls, 1);
	assert_int_equal(n.ready_calls, 1);
	proto_task_deinit(&t);
	noop_teardown(&n);
}

/* A failing runtime's own reason is the sandbox's: its first logrus error line, not "the agent
 * exited" (the agent's pipe closes before `run` reports). Issue 15 item 1. */
static void test_lifecycle_runtime_reason(void **state)
{
	noop n;
	noop_setup_with(&n,
	                "echo 'time=\"2026-01-01T00:00:00Z\" level=warning msg=\"ignored\"' >&2\n"
	                "echo 'time=\"2026-01-01T00:00:00Z\" level=error msg=\"runc run failed: "
	                "exec: \\\"/.aisp/aisp-agent\\\": permission denied\"' >&2\nexit 1");
	sandbox *sb = noop_create(&n);
	loop_while(&n, &n.ready_calls, 1);
	assert_int_equal(sandbox_get_state(sb), SANDBOX_DEAD);
	if (!strstr(n.ready_err, "noop run: exited 1: runc run failed: exec: "
	                         "\"/.aisp/aisp-agent\": permission denied"))
		fail_msg("got: %s", n.ready_err);
	assert_null(strstr(n.ready_err, "agent exited"));
	assert_null(strstr(n.ready_err, "ignored"));
	assert_non_null(strstr(sandbox_runtime_log(sb), "level=warning"));
	sandbox_destroy(sb, on_noop_gone, &n);
	loop_while(&n, &n.gone_calls, 1);
	noop_teardown(&n);
}

/* Bytes that are not frames before READY (a runtime writing to the container's stdout) are
 * quoted, not reported as the agent's exit. */
static void test_lifecycle_garbage_before_ready(void **state)
{
	noop n;
	noop_setup_with(&n, "case \"$*\" in *delete*) exit 0;; esac\n"
	                    "printf 'runsc: not a frame\\n'\nexit 0");
	sandbox *sb = noop_create(&n);
	loop_while(&n, &n.ready_calls, 1);
	if (!strstr(n.ready_err, "the agent's stream is not frames before READY (it began with "
	                         "\"runsc: not a frame\\x0a\")"))
		fail_msg("got: %s", n.ready_err);
	sandbox_destroy(sb, on_noop_gone, &n);
	loop_while(&n, &n.gone_calls, 1);
	noop_teardown(&n);
}

/* The host keeps the run's cap on the output chunks too, whatever the agent sends, and hands
 * exactly what it keeps to the output callback. */
typedef struct seen_output {
	buf out, err;
	int calls;
} seen_output;

static void on_output(sandbox *sb, sandbox_stream st, const uint8_t *p, size_t n, void *arg)
{
	seen_output *s = arg;
	buf_append(st == SANDBOX_STDOUT ? &s->out : &s->err, p, n);
	s->calls++;
}

static void test_output_chunks_capped(void **state)
{
	sandbox sb = {0};
	proto_output_init(&sb.out);
	seen_output seen = {BUF_INIT, BUF_INIT, 0};
	sandbox_on_output(&sb, on_output, &seen);
	sb.stdout_max = 5;
	sb.stderr_max = 100;
	sandbox_io_add_output(&sb, FRAME_STDOUT, (const uint8_t *)"abc", 3);
	sandbox_io_add_output(&sb, FRAME_STDERR, (const uint8_t *)"err", 3);
	sandbox_io_add_output(&sb, FRAME_STDOUT, (const uint8_t *)"defg", 4);
	sandbox_io_add_output(&sb, FRAME_STDOUT, (const uint8_t *)"h", 1);
	assert_string_equal(buf_str(&sb.out.out), "abcde");
	assert_string_equal(buf_str(&seen.out), "abcde");
	assert_string_equal(buf_str(&sb.out.err), "err");
	assert_string_equal(buf_str(&seen.err), "err");
	assert_true(sb.out.stdout_truncated);
	assert_false(sb.out.stderr_truncated);
	assert_int_equal(seen.calls, 3);
	buf_deinit(&seen.out);
	buf_deinit(&seen.err);
	proto_output_deinit(&sb.out);
}

/* The first meaningful line of each runtime's way of failing. */
static void test_runtime_reason(void **state)
{
	static const char *const cases[][2] = {
	    {"time=\"2026-01-01T00:00:00Z\" level=warning msg=\"cgroup v1 soon gone\"\n"
	     "time=\"2026-01-01T00:00:00Z\" level=error msg=\"runc run failed: unable to start "
	     "container process: exec: \\\"/.aisp/aisp-agent\\\": permission denied\"\n",
	     "runc run failed: unable to start container process: exec: \"/.aisp/aisp-agent\": "
	     "permission denied"},
	    {"W1201 23:42:56.206480   14145 util.go:64] FATAL ERROR: unknown platform: systrap\n"
	     "unknown platform: systrap\n",
	     "FATAL ERROR: unknown platform: systrap"},
	    {"\n  \ncrun: mkdir `/run/x`: Read-only file system\n",
	     "crun: mkdir `/run/x`: Read-only file system"},
	    {"", NULL},
	    {"\n\n", NULL},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_free_ char *r = sandbox_runtime_reason(cases[i][0]);
		if (!cases[i][1])
			assert_null(r);
		else if (!r || strcmp(r, cases[i][1]))
			fail_msg("case %zu: got \"%s\"", i, r ? r : "(null)");
	}
	char *big = xmalloc(5000);
	memset(big, 'x', 4999);
	big[4999] = 0;
	_cleanup_free_ char *r = sandbox_runtime_reason(big);
	free(big);
	assert_int_equal(strlen(r), SANDBOX_REASON_MAX + 3);
}

/* Under a 0700 parent (StateDirectoryMode=0700) every directory on the way to a rootfs gets
 * o+x and nothing else, so that runc's user namespace root can reach it (issue 15 item 2). */
static void test_reach_for_userns(void **state)
{
	noop n;
	noop_setup(&n);
	_cleanup_free_ char *top = xasprintf("%s/p700", n.dir);
	_cleanup_free_ char *deep = xasprintf("%s/p700/store/rootfs", n.dir);
	mode_t old = umask(077);
	err *e = NULL;
	assert_int_equal(mkdir_p(deep, 0755, &e), 0);
	umask(old);
	assert_int_equal(chmod(top, 0700), 0);
	assert_int_equal(chmod(deep, 0750), 0);
	assert_int_equal(sandbox_ctx_reach(n.ctx, deep, &e), 0);
	struct stat st;
	assert_int_equal(stat(top, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0701);
	assert_int_equal(stat(deep, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0751);
	/* walked once: a later change is not undone behind the operator's back */
	assert_int_equal(chmod(top, 0700), 0);
	assert_int_equal(sandbox_ctx_reach(n.ctx, deep, &e), 0);
	assert_int_equal(stat(top, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	/* a path that is not there is named */
	_cleanup_free_ char *none = xasprintf("%s/none/rootfs", n.dir);
	assert_int_equal(sandbox_ctx_reach(n.ctx, none, &e), -1);
	assert_non_null(strstr(err_msg(e), "none"));
	err_free(e);
	noop_teardown(&n);
}

/* Destroyed while `run` is still running: `delete` waits for it, and the owner, who gave the
 * sandbox up, hears nothing but "gone". */
static void test_lifecycle_destroy_while_spawning(void **state)
{
	noop n;
	noop_setup(&n);
	sandbox *sb = noop_create(&n);
	sandbox_destroy(sb, on_noop_gone, &n);
	loop_while(&n, &n.gone_calls, 1);
	assert_int_equal(n.ready_calls, 0);
	noop_teardown(&n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_golden_runsc),
	    cmocka_unit_test(test_golden_runc),
	    cmocka_unit_test(test_golden_oci),
	    cmocka_unit_test(test_golden_cgroup_v1),
	    cmocka_unit_test(test_golden_cgroup_v2),
	    cmocka_unit_test(test_environment_facts),
	    cmocka_unit_test(test_lifecycle_runtime_reason),
	    cmocka_unit_test(test_lifecycle_garbage_before_ready),
	    cmocka_unit_test(test_output_chunks_capped),
	    cmocka_unit_test(test_reach_for_userns),
	    cmocka_unit_test(test_runtime_reason),
	    cmocka_unit_test(test_runtime_missing),
	    cmocka_unit_test(test_lifecycle_no_agent),
	    cmocka_unit_test(test_lifecycle_destroy_while_spawning),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
