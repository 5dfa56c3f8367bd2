/* Verifying an attested chain step by step (attest/CHAINS.md, "Verification"): each step the
 * result records against the statement's "chain" section, naming the first step that differs,
 * and the result's cost against the signed one. Also the reader of a statement's step claims,
 * for aisp verify --replay. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest/attest.h"
#include "attest/internal.h"
#include "common/cleanup.h"
#include "common/xalloc.h"
#include "proto/json.h"

static const char *sget(yajl_val o, const char *k)
{
	const char *s = proto_json_get_str(o, k);
	return s ? s : "";
}

/* An integer member, or -1 when null or missing. */
static int64_t iget(yajl_val o, const char *k)
{
	yajl_val v = proto_json_get(o, k);
	return YAJL_IS_INTEGER(v) ? YAJL_GET_INTEGER(v) : -1;
}

static void claim_step(yajl_val s, attest_step_claim *c)
{
	snprintf(c->type, sizeof(c->type), "%s", sget(s, "type"));
	snprintf(c->status, sizeof(c->status), "%s", sget(s, "status"));
	snprintf(c->input_digest, ATTEST_DIGEST_LEN, "%s", sget(s, "input_digest"));
	snprintf(c->output_digest, ATTEST_DIGEST_LEN, "%s", sget(s, "output_digest"));
	snprintf(c->stdout_digest, ATTEST_DIGEST_LEN, "%s", sget(s, "stdout_digest"));
	snprintf(c->stderr_digest, ATTEST_DIGEST_LEN, "%s", sget(s, "stderr_digest"));
	snprintf(c->request_digest, ATTEST_DIGEST_LEN, "%s", sget(s, "request_digest"));
	snprintf(c->response_digest, ATTEST_DIGEST_LEN, "%s", sget(s, "response_digest"));
	c->exit_code = iget(s, "exit_code");
	c->signal = iget(s, "signal");
	yajl_val u = proto_json_get(s, "usage");
	c->prompt_tokens = iget(u, "prompt_tokens");
	c->completion_tokens = iget(u, "completion_tokens");
}

int attest_chain_claims_from(yajl_val pred, attest_chain_claims *out, err **e)
{
	memset(out, 0, sizeof(*out));
	yajl_val ch = proto_json_get(pred, "chain");
	yajl_val steps = proto_json_get(ch, "steps");
	if (!YAJL_IS_OBJECT(ch) || !YAJL_IS_ARRAY(steps) || steps->u.array.len > PROTO_STEPS_MAX)
		return err_set(e, 0, "the statement has no chain section");
	snprintf(out->output_digest, ATTEST_DIGEST_LEN, "%s", sget(ch, "output_digest"));
	snprintf(out->input_digest, ATTEST_DIGEST_LEN, "%s", sget(pred, "input_digest"));
	snprintf(out->execution_digest, ATTEST_DIGEST_LEN, "%s", sget(pred, "execution_digest"));
	out->failed_step = iget(ch, "failed_step");
	out->n_steps = steps->u.array.len;
	for (size_t i = 0; i < out->n_steps; i++)
		claim_step(steps->u.array.values[i], &out->steps[i]);
	return 0;
}

int attest_chain_claims_read(const char *envelope_json, attest_chain_claims *out, err **e)
{
	_cleanup_yajl_val_ yajl_val env = NULL, st = NULL;
	if (proto_json_parse(envelope_json, strlen(envelope_json), &env, e) < 0)
		return err_prefix(e, "envelope");
	const char *p64 = proto_json_get_str(env, "payload");
	_cleanup_free_ uint8_t *pl = NULL;
	size_t len = 0;
	if (!p64 || proto_b64_decode(p64, strlen(p64), &pl, &len) < 0)
		return err_set(e, 0, "envelope has no base64 payload");
	if (proto_json_parse((const char *)pl, len, &st, e) < 0)
		return err_prefix(e, "statement");
	return attest_chain_claims_from(proto_json_get(st, "predicate"), out, e);
}

/* ---- comparing a recorded step with its claim ---- */

static char *step_name(size_t i, const proto_step_run *s)
{
	return xasprintf("step %zu (%s)", i, proto_step_type_name(s->type));
}

static char *differ(const char *what, const char *word, const char *recorded, const char *attested)
{
	return xasprintf("%s differs (%s %s, attested %s)", what, word,
	                 *recorded ? recorded : "none", *attested ? attested : "none");
}

static char *compare_script(const proto_step_run *s, const attest_step_claim *c, const char *w)
{
	char d[ATTEST_DIGEST_LEN];
	attest_sha256_str(s->out.data, s->out.len, d);
	if (strcmp(d, c->stdout_digest))
		return differ("stdout", w, d, c->stdout_digest);
	attest_sha256_str(s->err.data, s->err.len, d);
	if (strcmp(d, c->stderr_digest))
		return differ("stderr", w, d, c->stderr_digest);
	if ((s->exit_code >= 0 ? s->exit_code : -1) != c->exit_code ||
	    (s->signal > 0 ? s->signal : -1) != c->signal)
		return xasprintf("exit differs (%s %d/%d, attested %" PRId64 "/%" PRId64 ")", w,
		                 s->exit_code, s->signal, c->exit_code, c->signal);
	return NULL;
}

static char *compare_llm(const proto_step_run *s, const attest_step_claim *c, const char *w)
{
	const char *rq = s->request_digest ? s->request_digest : "";
	const char *rs = s->response_digest ? s->response_digest : "";
	if (strcmp(rq, c->request_digest))
		return differ("the request digest", w, rq, c->request_digest);
	if (strcmp(rs, c->response_digest))
		return differ("the response digest", w, rs, c->response_digest);
	int64_t p = s->usage_reported ? s->prompt_tokens : -1;
	int64_t k = s->usage_reported ? s->completion_tokens : -1;
	if (p != c->prompt_tokens || k != c->completion_tokens)
		return xasprintf("usage differs (%s %" PRId64 "+%" PRId64
		                 " tokens, attested %" PRId64 "+%" PRId64 ")",
		                 w, p, k, c->prompt_tokens, c->completion_tokens);
	return NULL;
}

char *attest_step_compare(const proto_step_run *s, const attest_step_claim *c, const char *w)
{
	char d[ATTEST_DIGEST_LEN] = "";
	if (s->output.text)
		attest_value_digest(&s->output, d);
	if (strcmp(proto_step_type_name(s->type), c->type))
		return xasprintf("type differs (%s %s, attested %s)", w,
		                 proto_step_type_name(s->type), c->type);
	if (strcmp(proto_status_name(s->status), c->status))
		return xasprintf("status differs (%s %s, attested %s)", w,
		                 proto_status_name(s->status), c->status);
	if (strcmp(d, c->output_digest))
		return differ(s->type == PROTO_STEP_LLM ? "the recorded answer" : "the output", w,
		              d, c->output_digest);
	return s->type == PROTO_STEP_LLM ? compare_llm(s, c, w) : compare_script(s, c, w);
}

/* The first step whose record differs from its claim, as a message; NULL when all agree. */
static char *steps_diff(const proto_chain_run *run, const attest_chain_claims *cl,
                        const proto_task *task)
{
	if (run->n_steps != cl->n_steps)
		return xasprintf("the result records %zu steps, the statement %zu", run->n_steps,
		                 cl->n_steps);
	for (size_t i = 0; i < run->n_steps; i++) {
		char in[ATTEST_DIGEST_LEN] = "";
		const proto_value *v = i ? &run->steps[i - 1].output : task ? task->input : NULL;
		if (v && v->text)
			attest_value_digest(v, in);
		_cleanup_free_ char *name = step_name(i, &run->steps[i]);
		_cleanup_free_ char *why =
		    attest_step_compare(&run->steps[i], &cl->steps[i], "recorded");
		if (!why && (i || task) && strcmp(in, cl->steps[i].input_digest))
			why = differ("its input", "recorded", in, cl->steps[i].input_digest);
		if (why)
			return xasprintf("%s: %s", name, why);
	}
	if ((int64_t)run->failed_step != cl->failed_step)
		return xasprintf("failed_step differs (recorded %d, attested %" PRId64 ")",
		                 run->failed_step, cl->failed_step);
	return NULL;
}

bool attest_steps_check(yajl_val pred, const proto_result *r, const proto_task *task,
                        attest_check_fn cb, void *ud)
{
	bool ok = true;
	if (r->output.chain || proto_json_get(pred, "chain")) {
		attest_chain_claims cl;
		_cleanup_err_ err *e = NULL;
		_cleanup_free_ char *why = NULL;
		if (!r->output.chain)
			why = xstrdup("the statement attests a chain, the result records none");
		else if (attest_chain_claims_from(pred, &cl, &e) < 0)
			why = xstrdup(err_msg(e));
		else
			why = steps_diff(r->output.chain, &cl, task);
		cb(ud, "steps", why ? ATTEST_FAIL : ATTEST_PASS, why);
		ok = !why;
	}
	ok &= attest_proxy_check(pred, r, cb, ud);
	return attest_cost_check(pred, r, false, cb, ud) && ok;
}

/* The sum of the breakdown, or -1 when it overflows. */
int64_t attest_cost_sum(const proto_cost *c)
{
	int64_t s = 0;
	for (size_t i = 0; i < c->n_items; i++)
		if (__builtin_add_overflow(s, c->items[i].cost, &s))
			return -1;
	return s;
}

bool attest_cost_check(yajl_val pred, const proto_result *r, bool sealed, attest_check_fn cb,
                       void *ud)
{
	yajl_val md = proto_json_get(pred, "metadata");
	yajl_val signed_cost = proto_json_get(md, "cost");
	if (!r->cost && !signed_cost)
		return true;
	_cleanup_free_ char *why = NULL, *mine = r->cost ? proto_cost_json(r->cost) : NULL;
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	buf b = BUF_INIT;
	if (signed_cost)
		proto_json_gen_value(g, signed_cost);
	proto_json_gen_take_valid(g, &b);
	if (!mine || !signed_cost)
		why = xstrdup(mine ? "the statement signs no cost" : "the result carries no cost");
	else if (strcmp(mine, buf_str(&b)))
		why = xasprintf("the result's cost %s is not the signed %s", mine, buf_str(&b));
	else if (r->cost->breakdown_sealed && !sealed)
		why = xstrdup("the cost's breakdown is sealed, but the result is not a sealed one");
	else if (!r->cost->breakdown_sealed && attest_cost_sum(r->cost) != r->cost->total)
		why =
		    xasprintf("the total %" PRId64 " is not the sum of the breakdown (%" PRId64 ")",
		              r->cost->total, attest_cost_sum(r->cost));
	buf_deinit(&b);
	cb(ud, "cost", why ? ATTEST_FAIL : ATTEST_PASS, why);
	return !why;
}
