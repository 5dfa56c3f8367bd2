/* A chain's steps in a task's life (proto/CHAINS.md; task-internal.h): between acquire and
 * publish, each step is a state of the task's table. An llm step calls the node's llm client
 * on the loop (TS_STEP_LLM: the call in flight, cancelled by a cancel or the shutdown); a
 * script step runs in the chain's one sandbox (TS_STEP_SCRIPT), the sandbox kept between steps
 * and destroyed after the last. Each step's output is the next one's input. A step that fails
 * ends the chain: the result records the steps that ran, which one failed and why, and what
 * each cost. A sandbox error is the node's fault, as for a plain task: the whole chain runs
 * again later (its llm calls too). */
#include <stdlib.h>
#include <string.h>

#include "attest/attest.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "daemon/cost.h"
#include "daemon/task-internal.h"

/* ---- cost ---- */

proto_cost_item *chain_cost_usage(const task_host *h, proto_cost *c, proto_cost_kind kind, int step,
                                  const proto_usage *u)
{
	proto_cost_item *it = proto_cost_add(c, kind);
	it->step = step;
	it->execution_ms = u->wall_ms;
	it->cpu_ms = u->cpu_ms;
	it->memory_peak_bytes = u->memory_peak_bytes;
	it->source =
	    h->cpu_second_nusd || h->gib_second_nusd ? PROTO_COST_SRC_USAGE : PROTO_COST_SRC_NONE;
	it->cost = cost_usage_micro_usd(u, h->cpu_second_nusd, h->gib_second_nusd);
	if (__builtin_add_overflow(c->total, it->cost, &c->total))
		c->total = INT64_MAX;
	return it;
}

static void cost_llm(task *t, const proto_step *s, const llm_result *r)
{
	proto_cost_item *it = proto_cost_add(t->cost, PROTO_COST_LLM);
	it->step = (int)t->step;
	it->model = xstrdup(s->model);
	it->prompt_tokens = r ? r->prompt_tokens : 0;
	it->completion_tokens = r ? r->completion_tokens : 0;
	it->cost = r ? r->cost_micro_usd : 0;
	it->source = !r                                       ? PROTO_COST_SRC_NONE
	             : r->cost_source == LLM_COST_PROVIDER    ? PROTO_COST_SRC_PROVIDER
	             : r->cost_source == LLM_COST_PRICE_TABLE ? PROTO_COST_SRC_PRICE_TABLE
	                                                      : PROTO_COST_SRC_NONE;
	if (__builtin_add_overflow(t->cost->total, it->cost, &t->cost->total))
		t->cost->total = INT64_MAX;
}

/* ---- the end of a chain ---- */

/* The chain's usage: its wall time, the CPU and the highest memory of its script steps. */
static void chain_usage(const task *t, const proto_chain_run *c, proto_usage *u)
{
	*u = (proto_usage){.wall_ms = t->finished_ms - t->started_ms};
	for (size_t i = 0; i < c->n_steps; i++) {
		u->cpu_ms += c->steps[i].usage.cpu_ms;
		if (c->steps[i].usage.memory_peak_bytes > u->memory_peak_bytes)
			u->memory_peak_bytes = c->steps[i].usage.memory_peak_bytes;
	}
}

/* Signs and publishes the chain's result: every step passed, or the last one failed. */
static void chain_end(task *t)
{
	proto_output o;
	proto_output_init(&o);
	o.chain = steal_pointer(&t->run);
	proto_step_run *last = &o.chain->steps[o.chain->n_steps - 1];
	o.status = last->status;
	if (last->status != PROTO_STATUS_OK) {
		o.chain->failed_step = (int)(o.chain->n_steps - 1);
		o.error = xasprintf("step %zu (%s): %s", o.chain->n_steps - 1,
		                    proto_step_type_name(last->type), last->error);
	}
	t->finished_ms = now_wall_ms();
	metrics_hist_observe(&t->h->m->execute, (double)(now_mono_us() - t->t_run_us) / 1e6);
	proto_usage u;
	chain_usage(t, o.chain, &u);
	task_log(t, LOG_LVL_INFO, "chain_ended", "status", proto_status_name(o.status), "steps_run",
	         NUM(o.chain->n_steps), "steps", NUM(t->t.n_steps), "cost_micro_usd",
	         NUM(t->cost->total), NULL);
	int rc = task_make_result(t, &o, &u);
	proto_output_deinit(&o);
	sandbox *sb = steal_pointer(&t->sb);
	if (sb) /* after the result: its teardown must not delay the publish */
		pool_release(t->h->pool, sb);
	if (rc < 0)
		return task_give_back(t);
	task_publish(t);
}

/* The step failed: the chain ends with it. */
static void step_failed(task *t, proto_step_run *rec, proto_status status, const char *why)
{
	rec->status = status;
	free(rec->error);
	rec->error = xstrdup(why);
	chain_end(t);
}

/* The step's output counted against the chain's caps; false (the step failed) when over. */
static bool within_caps(task *t, proto_step_run *rec)
{
	size_t n = 0;
	free(proto_value_json(&rec->output, &n));
	if (n > PROTO_STEP_OUTPUT_MAX || t->outputs_len + n > PROTO_CHAIN_OUTPUT_MAX) {
		_cleanup_free_ char *why =
		    n > PROTO_STEP_OUTPUT_MAX
		        ? xasprintf("the output is %zu bytes of JSON, above the %u-byte limit", n,
		                    PROTO_STEP_OUTPUT_MAX)
		        : xasprintf("the chain's outputs would total %zu bytes of JSON, above the "
		                    "%u-byte limit",
		                    t->outputs_len + n, PROTO_CHAIN_OUTPUT_MAX);
		proto_value_deinit(&rec->output);
		step_failed(t, rec, PROTO_STATUS_OUTPUT_LIMIT, why);
		return false;
	}
	t->outputs_len += n;
	return true;
}

static void chain_next(task *t);

/* ---- llm steps ---- */

static const proto_value *step_input(const task *t)
{
	return t->step ? &t->run->steps[t->step - 1].output : t->t.input;
}

static void on_llm(llm_result *r, const err *e, void *arg)
{
	task *t = arg;
	task_ev ev = {.kind = TE_LLM, .llm = r, .e = e};
	task_step(t, &ev);
	task_drop(t);
}

static void start_llm(task *t, const proto_step *s)
{
	task_enter(t, TS_STEP_LLM);
	size_t n;
	const char *in = proto_value_input_text(step_input(t), &n);
	llm_request rq = {
	    .model = s->model,
	    .system_prompt = s->system_prompt,
	    .input = in,
	    .input_len = n,
	    .temperature_milli = s->temperature_milli,
	    .max_tokens = s->max_tokens,
	};
	_cleanup_err_ err *e = NULL;
	t->call = t->h->llm ? llm_call_start(t->h->llm, &rq, on_llm, task_hold(t), &e) : NULL;
	if (t->call)
		return;
	if (t->h->llm)
		task_drop(t);
	cost_llm(t, s, NULL);
	step_failed(t, proto_chain_run_add(t->run, PROTO_STEP_LLM), PROTO_STATUS_ERROR,
	            e ? err_msg(e) : "this node runs no llm steps");
}

/* What the call brought: its digests and usage; the answer when there is one. */
static void take_llm(proto_step_run *rec, llm_result *r)
{
	char d[ATTEST_DIGEST_LEN];
	rec->attempts = r->attempts;
	if (r->request_json) {
		attest_sha256_str(r->request_json, r->request_len, d);
		rec->request_digest = xstrdup(d);
	}
	if (r->response_json) {
		attest_sha256_str(r->response_json, r->response_len, d);
		rec->response_digest = xstrdup(d);
	}
	rec->model = steal_pointer(&r->model);
	rec->usage_reported = r->usage_reported;
	rec->prompt_tokens = r->prompt_tokens;
	rec->completion_tokens = r->completion_tokens;
	rec->cost_micro_usd = r->cost_micro_usd;
}

void chain_on_llm(task *t, const task_ev *ev)
{
	const proto_step *s = &t->t.steps[t->step];
	t->call = NULL;
	proto_step_run *rec = proto_chain_run_add(t->run, PROTO_STEP_LLM);
	rec->usage.wall_ms = (now_mono_us() - t->t_step_us + 500) / 1000;
	take_llm(rec, ev->llm);
	cost_llm(t, s, ev->e ? NULL : ev->llm);
	if (ev->e) {
		task_log(t, LOG_LVL_INFO, "step_failed", "step", NUM(t->step), "type", "llm",
		         "model", task_shown(t, s->model, "(sealed)"), "error",
		         task_shown(t, err_msg(ev->e), "(sealed)"), NULL);
		return step_failed(t, rec, PROTO_STATUS_ERROR, err_msg(ev->e));
	}
	_cleanup_err_ err *e = NULL;
	if (proto_value_from_string(ev->llm->content, ev->llm->content_len, &rec->output, &e) < 0)
		return step_failed(t, rec, PROTO_STATUS_ERROR, "the answer is not text");
	if (!within_caps(t, rec))
		return;
	t->step++;
	chain_next(t);
}

/* A cancel (or a revocation) while the call is in flight: it is stopped; the chain ends
 * cancelled (or revoked). */
void chain_cancel_llm(task *t, const task_ev *ev)
{
	task_note_cancel(t, ev);
	llm_call_cancel(steal_pointer(&t->call));
	task_drop(t); /* the call's reference */
	proto_step_run *rec = proto_chain_run_add(t->run, PROTO_STEP_LLM);
	rec->usage.wall_ms = (now_mono_us() - t->t_step_us + 500) / 1000;
	cost_llm(t, &t->t.steps[t->step], NULL);
	_cleanup_free_ char *why = task_stop_reason(t);
	step_failed(t, rec, t->stop, why);
}

void chain_release_llm(task *t, const task_ev *ev)
{
	llm_call_cancel(steal_pointer(&t->call));
	task_drop(t);
	sandbox *sb = steal_pointer(&t->sb);
	if (sb)
		pool_release(t->h->pool, sb);
	task_release_entry(t, ev);
}

/* ---- script steps ---- */

/* The chain's sandbox failed: the node's fault; the chain runs again from its start. */
static void chain_fault(task *t, const char *why)
{
	sandbox *sb = steal_pointer(&t->sb);
	if (sb)
		pool_release(t->h->pool, sb);
	t->run = proto_chain_run_free(t->run);
	t->cost = proto_cost_free(t->cost);
	task_fault(t, why);
}

static void start_script(task *t, const proto_step *s)
{
	task_enter(t, TS_STEP_SCRIPT);
	size_t n;
	const char *in = proto_value_input_text(step_input(t), &n);
	sandbox_chain_step st = {
	    .lang = s->lang,
	    .code = s->code,
	    .code_len = s->code_len,
	    .input = in,
	    .input_len = n,
	    .timeout_ms = s->timeout_ms,
	    .next_lang = proto_chain_next_lang(&t->t, t->step + 1),
	};
	_cleanup_err_ err *e = NULL;
	if (sandbox_run_step(t->sb, &st, &t->plan.limits, task_on_ran, task_hold(t), &e) < 0) {
		task_drop(t);
		chain_fault(t, err_msg(e));
	}
}

void chain_on_script(task *t, const task_ev *ev)
{
	if (ev->out->status == PROTO_STATUS_SANDBOX_ERROR)
		return chain_fault(t,
		                   task_shown(t, ev->out->error ? ev->out->error : "sandbox error",
		                              TASK_SEALED_SANDBOX_ERROR));
	proto_step_run *rec = proto_chain_run_add(t->run, PROTO_STEP_SCRIPT);
	rec->lang = t->t.steps[t->step].lang;
	size_t n = 0;
	const char *json = sandbox_step_output(ev->sb, &n);
	sandbox_step_record(ev->out, ev->usage, json, n, rec);
	rec->cost_micro_usd =
	    chain_cost_usage(t->h, t->cost, PROTO_COST_SCRIPT, (int)t->step, ev->usage)->cost;
	if (rec->status != PROTO_STATUS_OK) {
		task_log(t, LOG_LVL_INFO, "step_failed", "step", NUM(t->step), "type", "script",
		         "status", proto_status_name(rec->status), "error",
		         task_shown(t, rec->error ? rec->error : "", "(sealed)"), NULL);
		return chain_end(t);
	}
	if (!within_caps(t, rec))
		return;
	t->step++;
	chain_next(t);
}

/* ---- the chain ---- */

static void chain_next(task *t)
{
	if (t->step == t->t.n_steps)
		return chain_end(t);
	const proto_step *s = &t->t.steps[t->step];
	t->t_step_us = now_mono_us();
	task_log(t, LOG_LVL_DEBUG, "step", "step", NUM(t->step), "type",
	         proto_step_type_name(s->type), NULL);
	if (s->type == PROTO_STEP_LLM)
		start_llm(t, s);
	else
		start_script(t, s);
}

void chain_start(task *t, sandbox *sb)
{
	t->sb = sb;
	t->started_ms = now_wall_ms();
	t->t_run_us = now_mono_us();
	t->step = 0;
	t->outputs_len = 0;
	proto_chain_run_free(t->run);
	proto_cost_free(t->cost);
	t->run = proto_chain_run_new();
	t->cost = proto_cost_new();
	chain_next(t);
}
