/* Attested chains (attest/CHAINS.md): the canonical encodings of a chain's input and output,
 * the value digest of what flows between steps, the "chain" section of the statement and the
 * signed cost, and their verification step by step. Like encode.c, any change here changes
 * digests: the vectors in tests/unit/test-attest-chain.c pin the bytes. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest/attest.h"
#include "attest/internal.h"
#include "common/cleanup.h"
#include "common/xalloc.h"
#include "proto/json.h"

static void field_str(buf *b, const char *tag, const char *s)
{
	attest_field(b, tag, s ? s : "", s ? strlen(s) : 0);
}

/* A decimal, or "" when unset. */
static void field_opt(buf *b, const char *tag, bool set, int64_t v)
{
	char s[24] = "";
	if (set)
		snprintf(s, sizeof(s), "%" PRId64, v);
	field_str(b, tag, s);
}

static void field_value(buf *b, const proto_value *v)
{
	field_str(b, "value.kind", v->json ? "json" : "string");
	attest_field(b, "value", v->text ? v->text : "", v->text ? v->len : 0);
}

void attest_value_digest(const proto_value *v, char out[ATTEST_DIGEST_LEN])
{
	buf b = BUF_INIT;
	field_str(&b, "type", "aisp-value-v1");
	field_value(&b, v);
	attest_sha256_str(b.data, b.len, out);
	buf_deinit(&b);
}

static void step_input_fields(buf *out, const proto_step *s)
{
	field_str(out, "step.type", proto_step_type_name(s->type));
	if (s->type == PROTO_STEP_LLM) {
		_cleanup_free_ char *t = s->temperature_milli == PROTO_TEMPERATURE_UNSET
		                             ? xstrdup("")
		                             : proto_milli_str(s->temperature_milli);
		field_str(out, "step.model", s->model);
		field_str(out, "step.system_prompt", s->system_prompt);
		field_str(out, "step.temperature", t);
		field_opt(out, "step.max_tokens", s->max_tokens > 0, s->max_tokens);
	} else {
		field_str(out, "step.lang", proto_lang_name(s->lang));
		attest_field(out, "step.code", s->code, s->code_len);
		field_opt(out, "step.timeout_ms", true, s->timeout_ms);
	}
}

void attest_chain_input_encoding(const proto_task *t, buf *out)
{
	static char nothing[1] = "";
	static const proto_value empty = {false, nothing, 0};
	field_str(out, "type", "aisp-chain-input-v1");
	field_value(out, t->input ? t->input : &empty);
	field_opt(out, "steps", true, (int64_t)t->n_steps);
	for (size_t i = 0; i < t->n_steps; i++)
		step_input_fields(out, &t->steps[i]);
}

static void step_output_fields(buf *out, const proto_step_run *s)
{
	char d[ATTEST_DIGEST_LEN] = "";
	if (s->output.text)
		attest_value_digest(&s->output, d);
	field_str(out, "step.type", proto_step_type_name(s->type));
	field_str(out, "step.status", proto_status_name(s->status));
	field_str(out, "step.output", d);
	if (s->type == PROTO_STEP_LLM) {
		field_str(out, "step.model", s->model);
		field_str(out, "step.request", s->request_digest);
		field_str(out, "step.response", s->response_digest);
		field_opt(out, "step.prompt_tokens", s->usage_reported, s->prompt_tokens);
		field_opt(out, "step.completion_tokens", s->usage_reported, s->completion_tokens);
		return;
	}
	field_str(out, "step.lang", proto_lang_name(s->lang));
	field_opt(out, "step.exit_code", s->exit_code >= 0, s->exit_code);
	field_opt(out, "step.signal", s->signal > 0, s->signal);
	attest_field(out, "step.stdout", s->out.data, s->out.len);
	attest_field(out, "step.stderr", s->err.data, s->err.len);
	field_str(out, "step.stdout_truncated", s->stdout_truncated ? "true" : "false");
	field_str(out, "step.stderr_truncated", s->stderr_truncated ? "true" : "false");
}

void attest_chain_output_encoding(const proto_chain_run *c, buf *out)
{
	field_str(out, "type", "aisp-chain-output-v1");
	field_opt(out, "steps", true, (int64_t)c->n_steps);
	for (size_t i = 0; i < c->n_steps; i++)
		step_output_fields(out, &c->steps[i]);
	field_opt(out, "failed_step", c->failed_step >= 0, c->failed_step);
}

/* ---- the statement ---- */

static void jnull(proto_gen *j)
{
	proto_json_gen_null(j);
}

static void jopt(proto_gen *j, const char *k, bool set, int64_t v)
{
	proto_json_gen_str(j, k);
	if (set)
		proto_json_gen_int(j, v);
	else
		jnull(j);
}

/* The digest of what step i received: the task's input, or the step before's output. */
static void input_digest(const proto_task *t, const proto_chain_run *c, size_t i,
                         char out[ATTEST_DIGEST_LEN])
{
	const proto_value *in = i ? &c->steps[i - 1].output : t ? t->input : NULL;
	out[0] = '\0';
	if (in && in->text)
		attest_value_digest(in, out);
}

static void gen_llm_step(proto_gen *j, const proto_step *def, const proto_step_run *s)
{
	proto_json_gen_kstr(j, "model", def ? def->model : "");
	proto_json_gen_kstr(j, "provider_model", s->model ? s->model : "");
	proto_json_gen_kstr(j, "request_digest", s->request_digest ? s->request_digest : "");
	proto_json_gen_kstr(j, "response_digest", s->response_digest ? s->response_digest : "");
	proto_json_gen_str(j, "usage");
	proto_json_gen_open(j, true);
	jopt(j, "prompt_tokens", s->usage_reported, s->prompt_tokens);
	jopt(j, "completion_tokens", s->usage_reported, s->completion_tokens);
	proto_json_gen_close(j, true);
	proto_json_gen_kint(j, "attempts", s->attempts);
}

static void gen_script_step(proto_gen *j, const proto_step_run *s)
{
	char d[ATTEST_DIGEST_LEN];
	proto_json_gen_kstr(j, "lang", proto_lang_name(s->lang));
	jopt(j, "exit_code", s->exit_code >= 0, s->exit_code);
	jopt(j, "signal", s->signal > 0, s->signal);
	attest_sha256_str(s->out.data, s->out.len, d);
	proto_json_gen_kstr(j, "stdout_digest", d);
	attest_sha256_str(s->err.data, s->err.len, d);
	proto_json_gen_kstr(j, "stderr_digest", d);
	proto_json_gen_str(j, "usage");
	proto_json_gen_open(j, true);
	proto_json_gen_kint(j, "wall_ms", s->usage.wall_ms);
	proto_json_gen_kint(j, "cpu_ms", s->usage.cpu_ms);
	proto_json_gen_kint(j, "memory_peak_bytes", s->usage.memory_peak_bytes);
	proto_json_gen_close(j, true);
}

static void gen_step(proto_gen *j, const proto_task *t, const proto_chain_run *c, size_t i)
{
	const proto_step_run *s = &c->steps[i];
	char in[ATTEST_DIGEST_LEN], out[ATTEST_DIGEST_LEN] = "";
	input_digest(t, c, i, in);
	if (s->output.text)
		attest_value_digest(&s->output, out);
	proto_json_gen_open(j, true);
	proto_json_gen_kint(j, "step", (long long)i);
	proto_json_gen_kstr(j, "type", proto_step_type_name(s->type));
	proto_json_gen_kstr(j, "status", proto_status_name(s->status));
	proto_json_gen_str(j, "error");
	if (s->error)
		proto_json_gen_text(j, s->error, strlen(s->error));
	else
		jnull(j);
	proto_json_gen_kstr(j, "input_digest", in);
	proto_json_gen_kstr(j, "output_digest", out);
	if (s->type == PROTO_STEP_LLM)
		gen_llm_step(j, t && i < t->n_steps ? &t->steps[i] : NULL, s);
	else
		gen_script_step(j, s);
	proto_json_gen_close(j, true);
}

void attest_gen_chain(proto_gen *j, const proto_task *t, const proto_chain_run *c)
{
	if (!c)
		return;
	const proto_value *v = proto_chain_run_output(c);
	char d[ATTEST_DIGEST_LEN] = "";
	if (v)
		attest_value_digest(v, d);
	proto_json_gen_str(j, "chain");
	proto_json_gen_open(j, true);
	proto_json_gen_kstr(j, "output_digest", d);
	jopt(j, "failed_step", c->failed_step >= 0, c->failed_step);
	proto_json_gen_str(j, "steps");
	proto_json_gen_open(j, false);
	for (size_t i = 0; i < c->n_steps; i++)
		gen_step(j, t, c, i);
	proto_json_gen_close(j, false);
	proto_json_gen_close(j, true);
}

void attest_gen_cost(proto_gen *j, const proto_cost *cost)
{
	if (!cost)
		return;
	_cleanup_free_ char *text = proto_cost_json(cost);
	proto_json_gen_str(j, "cost");
	proto_json_gen_json(j, text, strlen(text), NULL);
}
