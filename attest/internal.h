/* Helpers shared by the attest/ source files; not part of the module's interface. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "attest/attest.h"

/* A yajl generator that remembers its first failure. */
typedef struct jg {
	yajl_gen g;
	yajl_gen_status st;
} jg;

void jg_init(jg *j);
void jg_deinit(jg *j);
void jg_str(jg *j, const char *s);
void jg_text(jg *j, const char *s); /* invalid UTF-8 and NUL become U+FFFD */
void jg_int(jg *j, long long v);
void jg_kstr(jg *j, const char *k, const char *v);
void jg_kint(jg *j, const char *k, long long v);
void jg_open(jg *j, bool map);
void jg_close(jg *j, bool map);
/* The text (caller frees), or -1 with *e when a call failed. */
int jg_take(jg *j, char **out, size_t *len, err **e);

/* The DSSE envelope JSON of a payload and its signature by the key kid (caller frees). */
int attest_envelope_gen(const char *payload, size_t len, const uint8_t *sig, const char *kid,
                        char **out, err **e);
/* The statement's subject array for an output. */
void attest_subjects(jg *j, const proto_output *o);

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

/* Chains (steps.c, verify-steps.c): the encodings a chain's input and output digests are made
 * of, the statement's "chain" section and signed cost, and their checks (each reported through
 * cb; true when it passed). */
void attest_chain_input_encoding(const proto_task *t, buf *out);
void attest_chain_output_encoding(const proto_chain_run *c, buf *out);
void attest_gen_chain(jg *j, const proto_task *t, const proto_chain_run *c);
void attest_gen_cost(jg *j, const proto_cost *cost);
int attest_chain_claims_from(yajl_val pred, attest_chain_claims *out, err **e);
bool attest_steps_check(yajl_val pred, const proto_result *r, const proto_task *task,
                        attest_check_fn cb, void *ud);
bool attest_cost_check(yajl_val pred, const proto_result *r, attest_check_fn cb, void *ud);
