/* aisp run: the operator's local smoke test, no Redis. Runs one task in a fresh sandbox (the
 * same bundle, agent and status logic the node uses), or with --warm N runs it N times through
 * a local warm pool and prints latency figures (what the benchmark harness reads). */
#include <errno.h>
#include <fcntl.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "proto/json.h"

#include "cli/cli.h"
#include "cli/local.h"
#include "cli/taskopts.h"
#include "common/cleanup.h"
#include "common/spawn.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "pool/pool.h"
#include "proto/proto.h"
#include "sandbox/sandbox.h"

typedef struct run {
	struct event_base *base;
	sandbox_ctx *sctx;
	sandbox_runtime *rt;
	pool *pool;
	proto_task task;
	proto_limits lim;
	sandbox_spec spec;
	bool json;
	const char *out_dir; /* --out */
	int status;          /* process exit status */
	/* --warm */
	int warm_n, started, finished, ok, hits;
	int64_t *lat_us;
	int64_t t_take;
	struct event *poll;
	char *first_stdout;
} run;

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: aisp run [--runtime runsc|runc|NAME] [--lang L] [--image NAME] (-c CODE | "
	    "FILE)\n"
	    "                [--stdin FILE] [--file PATH=LOCAL]... [--args JSON] [--function]\n"
	    "                [limits] [--json] [--out DIR] [--warm N [--pool-size K]]\n"
	    "                [--store DIR] [--state-dir DIR]\n\n%s"
	    "  --json             print the result document instead of the program's output\n"
	    "  --out DIR          save the output files below DIR\n"
	    "  --warm N           run the task N times through a local warm pool; print latencies\n"
	    "\nexit status: the program's exit code; 124 timeout, 125 output limit, 126 sandbox "
	    "error, 137 out of memory, 1 function error, 2 usage or rejected (the status is also "
	    "printed on stderr)\n",
	    cli_task_usage);
}

static void print_result(run *r, const cli_local_result *lr, const char *runtime)
{
	const proto_output *o = &lr->out;
	const proto_usage *u = &lr->usage;
	if (r->json) {
		proto_result res;
		proto_result_init(&res);
		res.id = r->task.id;
		res.output = *o;
		res.usage = *u;
		res.runtime = (char *)runtime;
		res.image_digest = (char *)lr->image_digest;
		/* unsigned: a local run has no node key; the digest is the node's, byte for byte */
		res.execution_digest = (char *)lr->digests.execution;
		res.finished_ms = now_wall_ms();
		res.started_ms = res.finished_ms - u->wall_ms;
		res.received_ms = res.started_ms;
		res.attempts = 1;
		buf b = BUF_INIT;
		proto_result_to_json(&res, &b);
		printf("%s\n", buf_str(&b));
		buf_deinit(&b);
		fflush(stdout);
		r->status = cli_exit_status(o->status, o->exit_code, o->signal);
	} else {
		r->status = cli_print_output(o, r->out_dir);
	}
}

/* ---- --warm N ---- */

static void take_next(run *r);

static void on_pool_down(void *arg)
{
	event_base_loopbreak(((run *)arg)->base);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static double pct(const int64_t *v, int n, double p)
{
	int i = (int)(p * (n - 1) + 0.5);
	return (double)v[i] / 1000.0;
}

static void gkv(proto_gen *g, const char *k, double v, bool integer)
{
	proto_json_gen_str(g, k);
	if (integer)
		proto_json_gen_int(g, (int64_t)v);
	else
		proto_json_gen_double(g, v);
}

static void warm_report(run *r)
{
	int n = r->finished;
	qsort(r->lat_us, (size_t)n, sizeof(int64_t), cmp_i64);
	pool_stats s;
	pool_get_stats(r->pool, &s);
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	proto_json_gen_open(g, true);
	gkv(g, "runs", n, true);
	gkv(g, "ok", r->ok, true);
	gkv(g, "hits", (double)s.hits, true);
	gkv(g, "misses", (double)s.misses, true);
	gkv(g, "p50_ms", pct(r->lat_us, n, 0.5), false);
	gkv(g, "p95_ms", pct(r->lat_us, n, 0.95), false);
	gkv(g, "p99_ms", pct(r->lat_us, n, 0.99), false);
	gkv(g, "min_ms", (double)r->lat_us[0] / 1000.0, false);
	gkv(g, "max_ms", (double)r->lat_us[n - 1] / 1000.0, false);
	proto_json_gen_str(g, "stdout");
	proto_json_gen_text(g, r->first_stdout, strlen(r->first_stdout));
	proto_json_gen_close(g, true);
	buf b = BUF_INIT;
	proto_json_gen_take_valid(g, &b);
	printf("%s\n", buf_str(&b));
	buf_deinit(&b);
	r->status = r->ok == n ? 0 : 1;
}

static void on_warm_done(sandbox *sb, const proto_output *o, const proto_usage *u, void *arg)
{
	run *r = arg;
	r->lat_us[r->finished++] = now_mono_us() - r->t_take;
	if (o->status == PROTO_STATUS_OK && o->exit_code == 0)
		r->ok++;
	if (!r->first_stdout)
		r->first_stdout = xstrndup(buf_str(&o->out), o->out.len);
	pool_release(r->pool, sb);
	if (r->finished == r->warm_n) {
		warm_report(r);
		pool_shutdown(r->pool, on_pool_down, r);
		return;
	}
	take_next(r);
}

static void on_warm_sandbox(sandbox *sb, const err *e, void *arg)
{
	run *r = arg;
	err *e2 = NULL;
	if (!sb || sandbox_run(sb, &r->task, &r->lim, on_warm_done, r, &e2) < 0) {
		fprintf(stderr, "aisp: %s\n", e ? err_msg(e) : err_msg(e2));
		err_free(e2);
		r->status = 126;
		if (sb)
			pool_release(r->pool, sb);
		pool_shutdown(r->pool, on_pool_down, r);
	}
}

/* Waits until the pool holds a warm sandbox, so every run measures the warm path. */
static void on_poll(evutil_socket_t fd, short what, void *arg)
{
	run *r = arg;
	pool_stats s;
	pool_get_stats(r->pool, &s);
	if (s.warm == 0) {
		struct timeval tv = {0, 2000};
		evtimer_add(r->poll, &tv);
		return;
	}
	bool hit;
	r->t_take = now_mono_us();
	pool_take(r->pool, &r->spec, on_warm_sandbox, r, &hit);
}

static void take_next(run *r)
{
	struct timeval tv = {0, 0};
	evtimer_add(r->poll, &tv);
}

/* ---- setup ---- */

static int parse_args(run *r, int argc, char **argv, cli_task_opts *t, const char **rt_name,
                      const char **store, const char **state, int *pool_size)
{
	err *e = NULL;
	for (int i = 1; i < argc; i++) {
		int k = cli_task_opt(t, argc, argv, &i, &e);
		if (k < 0) {
			fprintf(stderr, "aisp run: %s\n", err_msg(e));
			err_free(e);
			return -1;
		}
		if (k > 0)
			continue;
		const char *a = argv[i];
		const char *need = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--json")) {
			r->json = true;
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			exit(0);
		} else if (need && !strcmp(a, "--warm")) {
			r->warm_n = atoi(argv[++i]);
		} else if (need && !strcmp(a, "--pool-size")) {
			*pool_size = atoi(argv[++i]);
		} else if (need && !strcmp(a, "--out")) {
			r->out_dir = argv[++i];
		} else if (need && !strcmp(a, "--store")) {
			*store = argv[++i];
		} else if (need && !strcmp(a, "--state-dir")) {
			*state = argv[++i];
		} else if (a[0] != '-' && !t->code && !t->code_file) {
			t->code_file = a;
		} else {
			fprintf(stderr, "aisp run: unknown or incomplete option \"%s\"\n", a);
			usage(stderr);
			return -1;
		}
	}
	*rt_name = t->runtime ? t->runtime : "runsc";
	t->runtime = NULL; /* the runtime is chosen here, not validated against a node */
	if (r->warm_n < 0 || *pool_size < 1) {
		fprintf(stderr, "aisp run: --warm and --pool-size must be positive\n");
		return -1;
	}
	return 0;
}

static int setup_task(run *r, const cli_task_opts *t, err **e)
{
	buf json = BUF_INIT;
	int rc = cli_task_json(t, &json, e);
	if (rc == 0)
		rc = proto_task_parse(buf_str(&json), json.len, &r->task, NULL, e);
	buf_deinit(&json);
	if (rc < 0)
		return err_prefix(e, "rejected");
	proto_limits defaults;
	proto_limits_default(&defaults);
	r->lim = r->task.limits;
	if (proto_limits_resolve(&r->lim, &defaults, &defaults, e) < 0)
		return err_prefix(e, "rejected");
	return 0;
}

static int setup_pool(run *r, const char *rt_name, const char *store, const char *state,
                      sandbox_image *img, err **e)
{
	if (sandbox_image_resolve(store, r->task.image ? r->task.image : "default", img, e) < 0)
		return -1;
	sandbox_runtime_opts ro = {.name = rt_name, .kind = sandbox_runtime_kind_for(rt_name)};
	if (sandbox_runtime_new(&r->rt, &ro, state, e) < 0)
		return -1;
	_cleanup_free_ char *agent = sandbox_agent_default_path();
	sandbox_ctx_opts co = {.state_dir = state, .agent_path = agent, .id_prefix = "aisp-run-"};
	if (sandbox_ctx_new(&r->sctx, r->base, &co, e) < 0)
		return -1;
	r->spec = (sandbox_spec){
	    .rt = r->rt, .rootfs = img->rootfs, .image_digest = img->digest, .lang = r->task.lang};
	sandbox_spec_set_limits(&r->spec, &r->lim);
	return 0;
}

static int run_once(run *r, const char *rt_name, const char *store, const char *state)
{
	cli_local_opts lo = {.runtime = rt_name,
	                     .image = r->task.image ? r->task.image : "default",
	                     .store = store,
	                     .state_dir = state};
	cli_local_result lr;
	err *e = NULL;
	if (cli_local_run(&lo, &r->task, &r->lim, &lr, &e) < 0) {
		fprintf(stderr, "aisp run: %s\n", err_msg(e));
		err_free(e);
		cli_local_result_deinit(&lr);
		return 126;
	}
	print_result(r, &lr, rt_name);
	cli_local_result_deinit(&lr);
	return r->status;
}

int cmd_run(int argc, char **argv)
{
	run r = {.status = 126};
	cli_task_opts t = {0};
	const char *rt_name, *store = getenv("AISP_IMAGE_STORE"), *state = NULL;
	int pool_size = 2;
	if (!store)
		store = SANDBOX_IMAGE_STORE_DEFAULT;
	if (parse_args(&r, argc, argv, &t, &rt_name, &store, &state, &pool_size) < 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	proto_task_init(&r.task);
	err *e = NULL;
	if (setup_task(&r, &t, &e) < 0) {
		fprintf(stderr, "aisp run: %s\n", err_msg(e));
		err_free(e);
		proto_task_deinit(&r.task);
		return 2;
	}
	if (r.warm_n == 0) {
		int status = run_once(&r, rt_name, store, state);
		proto_task_deinit(&r.task);
		return status;
	}
	bool state_given = state != NULL;
	_cleanup_free_ char *state_own = state ? NULL : xasprintf("/run/aisp/run-%d", getpid());
	if (!state)
		state = state_own;
	sandbox_image img = {0};
	r.base = event_base_new();
	pool_opts po = {0};
	r.lat_us = xcalloc((size_t)r.warm_n, sizeof(int64_t));
	r.poll = evtimer_new(r.base, on_poll, &r);
	if (spawn_loop_init(r.base, &e) < 0 ||
	    setup_pool(&r, rt_name, store, state, &img, &e) < 0 ||
	    pool_new(&r.pool, r.base, &pool_sandbox_ops, r.sctx, &po, &e) < 0 ||
	    pool_add(r.pool, &r.spec, (size_t)pool_size, &e) < 0) {
		fprintf(stderr, "aisp run: %s\n", err_msg(e));
		goto out;
	}
	take_next(&r);
	event_base_dispatch(r.base);
out:
	err_free(e);
	event_free(r.poll);
	pool_free(r.pool);
	/* Only an empty state dir is removed: a leaked container keeps its state for inspection. */
	if (r.sctx && sandbox_ctx_live(r.sctx) == 0 && !state_given)
		rm_rf_at(AT_FDCWD, state, NULL);
	sandbox_ctx_free(r.sctx);
	sandbox_runtime_free(r.rt);
	sandbox_image_deinit(&img);
	proto_task_deinit(&r.task);
	spawn_loop_deinit();
	event_base_free(r.base);
	free(r.lat_us);
	free(r.first_stdout);
	return r.status;
}
