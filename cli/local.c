/* One task in one local sandbox (see local.h): the same bundle, agent, status logic and
 * digests as the node, driven by a private event loop. */
#include "cli/local.h"

#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/spawn.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "sandbox/sandbox.h"

typedef struct local_run {
	struct event_base *base;
	const proto_task *task;
	const proto_limits *lim;
	cli_local_result *res;
	err *e;
	bool finished;
} local_run;

static void copy_output(proto_output *dst, const proto_output *src)
{
	proto_output_init(dst);
	dst->status = src->status;
	dst->exit_code = src->exit_code;
	dst->signal = src->signal;
	buf_append(&dst->out, src->out.data, src->out.len);
	buf_append(&dst->err, src->err.data, src->err.len);
	dst->stdout_truncated = src->stdout_truncated;
	dst->stderr_truncated = src->stderr_truncated;
	dst->files_truncated = src->files_truncated;
	dst->files = xcalloc(src->n_files, sizeof(proto_file));
	for (size_t i = 0; i < src->n_files; i++) {
		dst->files[i].path = xstrdup(src->files[i].path);
		dst->files[i].data = xmemdup(src->files[i].data, src->files[i].len);
		dst->files[i].len = src->files[i].len;
	}
	dst->n_files = src->n_files;
	dst->return_value = src->return_value ? xstrdup(src->return_value) : NULL;
	dst->error = src->error ? xstrdup(src->error) : NULL;
}

static void on_gone(void *arg)
{
	local_run *l = arg;
	l->finished = true;
	event_base_loopbreak(l->base);
}

static void on_done(sandbox *sb, const proto_output *o, const proto_usage *u, void *arg)
{
	local_run *l = arg;
	copy_output(&l->res->out, o);
	l->res->usage = *u;
	sandbox_destroy(sb, on_gone, l);
}

/* A local run has no credential proxy: a node's credentials and the services' responses are
 * not here (a replay of a task with services expects its exit and output to differ). */
static void on_proxy(sandbox *sb, const sandbox_proxy_request *rq, void *arg)
{
	sandbox_proxy_reply_error(sb, "proxy_fetch is not available outside a node (aisp run, "
	                              "aisp verify --replay): no credential, no recorded response");
}

static void on_ready(sandbox *sb, const err *e, void *arg)
{
	local_run *l = arg;
	if (e) {
		err_set(&l->e, 0, "%s", err_msg(e));
	} else {
		sandbox_on_proxy(sb, on_proxy, l);
		if (sandbox_run(sb, l->task, l->lim, on_done, l, &l->e) == 0)
			return;
	}
	sandbox_destroy(sb, on_gone, l);
}

int cli_local_open(cli_local *l, const cli_local_opts *o, const proto_task *t,
                   const proto_limits *lim, cli_local_result *r, err **e)
{
	memset(l, 0, sizeof(*l));
	memset(r, 0, sizeof(*r));
	proto_output_init(&r->out);
	l->state_own = o->state_dir ? NULL : xasprintf("/run/aisp/run-%d", getpid());
	l->state = o->state_dir ? o->state_dir : l->state_own;
	_cleanup_free_ char *agent = sandbox_agent_default_path();
	l->base = event_base_new();
	if (spawn_loop_init(l->base, e) < 0 ||
	    sandbox_image_resolve(o->store, o->image, &l->img, e) < 0)
		return -1;
	snprintf(r->image_digest, sizeof(r->image_digest), "%s", l->img.digest);
	sandbox_runtime_opts ro = {.name = o->runtime,
	                           .kind = sandbox_runtime_kind_for(o->runtime)};
	if (sandbox_runtime_new(&l->rt, &ro, l->state, e) < 0)
		return -1;
	r->runtime_version = xstrdup(sandbox_runtime_version(l->rt));
	sandbox_ctx_opts co = {
	    .state_dir = l->state, .agent_path = agent, .id_prefix = "aisp-run-"};
	if (sandbox_ctx_new(&l->ctx, l->base, &co, e) < 0)
		return -1;
	l->spec = (sandbox_spec){
	    .rt = l->rt, .rootfs = l->img.rootfs, .image_digest = l->img.digest, .lang = t->lang};
	sandbox_spec_set_limits(&l->spec, lim);
	r->n_env = sandbox_environment(&l->spec, t, lim, &r->env);
	return 0;
}

void cli_local_close(cli_local *l)
{
	if ((!l->ctx || sandbox_ctx_live(l->ctx) == 0) && l->state_own)
		rm_rf_at(AT_FDCWD, l->state, NULL);
	sandbox_ctx_free(l->ctx);
	sandbox_runtime_free(l->rt);
	sandbox_image_deinit(&l->img);
	spawn_loop_deinit();
	if (l->base)
		event_base_free(l->base);
	free(l->state_own);
	memset(l, 0, sizeof(*l));
}

int cli_local_run(const cli_local_opts *o, const proto_task *t, const proto_limits *lim,
                  cli_local_result *r, err **e)
{
	cli_local loc;
	local_run l = {.task = t, .lim = lim, .res = r};
	sandbox *sb;
	int rc = -1;
	if (cli_local_open(&loc, o, t, lim, r, e) < 0)
		goto out;
	l.base = loc.base;
	if (sandbox_create(loc.ctx, &loc.spec, on_ready, &l, &sb, e) < 0)
		goto out;
	while (!l.finished)
		event_base_dispatch(l.base);
	if (l.e) {
		*e = steal_pointer(&l.e);
		err_prefix(e, "sandbox_error");
		goto out;
	}
	rc = attest_compute_digests(r->image_digest, t, &r->out, r->env, r->n_env, &r->digests, e);
out:
	cli_local_close(&loc);
	return rc;
}

void cli_local_result_deinit(cli_local_result *r)
{
	proto_output_deinit(&r->out);
	proto_env_list_free(r->env, r->n_env);
	free(r->runtime_version);
	memset(r, 0, sizeof(*r));
}
