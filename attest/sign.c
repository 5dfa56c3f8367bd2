/* Signing: the in-toto Statement (generated with yajl, fixed key order), the DSSE
 * pre-authentication encoding, the Ed25519 signature and the envelope (ATTESTATION.md,
 * "Statement" and "Envelope"). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "attest/attest.h"
#include "attest/internal.h"
#include "common/cleanup.h"
#include "common/xalloc.h"
#include "proto/json.h"

void attest_pae(const char *type, const void *payload, size_t len, buf *out)
{
	buf_appendf(out, "DSSEv1 %zu %s %zu ", strlen(type), type, len);
	buf_append(out, payload, len);
}

static void subject_hex(proto_gen *j, const char *name, const char *hex)
{
	proto_json_gen_open(j, true);
	proto_json_gen_kstr(j, "name", name);
	proto_json_gen_str(j, "digest");
	proto_json_gen_open(j, true);
	proto_json_gen_kstr(j, "sha256", hex);
	proto_json_gen_close(j, true);
	proto_json_gen_close(j, true);
}

static void subject(proto_gen *j, const char *name, const void *p, size_t n)
{
	char d[ATTEST_DIGEST_LEN];
	attest_sha256_str(p, n, d);
	subject_hex(j, name, d + 7);
}

static int cmp_file_ptr(const void *a, const void *b)
{
	return strcmp((*(const proto_file *const *)a)->path, (*(const proto_file *const *)b)->path);
}

/* stdout, stderr, the output files sorted by path (bytewise), the return value. */
void attest_subjects(proto_gen *j, const proto_output *o)
{
	_cleanup_free_ const proto_file **files = xcalloc(o->n_files + 1, sizeof(*files));
	for (size_t i = 0; i < o->n_files; i++)
		files[i] = &o->files[i];
	qsort(files, o->n_files, sizeof(*files), cmp_file_ptr);
	proto_json_gen_open(j, false);
	subject(j, "stdout", o->out.data, o->out.len);
	subject(j, "stderr", o->err.data, o->err.len);
	for (size_t i = 0; i < o->n_files; i++) {
		_cleanup_free_ char *name = xasprintf("out/%s", files[i]->path);
		subject(j, name, files[i]->data, files[i]->len);
	}
	_cleanup_free_ char *rv = attest_return_text(o->return_value);
	if (rv)
		subject(j, "return_value", rv, strlen(rv));
	/* output blobs: named by their id, which is their digest */
	for (size_t i = 0; i < o->n_out_blobs; i++) {
		_cleanup_free_ char *name = xasprintf("blob/%s", o->out_blobs[i].id);
		subject_hex(j, name, o->out_blobs[i].id + 7);
	}
	proto_json_gen_close(j, false);
}

void attest_gen_limits(proto_gen *j, const proto_limits *l)
{
	static const proto_limits zero;
	l = l ? l : &zero;
	proto_json_gen_open(j, true);
	for (size_t i = 0; i < PROTO_LIMIT_COUNT; i++)
		proto_json_gen_kint(j, proto_limit_fields[i].field,
		                    proto_limit_get(l, &proto_limit_fields[i]));
	proto_json_gen_close(j, true);
}

void attest_gen_run(proto_gen *j, const attest_claim *c, const char *environment_digest)
{
	proto_json_gen_kstr(j, "image_digest", c->result->image_digest);
	proto_json_gen_kstr(j, "runtime", c->result->runtime);
	proto_json_gen_str(j, "limits");
	attest_gen_limits(j, c->limits);
	proto_json_gen_str(j, "environment");
	attest_gen_environment(j, c);
	proto_json_gen_kstr(j, "environment_digest", environment_digest);
}

void attest_gen_environment(proto_gen *j, const attest_claim *c)
{
	proto_json_gen_open(j, false);
	for (size_t i = 0; i < c->n_env; i++) {
		proto_json_gen_open(j, true);
		proto_json_gen_kstr(j, "key", c->env[i].name);
		proto_json_gen_kstr(j, "value", c->env[i].value);
		proto_json_gen_close(j, true);
	}
	proto_json_gen_close(j, false);
}

void attest_gen_metadata(proto_gen *j, const attest_claim *c, const char *key_id)
{
	const proto_result *r = c->result;
	proto_json_gen_open(j, true);
	proto_json_gen_kstr(j, "node_id", r->node_id);
	proto_json_gen_kstr(j, "key_id", key_id);
	proto_json_gen_kint(j, "received_ms", r->received_ms);
	proto_json_gen_kint(j, "started_ms", r->started_ms);
	proto_json_gen_kint(j, "finished_ms", r->finished_ms);
	proto_json_gen_str(j, "usage");
	proto_json_gen_open(j, true);
	proto_json_gen_kint(j, "wall_ms", r->usage.wall_ms);
	proto_json_gen_kint(j, "cpu_ms", r->usage.cpu_ms);
	proto_json_gen_kint(j, "memory_peak_bytes", r->usage.memory_peak_bytes);
	proto_json_gen_close(j, true);
	proto_json_gen_kint(j, "attempt", r->attempts);
	proto_json_gen_kstr(j, "previous", c->previous);
	proto_json_gen_kint(j, "sequence", (long long)c->sequence);
	attest_gen_cost(j, r->cost);
	attest_gen_proxy(j, r->proxy);
	proto_json_gen_close(j, true);
}

static int compute_parts(const attest_claim *c, attest_digests *p, err **e)
{
	return attest_compute_digests(c->result->image_digest, c->task, &c->result->output, c->env,
	                              c->n_env, p, e);
}

/* The skills (name and digest), input blob ids and secret names of a task that used them
 * (never a secret's value); the input digest covers them too. */
static void gen_skills(proto_gen *j, const proto_task *t)
{
	if (!t || (!t->n_skill_refs && !t->n_blobs))
		return;
	proto_json_gen_str(j, "skills");
	proto_json_gen_open(j, false);
	for (size_t i = 0; i < t->n_skill_refs; i++) {
		proto_json_gen_open(j, true);
		proto_json_gen_kstr(j, "name", t->skill_refs[i].name);
		proto_json_gen_kstr(j, "digest", t->skill_refs[i].digest);
		proto_json_gen_close(j, true);
	}
	proto_json_gen_close(j, false);
	proto_json_gen_str(j, "blobs");
	proto_json_gen_open(j, false);
	for (size_t i = 0; i < t->n_blobs; i++)
		proto_json_gen_str(j, t->blobs[i]);
	proto_json_gen_close(j, false);
	proto_json_gen_str(j, "secrets");
	proto_json_gen_open(j, false);
	for (size_t i = 0; i < t->n_secret_names; i++)
		proto_json_gen_str(j, t->secret_names[i]);
	proto_json_gen_close(j, false);
}

static void gen_predicate(proto_gen *j, const attest_claim *c, const attest_digests *p,
                          const char *kid)
{
	const proto_result *r = c->result;
	const proto_output *o = &r->output;
	proto_json_gen_open(j, true);
	proto_json_gen_kstr(j, "task_id", r->id);
	proto_json_gen_kstr(j, "input_digest", p->input);
	attest_gen_run(j, c, p->environment);
	proto_json_gen_str(j, "result");
	proto_json_gen_open(j, true);
	proto_json_gen_kstr(j, "status", proto_status_name(o->status));
	proto_json_gen_str(j, "exit_code");
	if (o->exit_code >= 0)
		proto_json_gen_int(j, o->exit_code);
	else
		proto_json_gen_null(j);
	proto_json_gen_kint(j, "signal", o->signal);
	proto_json_gen_str(j, "error");
	if (o->error)
		proto_json_gen_text(j, o->error, strlen(o->error));
	else
		proto_json_gen_null(j);
	proto_json_gen_kstr(j, "output_digest", p->output);
	proto_json_gen_close(j, true);
	attest_gen_chain(j, c->task, o->chain);
	gen_skills(j, c->task);
	proto_json_gen_kstr(j, "execution_digest", p->execution);
	proto_json_gen_str(j, "nondeterministic");
	/* a chain with an llm step is nondeterministic by nature (attest/CHAINS.md) */
	/* so is a task that may call the credential proxy: its responses are not recorded */
	proto_json_gen_bool(j, c->task && (c->task->nondeterministic || c->task->n_services ||
	                                   proto_task_has_step(c->task, PROTO_STEP_LLM)));
	proto_json_gen_str(j, "metadata");
	attest_gen_metadata(j, c, kid);
	proto_json_gen_close(j, true);
}

static int gen_statement(const attest_claim *c, const attest_digests *p, const char *kid,
                         char **out, size_t *len, err **e)
{
	_cleanup_json_gen_ proto_gen *j = proto_json_gen_new();
	proto_json_gen_open(j, true);
	proto_json_gen_kstr(j, "_type", ATTEST_STATEMENT_TYPE);
	proto_json_gen_str(j, "subject");
	attest_subjects(j, &c->result->output);
	proto_json_gen_kstr(j, "predicateType", ATTEST_PREDICATE_TYPE);
	proto_json_gen_str(j, "predicate");
	gen_predicate(j, c, p, kid);
	proto_json_gen_close(j, true);
	*out = proto_json_gen_steal(j, len, e);
	return *out ? 0 : -1;
}

int attest_envelope_gen(const char *payload, size_t len, const uint8_t *sig, const char *kid,
                        char **out, err **e)
{
	return attest_dsse_envelope(ATTEST_PAYLOAD_TYPE, payload, len, sig, kid, out, e);
}

int attest_dsse_envelope(const char *type, const void *payload, size_t len, const uint8_t *sig,
                         const char *kid, char **out, err **e)
{
	_cleanup_free_ char *p64 = proto_b64_encode((const uint8_t *)payload, len);
	_cleanup_free_ char *s64 = proto_b64_encode(sig, ATTEST_SIG_LEN);
	_cleanup_json_gen_ proto_gen *j = proto_json_gen_new();
	proto_json_gen_open(j, true);
	proto_json_gen_kstr(j, "payloadType", type);
	proto_json_gen_kstr(j, "payload", p64);
	proto_json_gen_str(j, "signatures");
	proto_json_gen_open(j, false);
	proto_json_gen_open(j, true);
	proto_json_gen_kstr(j, "keyid", kid);
	proto_json_gen_kstr(j, "sig", s64);
	proto_json_gen_close(j, true);
	proto_json_gen_close(j, false);
	proto_json_gen_close(j, true);
	*out = proto_json_gen_steal(j, NULL, e);
	return *out ? 0 : -1;
}

int attest_sign_statement(const attest_key *k, const char *stmt, size_t len, char **envelope_json,
                          char **attestation_digest, err **e)
{
	_cleanup_free_ char *env = NULL;
	if (attest_dsse_sign(k, ATTEST_PAYLOAD_TYPE, stmt, len, &env, e) < 0)
		return -1;
	if (attestation_digest) {
		*attestation_digest = xmalloc(ATTEST_DIGEST_LEN);
		attest_sha256_str(stmt, len, *attestation_digest);
	}
	if (envelope_json)
		*envelope_json = steal_pointer(&env);
	return 0;
}

int attest_sign(const attest_key *k, const attest_claim *c, char **envelope_json,
                char **execution_digest, char **attestation_digest, err **e)
{
	/* A sealed task's statement names ciphertexts and commitments only (attest/SEALED.md). */
	if (c->sealed || (c->task && c->task->sealed)) {
		if (execution_digest)
			*execution_digest = NULL;
		return attest_sealed_sign(k, c, envelope_json, attestation_digest, e);
	}
	attest_digests p;
	if (compute_parts(c, &p, e) < 0 || attest_limits_match(c->limits, c->env, c->n_env, e) < 0)
		return err_prefix(e, "attest");
	const char *kid = attest_key_id(k);
	_cleanup_free_ char *stmt = NULL;
	size_t stmt_len = 0;
	if (gen_statement(c, &p, kid, &stmt, &stmt_len, e) < 0)
		return err_prefix(e, "attest: statement");
	if (attest_sign_statement(k, stmt, stmt_len, envelope_json, attestation_digest, e) < 0)
		return err_prefix(e, "attest");
	if (execution_digest)
		*execution_digest = xstrdup(p.execution);
	return 0;
}
