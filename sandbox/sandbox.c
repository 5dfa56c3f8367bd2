/* The public sandbox calls (sandbox.h): a sandbox is created here and then lives in the state
 * machine of lifecycle.c, which every other call feeds an event: bundle -> `runtime run
 * --detach` -> agent READY -> one task over the framed pipe protocol -> output, status,
 * host-side usage -> destroy in the background. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/util.h"
#include "common/xalloc.h"
#include "sandbox/lifecycle.h"
#include "sandbox/runtime.h"

void sandbox_spec_set_limits(sandbox_spec *s, const proto_limits *l)
{
	s->cpus_milli = l->cpus_milli;
	s->memory_bytes = l->memory_bytes;
	s->pids = l->pids;
	s->workspace_bytes = l->workspace_bytes;
}

bool sandbox_spec_fits(const sandbox_spec *s, const proto_limits *l)
{
	return s->cpus_milli == l->cpus_milli && s->memory_bytes == l->memory_bytes &&
	       s->pids == l->pids && s->workspace_bytes == l->workspace_bytes;
}

static sandbox *sandbox_new(sandbox_ctx *ctx, const sandbox_spec *spec)
{
	sandbox *sb = xzalloc(sizeof(*sb));
	sb->ctx = ctx;
	sb->in_fd = sb->out_fd = -1;
	sb->userns_hold = sb->userns_fd = -1;
	sb->spec = *spec;
	sb->spec.rootfs = xstrdup(spec->rootfs);
	sb->spec.image_digest = spec->image_digest ? xstrdup(spec->image_digest) : NULL;
	sandbox_frame_reader_init(&sb->fr);
	proto_output_init(&sb->out);
	sb->seq = ++ctx->seq;
	snprintf(sb->id, sizeof(sb->id), "%s%d-%" PRIu64 "-%04x", ctx->id_prefix, (int)getpid(),
	         sb->seq, (unsigned)(now_mono_us() & 0xffff));
	return sb;
}

void sandbox_release(sandbox *sb)
{
	sandbox_userns_close(sb);
	sandbox_frame_reader_deinit(&sb->fr);
	sandbox_frame_buf_free(&sb->wbuf);
	proto_output_deinit(&sb->out);
	free(sb->return_error);
	free(sb->runtime_log);
	buf_deinit(&sb->step_output);
	free((char *)sb->spec.rootfs);
	free((char *)sb->spec.image_digest);
	free(sb);
}

int sandbox_create(sandbox_ctx *ctx, const sandbox_spec *spec, sandbox_ready_fn cb, void *arg,
                   sandbox **out, err **e)
{
	sandbox *sb = sandbox_new(ctx, spec);
	sb->ready_cb = cb;
	sb->ready_arg = arg;
	if (sandbox_container_start(sb, e) < 0) {
		err_prefix(e, "sandbox %s (%s)", sb->id, sandbox_runtime_name(spec->rt));
		sandbox_release(sb);
		return -1;
	}
	sandbox_lifecycle_begin(sb);
	*out = sb;
	return 0;
}

void sandbox_watch(sandbox *sb, sandbox_died_fn cb, void *arg)
{
	sb->died_cb = cb;
	sb->died_arg = arg;
}

void sandbox_stop(sandbox *sb, proto_status status, const char *why)
{
	sandbox_step(sb, &(sandbox_event){.type = SANDBOX_EV_STOP, .status = status, .why = why});
}

int sandbox_run(sandbox *sb, const proto_task *t, const proto_limits *resolved, sandbox_done_fn cb,
                void *arg, err **e)
{
	int rc = -1;
	sandbox_step(sb, &(sandbox_event){.type = SANDBOX_EV_RUN,
	                                  .task = t,
	                                  .limits = resolved,
	                                  .done = cb,
	                                  .arg = arg,
	                                  .e = e,
	                                  .rc = &rc});
	return rc;
}

void sandbox_set_payload(sandbox *sb, const sandbox_payload *p)
{
	sb->payload = p;
}

void sandbox_on_output(sandbox *sb, sandbox_output_fn cb, void *arg)
{
	sb->output_cb = cb;
	sb->output_arg = arg;
}

void sandbox_retire(sandbox *sb)
{
	sandbox_cgroup_set_prio(sb->ctx->cg, sb->id, SANDBOX_CGROUP_WARMING);
}

void sandbox_destroy(sandbox *sb, sandbox_gone_fn cb, void *arg)
{
	if (sb)
		sandbox_step(sb,
		             &(sandbox_event){.type = SANDBOX_EV_DESTROY, .gone = cb, .arg = arg});
}

const char *sandbox_id(const sandbox *sb)
{
	return sb->id;
}

sandbox_state sandbox_get_state(const sandbox *sb)
{
	return sb->state;
}

const sandbox_spec *sandbox_get_spec(const sandbox *sb)
{
	return &sb->spec;
}

int64_t sandbox_ready_at(const sandbox *sb)
{
	return sb->ready_at;
}

int sandbox_pid(const sandbox *sb)
{
	return sb->init_pid;
}

const char *sandbox_runtime_log(const sandbox *sb)
{
	return sb->runtime_log;
}
