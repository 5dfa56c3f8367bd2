/* Helpers shared by the attest/ source files; not part of the module's interface. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_tree.h>

#include "attest/attest.h"
#include "proto/json.h"

/* The DSSE envelope JSON of a payload and its signature by the key kid (caller frees). */
int attest_envelope_gen(const char *payload, size_t len, const uint8_t *sig, const char *kid,
                        char **out, err **e);
/* The same for any payload type (passports, signed tasks). */
int attest_dsse_envelope(const char *type, const void *payload, size_t len, const uint8_t *sig,
                         const char *kid, char **out, err **e);
/* Signs a statement (DSSE, the in-toto payload type): the envelope and the attestation digest
 * (SHA-256 of the statement bytes), each optional and caller-owned. Returns 0, or -1 with *e. */
int attest_sign_statement(const attest_key *k, const char *stmt, size_t len, char **envelope_json,
                          char **attestation_digest, err **e);
/* The statement's subject array for an output. */
void attest_subjects(proto_gen *j, const proto_output *o);

/* The first queued OpenSSL error as text (and the queue cleared). Static storage. */
const char *attest_ossl_reason(void);

/* Reads a key file of at most max bytes through one fd (so the checked file is the read file):
 * not a symlink, a regular file, and with secret not accessible by group or others. */
int attest_read_secret_file(const char *path, bool secret, size_t max, buf *out, err **e);

/* A function-mode return value as it is hashed: the JSON text re-generated compactly (key
 * order, number text and string contents kept; the form a result document carries). NULL for
 * NULL and for text that is not JSON, which a result document cannot carry either: it is no
 * return value. Caller frees. */
char *attest_return_text(const char *rv);

/* The decoded payload of an envelope (*payload caller frees). Returns 0, or -1 with *e. */
int attest_envelope_payload(const char *envelope_json, uint8_t **payload, size_t *len, err **e);
/* predicate.environment as pairs whose strings are borrowed from the tree (*out: the array
 * only, caller frees). Returns 0, or -1 with *e naming the malformed entry. */
int attest_pred_env(yajl_val pred, proto_env **out, size_t *n, err **e);
/* predicate.limits: exactly the PROTO_LIMITS fields, each a non-negative integer. Returns 0,
 * or -1 with *e. */
int attest_pred_limits(yajl_val pred, proto_limits *l, err **e);

/* The sum of a cost's items, or -1 when it overflows (a total no honest node signs). */
int64_t attest_cost_sum(const proto_cost *c);

/* ---- sealed tasks and passports (passport.c, sealed*.c) ---- */

/* A DSSE envelope with exactly one signature, parsed strictly: payloadType must be type, the
 * payload (decoded, owned) and the signature's keyid and bytes. On failure d holds nothing. */
typedef struct attest_dsse {
	uint8_t *payload;
	size_t len;
	char keyid[ATTEST_DIGEST_LEN];
	uint8_t sig[ATTEST_SIG_LEN];
} attest_dsse;
int attest_dsse_parse(const char *json, size_t len, const char *type, attest_dsse *d, err **e);
void attest_dsse_deinit(attest_dsse *d);

/* sign.c's pieces of a statement, shared with the sealed statement (sealed-sign.c). */
void attest_gen_limits(proto_gen *j, const proto_limits *l);
void attest_gen_metadata(proto_gen *j, const attest_claim *c, const char *key_id);
void attest_gen_environment(proto_gen *j, const attest_claim *c); /* predicate.environment */
/* image_digest, runtime, limits, environment, environment_digest: what the run was. */
void attest_gen_run(proto_gen *j, const attest_claim *c, const char *environment_digest);
/* The sealed statement of a claim with c->sealed (attest_sign() hands such claims here). */
int attest_sealed_sign(const attest_key *k, const attest_claim *c, char **envelope_json,
                       char **attestation_digest, err **e);
/* SHA-256 of the files encoding of a task's input files, and the digest of one part's
 * plaintext (c < ATTEST_COMMIT_INPUT; SEALED.md, "Part digests"). */
void attest_files_digest(const proto_task *t, char out[ATTEST_DIGEST_LEN]);
void attest_part_digest(const proto_task *t, attest_commit c, char out[ATTEST_DIGEST_LEN]);
/* The "outputs" object of a sealed result document: "stdout", "stderr", "out/<path>",
 * "return_value", "error" -> digest text. */
void attest_sealed_output_digests(proto_gen *j, const proto_output *o);

/* Chains (steps.c, verify-steps.c): the encodings a chain's input and output digests are made
 * of, the statement's "chain" section and signed cost, and their checks (each reported through
 * cb; true when it passed). */
void attest_chain_input_encoding(const proto_task *t, buf *out);
void attest_chain_output_encoding(const proto_chain_run *c, buf *out);
void attest_gen_chain(proto_gen *j, const proto_task *t, const proto_chain_run *c);
void attest_gen_cost(proto_gen *j, const proto_cost *cost);
int attest_chain_claims_from(yajl_val pred, attest_chain_claims *out, err **e);
bool attest_steps_check(yajl_val pred, const proto_result *r, const proto_task *task,
                        attest_check_fn cb, void *ud);
/* sealed: the result is a sealed one, whose public cost is the total only (breakdown_sealed);
 * on any other result such a cost fails (the node would hide what the buyer pays for). */
bool attest_cost_check(yajl_val pred, const proto_result *r, bool sealed, attest_check_fn cb,
                       void *ud);

/* The credential proxy's audit trail (proxy.c): predicate.metadata.proxy, and its check
 * against the result's entries (the "proxy" check). */
void attest_gen_proxy(proto_gen *j, const proto_proxy_audit *a);
bool attest_proxy_check(yajl_val pred, const proto_result *r, attest_check_fn cb, void *ud);
