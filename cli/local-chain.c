/* A chain replayed locally (local.h, cli_local_chain): the script steps in one fresh sandbox,
 * one after another, on a private event loop; the llm steps from the result's records. The
 * digests are computed exactly as the node computes them. */
#include "cli/local.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/xalloc.h"

typedef struct chain_run {
	cli_local *loc;
	const proto_task *task;
	const proto_limits *lim;
	const proto_chain_run *recorded;
	proto_chain_run *run; /* the replay's, steps appended as they end */
	sandbox *sb;
	size_t step;
	err *e;
	bool finished;
} chain_run;

static void next(chain_run *c);

static void on_gone(void *arg)
{
	chain_run *c = arg;
	c->finished = true;
	event_base_loopbreak(c->loc->base);
}

/* The replay is over (every step, a failed one, or the sandbox's own failure). */
static void stop(chain_run *c)
{
	sandbox *sb = steal_pointer(&c->sb);
	if (sb)
		sandbox_destroy(sb, on_gone, c);
	else
		on_gone(c);
}

static const proto_value *input_of(const chain_run *c)
{
	return c->step ? &c->run->steps[c->step - 1].output : c->task->input;
}

static void on_step(sandbox *sb, const proto_output *o, const proto_usage *u, void *arg)
{
	chain_run *c = arg;
	if (o->status == PROTO_STATUS_SANDBOX_ERROR) {
		err_set(&c->e, 0, "step %zu: %s", c->step, o->error ? o->error : "sandbox error");
		return stop(c);
	}
	proto_step_run *rec = proto_chain_run_add(c->run, PROTO_STEP_SCRIPT);
	rec->lang = c->task->steps[c->step].lang;
	size_t n = 0;
	const char *json = sandbox_step_output(sb, &n);
	sandbox_step_record(o, u, json, n, rec);
	if (rec->status != PROTO_STATUS_OK) {
		c->run->failed_step = (int)c->step;
		return stop(c);
	}
	c->step++;
	next(c);
}

static void run_script(chain_run *c, const proto_step *s)
{
	size_t n;
	const char *in = proto_value_input_text(input_of(c), &n);
	sandbox_chain_step st = {.lang = s->lang,
	                         .code = s->code,
	                         .code_len = s->code_len,
	                         .input = in,
	                         .input_len = n,
	                         .timeout_ms = s->timeout_ms,
	                         .next_lang = proto_chain_next_lang(c->task, c->step + 1)};
	if (sandbox_run_step(c->sb, &st, c->lim, on_step, c, &c->e) < 0)
		stop(c);
}

/* An llm step: its record, as the result carries it. */
static void take_recorded(chain_run *c)
{
	c->run->steps = xreallocarray(c->run->steps, c->run->n_steps + 1, sizeof(proto_step_run));
	proto_step_run_copy(&c->run->steps[c->run->n_steps++], &c->recorded->steps[c->step]);
}

/* The steps, as far as the result recorded them. */
static void next(chain_run *c)
{
	for (; c->step < c->recorded->n_steps && c->step < c->task->n_steps; c->step++) {
		const proto_step *s = &c->task->steps[c->step];
		if (s->type == PROTO_STEP_SCRIPT)
			return run_script(c, s);
		take_recorded(c);
		if (c->run->steps[c->step].status != PROTO_STATUS_OK) {
			c->run->failed_step = (int)c->step;
			break;
		}
	}
	stop(c);
}

static void on_ready(sandbox *sb, const err *e, void *arg)
{
	chain_run *c = arg;
	c->sb = sb;
	if (e) {
		err_set(&c->e, 0, "%s", err_msg(e));
		return stop(c);
	}
	next(c);
}

/* The chain's status and error, as the node makes them, from its last step. */
static void chain_output(proto_output *o)
{
	proto_chain_run *c = o->chain;
	if (!c->n_steps)
		return;
	const proto_step_run *last = &c->steps[c->n_steps - 1];
	o->status = last->status;
	if (last->status != PROTO_STATUS_OK)
		o->error = xasprintf("step %zu (%s): %s", c->n_steps - 1,
		                     proto_step_type_name(last->type), last->error);
}

int cli_local_chain(const cli_local_opts *o, const proto_task *t, const proto_limits *lim,
                    const proto_chain_run *recorded, cli_local_result *r, err **e)
{
	cli_local loc;
	chain_run c = {.loc = &loc, .task = t, .lim = lim, .recorded = recorded};
	int rc = -1;
	if (cli_local_open(&loc, o, t, lim, r, e) < 0)
		goto out;
	c.run = r->out.chain = proto_chain_run_new();
	if (sandbox_create(loc.ctx, &loc.spec, on_ready, &c, &c.sb, e) < 0)
		goto out;
	while (!c.finished)
		event_base_dispatch(loc.base);
	if (c.e) {
		*e = steal_pointer(&c.e);
		err_prefix(e, "sandbox_error");
		goto out;
	}
	chain_output(&r->out);
	rc = attest_compute_digests(r->image_digest, t, &r->out, r->env, r->n_env, &r->digests, e);
out:
	cli_local_close(&loc);
	return rc;
}
