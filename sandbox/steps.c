/* A chain's script steps on the host side (proto/CHAINS.md; frame.h, "A chain's script
 * steps"): the STEP frame, the STEP_RESULT it answers with, and a step's record built from
 * what the step reported, for the node and for aisp verify --replay alike. The sandbox's
 * lifecycle (lifecycle.c) runs a step as it runs a task, from READY or from DONE after a step
 * that ended normally. */
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/xalloc.h"
#include "sandbox/lifecycle.h"

int sandbox_run_step(sandbox *sb, const sandbox_chain_step *st, const proto_limits *resolved,
                     sandbox_done_fn cb, void *arg, err **e)
{
	int rc = -1;
	if (st->lang != PROTO_LANG_PYTHON && st->lang != PROTO_LANG_JAVASCRIPT)
		return err_set(e, 0, "a script step runs python or javascript");
	sandbox_step(sb, &(sandbox_event){.type = SANDBOX_EV_RUN_STEP,
	                                  .step = st,
	                                  .limits = resolved,
	                                  .done = cb,
	                                  .arg = arg,
	                                  .e = e,
	                                  .rc = &rc});
	return rc;
}

const char *sandbox_step_output(const sandbox *sb, size_t *len)
{
	*len = sb->step_output.len;
	return sb->step_mode && sb->step_output.data ? buf_str(&sb->step_output) : NULL;
}

static uint8_t agent_lang(proto_lang l)
{
	return l == PROTO_LANG_PYTHON ? 0 : 1;
}

void sandbox_steps_send(sandbox *sb, const sandbox_chain_step *st, const proto_limits *l)
{
	sandbox_frame_buf b = {0};
	uint8_t lang = agent_lang(st->lang);
	sandbox_frame_put_field(&b, FIELD_STEP_LANG, &lang, 1);
	sandbox_frame_put_field(&b, FIELD_CODE, st->code, st->code_len);
	sandbox_frame_put_field(&b, FIELD_STEP_INPUT, st->input, st->input_len);
	if (st->next_lang >= 0) {
		uint8_t next = agent_lang((proto_lang)st->next_lang);
		sandbox_frame_put_field(&b, FIELD_STEP_NEXT_LANG, &next, 1);
	}
	sandbox_frame_put_field_u64(&b, FIELD_STEP_OUTPUT_MAX, PROTO_STEP_OUTPUT_MAX);
	sandbox_frame_put_field_u64(&b, FIELD_STDOUT_MAX, (uint64_t)l->stdout_bytes);
	sandbox_frame_put_field_u64(&b, FIELD_STDERR_MAX, (uint64_t)l->stderr_bytes);
	sandbox_frame_put_field_u64(&b, FIELD_FSIZE_MAX, (uint64_t)l->fsize_bytes);
	sandbox_frame_put_field_u64(&b, FIELD_NOFILE_MAX, (uint64_t)l->nofile);
	sandbox_io_send(sb, FRAME_STEP, b.data, b.len);
	sandbox_frame_buf_free(&b);
}

void sandbox_steps_take_output(sandbox *sb, const uint8_t *p, size_t n)
{
	if (!sb->step_mode)
		return; /* not the agent's to send in a plain task: nothing is taken */
	buf_reset(&sb->step_output);
	if (n > PROTO_STEP_OUTPUT_MAX) {
		sb->step_over = true;
		if (!sb->out.error)
			sb->out.error =
			    xasprintf("the step's output is %zu bytes of JSON, above the "
			              "%u-byte limit",
			              n, PROTO_STEP_OUTPUT_MAX);
		return;
	}
	buf_append(&sb->step_output, p, n);
}

/* The first PROTO_STEP_LOG_MAX bytes of a stream; the rest dropped and flagged. */
static void keep_log(buf *dst, bool *trunc, const buf *src, bool was_trunc)
{
	size_t n = src->len < PROTO_STEP_LOG_MAX ? src->len : PROTO_STEP_LOG_MAX;
	buf_append(dst, src->data ? src->data : (const uint8_t *)"", n);
	*trunc = was_trunc || src->len > n;
}

/* The output's JSON as a value; a failure makes the step's status and error. */
static void take_value(proto_step_run *rec, const char *json, size_t len)
{
	_cleanup_err_ err *e = NULL;
	if (!json) {
		rec->status = PROTO_STATUS_ERROR;
		rec->error = xstrdup("the script produced no output");
		return;
	}
	if (proto_value_from_json(json, len, &rec->output, &e) < 0) {
		rec->status = PROTO_STATUS_ERROR;
		rec->error = xasprintf("the step's output is %s", err_msg(e));
		return;
	}
	size_t n = 0;
	free(proto_value_json(&rec->output, &n));
	if (n > PROTO_STEP_OUTPUT_MAX) {
		proto_value_deinit(&rec->output);
		rec->status = PROTO_STATUS_OUTPUT_LIMIT;
		rec->error = xasprintf("the step's output is %zu bytes of JSON, above the %u-byte "
		                       "limit",
		                       n, PROTO_STEP_OUTPUT_MAX);
	}
}

void sandbox_step_record(const proto_output *o, const proto_usage *u, const char *json, size_t len,
                         proto_step_run *rec)
{
	rec->status = o->status;
	rec->exit_code = o->exit_code;
	rec->signal = o->signal;
	if (u)
		rec->usage = *u;
	keep_log(&rec->out, &rec->stdout_truncated, &o->out, o->stdout_truncated);
	keep_log(&rec->err, &rec->stderr_truncated, &o->err, o->stderr_truncated);
	if (o->status == PROTO_STATUS_OK)
		take_value(rec, json, len);
	if (rec->status != PROTO_STATUS_OK && !rec->error)
		rec->error = xstrdup(
		    o->error                              ? o->error
		    : rec->status == PROTO_STATUS_TIMEOUT ? "the step ran past its timeout_ms"
		    : rec->status == PROTO_STATUS_OOM     ? "the step ran out of memory"
		                                          : proto_status_name(rec->status));
}
