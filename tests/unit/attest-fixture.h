/* Fixtures for the attest/ unit tests: the golden vectors of attest/testdata/NN-name/ (each a
 * task.json a client sent, or entry.json for an entry rejected before it parsed, and a result
 * built here as the node would have produced it), the environment and limits they claim,
 * signing into the vectors' hash chain, and a recorder of the verifier's checks. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attest/attest.h"
#include "proto/proto.h"

typedef struct fx_vector {
	const char *name;              /* the directory under attest/testdata/ */
	void (*fill)(proto_result *r); /* the output and metadata the node produced */
	/* The resolved limits it ran with; NULL: the task's, resolved against the built-in
	 * defaults (as a node with no [limits] section would). */
	const proto_limits *limits;
} fx_vector;

/* The chain of golden vectors, in order. */
extern const fx_vector fx_vectors[];
extern const size_t fx_n_vectors;
/* The results shown in proto/PROTOCOL.md, "Examples" (attest/testdata/protocol-*): not part
 * of the chain. */
extern const fx_vector fx_examples[];
extern const size_t fx_n_examples;
/* The resolved limits every vector that ran claims. */
extern const proto_limits fx_limits;

/* One vector made concrete: its task parsed from the checked-in task.json (has_task false for
 * an entry.json, which must not parse), its result, and the environment it claims. */
typedef struct fx_case {
	const fx_vector *v;
	bool has_task;
	proto_task task;
	char *task_text; /* task.json or entry.json as stored */
	proto_result result;
	proto_limits limits; /* what it ran with (all 0 when it never ran) */
	proto_env *env;
	size_t n_env;
} fx_case;

void fx_case_init(fx_case *c, const fx_vector *v);
void fx_case_deinit(fx_case *c);
/* Signs c->result (into its attestation and execution_digest) as link seq of a chain after
 * previous (NULL for the first); returns the attestation digest (caller frees). */
char *fx_sign(const attest_key *k, fx_case *c, const char *previous, uint64_t seq);
const fx_vector *fx_vector_named(const char *name);
/* attest/testdata/<name> under $AISP_SOURCE_ROOT. Caller frees. */
char *fx_testdata(const char *name);
/* The test signing key of the vectors (attest/testdata/test-key.pem). */
attest_key *fx_test_key(void);

/* ---- what the verifier reported ---- */

typedef struct fx_checks {
	char names[160][32];
	attest_verdict v[160];
	char details[160][256];
	size_t n;
} fx_checks;

/* An attest_check_fn recording into a fx_checks (ud). */
void fx_record(void *ud, const char *name, attest_verdict v, const char *detail);
/* The failed checks, space-separated ("" when none failed). Static storage. */
const char *fx_failed(const fx_checks *c);
/* The verdict of the check named name, or -1 when it was not reported. */
int fx_verdict(const fx_checks *c, const char *name);
/* The detail the check named name reported ("" when none). */
const char *fx_detail(const fx_checks *c, const char *name);
/* Verifies r alone (a fresh verifier) into *c; returns fx_failed(c) and the return in *ret. */
const char *fx_verify(const proto_result *r, const attest_key *pub, const proto_task *t,
                      fx_checks *c, int *ret);
/* r as a result document into doc, then verified alone into *c; returns what
 * attest_verify_result() returned (a document that is not a result fails the test). */
int fx_verify_doc(const proto_result *r, const attest_key *pub, const proto_task *t, buf *doc,
                  fx_checks *c);
/* The decoded statement of an envelope (caller frees). */
char *fx_statement(const char *envelope, size_t *len);
/* Rewrites the statement of r's envelope (from -> to, same length) and signs it again with k,
 * as a lying or buggy node would. */
void fx_resign(const attest_key *k, proto_result *r, const char *from, const char *to);
