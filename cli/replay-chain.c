/* aisp verify --replay of a chain (attest/CHAINS.md, "Replay"): a chain with an llm step is
 * nondeterministic by nature, so it is verified up to the models' answers. The script steps
 * are re-executed in one fresh sandbox (the same image, runtime and limits), each fed the
 * output of the step before, where an llm step's output is the *recorded* answer the result
 * carries; every step is then compared with what the statement attests for it, and the first
 * one that differs is named. A tampered recorded answer fails its own step (its digest is not
 * the attested one) and a tampered script output fails too: the replay reproduces the attested
 * output, not the recorded one. */
#include "cli/replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/local.h"
#include "common/cleanup.h"
#include "common/xalloc.h"

/* Every step of the replay against its claim, and the recorded script outputs against the
 * replayed ones. Returns true when all agree. */
static bool compare_steps(const proto_chain_run *replayed, const proto_chain_run *recorded,
                          const attest_chain_claims *cl, attest_check_fn check, void *ud)
{
	bool ok = true;
	for (size_t i = 0; i < cl->n_steps; i++) {
		_cleanup_free_ char *name = xasprintf("replay.step.%zu", i);
		const proto_step_run *s = i < replayed->n_steps ? &replayed->steps[i] : NULL;
		const char *type = s ? proto_step_type_name(s->type) : cl->steps[i].type;
		_cleanup_free_ char *why =
		    !s ? xstrdup("the replay stopped before it")
		       : attest_step_compare(s, &cl->steps[i],
		                             s->type == PROTO_STEP_LLM ? "recorded" : "replayed");
		if (!why && s->type == PROTO_STEP_SCRIPT && i < recorded->n_steps)
			why = attest_step_compare(&recorded->steps[i], &cl->steps[i], "recorded");
		_cleanup_free_ char *m = why ? xasprintf("step %zu (%s): %s", i, type, why) : NULL;
		check(ud, name, m ? ATTEST_FAIL : ATTEST_PASS, m);
		ok &= !m;
	}
	if (replayed->n_steps > cl->n_steps) {
		check(ud, "replay.steps", ATTEST_FAIL,
		      "the replay ran more steps than were attested");
		ok = false;
	}
	return ok;
}

static void compare_digests(const attest_chain_claims *cl, const attest_claims *c,
                            const cli_local_result *lr, attest_check_fn check, void *ud)
{
	bool in = !strcmp(cl->input_digest, lr->digests.input);
	if (c->environment_digest) { /* a sandbox ran */
		bool env = !strcmp(c->environment_digest, lr->digests.environment);
		check(ud, "replay.environment", env ? ATTEST_PASS : ATTEST_FAIL,
		      env ? NULL : "the environment differs from the attested one");
	}
	check(ud, "replay.input", in ? ATTEST_PASS : ATTEST_FAIL,
	      in ? NULL : "the task given is not the task that was attested");
	bool ex = !strcmp(cl->execution_digest, lr->digests.execution);
	_cleanup_free_ char *m = xasprintf("execution digest differs (claimed %s, here %s)",
	                                   cl->execution_digest, lr->digests.execution);
	check(ud, "replay.execution", ex ? ATTEST_PASS : ATTEST_FAIL, ex ? NULL : m);
}

/* A chain of llm steps only: nothing to run; its records are the replay. */
static int replay_llm_only(const proto_task *task, const proto_chain_run *recorded,
                           cli_local_result *lr, err **e)
{
	memset(lr, 0, sizeof(*lr));
	proto_output_init(&lr->out);
	proto_chain_run *c = lr->out.chain = proto_chain_run_new();
	c->steps = xcalloc(recorded->n_steps + 1, sizeof(*c->steps));
	for (; c->n_steps < recorded->n_steps; c->n_steps++)
		proto_step_run_copy(&c->steps[c->n_steps], &recorded->steps[c->n_steps]);
	c->failed_step = recorded->failed_step;
	if (c->n_steps)
		lr->out.status = c->steps[c->n_steps - 1].status;
	return attest_compute_digests(NULL, task, &lr->out, NULL, 0, &lr->digests, e);
}

void cli_replay_chain(const proto_task *task, const proto_result *r, const char *store,
                      attest_check_fn check, void *ud)
{
	attest_chain_claims cl;
	_cleanup_err_ err *e = NULL;
	if (!r->attestation || attest_chain_claims_read(r->attestation, &cl, &e) < 0)
		return check(ud, "replay", ATTEST_FAIL, e ? err_msg(e) : "no attestation");
	if (!r->output.chain)
		return check(ud, "replay", ATTEST_FAIL, "the result records no steps");
	attest_claims c = {0};
	cli_local_result lr = {0};
	int rc;
	if (!proto_task_has_step(task, PROTO_STEP_SCRIPT)) {
		rc = replay_llm_only(task, r->output.chain, &lr, &e);
	} else if ((rc = attest_claims_read(r->attestation, &c, &e)) == 0) {
		cli_local_opts lo = {.runtime = c.runtime, .image = c.image_digest, .store = store};
		rc = cli_local_chain(&lo, task, &c.limits, r->output.chain, &lr, &e);
	}
	if (rc < 0) {
		_cleanup_free_ char *m = xasprintf("could not re-execute here: %s", err_msg(e));
		check(ud, "replay", ATTEST_ERROR, m);
	} else {
		check(ud, "replay", ATTEST_PASS, NULL);
		compare_steps(lr.out.chain, r->output.chain, &cl, check, ud);
		compare_digests(&cl, &c, &lr, check, ud);
	}
	cli_local_result_deinit(&lr);
	attest_claims_deinit(&c);
}
