/* Attestations: canonical digests of a task's input, output, exit and environment, the
 * execution digest, Ed25519 node keys, the signed in-toto Statement in a DSSE envelope, its
 * verification, and the per-node hash chain. Every byte is specified in attest/ATTESTATION.md. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "proto/proto.h"

/* "sha256:" + 64 hex digits + NUL. */
#define ATTEST_DIGEST_LEN 72
#define ATTEST_SIG_LEN    64
/* The largest key file, envelope or chain state file we read. */
#define ATTEST_PEM_MAX      (16u * 1024)
#define ATTEST_ENVELOPE_MAX (64u * 1024 * 1024)

#define ATTEST_STATEMENT_TYPE "https://in-toto.io/Statement/v1"
#define ATTEST_PREDICATE_TYPE "https://aisp.dev/attestation/execution/v1"
#define ATTEST_PAYLOAD_TYPE   "application/vnd.in-toto+json"

/* ---- keys ---- */

/* An Ed25519 key: a private key (which can also verify) or a public key alone. */
typedef struct attest_key attest_key;

/* Creates a fresh private key. Returns 0, or -1 with *e. */
int attest_key_generate(attest_key **out, err **e);
/* Loads a private key from a PEM file (PKCS#8). Refuses a file that is not a regular file, is
 * a symlink, or is readable or writable by group or others. Returns 0, or -1 with *e. */
int attest_key_load_private(attest_key **out, const char *path, err **e);
/* Loads a private key from PEM text in memory (no mode check: the caller read it). */
int attest_key_from_private_pem(attest_key **out, const char *pem, size_t len, err **e);
/* Loads a public key from a PEM file / from PEM text (SubjectPublicKeyInfo). */
int attest_key_load_public(attest_key **out, const char *path, err **e);
int attest_key_from_public_pem(attest_key **out, const char *pem, size_t len, err **e);
/* Writes DIR/private.pem (0600, created with O_EXCL|O_NOFOLLOW) and DIR/public.pem (0644).
 * Without force an existing file is an error; with force existing files are replaced
 * atomically. The key must be private. Returns 0, or -1 with *e. */
int attest_key_write_pair(const attest_key *k, const char *dir, bool force, err **e);
/* "sha256:" + hex SHA-256 of the public key's DER SubjectPublicKeyInfo. Borrowed; valid until
 * attest_key_free(). */
const char *attest_key_id(const attest_key *k);
/* The public key as PEM text. Caller frees. */
char *attest_key_public_pem(const attest_key *k);
bool attest_key_is_private(const attest_key *k);
/* Ed25519 signature of data into sig. Returns 0, or -1 with *e (e.g. a public key). */
int attest_key_sign(const attest_key *k, const void *data, size_t len, uint8_t sig[ATTEST_SIG_LEN],
                    err **e);
/* True when sig is a valid signature of data by k. */
bool attest_key_verify(const attest_key *k, const void *data, size_t len, const uint8_t *sig,
                       size_t sig_len);
/* Frees a key; NULL is fine. Returns NULL. */
attest_key *attest_key_free(attest_key *k);

/* ---- canonical encodings and digests (ATTESTATION.md, "Encoding") ---- */

/* Appends one field: tag bytes, NUL, u64 big-endian length, value bytes. */
void attest_field(buf *b, const char *tag, const void *value, size_t len);
/* True when s is digest text: "sha256:" and 64 lower-case hex digits. */
bool attest_digest_valid(const char *s);
/* "sha256:<hex>" of n bytes into out. */
void attest_sha256_str(const void *p, size_t n, char out[ATTEST_DIGEST_LEN]);

/* The input encoding of a task (lang, mode, code, stdin, args, env, files; not the id). */
void attest_input_encoding(const proto_task *t, buf *out);
void attest_input_digest(const proto_task *t, char out[ATTEST_DIGEST_LEN]);
/* The output encoding (stdout, stderr, truncation flags, files, return value). */
void attest_output_encoding(const proto_output *o, buf *out);
void attest_output_digest(const proto_output *o, char out[ATTEST_DIGEST_LEN]);
/* The exit encoding: status name, exit code ("" when none), signal ("" when none). It enters
 * the execution digest as bytes, not hashed. */
void attest_exit_encoding(proto_status status, int exit_code, int signal, buf *out);
/* The environment encoding of n (key, value) pairs, sorted here by key (bytewise). Duplicate
 * keys are an error. Returns 0, or -1 with *e. */
int attest_environment_encoding(const proto_env *pairs, size_t n, buf *out, err **e);
int attest_environment_digest(const proto_env *pairs, size_t n, char out[ATTEST_DIGEST_LEN],
                              err **e);
/* SHA-256 of the execution encoding of the five parts (digests as "sha256:<hex>" text, "" for
 * an image digest that is not known). */
void attest_execution_digest(const char *image_digest, const char *input_digest,
                             const char *output_digest, const void *exit_enc, size_t exit_len,
                             const char *environment_digest, char out[ATTEST_DIGEST_LEN]);

/* The digests of one run (ATTESTATION.md, "Execution digest"), composed in this one place for
 * the node and for local runs (aisp run, aisp verify --replay). */
typedef struct attest_digests {
	char input[ATTEST_DIGEST_LEN]; /* "" when the task never parsed */
	char output[ATTEST_DIGEST_LEN];
	char environment[ATTEST_DIGEST_LEN];
	char execution[ATTEST_DIGEST_LEN];
} attest_digests;

/* Computes every digest of a run: task NULL gives an empty input digest, image_digest NULL an
 * empty image digest. Returns 0, or -1 with *e (duplicate environment keys). */
int attest_compute_digests(const char *image_digest, const proto_task *task, const proto_output *o,
                           const proto_env *env, size_t n_env, attest_digests *out, err **e);

/* ---- signing ---- */

/* Everything one attestation is made of. All borrowed. */
typedef struct attest_claim {
	const proto_task *task;     /* NULL when the task never parsed (input_digest "") */
	const proto_result *result; /* output, usage, timings, node id, runtime, image, attempts */
	const proto_limits *limits; /* resolved; NULL: all zero */
	const proto_env *env;       /* sandbox_environment() pairs */
	size_t n_env;
	const char
	    *previous;     /* this node's previous attestation digest; NULL or "" for the first */
	uint64_t sequence; /* this attestation's number in the node's chain (first: 1) */
	/* A sealed task's result (attest_sealed_result); with it the statement is the sealed one
	 * (attest/SEALED.md). A task with t->sealed is never signed without it. */
	const struct attest_sealed_out *sealed;
} attest_claim;

/* Builds the statement, signs it, and returns (each caller-owned) the DSSE envelope JSON, the
 * execution digest and the attestation digest (SHA-256 of the statement bytes, the chain
 * link). Any out pointer may be NULL. Returns 0, or -1 with *e. */
int attest_sign(const attest_key *k, const attest_claim *c, char **envelope_json,
                char **execution_digest, char **attestation_digest, err **e);
/* The DSSE pre-authentication encoding of a payload. */
void attest_pae(const char *type, const void *payload, size_t len, buf *out);

/* ---- verification ---- */

/* What one check concluded. */
typedef enum attest_verdict {
	ATTEST_PASS = 0, /* detail NULL */
	ATTEST_FAIL,     /* the result is not what was attested; detail says what differs */
	ATTEST_SKIP,     /* not checked; detail says what was missing ("no --task") */
	/* differs, and the task declared itself nondeterministic: not a failure (replay) */
	ATTEST_EXPECTED,
	ATTEST_ERROR, /* could not be checked here (replay: the sandbox could not run) */
} attest_verdict;

/* Called once per check, in order: signature, key_id, statement, subjects, output_digest, exit,
 * error, image_digest, environment_digest, limits, input_digest (ATTEST_SKIP without a task),
 * execution_digest, metadata, steps (a chain's), cost (when signed or carried), chain (from
 * the second result of a verifier on). */
typedef void (*attest_check_fn)(void *ud, const char *name, attest_verdict v, const char *detail);

/* Verifies results in order, checking the chain between consecutive ones. */
typedef struct attest_verifier attest_verifier;
attest_verifier *attest_verifier_new(void);
attest_verifier *attest_verifier_free(attest_verifier *v);
/* Checks one parsed result (its attestation field holds the envelope). pub NULL makes the
 * signature check fail ("no public key"); task NULL skips input_digest. The DSSE signature is
 * verified before the statement is parsed; if it fails, no other check runs. Returns 0 when
 * every check passed, 1 when one failed (each reported through cb). */
int attest_verifier_check(attest_verifier *v, const proto_result *r, const attest_key *pub,
                          const proto_task *task, attest_check_fn cb, void *ud);
/* One result document (JSON): parses it with proto_result_parse() and checks it alone.
 * Returns 0 when all pass, 1 when a check failed, -1 with *e when it is not a result. */
int attest_verify_result(const char *result_json, size_t len, const attest_key *pub,
                         const proto_task *task, attest_check_fn cb, void *ud, err **e);
/* The attestation digest of an envelope (SHA-256 of its decoded payload), without checking
 * the signature. Returns 0, or -1 with *e. */
int attest_envelope_digest(const char *envelope_json, char out[ATTEST_DIGEST_LEN], err **e);
/* The key id its one signature names ("sha256:<64 hex>", checked), without checking the
 * signature: where to look the key up (aisp:key:<key id>). Returns 0, or -1 with *e. */
int attest_envelope_key_id(const char *envelope_json, char out[ATTEST_DIGEST_LEN], err **e);

/* predicate.limits and the environment's limits.<field> pairs are one value written twice.
 * Returns 0 when each limit of l (NULL: all zero) equals its pair, or when none is set and the
 * environment has no limits.* pair (a result that never reached a sandbox); otherwise -1 with
 * *e naming every mismatch ("limits.memory_bytes is 268435456 in predicate.limits, 536870912
 * in the environment"). */
int attest_limits_match(const proto_limits *l, const proto_env *env, size_t n, err **e);

/* What a statement claims about how its task ran: what a replay re-executes under and
 * compares with. Read by name from an envelope's payload; the signature is NOT checked here
 * (verify first). Everything owned; "" for a missing string. */
typedef struct attest_claims {
	char *runtime, *image_digest, *input_digest, *output_digest, *environment_digest;
	char *execution_digest, *status;
	int64_t exit_code; /* -1: null */
	int64_t signal;    /* 0: none */
	bool nondeterministic;
	proto_limits limits;
	proto_env *env; /* predicate.environment, in its order */
	size_t n_env;
} attest_claims;

/* Returns 0, or -1 with *e: not a statement, no runtime or image (the task never ran), a
 * malformed environment or limits, or limits that disagree with the environment (named). */
int attest_claims_read(const char *envelope_json, attest_claims *c, err **e);
void attest_claims_deinit(attest_claims *c);

/* ---- the credential proxy's audit trail (ATTESTATION.md, "Proxy calls") ---- */

/* "sha256:<hex>" of the entry's canonical JSON: the next entry's prev, or the trail's head. */
void attest_proxy_entry_digest(const proto_proxy_call *c, char out[ATTEST_DIGEST_LEN]);
/* NULL when a's entries chain (seq 1.., each prev the digest of the one before, "" first) up
 * to its head; else why not (caller frees). */
char *attest_proxy_chain_why(const proto_proxy_audit *a);

/* ---- secrets (ATTESTATION.md, "Secrets") ---- */

#define ATTEST_SECRET_KEY_LEN    32
#define ATTEST_SECRET_DIGEST_LEN 77 /* "hmac-sha256:" + 64 hex + NUL */

/* "hmac-sha256:" + hex HMAC-SHA-256(key, "aisp-secret-v1" NUL name NUL value): the keyed
 * digest an attestation records for a secret a task received (never the value). Returns 0, or
 * -1 with *e (an OpenSSL failure). */
int attest_secret_digest(const uint8_t key[ATTEST_SECRET_KEY_LEN], const char *name,
                         const uint8_t *value, size_t len, char out[ATTEST_SECRET_DIGEST_LEN],
                         err **e);

/* ---- chains (attest/CHAINS.md) ---- */

/* "sha256:<hex>" of a value's encoding (what flows between a chain's steps). */
void attest_value_digest(const proto_value *v, char out[ATTEST_DIGEST_LEN]);

/* What a statement claims about one step ("" and -1 for what it does not say). */
typedef struct attest_step_claim {
	char type[8], status[16];
	char input_digest[ATTEST_DIGEST_LEN], output_digest[ATTEST_DIGEST_LEN];
	char stdout_digest[ATTEST_DIGEST_LEN], stderr_digest[ATTEST_DIGEST_LEN];
	char request_digest[ATTEST_DIGEST_LEN], response_digest[ATTEST_DIGEST_LEN];
	int64_t exit_code, signal, prompt_tokens, completion_tokens;
} attest_step_claim;

typedef struct attest_chain_claims {
	char input_digest[ATTEST_DIGEST_LEN];     /* predicate.input_digest */
	char execution_digest[ATTEST_DIGEST_LEN]; /* predicate.execution_digest */
	char output_digest[ATTEST_DIGEST_LEN];    /* the chain's output value's */
	int64_t failed_step;                      /* -1: none */
	attest_step_claim steps[PROTO_STEPS_MAX];
	size_t n_steps;
} attest_chain_claims;

/* The chain section of an envelope's statement; the signature is NOT checked here (verify
 * first). Returns 0, or -1 with *e (not a statement, or no chain section). */
int attest_chain_claims_read(const char *envelope_json, attest_chain_claims *out, err **e);
/* How a step's record differs from its claim ("the output differs (recorded sha256:...,
 * attested sha256:...)", what naming the record: "recorded", "replayed"), or NULL when it
 * agrees (type, status, output; llm: request, response and usage; script: stdout, stderr,
 * exit). Caller frees. */
char *attest_step_compare(const proto_step_run *s, const attest_step_claim *c, const char *what);

/* ---- the node's hash chain (a state file kept by the daemon) ---- */

typedef struct attest_chain {
	char previous[ATTEST_DIGEST_LEN]; /* "" before the first attestation */
	uint64_t sequence;                /* number of the last attestation, 0 before the first */
} attest_chain;

#define ATTEST_CHAIN_INIT                                                                          \
	{                                                                                          \
		"", 0                                                                              \
	}

/* Each of the state file's two slots (attest/chain.c has the format). */
#define ATTEST_CHAIN_SLOT 4096

/* Parses a state file's contents: the slotted form (two slots, the newest valid one counts,
 * *newest its index when not NULL) or the older single {"previous":...,"sequence":N} object
 * (*newest = -1). Returns 0, or -1 with *e. */
int attest_chain_parse(const char *text, size_t len, attest_chain *c, int *newest, err **e);
/* Loads dirfd/name; a missing file is a fresh chain. Returns 0, or -1 with *e (unreadable, or
 * no slot holds a valid state). */
int attest_chain_load(int dirfd, const char *name, attest_chain *c, err **e);

/* The open state file the daemon saves into. */
typedef struct attest_chain_file attest_chain_file;
/* Loads dirfd/name into *c and opens it for saving; a missing file (or one in the older form)
 * is written in the slotted form first (atomically: write, fsync, rename, fsync of dirfd).
 * Returns 0 with *out, or -1 with *e and *out NULL. */
int attest_chain_open(int dirfd, const char *name, attest_chain_file **out, attest_chain *c,
                      err **e);
/* Saves c: the slot not holding the newest state, written in place, then fdatasync. Returns 0,
 * or -1 with *e: then the newest state on disk is still the one before (a crash may have kept
 * c, whose number was never published: skipped, never reused). */
int attest_chain_store(attest_chain_file *f, const attest_chain *c, err **e);
attest_chain_file *attest_chain_close(attest_chain_file *f);
/* Why the open found one slot without a valid state (a save torn by a crash, or damage), or
 * NULL when both slots were valid. Borrowed. */
const char *attest_chain_skipped(const attest_chain_file *f);
/* Records a signed attestation: previous = digest, sequence = its sequence. */
void attest_chain_advance(attest_chain *c, const char *attestation_digest, uint64_t sequence);

/* ---- age: encryption to X25519 recipients (C2SP age v1; attest/AGE.md) ----
 * The node's encryption identity and the sealing of byte strings in the age format, both ways
 * compatible with the stock `age` command. Binary and ASCII-armored files; no passphrases,
 * plugins or post-quantum recipients. Everything is in memory and bounded. */

#define ATTEST_AGE_IDENTITY_LEN      74            /* "AGE-SECRET-KEY-1" + 58 bech32 characters */
#define ATTEST_AGE_RECIPIENT_LEN     62            /* "age1" + 58 bech32 characters */
#define ATTEST_AGE_STANZA_MAX        128           /* recipient stanzas in one header */
#define ATTEST_AGE_HEADER_MAX        (256u * 1024) /* bytes of one header */
#define ATTEST_AGE_INPUT_MAX         (256u * 1024 * 1024) /* default maximum input to decrypt */
#define ATTEST_AGE_IDENTITY_FILE_MAX (64u * 1024)
#define ATTEST_AGE_KEY_FILE          "age.key" /* written by attest_age_identity_write_pair() */
#define ATTEST_AGE_PUB_FILE          "age.pub"

/* An X25519 identity (the secret key). Opaque; its secret is wiped when freed. */
typedef struct attest_age_identity attest_age_identity;
/* An X25519 recipient: the public point. */
typedef struct attest_age_recipient {
	uint8_t key[32];
} attest_age_recipient;

/* Creates a fresh identity. Returns 0, or -1 with *e. */
int attest_age_identity_generate(attest_age_identity **out, err **e);
/* Parses one "AGE-SECRET-KEY-1..." string (upper case, nothing around it). 0, or -1 with *e. */
int attest_age_identity_parse(attest_age_identity **out, const char *text, err **e);
/* The identity's text into out (secret: wipe it with OPENSSL_cleanse after use). */
void attest_age_identity_format(const attest_age_identity *id,
                                char out[ATTEST_AGE_IDENTITY_LEN + 1]);
/* The identity's recipient. */
void attest_age_identity_recipient(const attest_age_identity *id, attest_age_recipient *out);
/* Frees an identity (wiping its secret); NULL is fine. Returns NULL. */
attest_age_identity *attest_age_identity_free(attest_age_identity *id);
/* Frees ids[0..n) and the array. Returns NULL. */
attest_age_identity **attest_age_identities_free(attest_age_identity **ids, size_t n);

/* Parses an identity file in age-keygen's format: lines ending in LF (CRLF accepted), empty
 * lines and lines starting with '#' ignored, every other line one identity; at least one.
 * *ids is caller-owned (attest_age_identities_free). Returns 0, or -1 with *e ("line N: ..."). */
int attest_age_identities_parse(const char *text, size_t len, attest_age_identity ***ids, size_t *n,
                                err **e);
/* Reads and parses an identity file. Refuses a symlink, a file that is not regular, larger than
 * ATTEST_AGE_IDENTITY_FILE_MAX, or accessible by group or others. 0, or -1 with *e. */
int attest_age_identities_load(const char *path, attest_age_identity ***ids, size_t *n, err **e);
/* Loads a file that must hold exactly one identity (the node's DIR/age.key). */
int attest_age_identity_load(const char *path, attest_age_identity **out, err **e);
/* Writes DIR/age.key (0600, age-keygen's format: "# created", "# public key" and the identity)
 * and DIR/age.pub (0644, the recipient and LF), each atomically (write_file_at). Without force
 * an existing file is an error and nothing is written. Returns 0, or -1 with *e. */
int attest_age_identity_write_pair(const attest_age_identity *id, const char *dir, bool force,
                                   err **e);

/* Parses one "age1..." recipient (lower case). Returns 0, or -1 with *e naming what is wrong
 * (checksum, an unsupported type such as age1pq1..., the length). */
int attest_age_recipient_parse(attest_age_recipient *out, const char *text, err **e);
/* The recipient's "age1..." text into out. */
void attest_age_recipient_format(const attest_age_recipient *r,
                                 char out[ATTEST_AGE_RECIPIENT_LEN + 1]);

/* Encrypts p[0..n) to recipients r[0..n_r) (1 <= n_r <= ATTEST_AGE_STANZA_MAX) as a binary
 * age file, or ASCII-armored with armor. *out (caller frees) holds *out_len bytes. Returns 0,
 * or -1 with *e. */
int attest_age_encrypt(const void *p, size_t n, const attest_age_recipient *r, size_t n_r,
                       bool armor, uint8_t **out, size_t *out_len, err **e);

/* Why a decryption failed: the classes of the age test vectors, plus the size limit. */
typedef enum attest_age_failure {
	ATTEST_AGE_OK = 0,
	ATTEST_AGE_FAIL_LIMIT,    /* larger than the maximum; nothing was parsed */
	ATTEST_AGE_FAIL_ARMOR,    /* the ASCII armor is malformed */
	ATTEST_AGE_FAIL_HEADER,   /* the header (or a stanza for our type, or the nonce) is bad */
	ATTEST_AGE_FAIL_NO_MATCH, /* no identity unwraps any stanza */
	ATTEST_AGE_FAIL_HMAC,     /* the header MAC does not match: the header was changed */
	ATTEST_AGE_FAIL_PAYLOAD,  /* a chunk failed authentication, is missing, or data trails */
} attest_age_failure;

typedef enum attest_age_armor {
	ATTEST_AGE_ARMOR_AUTO = 0, /* armored when it starts (after whitespace) with BEGIN */
	ATTEST_AGE_ARMOR_REQUIRE,
	ATTEST_AGE_ARMOR_REFUSE,
} attest_age_armor;

typedef struct attest_age_decrypt_opts {
	size_t max_size; /* the largest input accepted; 0: ATTEST_AGE_INPUT_MAX */
	attest_age_armor armor;
	/* false (what the node uses): all or nothing, *out is NULL after any failure.
	 * true: after a payload failure *out holds the plaintext of the chunks that authenticated
	 * before it, in order (what a streaming reader would have released). */
	bool release_prefix;
} attest_age_decrypt_opts;

/* Decrypts the age file in[0..len) with identities ids[0..n_ids): *out (caller frees; wipe it
 * with OPENSSL_cleanse when it is secret) holds *out_len bytes of plaintext. opts may be NULL
 * (the defaults). Returns 0, or -1 with *e ("age: ...") and, when why is not NULL, the class
 * of the failure in *why. */
int attest_age_decrypt(const void *in, size_t len, attest_age_identity *const *ids, size_t n_ids,
                       const attest_age_decrypt_opts *opts, uint8_t **out, size_t *out_len,
                       attest_age_failure *why, err **e);
/* The class's name as in the vectors ("header failure", "no match", ...; "success"). */
const char *attest_age_failure_name(attest_age_failure f);

/* ---- signed documents, passports and trust decisions (attest/TRUST.md) ----
 * Ed25519 public keys travel as the base64 of their 32 raw bytes; a key id is always
 * attest_key_id()'s "sha256:" + hex SHA-256 of the DER SubjectPublicKeyInfo. */

#define ATTEST_RAW_KEY_LEN 32

/* The key id of a raw Ed25519 public key (the same text attest_key_id() gives). */
void attest_raw_key_id(const uint8_t raw[ATTEST_RAW_KEY_LEN], char out[ATTEST_DIGEST_LEN]);
/* A public key from its 32 raw bytes. Returns 0, or -1 with *e. */
int attest_key_from_raw(attest_key **out, const uint8_t raw[ATTEST_RAW_KEY_LEN], err **e);
/* The 32 raw bytes of k's public key. */
void attest_key_raw(const attest_key *k, uint8_t out[ATTEST_RAW_KEY_LEN]);

/* A DSSE envelope {"payloadType", "payload", "signatures": [{"keyid", "sig"}]} over payload,
 * signed by k (the PAE of attest_pae()). *envelope_json caller frees. Returns 0, or -1. */
int attest_dsse_sign(const attest_key *k, const char *payload_type, const void *payload, size_t len,
                     char **envelope_json, err **e);
/* True when sig is k's signature of the PAE of (payload_type, payload). */
bool attest_dsse_verify(const attest_key *k, const char *payload_type, const void *payload,
                        size_t len, const uint8_t sig[ATTEST_SIG_LEN]);

/* A signed task: the DSSE envelope (payload type PROTO_TASK_PAYLOAD_TYPE) of the exact bytes
 * of a task document, which must name k as its "signer". Returns 0, or -1 with *e. */
int attest_task_sign(const attest_key *k, const char *task_json, size_t len, char **envelope_json,
                     err **e);

#define ATTEST_PASSPORT_TYPE         "https://aisp.dev/passport/v1"
#define ATTEST_PASSPORT_PAYLOAD_TYPE "application/vnd.aisp.passport+json"
#define ATTEST_PASSPORT_CLAIMS_MAX   16

typedef struct attest_passport_claim {
	char type[PROTO_TRUST_NAME_MAX + 1]; /* verified_human, verified_identity, ... */
	proto_assurance assurance;
	char provider[PROTO_TRUST_NAME_MAX + 1]; /* bankid_se, stripe_identity, ... */
} attest_passport_claim;

/* A passport: claims about a subject key, signed by an issuer key. */
typedef struct attest_passport {
	char id[PROTO_ID_MAX + 1];
	char issuer[ATTEST_DIGEST_LEN]; /* the issuer's key id */
	uint8_t issuer_key[ATTEST_RAW_KEY_LEN];
	uint8_t subject[ATTEST_RAW_KEY_LEN];
	char subject_id[ATTEST_DIGEST_LEN];
	int64_t issued_at,
	    expires_at; /* seconds since the epoch; valid in [issued_at, expires_at) */
	attest_passport_claim claims[ATTEST_PASSPORT_CLAIMS_MAX];
	size_t n_claims;
	/* attest_passport_parse(): the signed payload and its signature (owned). */
	uint8_t *payload;
	size_t payload_len;
	uint8_t sig[ATTEST_SIG_LEN];
} attest_passport;

/* Signs p (id, subject, times and claims filled in; issuer and issuer_key are set here from
 * issuer) as a passport envelope (*envelope_json caller frees). Returns 0, or -1 with *e (an
 * invalid field, named). */
int attest_passport_issue(const attest_key *issuer, attest_passport *p, char **envelope_json,
                          err **e);
/* Parses a passport envelope strictly (unknown fields, a bad id, name or time, issuer fields
 * that disagree: each named in *e) without checking the signature. Returns 0, or -1. */
int attest_passport_parse(const char *json, size_t len, attest_passport *p, err **e);
/* True when the parsed passport's signature verifies with its issuer key. */
bool attest_passport_signature_ok(const attest_passport *p);
void attest_passport_deinit(attest_passport *p);
/* The node's age recipient, vouched for by its signing key (issue 20 item 1: the registry
 * publishes it, so that a buyer can check whose recipient it is): a DSSE envelope of payload
 * type ATTEST_RECIPIENT_PAYLOAD_TYPE over {"_type": ATTEST_RECIPIENT_TYPE, "node_id",
 * "recipient": "age1...", "key_id", "issued_at_ms"}. *envelope_json caller frees. 0, or -1. */
#define ATTEST_RECIPIENT_TYPE         "https://aisp.dev/node-recipient/v1"
#define ATTEST_RECIPIENT_PAYLOAD_TYPE "application/vnd.aisp.node-recipient+json"
int attest_recipient_sign(const attest_key *k, const char *node_id, const attest_age_recipient *r,
                          int64_t issued_at_ms, char **envelope_json, err **e);
/* Checks such an envelope with the node's public key and node id; *out receives the recipient.
 * Returns 0, or -1 with *e naming what is wrong (signature, another node or key, the
 * recipient). */
int attest_recipient_verify(const char *envelope_json, size_t len, const attest_key *pub,
                            const char *node_id, attest_age_recipient *out, err **e);
/* Seconds since the epoch as "2025-01-31T12:00:00Z" into out. */
void attest_time_str(int64_t s, char out[32]);

/* What a node trusts: [trust] in aispd.conf (attest/TRUST.md, "Configuration"). */
#define ATTEST_TRUST_ISSUERS_MAX 64
typedef struct attest_trust_config {
	char (*issuers)[ATTEST_DIGEST_LEN]; /* trusted issuer key ids */
	size_t n_issuers;
	int64_t clock_skew_s;        /* tolerated clock difference; default 60 */
	int64_t revocation_poll_ms;  /* how often a running task's parties are checked; 1000 */
	proto_trust_level min_level; /* every task needs at least this; default none */
} attest_trust_config;

void attest_trust_config_init(attest_trust_config *c); /* the defaults */
void attest_trust_config_deinit(attest_trust_config *c);
/* Sets one [trust] key from its text: issuers (a list of key ids "sha256:<hex>" or paths of
 * PEM public keys, separated by commas or spaces; each line adds to the list), clock_skew_s
 * (0..3600), revocation_poll_ms (50..1000), min_level (none, L0, L1, L2). Returns 0, or -1
 * with *e ("issuers: ..."; an unknown key is an error). */
int attest_trust_config_set(attest_trust_config *c, const char *key, const char *value, err **e);
bool attest_trust_config_trusts(const attest_trust_config *c, const char *issuer_id);

/* What a task's signature and passport show, checked cryptographically (no clock, no
 * revocation store: attest_trust_decide() weighs these facts). */
typedef struct attest_task_auth {
	bool is_signed;                    /* it came in a signed-task envelope */
	char *signature_error;             /* NULL when the signature verifies (or none) */
	char signer_id[ATTEST_DIGEST_LEN]; /* "" without a signer */
	bool has_passport;
	char *passport_error; /* NULL when the passport parsed */
	attest_passport passport;
	bool passport_signature_ok;
} attest_task_auth;

/* Fills a from t (t->auth): verifies the task signature and parses and verifies the passport.
 * Never fails: what is wrong is recorded for the decision. */
void attest_task_auth_init(attest_task_auth *a, const proto_task *t);
void attest_task_auth_deinit(attest_task_auth *a);

/* The parties a revocation can name. */
typedef enum attest_party {
	ATTEST_PARTY_SIGNER = 0, /* key:<signer key id> */
	ATTEST_PARTY_ISSUER,     /* key:<passport issuer key id> */
	ATTEST_PARTY_PASSPORT,   /* passport:<passport id> */
	ATTEST_PARTY__COUNT,
} attest_party;

/* What the revocation store said about a task's parties. */
typedef struct attest_revocations {
	char *why[ATTEST_PARTY__COUNT]; /* NULL: not revoked; else the description */
} attest_revocations;

/* The PROTO_KEY_REVOKED fields to read for a's parties (HMGET aisp:revoked f...): fields[i]
 * (caller frees each) is party[i]'s. Returns how many (0..ATTEST_PARTY__COUNT). */
size_t attest_task_auth_fields(const attest_task_auth *a, char *fields[ATTEST_PARTY__COUNT],
                               attest_party party[ATTEST_PARTY__COUNT]);
/* Describes a revocation record read for field ("passport:pp_1 is revoked since
 * 2025-01-31T12:00:00Z: lost device"); a record that does not parse is still a revocation
 * (fail closed) and says so. Caller frees. */
char *attest_revocation_describe(const char *field, const char *value, size_t len);
/* Records the store's answer (value NULL: not revoked) for one party. */
void attest_revocations_set(attest_revocations *r, attest_party p, const char *field,
                            const char *value, size_t len);
void attest_revocations_deinit(attest_revocations *r);

/* Why a task was (not) admitted; one value per check of attest/TRUST.md, "The decision". */
typedef enum attest_trust_reason {
	ATTEST_TRUST_OK = 0,
	ATTEST_TRUST_BAD_SIGNATURE,
	ATTEST_TRUST_UNSIGNED,
	ATTEST_TRUST_REVOKED,
	ATTEST_TRUST_NO_PASSPORT,
	ATTEST_TRUST_PASSPORT_INVALID,
	ATTEST_TRUST_PASSPORT_SIGNATURE,
	ATTEST_TRUST_UNKNOWN_ISSUER,
	ATTEST_TRUST_NOT_YET_VALID,
	ATTEST_TRUST_EXPIRED,
	ATTEST_TRUST_SUBJECT_MISMATCH,
	ATTEST_TRUST_MISSING_CLAIM,
	ATTEST_TRUST_ASSURANCE,
	ATTEST_TRUST_PROVIDER,
	ATTEST_TRUST__COUNT,
} attest_trust_reason;

/* "ok", "bad_signature", "unsigned", ... */
const char *attest_trust_reason_name(attest_trust_reason r);

typedef struct attest_trust_decision {
	attest_trust_reason reason;
	proto_trust_level level; /* the level that was required */
	char *message;           /* NULL when admitted; the client-facing reason (caller frees) */
} attest_trust_decision;

/* The trust decision, a pure function of its arguments: the requirements reqs[0..n) (a task's
 * own, a skill's) on top of cfg->min_level, the checked facts a, what the revocation store
 * said (rev), and the time now_s (seconds since the epoch). Returns 0 when the task may run,
 * or -1 with out->reason and out->message. Free out with attest_trust_decision_deinit(). */
int attest_trust_decide(const attest_trust_config *cfg, const proto_trust_req *const *reqs,
                        size_t n, const attest_task_auth *a, const attest_revocations *rev,
                        int64_t now_s, attest_trust_decision *out);
void attest_trust_decision_deinit(attest_trust_decision *d);

/* ---- sealed tasks (attest/SEALED.md) ----
 * A sealed task's confidential parts arrive as age ciphertext for the node, are decrypted into
 * memory only, and its result goes back as one age ciphertext for the buyer (reply_to). The
 * signed statement names the ciphertexts received and delivered; plaintext digests appear only
 * inside the buyer's ciphertext, and in the statement as salted commitments. */

#define ATTEST_SEALED_PREDICATE_TYPE "https://aisp.dev/attestation/sealed-execution/v1"
#define ATTEST_SEALED_RESULT_TYPE    "https://aisp.dev/sealed-result/v1"
#define ATTEST_SALT_LEN              32
/* What the sealed statement says the guarantee is, and is not. */
#define ATTEST_SEALED_GUARANTEE                                                                    \
	"The node decrypted the sealed parts only into its memory and the sandbox's tmpfs, ran "   \
	"them in a fresh sandbox, and encrypted the result to reply_to; nothing of them was "      \
	"written to disk, Redis or logs. This is not a hardware enclave: the node's operator is "  \
	"trusted not to read the node's memory."

/* Decrypts the sealed parts of t (t->sealed) with the node's identities into t's plaintext
 * fields, in memory only, and checks reply_to. Afterwards t runs like any task
 * (proto_task_sealed_pending() is false). A task without t->sealed is left alone. Returns 0,
 * or -1 with *e, a message that is safe to publish: it never quotes plaintext; when a
 * decrypted part is invalid, the full reason is kept in t->sealed->private_error, for the
 * sealed result. Returns -2 (with *e) when a part is for none of ids (age's "no match"): the
 * task was sealed for another node, which a fleet with one shared identity never sees. */
int attest_sealed_open(proto_task *t, attest_age_identity *const *ids, size_t n_ids, err **e);

/* The salted commitments of a sealed statement, in this order. */
typedef enum attest_commit {
	ATTEST_COMMIT_CODE = 0, /* SHA-256 of the code (a sealed part) */
	ATTEST_COMMIT_STDIN,
	ATTEST_COMMIT_ARGS,        /* SHA-256 of the args' canonical JSON text */
	ATTEST_COMMIT_FILES,       /* SHA-256 of the files encoding */
	ATTEST_COMMIT_STEPS,       /* SHA-256 of a chain's steps as compact JSON */
	ATTEST_COMMIT_CHAIN_INPUT, /* SHA-256 of a chain's input as compact JSON */
	ATTEST_COMMIT_INPUT,       /* the input digest (ATTESTATION.md) */
	ATTEST_COMMIT_OUTPUT,
	ATTEST_COMMIT_EXIT, /* SHA-256 of the exit encoding */
	ATTEST_COMMIT_EXECUTION,
	ATTEST_COMMIT__COUNT,
} attest_commit;

/* "code", "stdin", "args", "files", "input", "output", "exit", "execution". */
const char *attest_commit_name(attest_commit c);
/* commitment = "sha256:" + hex SHA-256(salt || digest text), into out. */
void attest_commitment(const uint8_t salt[ATTEST_SALT_LEN], const char *digest,
                       char out[ATTEST_DIGEST_LEN]);

/* A sealed result, ready for signing. */
typedef struct attest_sealed_out {
	bool has[ATTEST_COMMIT__COUNT];
	char digest[ATTEST_COMMIT__COUNT][ATTEST_DIGEST_LEN]; /* secret: only in the ciphertext */
	uint8_t salt[ATTEST_COMMIT__COUNT][ATTEST_SALT_LEN];
	char commitment[ATTEST_COMMIT__COUNT][ATTEST_DIGEST_LEN];
	char environment_digest[ATTEST_DIGEST_LEN];
	char delivered[ATTEST_DIGEST_LEN]; /* SHA-256 of the age file for reply_to */
} attest_sealed_out;

/* Builds the result of a sealed task t from the real one: the sealed result document (real's
 * output, its digests, and the commitments with their salts; output files are dropped, with
 * files_truncated, until it fits PROTO_SEALED_DOC_MAX) encrypted to reply_to, and the public
 * result *pub (caller deinits): real's id, status, usage, node, runtime, image and times; no
 * output, no exit code; the node's own message for rejected, internal and revoked results;
 * "sealed" the base64 of the age file. env: the sandbox environment (NULL before a plan).
 * Sign *pub with the claim's sealed = out. Returns 0, or -1 with *e (reply_to unusable: then
 * publish an ordinary rejected result without the task). */
int attest_sealed_result(const proto_task *t, const proto_result *real, const proto_env *env,
                         size_t n_env, proto_result *pub, attest_sealed_out *out, err **e);

/* Verifying a sealed result (aisp unseal --verify). */
typedef enum attest_sealed_verdict {
	ATTEST_SEALED_PASS = 0,
	ATTEST_SEALED_FAIL,
	ATTEST_SEALED_SKIP, /* not checked: detail says what was missing */
} attest_sealed_verdict;

/* Called once per check, in order: signature, key_id, statement, sealed_result, metadata,
 * environment_digest, received, decrypt, document, outputs, commitments, output, exit, input,
 * execution. */
typedef void (*attest_sealed_check_fn)(void *ud, const char *name, attest_sealed_verdict v,
                                       const char *detail);

typedef struct attest_sealed_verify_opts {
	const attest_key *node_key;      /* NULL: the signature check fails */
	attest_age_identity *const *ids; /* the buyer's identities; none: checks 8.. skipped */
	size_t n_ids;
	const proto_task *sealed_task; /* the task as sent (ciphertexts); NULL: received skipped */
	const proto_task *plain_task;  /* the buyer's plaintext of it; NULL: input skipped */
} attest_sealed_verify_opts;

/* Verifies a sealed result document (attest/SEALED.md, "Verification"). inner (optional,
 * always initialised; caller deinits) receives the decrypted result, when it could be read. Returns 0 when no check failed, 1 when one
 * did (each reported through cb), -1 with *e when result_json is not a result. */
int attest_sealed_verify(const char *result_json, size_t len, const attest_sealed_verify_opts *o,
                         attest_sealed_check_fn cb, void *ud, proto_result *inner, err **e);
