/* Signing: the in-toto Statement (generated with yajl, fixed key order), the DSSE
 * pre-authentication encoding, the Ed25519 signature and the envelope (ATTESTATION.md,
 * "Statement" and "Envelope"). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>

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

/* yajl_gen wrapper remembering the first failure, so generation code stays linear. */
void jg_init(jg *j)
{
	j->g = yajl_gen_alloc(NULL);
	if (!j->g)
		abort();
	yajl_gen_config(j->g, yajl_gen_validate_utf8, 1);
	j->st = yajl_gen_status_ok;
}

void jg_deinit(jg *j)
{
	if (j->g)
		yajl_gen_free(j->g);
	j->g = NULL;
}

static void jg_check(jg *j, yajl_gen_status st)
{
	if (j->st == yajl_gen_status_ok)
		j->st = st;
}

void jg_str(jg *j, const char *s)
{
	s = s ? s : "";
	jg_check(j, yajl_gen_string(j->g, (const unsigned char *)s, strlen(s)));
}

/* Text that may not be UTF-8 (an error message quoting a program's bytes), made valid exactly
 * as proto_result_to_json() does, so that both documents carry the same string. */
void jg_text(jg *j, const char *s)
{
	proto_json_gen_text(j->g, s, strlen(s));
}

void jg_int(jg *j, long long v)
{
	jg_check(j, yajl_gen_integer(j->g, v));
}

void jg_kstr(jg *j, const char *k, const char *v)
{
	jg_str(j, k);
	jg_str(j, v);
}

void jg_kint(jg *j, const char *k, long long v)
{
	jg_str(j, k);
	jg_int(j, v);
}

void jg_open(jg *j, bool map)
{
	jg_check(j, map ? yajl_gen_map_open(j->g) : yajl_gen_array_open(j->g));
}

void jg_close(jg *j, bool map)
{
	jg_check(j, map ? yajl_gen_map_close(j->g) : yajl_gen_array_close(j->g));
}

/* The generated text as an owned string, or -1 with *e naming what failed. */
int jg_take(jg *j, char **out, size_t *len, err **e)
{
	if (j->st != yajl_gen_status_ok)
		return err_set(e, 0, "JSON generation failed (yajl status %d%s)", (int)j->st,
		               j->st == yajl_gen_invalid_string ? ": a string is not UTF-8" : "");
	const unsigned char *p = NULL;
	size_t n = 0;
	yajl_gen_get_buf(j->g, &p, &n);
	*out = xmemdup(p, n + 1);
	(*out)[n] = '\0';
	if (len)
		*len = n;
	return 0;
}

static void subject(jg *j, const char *name, const void *p, size_t n)
{
	char d[ATTEST_DIGEST_LEN];
	attest_sha256_str(p, n, d);
	jg_open(j, true);
	jg_kstr(j, "name", name);
	jg_str(j, "digest");
	jg_open(j, true);
	jg_kstr(j, "sha256", d + 7);
	jg_close(j, true);
	jg_close(j, true);
}

static int cmp_file_ptr(const void *a, const void *b)
{
	return strcmp((*(const proto_file *const *)a)->path, (*(const proto_file *const *)b)->path);
}

/* stdout, stderr, the output files sorted by path (bytewise), the return value. */
void attest_subjects(jg *j, const proto_output *o)
{
	_cleanup_free_ const proto_file **files = xcalloc(o->n_files + 1, sizeof(*files));
	for (size_t i = 0; i < o->n_files; i++)
		files[i] = &o->files[i];
	qsort(files, o->n_files, sizeof(*files), cmp_file_ptr);
	jg_open(j, false);
	subject(j, "stdout", o->out.data, o->out.len);
	subject(j, "stderr", o->err.data, o->err.len);
	for (size_t i = 0; i < o->n_files; i++) {
		_cleanup_free_ char *name = xasprintf("out/%s", files[i]->path);
		subject(j, name, files[i]->data, files[i]->len);
	}
	_cleanup_free_ char *rv = attest_return_text(o->return_value);
	if (rv)
		subject(j, "return_value", rv, strlen(rv));
	jg_close(j, false);
}

void attest_gen_limits(jg *j, const proto_limits *l)
{
	static const proto_limits zero;
	l = l ? l : &zero;
	jg_open(j, true);
	for (size_t i = 0; i < PROTO_LIMIT_COUNT; i++)
		jg_kint(j, proto_limit_fields[i].field, proto_limit_get(l, &proto_limit_fields[i]));
	jg_close(j, true);
}

void attest_gen_run(jg *j, const attest_claim *c, const char *environment_digest)
{
	jg_kstr(j, "image_digest", c->result->image_digest);
	jg_kstr(j, "runtime", c->result->runtime);
	jg_str(j, "limits");
	attest_gen_limits(j, c->limits);
	jg_str(j, "environment");
	attest_gen_environment(j, c);
	jg_kstr(j, "environment_digest", environment_digest);
}

void attest_gen_environment(jg *j, const attest_claim *c)
{
	jg_open(j, false);
	for (size_t i = 0; i < c->n_env; i++) {
		jg_open(j, true);
		jg_kstr(j, "key", c->env[i].name);
		jg_kstr(j, "value", c->env[i].value);
		jg_close(j, true);
	}
	jg_close(j, false);
}

void attest_gen_metadata(jg *j, const attest_claim *c, const char *key_id)
{
	const proto_result *r = c->result;
	jg_open(j, true);
	jg_kstr(j, "node_id", r->node_id);
	jg_kstr(j, "key_id", key_id);
	jg_kint(j, "received_ms", r->received_ms);
	jg_kint(j, "started_ms", r->started_ms);
	jg_kint(j, "finished_ms", r->finished_ms);
	jg_str(j, "usage");
	jg_open(j, true);
	jg_kint(j, "wall_ms", r->usage.wall_ms);
	jg_kint(j, "cpu_ms", r->usage.cpu_ms);
	jg_kint(j, "memory_peak_bytes", r->usage.memory_peak_bytes);
	jg_close(j, true);
	jg_kint(j, "attempt", r->attempts);
	jg_kstr(j, "previous", c->previous);
	jg_kint(j, "sequence", (long long)c->sequence);
	attest_gen_cost(j, r->cost);
	attest_gen_proxy(j, r->proxy);
	jg_close(j, true);
}

static int compute_parts(const attest_claim *c, attest_digests *p, err **e)
{
	return attest_compute_digests(c->result->image_digest, c->task, &c->result->output, c->env,
	                              c->n_env, p, e);
}

static void gen_predicate(jg *j, const attest_claim *c, const attest_digests *p, const char *kid)
{
	const proto_result *r = c->result;
	const proto_output *o = &r->output;
	jg_open(j, true);
	jg_kstr(j, "task_id", r->id);
	jg_kstr(j, "input_digest", p->input);
	attest_gen_run(j, c, p->environment);
	jg_str(j, "result");
	jg_open(j, true);
	jg_kstr(j, "status", proto_status_name(o->status));
	jg_str(j, "exit_code");
	if (o->exit_code >= 0)
		jg_int(j, o->exit_code);
	else
		jg_check(j, yajl_gen_null(j->g));
	jg_kint(j, "signal", o->signal);
	jg_str(j, "error");
	if (o->error)
		jg_text(j, o->error);
	else
		jg_check(j, yajl_gen_null(j->g));
	jg_kstr(j, "output_digest", p->output);
	jg_close(j, true);
	attest_gen_chain(j, c->task, o->chain);
	jg_kstr(j, "execution_digest", p->execution);
	jg_str(j, "nondeterministic");
	/* a chain with an llm step is nondeterministic by nature (attest/CHAINS.md) */
	/* so is a task that may call the credential proxy: its responses are not recorded */
	jg_check(j,
	         yajl_gen_bool(j->g, c->task && (c->task->nondeterministic || c->task->n_services ||
	                                         proto_task_has_step(c->task, PROTO_STEP_LLM))));
	jg_str(j, "metadata");
	attest_gen_metadata(j, c, kid);
	jg_close(j, true);
}

static int gen_statement(const attest_claim *c, const attest_digests *p, const char *kid,
                         char **out, size_t *len, err **e)
{
	_cleanup_(jg_deinit) jg j;
	jg_init(&j);
	jg_open(&j, true);
	jg_kstr(&j, "_type", ATTEST_STATEMENT_TYPE);
	jg_str(&j, "subject");
	attest_subjects(&j, &c->result->output);
	jg_kstr(&j, "predicateType", ATTEST_PREDICATE_TYPE);
	jg_str(&j, "predicate");
	gen_predicate(&j, c, p, kid);
	jg_close(&j, true);
	return jg_take(&j, out, len, e);
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
	_cleanup_(jg_deinit) jg j;
	jg_init(&j);
	jg_open(&j, true);
	jg_kstr(&j, "payloadType", type);
	jg_kstr(&j, "payload", p64);
	jg_str(&j, "signatures");
	jg_open(&j, false);
	jg_open(&j, true);
	jg_kstr(&j, "keyid", kid);
	jg_kstr(&j, "sig", s64);
	jg_close(&j, true);
	jg_close(&j, false);
	jg_close(&j, true);
	return jg_take(&j, out, NULL, e);
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
