/* Warm pools against the real runtimes (issue 4): a burst of 3x the pool on runsc and runc, a
 * warm sandbox killed from outside is replaced, mixed pools serve interleaved tasks, shutdown
 * leaves nothing behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/spawn.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "pool/pool.h"
#include "proto/proto.h"
#include "sandbox/sandbox.h"

static struct event_base *base;
static sandbox_ctx *ctx;
static sandbox_runtime *rt_runc, *rt_runsc;
static sandbox_image img;
static char state_dir[128];

typedef struct job {
	proto_task task;
	proto_limits lim;
	pool *p;
	bool done;
	char out[256];
	proto_status status;
} job;

static void loop_until(bool (*pred)(void *), void *arg, int64_t timeout_ms)
{
	int64_t end = now_mono_ms() + timeout_ms;
	while (!pred(arg) && now_mono_ms() < end) {
		struct timeval tv = {0, 20000};
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	assert_true(pred(arg));
}

static void make_task(job *j, proto_lang lang, const char *code)
{
	char json[1024];
	const char *ln = proto_lang_name(lang);
	snprintf(json, sizeof(json), "{\"id\":\"t\",\"lang\":\"%s\",\"code\":\"%s\"}", ln, code);
	err *e = NULL;
	proto_task_init(&j->task);
	assert_int_equal(proto_task_parse(json, strlen(json), &j->task, NULL, &e), 0);
	proto_limits_default(&j->lim);
}

static void on_done(sandbox *sb, const proto_output *o, const proto_usage *u, void *arg)
{
	job *j = arg;
	snprintf(j->out, sizeof(j->out), "%s", buf_str(&o->out));
	j->status = o->status;
	j->done = true;
	pool_release(j->p, sb);
}

static void on_take(sandbox *sb, const err *e, void *arg)
{
	job *j = arg;
	assert_non_null(sb);
	err *e2 = NULL;
	assert_int_equal(sandbox_run(sb, &j->task, &j->lim, on_done, j, &e2), 0);
}

static sandbox_spec spec_for(sandbox_runtime *rt, proto_lang lang)
{
	sandbox_spec s = {.rt = rt, .rootfs = img.rootfs, .image_digest = img.digest, .lang = lang};
	proto_limits l;
	proto_limits_default(&l);
	sandbox_spec_set_limits(&s, &l);
	return s;
}

static bool all_done(void *arg)
{
	job *jobs = arg;
	for (job *j = jobs; j->p; j++)
		if (!j->done)
			return false;
	return true;
}

struct warm_wait {
	pool *p;
	size_t warm;
};

static bool has_warm(void *arg)
{
	struct warm_wait *w = arg;
	pool_stats s;
	pool_get_stats(w->p, &s);
	return s.warm >= w->warm;
}

static bool pool_idle(void *arg)
{
	pool_stats s;
	pool_get_stats(arg, &s);
	return s.destroying == 0 && s.creating == 0;
}

static bool flag_set(void *arg)
{
	return *(bool *)arg;
}

static void on_shutdown(void *arg)
{
	*(bool *)arg = true;
}

static void shutdown_and_check(pool *p)
{
	bool down = false;
	pool_shutdown(p, on_shutdown, &down);
	loop_until(flag_set, &down, 60000);
	pool_free(p);
	assert_int_equal(sandbox_ctx_live(ctx), 0);
	/* nothing left: runtime state, bundles, cgroups */
	char **ids;
	err *e = NULL;
	assert_int_equal(sandbox_runtime_list(rt_runc, "aisp-pooltest-", &ids, &e), 0);
	assert_int_equal(sandbox_runtime_list(rt_runsc, "aisp-pooltest-", &ids, &e), 0);
	char path[256];
	snprintf(path, sizeof(path), "%s/bundles", state_dir);
	DIR *d = opendir(path);
	assert_non_null(d);
	struct dirent *de;
	int n = 0;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	assert_int_equal(n, 0);
	d = opendir("/sys/fs/cgroup/memory/aisp");
	n = 0;
	while (d && (de = readdir(d)))
		n += !strncmp(de->d_name, "aisp-pooltest-", 14);
	if (d)
		closedir(d);
	assert_int_equal(n, 0);
}

static void burst(sandbox_runtime *rt)
{
	pool *p;
	err *e = NULL;
	pool_opts o = {0};
	assert_int_equal(pool_new(&p, base, &pool_sandbox_ops, ctx, &o, &e), 0);
	sandbox_spec s = spec_for(rt, PROTO_LANG_PYTHON);
	assert_int_equal(pool_add(p, &s, 2, &e), 0);
	struct warm_wait w = {p, 2};
	loop_until(has_warm, &w, 60000);
	job jobs[7] = {0};
	for (int i = 0; i < 6; i++) {
		char code[64];
		snprintf(code, sizeof(code), "print(%d * 7)", i);
		make_task(&jobs[i], PROTO_LANG_PYTHON, code);
		jobs[i].p = p;
	}
	for (int i = 0; i < 6; i++)
		pool_take(p, &s, on_take, &jobs[i], NULL);
	loop_until(all_done, jobs, 120000);
	for (int i = 0; i < 6; i++) {
		char want[16];
		snprintf(want, sizeof(want), "%d\n", i * 7);
		assert_int_equal(jobs[i].status, PROTO_STATUS_OK);
		assert_string_equal(jobs[i].out, want);
		proto_task_deinit(&jobs[i].task);
	}
	pool_stats st;
	pool_get_stats(p, &st);
	assert_true(st.hits >= 2);
	assert_true(st.misses >= 1); /* the burst outran the pool: cold creations served it */
	print_message("# %s burst of 6 on a pool of 2: hits %llu misses %llu\n",
	              sandbox_runtime_name(rt), (unsigned long long)st.hits,
	              (unsigned long long)st.misses);
	shutdown_and_check(p);
}

static void test_burst_runc(void **state)
{
	burst(rt_runc);
}

static void test_burst_runsc(void **state)
{
	burst(rt_runsc);
}

/* Kills every process in the pool's warm sandboxes' cgroups, as an outside actor would. */
static int kill_warm_from_outside(void)
{
	DIR *d = opendir("/sys/fs/cgroup/pids/aisp");
	assert_non_null(d);
	struct dirent *de;
	int killed = 0;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "aisp-pooltest-", 14))
			continue;
		char path[512];
		snprintf(path, sizeof(path), "/sys/fs/cgroup/pids/aisp/%s/cgroup.procs",
		         de->d_name);
		FILE *f = fopen(path, "r");
		int pid;
		while (f && fscanf(f, "%d", &pid) == 1)
			killed += kill(pid, SIGKILL) == 0;
		if (f)
			fclose(f);
	}
	closedir(d);
	return killed;
}

static bool died_and_refilled(void *arg)
{
	pool_stats s;
	pool_get_stats(arg, &s);
	return s.died >= 1 && s.warm == 1;
}

static void test_killed_warm_sandbox_is_replaced(void **state)
{
	pool *p;
	err *e = NULL;
	pool_opts o = {0};
	assert_int_equal(pool_new(&p, base, &pool_sandbox_ops, ctx, &o, &e), 0);
	sandbox_spec s = spec_for(rt_runc, PROTO_LANG_SHELL);
	assert_int_equal(pool_add(p, &s, 1, &e), 0);
	struct warm_wait w = {p, 1};
	loop_until(has_warm, &w, 60000);
	assert_true(kill_warm_from_outside() > 0);
	loop_until(died_and_refilled, p, 60000);
	/* the replacement serves a task */
	job jobs[2] = {0};
	make_task(&jobs[0], PROTO_LANG_SHELL, "echo replaced");
	jobs[0].p = p;
	bool hit = false;
	pool_take(p, &s, on_take, &jobs[0], &hit);
	assert_true(hit);
	loop_until(all_done, jobs, 60000);
	assert_string_equal(jobs[0].out, "replaced\n");
	proto_task_deinit(&jobs[0].task);
	loop_until(pool_idle, p, 60000);
	shutdown_and_check(p);
}

static void test_mixed_pools_interleaved(void **state)
{
	pool *p;
	err *e = NULL;
	pool_opts o = {.max_creating = 3};
	assert_int_equal(pool_new(&p, base, &pool_sandbox_ops, ctx, &o, &e), 0);
	sandbox_spec specs[3] = {spec_for(rt_runsc, PROTO_LANG_PYTHON),
	                         spec_for(rt_runc, PROTO_LANG_JAVASCRIPT),
	                         spec_for(rt_runsc, PROTO_LANG_SHELL)};
	const char *code[3] = {"print(40 + ", "console.log(50 + ", "echo $((60 + "};
	const char *tail[3] = {")", ")", "))"};
	for (int k = 0; k < 3; k++)
		assert_int_equal(pool_add(p, &specs[k], 1, &e), 0);
	struct warm_wait w = {p, 3};
	loop_until(has_warm, &w, 90000);
	job jobs[10] = {0};
	for (int i = 0; i < 9; i++) {
		char c[64];
		snprintf(c, sizeof(c), "%s%d%s", code[i % 3], i, tail[i % 3]);
		make_task(&jobs[i], specs[i % 3].lang, c);
		jobs[i].p = p;
		pool_take(p, &specs[i % 3], on_take, &jobs[i], NULL);
	}
	loop_until(all_done, jobs, 180000);
	for (int i = 0; i < 9; i++) {
		char want[16];
		snprintf(want, sizeof(want), "%d\n", (i % 3 + 4) * 10 + i);
		assert_string_equal(jobs[i].out, want);
		proto_task_deinit(&jobs[i].task);
	}
	shutdown_and_check(p);
}

static int setup(void **state)
{
	err *e = NULL;
	base = event_base_new();
	if (spawn_loop_init(base, &e) < 0)
		return -1;
	snprintf(state_dir, sizeof(state_dir), "/run/aisp/test-pool-%d", getpid());
	sandbox_runtime_opts a = {.name = "runc", .kind = SANDBOX_RT_RUNC};
	sandbox_runtime_opts b = {.name = "runsc", .kind = SANDBOX_RT_RUNSC};
	char *agent = sandbox_agent_default_path();
	sandbox_ctx_opts co = {
	    .state_dir = state_dir, .agent_path = agent, .id_prefix = "aisp-pooltest-"};
	int r =
	    sandbox_runtime_new(&rt_runc, &a, state_dir, &e) < 0 ||
	            sandbox_runtime_new(&rt_runsc, &b, state_dir, &e) < 0 ||
	            sandbox_image_resolve(SANDBOX_IMAGE_STORE_DEFAULT, "default", &img, &e) < 0 ||
	            sandbox_ctx_new(&ctx, base, &co, &e) < 0
	        ? -1
	        : 0;
	free(agent);
	if (r < 0)
		fprintf(stderr, "setup: %s\n", err_msg(e));
	return r;
}

static int teardown(void **state)
{
	sandbox_ctx_free(ctx);
	sandbox_runtime_free(rt_runc);
	sandbox_runtime_free(rt_runsc);
	sandbox_image_deinit(&img);
	spawn_loop_deinit();
	event_base_free(base);
	rm_rf_at(AT_FDCWD, state_dir, NULL);
	return 0;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_burst_runc),
	    cmocka_unit_test(test_burst_runsc),
	    cmocka_unit_test(test_killed_warm_sandbox_is_replaced),
	    cmocka_unit_test(test_mixed_pools_interleaved),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
