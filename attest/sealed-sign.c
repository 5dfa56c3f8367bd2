/* The sealed statement (attest/SEALED.md, "The statement"): an in-toto Statement whose subjects
 * are the age files the node received and delivered, and whose predicate carries the public
 * facts of the run and salted commitments instead of plaintext digests; signed in a DSSE
 * envelope like every attestation. */
#include <string.h>

#include "attest/attest.h"
#include "attest/internal.h"
#include "common/cleanup.h"
#include "common/xalloc.h"

static void subject(proto_gen *j, const char *name, const char *digest)
{
	proto_json_gen_open(j, true);
	proto_json_gen_kstr(j, "name", name);
	proto_json_gen_str(j, "digest");
	proto_json_gen_open(j, true);
	proto_json_gen_kstr(j, "sha256", digest + 7);
	proto_json_gen_close(j, true);
	proto_json_gen_close(j, true);
}

static void gen_subjects(proto_gen *j, const attest_claim *c)
{
	const proto_sealed *sl = c->task->sealed;
	proto_json_gen_open(j, false);
	for (int p = 0; sl && p < PROTO_SEALED__COUNT; p++) {
		if (!sl->age[p])
			continue;
		char d[ATTEST_DIGEST_LEN];
		attest_sha256_str(sl->age[p], sl->age_len[p], d);
		subject(j, proto_sealed_part_name((proto_sealed_part)p), d);
	}
	subject(j, "sealed_result", c->sealed->delivered);
	proto_json_gen_close(j, false);
}

/* The task's public facts: how its code is given, where its result went, who signed it. */
static void gen_task(proto_gen *j, const proto_task *t)
{
	const proto_sealed *sl = t->sealed;
	bool chain = proto_task_is_chain(t);
	proto_sealed_part code = chain ? PROTO_SEALED_STEPS : PROTO_SEALED_CODE;
	bool sealed_code = proto_task_part_sealed(t, code);
	char d[ATTEST_DIGEST_LEN] = "";
	if (!sealed_code) /* a chain's code is its steps */
		attest_part_digest(t, (attest_commit)code, d);
	proto_json_gen_kstr(j, "exec_mode", sealed_code ? "sealed" : "source");
	proto_json_gen_kstr(j, "code_digest",
	                    d); /* source mode: the code is public, and so is its digest */
	proto_json_gen_kstr(j, "reply_to", sl && sl->reply_to ? sl->reply_to : "");
	char signer[ATTEST_DIGEST_LEN] = "";
	if (t->auth && t->auth->has_signer)
		attest_raw_key_id(t->auth->signer, signer);
	proto_json_gen_kstr(j, "signer", signer);
}

static void gen_predicate(proto_gen *j, const attest_claim *c, const char *kid)
{
	const proto_result *r = c->result;
	const attest_sealed_out *s = c->sealed;
	proto_json_gen_open(j, true);
	proto_json_gen_kstr(j, "task_id", r->id);
	gen_task(j, c->task);
	attest_gen_run(j, c, s->environment_digest);
	proto_json_gen_str(j, "result");
	proto_json_gen_open(j, true);
	proto_json_gen_kstr(j, "status", proto_status_name(r->output.status));
	proto_json_gen_close(j, true);
	proto_json_gen_str(j, "commitments");
	proto_json_gen_open(j, true);
	for (int i = 0; i < ATTEST_COMMIT__COUNT; i++)
		if (s->has[i])
			proto_json_gen_kstr(j, attest_commit_name((attest_commit)i),
			                    s->commitment[i]);
	proto_json_gen_close(j, true);
	/* As the ordinary statement: llm steps make a run nondeterministic. Sealed steps are said
	 * to be, whatever they hold, so that the flag does not tell whether they have llm steps. */
	const proto_task *t = c->task;
	proto_json_gen_str(j, "nondeterministic");
	proto_json_gen_bool(j, t->nondeterministic || proto_task_has_step(t, PROTO_STEP_LLM) ||
	                           proto_task_part_sealed(t, PROTO_SEALED_STEPS));
	proto_json_gen_kstr(j, "guarantee", ATTEST_SEALED_GUARANTEE);
	proto_json_gen_str(j, "metadata");
	attest_gen_metadata(j, c, kid);
	proto_json_gen_close(j, true);
}

int attest_sealed_sign(const attest_key *k, const attest_claim *c, char **envelope_json,
                       char **attestation_digest, err **e)
{
	if (!c->task || !c->sealed)
		return err_set(e, 0,
		               "attest: a sealed task's result is signed only as a sealed "
		               "result (attest_sealed_result)");
	_cleanup_json_gen_ proto_gen *j = proto_json_gen_new();
	proto_json_gen_open(j, true);
	proto_json_gen_kstr(j, "_type", ATTEST_STATEMENT_TYPE);
	proto_json_gen_str(j, "subject");
	gen_subjects(j, c);
	proto_json_gen_kstr(j, "predicateType", ATTEST_SEALED_PREDICATE_TYPE);
	proto_json_gen_str(j, "predicate");
	gen_predicate(j, c, attest_key_id(k));
	proto_json_gen_close(j, true);
	_cleanup_free_ char *stmt = NULL;
	size_t len = 0;
	if (!(stmt = proto_json_gen_steal(j, &len, e)))
		return err_prefix(e, "attest: sealed statement");
	if (attest_sign_statement(k, stmt, len, envelope_json, attestation_digest, e) < 0)
		return err_prefix(e, "attest");
	return 0;
}
