/* Task and result types, their JSON codec and validation, Redis key names and the bounds on
 * every untrusted size. The wire format is specified in proto/PROTOCOL.md. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "proto/caps.h"

/* ---- bounds on untrusted input (PROTOCOL.md, "Limits"); the caps on results, shared with
 * their producers, are in proto/caps.h ---- */
#define PROTO_TASK_MAX_BYTES  PROTO_DOC_MAX_BYTES /* one stream entry's payload */
#define PROTO_ID_MAX          64
#define PROTO_CODE_MAX        (1u * 1024 * 1024)
#define PROTO_STDIN_MAX       (4u * 1024 * 1024)
#define PROTO_ARGS_MAX        (64u * 1024) /* args JSON text */
#define PROTO_ARGV_MAX        256
#define PROTO_ENV_MAX         64
#define PROTO_ENV_NAME_MAX    128
#define PROTO_ENV_VALUE_MAX   4096
#define PROTO_FILES_MAX       64
#define PROTO_FILES_TOTAL_MAX (8u * 1024 * 1024) /* decoded input files, summed */
#define PROTO_NAME_MAX        128                /* image, runtime, reply stream names */
/* Blobs (proto/SKILLS.md, "Blobs"): content-addressed byte strings shared through Redis. */
#define PROTO_BLOB_MAX        (8u * 1024 * 1024)  /* one blob */
#define PROTO_BLOBS_MAX       16                  /* input blobs one task lists */
#define PROTO_BLOBS_TOTAL     (32u * 1024 * 1024) /* input blobs of one task, summed */
#define PROTO_OUT_BLOBS_MAX   16                  /* output blobs one task creates */
#define PROTO_OUT_BLOBS_TOTAL (32u * 1024 * 1024) /* output blobs of one task, summed */
#define PROTO_BLOB_TTL_S      86400               /* default TTL of a blob key */
#define PROTO_BLOB_TTL_MAX_S  (30 * 86400)        /* the longest TTL `aisp blob put` sets */
#define PROTO_BLOB_ID_LEN     71                  /* "sha256:" + 64 hex, without the NUL */
/* The runtime's structured log (proto/SKILLS.md, "The runtime module"): a result's `logs`. */
#define PROTO_LOG_MAX          (64u * 1024) /* the log file, as collected */
#define PROTO_LOG_ENTRIES_MAX  256
#define PROTO_LOG_MESSAGE_MAX  2048 /* bytes of one entry's message */
#define PROTO_LOGS_PREVIEW_MAX 2048 /* logs_preview: stdout + stderr, cut on UTF-8 */
/* Skills a task uses (proto/PROTOCOL.md, "Skills"): execute_skill's one, or run_code's mounts. */
#define PROTO_SKILLS_MAX    8
#define PROTO_SKILL_REF_MAX 136 /* a name [a-z][a-z0-9_]{0,63}, "sha256:<hex>", or NAME@DIGEST */

/* ---- Redis names (PROTOCOL.md, "Keys") ---- */
/* Ids the node gives rejections of entries whose own id cannot be read ("entry-<entry id>");
 * a client's id may not start so, or it could take such a rejection's place. */
#define PROTO_ID_RESERVED_PREFIX "entry-"
#define PROTO_KEY_TASKS          "aisp:tasks"
#define PROTO_GROUP              "aisp"
#define PROTO_KEY_RESULTS        "aisp:results"
#define PROTO_KEY_DEAD           "aisp:dead"
#define PROTO_KEY_NODES          "aisp:nodes"
#define PROTO_KEY_RESULT_PREFIX  "aisp:result:"
#define PROTO_KEY_NODE_PREFIX    "aisp:node:"
#define PROTO_KEY_RUNNING_PREFIX "aisp:running:" /* the run lease of a task id */
#define PROTO_KEY_REPLY_PREFIX   "aisp:reply:"   /* reply streams */
#define PROTO_KEY_WAITERS_PREFIX "aisp:waiters:" /* reply streams of duplicates of a running id */
#define PROTO_KEY_HANDOFF_PREFIX "aisp:handoff:" /* hops of an entry between unlike nodes */
#define PROTO_KEY_CANCEL_PREFIX  "aisp:cancel:"  /* a client's request to cancel a task id */
#define PROTO_KEY_BLOB_PREFIX    "aisp:blob:"    /* + blob id: the blob's bytes, SET NX, TTL */
#define PROTO_KEY_KEY_PREFIX     "aisp:key:"     /* a node public key by key id */
#define PROTO_KEY_AUDIT_PREFIX   "aisp:audit:"   /* a node's discarded signed results */
#define PROTO_KEY_LOCK_PREFIX    "aisp:lock:"    /* the node id lock: one live process per id */

typedef enum proto_lang {
	PROTO_LANG_PYTHON = 0,
	PROTO_LANG_JAVASCRIPT,
	PROTO_LANG_SHELL,
	PROTO_LANG__COUNT,
} proto_lang;

typedef enum proto_mode {
	PROTO_MODE_SCRIPT = 0,
	PROTO_MODE_FUNCTION,
} proto_mode;

typedef enum proto_status {
	PROTO_STATUS_OK = 0,       /* the program ran and exited (any exit code) or was signalled */
	PROTO_STATUS_TIMEOUT,      /* wall time limit reached; sandbox destroyed */
	PROTO_STATUS_OOM,          /* killed by the memory limit */
	PROTO_STATUS_OUTPUT_LIMIT, /* stdout/stderr/output files over their caps */
	PROTO_STATUS_ERROR,        /* function mode: main() raised, or its value was not JSON */
	PROTO_STATUS_SANDBOX_ERROR, /* the sandbox itself failed: the node's fault, retryable */
	PROTO_STATUS_REJECTED,      /* the task was invalid; it never ran */
	PROTO_STATUS_INTERNAL,      /* gave up after retries (dead-lettered) */
	PROTO_STATUS_CANCELLED, /* cancelled by a client (aisp:cancel:<id>): before or while it ran */
	PROTO_STATUS_REVOKED, /* a party's passport or key was revoked while it ran (attest/TRUST.md) */
	PROTO_STATUS__COUNT,
} proto_status;

/* Names as on the wire ("python", "function", "output_limit"...); NULL when out of range. */
const char *proto_lang_name(proto_lang l);
const char *proto_mode_name(proto_mode m);
const char *proto_status_name(proto_status s);
int proto_lang_parse(const char *s, proto_lang *out);
int proto_status_parse(const char *s, proto_status *out);

typedef struct proto_file {
	char *path; /* relative, validated: no "..", no leading "/", no empty components */
	uint8_t *data;
	size_t len;
} proto_file;

typedef struct proto_env {
	char *name; /* [A-Za-z_][A-Za-z0-9_]*, not one of the reserved names */
	char *value;
} proto_env;

#define PROTO_MIB (1LL << 20)

/* Every per-task limit, one row each: the single table from which the struct, the task's wire
 * names, the config keys, the attestation keys and the defaults are all generated.
 *   field      the proto_limits member, in internal units; also its attestation name
 *              (predicate.limits.<field>, environment key limits.<field>)
 *   wire       "limits.<wire>" in a task, and the config keys <wire> / max_<wire> in [limits]
 *   unit       internal units per wire unit; 0: a decimal with up to 3 places, kept in
 *              thousandths (cpus, timeout_s)
 *   dflt       the node's built-in default (and maximum), internal units (PROTOCOL.md)
 *   min        the smallest value a task or a config file may set, internal units: cpus 0.01
 *              is a CFS quota of 1 ms per 100 ms period, the kernel's minimum (a smaller one
 *              is refused by the kernel, so such a task could never run)
 *   cfg_max    the largest value a config file may set, in wire units
 *   container  fixed when a sandbox is created, so part of a warm pool's key */
#define PROTO_LIMITS(X)                                                                            \
	X(cpus_milli, "cpus", 0, 4000, 10, 1024, true)                                             \
	X(memory_bytes, "memory_mb", PROTO_MIB, 4096 * PROTO_MIB, PROTO_MIB, 1LL << 20, true)      \
	X(timeout_ms, "timeout_s", 0, 600 * 1000, 1, 7 * 86400, false)                             \
	X(pids, "pids", 1, 256, 1, 1 << 22, true)                                                  \
	X(nofile, "nofile", 1, 1024, 1, 1 << 20, false)                                            \
	X(fsize_bytes, "fsize_mb", PROTO_MIB, 64 * PROTO_MIB, PROTO_MIB, 1LL << 20, false)         \
	X(workspace_bytes, "workspace_mb", PROTO_MIB, 256 * PROTO_MIB, PROTO_MIB, 1LL << 20, true) \
	X(stdout_bytes, "stdout_bytes", 1, PROTO_MIB, 1, 1LL << 32, false)                         \
	X(stderr_bytes, "stderr_bytes", 1, PROTO_MIB, 1, 1LL << 32, false)

/* Limits; a field of 0 means "not set" (the node's default applies). */
typedef struct proto_limits {
#define PROTO_LIMIT_MEMBER_(field, wire, unit, dflt, min, cfg_max, container) int64_t field;
	PROTO_LIMITS(PROTO_LIMIT_MEMBER_)
#undef PROTO_LIMIT_MEMBER_
} proto_limits;

/* One row of PROTO_LIMITS, for code that walks the table. */
typedef struct proto_limit_field {
	const char *field; /* "memory_bytes" */
	const char *wire;  /* "memory_mb" */
	size_t offset;     /* in proto_limits */
	int64_t unit;      /* 0: thousandths of a decimal */
	int64_t dflt;      /* internal units */
	int64_t min;       /* internal units */
	int64_t cfg_max;   /* wire units */
	bool container;
} proto_limit_field;

#define PROTO_LIMIT_COUNT 9
extern const proto_limit_field proto_limit_fields[PROTO_LIMIT_COUNT];

static inline int64_t *proto_limit_at(proto_limits *l, const proto_limit_field *f)
{
	return (int64_t *)(void *)((char *)l + f->offset);
}

static inline int64_t proto_limit_get(const proto_limits *l, const proto_limit_field *f)
{
	return *(const int64_t *)(const void *)((const char *)l + f->offset);
}

/* The built-in defaults (the dflt column): the node's defaults and maxima when its config
 * sets none, and what `aisp run` applies locally. */
void proto_limits_default(proto_limits *l);
/* An exact non-negative decimal from JSON number text (digits, an optional fraction, an
 * optional exponent; no sign) scaled by 10^frac: 0 with *out (zero included), -1 when it is
 * not such a number or has more than frac decimals, -2 when it is too large for int64.
 * ("0.7", 3) -> 700; ("1.5e-05", 9) -> 15000. */
int proto_decimal_parse(const char *s, int frac, int64_t *out);
/* Formats thousandths as a decimal without trailing zeros: 1500 -> "1.5". Caller frees. */
char *proto_milli_str(int64_t milli);

/* Parses a limit from its wire text ("512", "0.5") into internal units: a positive integer,
 * or for unit-0 fields a positive decimal with at most 3 places, at least the field's min.
 * Returns 0, or -1 with a message naming "limits.<wire>" in *e ("must be a positive integer",
 * "must be a positive number with at most 3 decimals", "is too large", "must be at least
 * 0.01"). */
int proto_limit_parse(const proto_limit_field *f, const char *text, int64_t *out, err **e);
/* A value in the field's wire unit, exact: "8192", "0.5", or "N bytes" for a byte count that
 * is not a whole number of the unit. Caller frees. */
char *proto_limit_str(const proto_limit_field *f, int64_t v);

typedef struct proto_task {
	char *id;
	proto_lang lang;
	proto_mode mode;
	char *code;
	size_t code_len;
	uint8_t *stdin_data;
	size_t stdin_len;
	/* "args": script mode, a JSON array of strings (argv after the program); function mode,
	 * any JSON value passed to main(args). args_json is the canonical JSON text or NULL. */
	char *args_json;
	char **argv;
	size_t argc;
	proto_env *env; /* sorted by name, names unique */
	size_t n_env;
	proto_file *files; /* sorted by path, paths unique */
	size_t n_files;
	char *image;   /* name or "sha256:<64 hex>"; NULL: the node's default */
	char *runtime; /* NULL: the node's default */
	proto_limits limits;
	char *reply_stream; /* NULL: none */
	bool nondeterministic;
	/* The node adds started and output events to reply_stream while the task runs
	 * (PROTOCOL.md, "Live output"); only with a reply_stream. Covered by no digest: it
	 * changes what a client sees while it waits, not the run. */
	bool live_output;
	/* "services": the credential-proxy services its program may call (proto/PROTOCOL.md,
	 * "The credential proxy"), sorted, unique, each a service name; NULL-terminated. */
	char **services;
	size_t n_services;
	/* Sealed parts, signer, passport and trust requirements (proto/PROTOCOL.md, "Sealed and signed tasks"); NULL when the
	 * task has none. Owned; freed (plaintext wiped) by proto_task_deinit(). */
	struct proto_sealed *sealed;
	struct proto_auth *auth;
	/* A chain (proto/CHAINS.md): steps instead of code. n_steps 0: a plain task. A chain's
	 * lang is its first script step's (the warm sandbox it takes), python without one. */
	struct proto_step *steps;
	size_t n_steps;
	struct proto_value *input; /* the first step's input; NULL in a plain task */
	/* Skills and blobs (proto/task-skill.c; PROTOCOL.md, "Skills"). skill: execute_skill (a
	 * name or digest; code is then the node's loader, set when it resolves the skill);
	 * mount_skills: run_code's importable skills (sorted, unique); blobs: input blob ids
	 * (sorted, unique). lang_given: the task named its lang (a skill task may leave it). */
	char *skill;
	char **mount_skills;
	size_t n_mount_skills;
	char **blobs;
	size_t n_blobs;
	bool blobs_age; /* every input blob is an age file to the node, opened before the run */
	bool lang_given;
	/* Filled by the node when it resolves the skills (daemon/task-skill.c), for the
	 * attestation's input digest: each skill as name and digest (sorted by name), and the
	 * names of the secrets the sandbox received (sorted). Not part of the wire task. */
	struct proto_skill_ref *skill_refs;
	size_t n_skill_refs;
	char **secret_names;
	size_t n_secret_names;
} proto_task;

typedef struct proto_skill_ref {
	char *name;
	char *digest; /* "sha256:<hex>" */
} proto_skill_ref;

/* A blob's id and bytes (an input blob fetched by the node, or one a run created). */
typedef struct proto_blob {
	char id[PROTO_BLOB_ID_LEN + 1];
	uint8_t *data;
	size_t len;
} proto_blob;
void proto_blobs_free(proto_blob *b, size_t n);
/* True when s names a skill: [a-z][a-z0-9_]{0,63}, sha256:<64 hex>, or NAME@sha256:<64 hex> (the
 * name pinned to a digest). */
bool proto_skill_ref_valid(const char *s);

typedef struct proto_usage {
	int64_t wall_ms;
	int64_t cpu_ms;
	int64_t memory_peak_bytes;
} proto_usage;

/* What came out of one run in a sandbox. */
typedef struct proto_output {
	proto_status status;
	int exit_code; /* -1 when signalled or not run */
	int signal;    /* 0 when exited normally */
	buf out;       /* stdout, at most the cap */
	buf err;       /* stderr, at most the cap */
	bool stdout_truncated;
	bool stderr_truncated;
	proto_file *files; /* from /workspace/out, sorted by path */
	size_t n_files;
	bool files_truncated;
	char *return_value; /* function mode: JSON text (<= PROTO_RETURN_MAX) or NULL */
	char *error;        /* human-readable reason for error/sandbox_error/rejected, or NULL */
	struct proto_chain_run *chain; /* a chain's steps (proto/CHAINS.md), or NULL; owned */
	/* The runtime module's outputs (PROTOCOL.md, "Skills"): present in a result when
	 * runtime_fields (a task with skills or blobs, or a run that made blobs or logs). */
	bool runtime_fields;
	struct proto_blob *out_blobs; /* sorted by id, unique */
	size_t n_out_blobs;
	bool out_blobs_truncated; /* a blob past the caps was left out */
	char *logs_json;          /* the log entries: a JSON array's compact text, or NULL */
	bool logs_truncated;      /* entries past the caps were dropped */
} proto_output;

/* The start of stdout then stderr that fit PROTO_LOGS_PREVIEW_MAX, cut on a UTF-8
 * boundary, invalid bytes replaced by U+FFFD (a result field is text). Caller frees. */
char *proto_logs_preview(const proto_output *o);

typedef struct proto_result {
	char *id;
	proto_output output;
	proto_usage usage;
	char *node_id;
	char *runtime;
	char *image_digest; /* "sha256:..." or NULL (rejected before resolving) */
	int64_t received_ms, started_ms, finished_ms; /* wall clock, ms since epoch */
	int attempts;
	char *execution_digest; /* "sha256:..." or NULL */
	char *attestation;      /* the DSSE envelope as JSON text, or NULL */
	char *sealed; /* a sealed task's result document for reply_to: base64 of the age file */
	struct proto_cost *cost; /* what the run cost (proto/CHAINS.md, "Cost"), or NULL; owned */
	struct proto_proxy_audit *proxy; /* the credential proxy's audit trail, or NULL; owned */
} proto_result;

/* ---- the credential proxy's audit trail (proto/PROTOCOL.md, "The credential proxy") ---- */

#define PROTO_SERVICES_MAX     16  /* services a task may name */
#define PROTO_SERVICE_NAME_MAX 64  /* [a-z][a-z0-9_-]{0,63} */
#define PROTO_PROXY_CALLS_MAX  256 /* entries of one trail (the node's budget is lower) */

/* One call: no body, no query string, no credential. prev is the digest of the entry before
 * ("" for the first); the entry's own digest is attest_proxy_entry_digest(). */
typedef struct proto_proxy_call {
	int64_t seq; /* 1, 2, ... */
	char *service, *method, *host, *path, *prev;
	int64_t status; /* the HTTP status; 0 when no response arrived */
	int64_t request_bytes, response_bytes, ms;
} proto_proxy_call;

typedef struct proto_proxy_audit {
	char **services; /* the task's, as run; NULL-terminated */
	size_t n_services;
	proto_proxy_call *calls;
	size_t n_calls;
	char *head;      /* digest of the last entry, or NULL without entries */
	int64_t refused; /* calls the node refused before they left it (not in calls) */
} proto_proxy_audit;

proto_proxy_audit *proto_proxy_audit_new(void);
/* Returns NULL. */
proto_proxy_audit *proto_proxy_audit_free(proto_proxy_audit *a);
/* One entry as canonical JSON (sorted keys, no white space): what attest hashes. Into out. */
void proto_proxy_call_json(const proto_proxy_call *c, buf *out);
/* Service names: [a-z][a-z0-9_-]{0,63}. */
bool proto_service_name_valid(const char *name);

void proto_task_init(proto_task *t);
void proto_task_deinit(proto_task *t);
void proto_output_init(proto_output *o);
void proto_output_deinit(proto_output *o);
void proto_result_init(proto_result *r);
void proto_result_deinit(proto_result *r);
/* Frees an array of n env pairs (names and values). */
void proto_env_list_free(proto_env *l, size_t n);

/* A client string quoted for an error message: "..." with control bytes, '"', '\\' and bytes
 * >= 0x80 that are not valid UTF-8 escaped, cut at 80 bytes with "...". Caller frees. */
char *proto_quote(const char *s, size_t n);

/* Checks a task id against [A-Za-z0-9._-]{1,64}. */
bool proto_id_valid(const char *id);
/* Checks a reply stream name: "aisp:reply:" then [A-Za-z0-9:._-], at most PROTO_NAME_MAX
 * bytes in all (reply streams have their own key space: PROTOCOL.md, "Keys"). */
bool proto_reply_stream_valid(const char *name);
/* Checks a relative file path: 1..255 bytes, no leading '/', no "." or ".." or empty
 * component, no NUL or control bytes. Returns 0 or -1 with a reason in *e. */
int proto_path_valid(const char *path, err **e);
/* Environment variable names: [A-Za-z_][A-Za-z0-9_]*, 1..PROTO_ENV_NAME_MAX bytes. */
bool proto_env_name_valid(const char *name);
/* True when a task may not set this environment variable: PATH HOME LANG LC_ALL TZ
 * PYTHONHASHSEED PYTHONDONTWRITEBYTECODE PYTHONUNBUFFERED NODE_OPTIONS USER LOGNAME SHELL PWD
 * HOSTNAME TMPDIR, and every name starting with AISP_ or LD_. */
bool proto_env_reserved(const char *name);

/* Where a task's result goes, as far as it could be read from a task that may be invalid. */
typedef struct proto_task_head {
	char *id;           /* a valid id, or NULL */
	char *reply_stream; /* a valid reply stream, or NULL */
} proto_task_head;
void proto_task_head_deinit(proto_task_head *h);

/* Parses and validates a task from JSON bytes (PROTOCOL.md, "Task"). Returns 0, or -1 with a
 * precise, client-facing message in *e. head (optional, freed with proto_task_head_deinit)
 * receives the id and reply stream whenever they can be read, also from an invalid task, so
 * that a rejected result reaches the client. */
int proto_task_parse(const char *json, size_t len, proto_task *t, proto_task_head *head, err **e);
/* Serialises a task to JSON (as a scheduler would send it). */
void proto_task_to_json(const proto_task *t, buf *out);
/* Serialises a result to JSON (PROTOCOL.md, "Result"); the attestation is embedded as an
 * object, not a string. */
void proto_result_to_json(const proto_result *r, buf *out);
/* Parses a result document (for aisp wait/verify). Returns 0 or -1 with *e. */
int proto_result_parse(const char *json, size_t len, proto_result *r, err **e);

/* ---- blobs (proto/SKILLS.md, "Blobs") ---- */

/* True when id is a blob id: "sha256:" and 64 lower-case hex digits, nothing else. */
bool proto_blob_id_valid(const char *id);
/* The blob id of n bytes: "sha256:<hex of SHA-256(p)>" into out. */
void proto_blob_id_of(const void *p, size_t n, char out[PROTO_BLOB_ID_LEN + 1]);
/* The Redis key of a valid blob id: "aisp:blob:sha256:<hex>". Caller frees. */
char *proto_blob_key(const char *id);
/* Checks that data is the blob named by id (a valid id whose digest matches). Returns 0, or
 * -1 with "blob ID: not a blob id (expected sha256: and 64 lower-case hex digits)", "blob ID:
 * N bytes, over the cap of M" or "blob ID: the bytes do not match the digest (they hash to
 * sha256:...)" in *e. */
int proto_blob_check(const char *id, const void *data, size_t n, err **e);

/* Length of the valid UTF-8 sequence at p (1..4; n > 0), or 0 when invalid. */
size_t proto_utf8_seq(const uint8_t *p, size_t n);
/* True when p[0..n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool proto_utf8_valid(const uint8_t *p, size_t n);

/* ---- producing a result within the caps (proto/caps.h) ---- */

/* Checks a function's return value (JSON text) against what a result may carry: at most
 * PROTO_RETURN_MAX bytes, JSON that proto_json_parse() accepts (no duplicate key, no U+0000, no
 * lone surrogate, strict UTF-8), nesting at most PROTO_RETURN_DEPTH_MAX. Returns 0, or -1 with
 * the reason in *e ("return value is outside the protocol's bounds: duplicate key \"1\""). */
int proto_return_check(const char *text, size_t n, err **e);
/* The bytes of the JSON value proto_result_to_json() writes for stdout or stderr holding
 * p[0..n) (escaped text or base64, quotes included). */
size_t proto_bytes_json_len(const uint8_t *p, size_t n);
/* Fits o into what a result may carry: output files with a path proto_result_parse() refuses,
 * past PROTO_OUT_FILES_MAX or past PROTO_OUT_FILES_TOTAL are dropped (files_truncated); when
 * stdout, stderr and the files take more than PROTO_RESULT_OUTPUT_MAX bytes of JSON, files are
 * dropped from the end (files_truncated), then stdout and stderr are cut (their truncated
 * flags) and an ok status becomes output_limit. Returns true when a stream was cut. */
bool proto_output_fit(proto_output *o);

/* Standard base64 (RFC 4648 section 4, with padding, no line breaks). Caller frees. */
char *proto_b64_encode(const uint8_t *p, size_t n);
/* Strict decode: length a multiple of 4, only the alphabet, '=' only as 1-2 final padding
 * characters, unused bits zero. Returns 0 (*out owned by the caller, NUL-terminated for
 * convenience, *out_len the byte count) or -1. */
int proto_b64_decode(const char *s, size_t n, uint8_t **out, size_t *out_len);
/* The decoded size of n base64 characters (an upper bound for invalid input). */
size_t proto_b64_decoded_max(size_t n);

/* Applies node defaults and maxima: every unset field of t->limits takes defaults'; a field
 * above maxima is an error naming it ("limits.memory_mb 8192 is above the node maximum
 * 4096"). */
int proto_limits_resolve(proto_limits *l, const proto_limits *defaults, const proto_limits *maxima,
                         err **e);

/* ---- sealed tasks, signed tasks and trust requirements (proto/PROTOCOL.md, "Sealed and signed tasks") ----
 * proto/ parses and bounds the fields; attest/ does the cryptography (decryption, signatures,
 * passports, the trust decision; attest/SEALED.md, attest/TRUST.md). */

/* The bound on one sealed part's age file (binary, or ASCII-armored) for a plaintext bound. */
#define PROTO_SEALED_OVERHEAD        (64u * 1024)
#define PROTO_SEALED_PART_MAX(plain) (2u * (plain) + PROTO_SEALED_OVERHEAD)
/* The plaintext of a sealed "files_age" part: a JSON array in the "files" format. */
#define PROTO_SEALED_FILES_MAX (PROTO_FILES_TOTAL_MAX / 3 * 4 + 1024u * 1024)
/* The plaintext of a sealed "steps_age" part: no larger than the steps could be in the clear. */
#define PROTO_SEALED_STEPS_MAX PROTO_TASK_MAX_BYTES
/* The sealed result document (plaintext): small enough that its age file, in base64 inside
 * the public result, keeps the result below PROTO_TASK_MAX_BYTES. */
#define PROTO_SEALED_DOC_MAX  (11u * 1024 * 1024)
#define PROTO_PASSPORT_MAX    (16u * 1024) /* one passport envelope, as compact JSON */
#define PROTO_TRUST_LIST_MAX  16           /* accepted_providers, required_claims */
#define PROTO_TRUST_NAME_MAX  64           /* one provider or claim name */
#define PROTO_ED25519_KEY_LEN 32
#define PROTO_SIG_LEN         64
#define PROTO_KEY_ID_LEN      71 /* "sha256:" + 64 hex, without the NUL */

/* The DSSE payload type of a signed task (the envelope's payload is the task document). */
#define PROTO_TASK_PAYLOAD_TYPE "application/vnd.aisp.task+json"

/* The revocation store: one hash; fields "passport:<passport id>" and "key:<key id>", values
 * revocation records (proto_revocation_to_json). */
#define PROTO_KEY_REVOKED           "aisp:revoked"
#define PROTO_REVOKED_PASSPORT      "passport:"
#define PROTO_REVOKED_KEY           "key:"
#define PROTO_REVOCATION_REASON_MAX 512

typedef enum proto_exec_mode {
	PROTO_EXEC_SOURCE = 0, /* the code is in the clear; its digest is public */
	PROTO_EXEC_SEALED,     /* the code is age ciphertext for the node; never shown */
} proto_exec_mode;

/* The parts of a task that may be given as age ciphertext for the node. */
typedef enum proto_sealed_part {
	PROTO_SEALED_CODE = 0, /* "code_age": the code's bytes */
	PROTO_SEALED_STDIN,    /* "stdin_age": the stdin bytes */
	PROTO_SEALED_ARGS,     /* "args_age": the args as JSON text */
	PROTO_SEALED_FILES,    /* "files_age": a JSON array in the "files" format */
	PROTO_SEALED_STEPS, /* "steps_age": a chain's steps, a JSON array in the "steps" format */
	PROTO_SEALED_INPUT, /* "input_age": a chain's input, as JSON text */
	PROTO_SEALED__COUNT,
} proto_sealed_part;

typedef struct proto_sealed {
	proto_exec_mode exec_mode; /* as given, or derived: sealed when the code (or steps) is */
	char *reply_to;            /* the buyer's "age1..." recipient; NULL: none */
	/* The decoded age files; NULL where the part is in the clear. */
	uint8_t *age[PROTO_SEALED__COUNT];
	size_t age_len[PROTO_SEALED__COUNT];
	bool opened; /* every sealed part was decrypted into the task (attest_sealed_open) */
	/* Why a decrypted part was refused, quoting its plaintext: only for the sealed result to
	 * reply_to, never published. NULL: none. */
	char *private_error;
} proto_sealed;

typedef enum proto_trust_level {
	PROTO_TRUST_NONE = 0, /* no passport needed */
	PROTO_TRUST_L0,       /* any valid passport */
	PROTO_TRUST_L1,       /* verified_human, at least substantial */
	PROTO_TRUST_L2,       /* verified_identity, high */
	PROTO_TRUST__COUNT,
} proto_trust_level;

typedef enum proto_assurance {
	PROTO_ASSURANCE_NONE = 0, /* not given */
	PROTO_ASSURANCE_LOW,
	PROTO_ASSURANCE_SUBSTANTIAL,
	PROTO_ASSURANCE_HIGH,
	PROTO_ASSURANCE__COUNT,
} proto_assurance;

/* "L0".."L2" ("none" for PROTO_TRUST_NONE) and "low", "substantial", "high" ("none"); NULL
 * when out of range. The parsers accept exactly those names (not "none"): 0 or -1. */
const char *proto_trust_level_name(proto_trust_level l);
int proto_trust_level_parse(const char *s, proto_trust_level *out);
const char *proto_assurance_name(proto_assurance a);
int proto_assurance_parse(const char *s, proto_assurance *out);
/* Claim types and providers: [a-z0-9][a-z0-9_.-]{0,63}. */
bool proto_trust_name_valid(const char *s);

/* A trust requirement ("trust_level" and "trust_requirements" of a task or a skill). */
typedef struct proto_trust_req {
	proto_trust_level level;
	proto_assurance min_assurance; /* NONE: the level's own */
	char **providers;              /* accepted_providers; none: any */
	size_t n_providers;
	char **claims; /* required_claims, beyond the level's own */
	size_t n_claims;
} proto_trust_req;
void proto_trust_req_deinit(proto_trust_req *r);
/* Parses a "trust_level" value (a string, or NULL when absent) and a "trust_requirements"
 * value (an object, or NULL) as a task or a skill manifest gives them. Returns 0, or -1 with
 * a client-facing message in *e. */
struct yajl_val_s;
int proto_trust_req_parse(const char *level, struct yajl_val_s *requirements, proto_trust_req *r,
                          err **e);

/* The signature of a signed task: the DSSE envelope it came in. */
typedef struct proto_task_sig {
	uint8_t *payload; /* the exact bytes signed: the task document */
	size_t payload_len;
	char keyid[PROTO_KEY_ID_LEN + 1];
	uint8_t sig[PROTO_SIG_LEN];
} proto_task_sig;

typedef struct proto_auth {
	bool has_signer;
	uint8_t signer[PROTO_ED25519_KEY_LEN]; /* "signer": the submitter's Ed25519 public key */
	char *passport;      /* "passport": the envelope as compact JSON, or NULL */
	proto_trust_req req; /* "trust_level", "trust_requirements" */
	proto_task_sig *sig; /* NULL: the task did not come signed */
} proto_auth;

/* Parses a stream entry's "task" field: a task document (as proto_task_parse), or a signed
 * task, a DSSE envelope whose payload is the task document (then t->auth->sig holds the
 * signature, not yet verified: attest_task_auth_init). A task that names a signer must come
 * signed. Returns 0, or -1 with a client-facing message in *e; head as proto_task_parse. */
int proto_task_parse_entry(const char *json, size_t len, proto_task *t, proto_task_head *head,
                           err **e);
/* The task's input files as its "files" field carries them (a JSON array of {"path",
 * "content_b64"}): the plaintext of a "files_age" part. */
void proto_task_files_json(const proto_task *t, buf *out);
/* True when part p of t is age ciphertext. */
bool proto_task_part_sealed(const proto_task *t, proto_sealed_part p);
/* The wire name of a sealed part ("code_age"...). */
const char *proto_sealed_part_name(proto_sealed_part p);
/* True while some part of t is still ciphertext: such a task must not run. */
bool proto_task_sealed_pending(const proto_task *t);
/* Puts the plaintext of a decrypted part into t, validated as its clear counterpart would be
 * (code: UTF-8 without NUL, at most PROTO_CODE_MAX; stdin: at most PROTO_STDIN_MAX; args: JSON
 * of the "args" form for t's mode; files: a JSON array of the "files" form). The plaintext is
 * copied; the caller wipes its own copy. Returns 0, or -1 with a message that may quote the
 * plaintext (not for publication). */
int proto_task_open_part(proto_task *t, proto_sealed_part p, const uint8_t *plain, size_t n,
                         err **e);

/* A revocation record: {"reason": "...", "revoked_at_ms": N}. */
void proto_revocation_to_json(const char *reason, int64_t revoked_at_ms, buf *out);
/* Parses a record. *reason is owned by the caller. Returns 0, or -1 with *e. */
int proto_revocation_parse(const char *json, size_t len, char **reason, int64_t *revoked_at_ms,
                           err **e);
/* The revocation store field of a passport id or a key id ("passport:ID", "key:ID"). Caller
 * frees. */
char *proto_revocation_field(bool key, const char *id);

/* ---- chains (proto/CHAINS.md) ----
 * A task may carry "steps" instead of "code": llm steps (run on the host through the node's
 * OpenAI-compatible client) and script steps (run one after another in one sandbox), each
 * step's output the next one's input. Values between steps are strings or JSON values. */

#define PROTO_STEPS_MAX               16
#define PROTO_MODEL_MAX               256
#define PROTO_SYSTEM_PROMPT_MAX       (64u * 1024)
#define PROTO_CHAIN_INPUT_MAX         (1u * 1024 * 1024) /* the task's input, as JSON text */
#define PROTO_STEP_OUTPUT_MAX         (1u * 1024 * 1024) /* one step's output, as JSON text */
#define PROTO_CHAIN_OUTPUT_MAX        (4u * 1024 * 1024) /* every step's output, summed */
#define PROTO_STEP_LOG_MAX            (16u * 1024)       /* a script step's stdout, stderr */
#define PROTO_STEP_TIMEOUT_MS_DEFAULT 30000
#define PROTO_STEP_TIMEOUT_MS_MAX     60000
#define PROTO_MAX_TOKENS_MAX          1000000
#define PROTO_TEMPERATURE_UNSET       (-1)
#define PROTO_TEMPERATURE_MAX_MILLI   2000

typedef enum proto_step_type {
	PROTO_STEP_LLM = 0,
	PROTO_STEP_SCRIPT,
	PROTO_STEP__COUNT,
} proto_step_type;

/* "llm", "script"; NULL when out of range. */
const char *proto_step_type_name(proto_step_type t);

/* What flows between steps: a string, or a JSON value that is not a string. */
typedef struct proto_value {
	bool json;  /* false: text is the string's UTF-8 bytes; true: compact JSON text */
	char *text; /* NUL-terminated, owned */
	size_t len;
} proto_value;

/* From JSON text: a JSON string becomes a string value, anything else a JSON value whose text
 * is the compact form (key order and number text kept). Returns 0, or -1 with *e ("not JSON:
 * ..."). */
int proto_value_from_json(const char *text, size_t len, proto_value *out, err **e);
/* A string value, copied; it must be valid UTF-8 without NUL (checked: -1 with *e). */
int proto_value_from_string(const char *s, size_t n, proto_value *out, err **e);
/* What a script step's `input` variable holds: the string itself, or the JSON text. Borrowed. */
const char *proto_value_input_text(const proto_value *v, size_t *len);
/* The value as the JSON text a result carries ("\"text\"" escaped, or the JSON): its length
 * is what the caps count. Caller frees. */
char *proto_value_json(const proto_value *v, size_t *len);
void proto_value_copy(proto_value *dst, const proto_value *src);
void proto_value_deinit(proto_value *v);

/* One step of a chain, validated. */
typedef struct proto_step {
	proto_step_type type;
	/* llm */
	char *model;           /* 1..PROTO_MODEL_MAX printable ASCII bytes, no space */
	char *system_prompt;   /* NULL: none */
	int temperature_milli; /* 0..PROTO_TEMPERATURE_MAX_MILLI, or PROTO_TEMPERATURE_UNSET */
	int64_t max_tokens;    /* 1..PROTO_MAX_TOKENS_MAX, or 0: the node's cap */
	/* script */
	proto_lang lang; /* python or javascript (the default) */
	char *code;
	size_t code_len;
	int64_t timeout_ms; /* 1..PROTO_STEP_TIMEOUT_MS_MAX; PROTO_STEP_TIMEOUT_MS_DEFAULT */
} proto_step;

/* True when the task is a chain: it has steps, or sealed steps ("steps_age") not yet opened. */
bool proto_task_is_chain(const proto_task *t);
/* The steps as the compact JSON array "steps" holds: the plaintext a "steps_age" seals, and
 * what the part digest of sealed steps is over. Caller frees (and wipes: it may be secret). */
char *proto_chain_steps_json(const proto_task *t, size_t *len);
/* True when the task is a chain with at least one step of that type. */
bool proto_task_has_step(const proto_task *t, proto_step_type type);
/* The lang of the chain's first script step from index i on, or -1 (the next interpreter to
 * warm). */
int proto_chain_next_lang(const proto_task *t, size_t i);

/* What one step of a chain did. */
typedef struct proto_step_run {
	proto_step_type type;
	proto_status status; /* ok, or how the step failed */
	char *error;         /* why it failed; NULL when ok */
	proto_value output;  /* text NULL when it failed */
	/* llm */
	char *model;           /* the model the provider reports answering */
	char *request_digest;  /* "sha256:..." of the exact request body sent */
	char *response_digest; /* "sha256:..." of the final response body received, or NULL */
	bool usage_reported;
	int64_t prompt_tokens, completion_tokens;
	int attempts;
	/* script */
	proto_lang lang;
	int exit_code; /* -1 when signalled or not run */
	int signal;
	buf out, err; /* at most PROTO_STEP_LOG_MAX each */
	bool stdout_truncated, stderr_truncated;
	/* both: script, host-side; llm, wall time only */
	proto_usage usage;
	int64_t cost_micro_usd;
} proto_step_run;

void proto_step_run_init(proto_step_run *s);
void proto_step_run_deinit(proto_step_run *s);
/* A deep copy of src into dst (initialised by the call). */
void proto_step_run_copy(proto_step_run *dst, const proto_step_run *src);

/* The steps of a chain that ran, in order; when one failed it is the last. */
typedef struct proto_chain_run {
	proto_step_run *steps;
	size_t n_steps;
	int failed_step; /* -1: none */
} proto_chain_run;

proto_chain_run *proto_chain_run_new(void);
/* Appends an initialised step and returns it (borrowed). */
proto_step_run *proto_chain_run_add(proto_chain_run *c, proto_step_type type);
/* The chain's output: the last step's, when every step succeeded; NULL otherwise. */
const proto_value *proto_chain_run_output(const proto_chain_run *c);
proto_chain_run *proto_chain_run_free(proto_chain_run *c);

/* ---- cost (proto/CHAINS.md, "Cost"): exact integer micro-USD, no floating point ---- */

typedef enum proto_cost_kind {
	PROTO_COST_LLM = 0, /* an llm step: tokens */
	PROTO_COST_SCRIPT,  /* a script step: host-side usage */
	PROTO_COST_TASK,    /* a plain task: host-side usage */
} proto_cost_kind;

typedef enum proto_cost_source {
	PROTO_COST_SRC_NONE = 0,    /* no price known: cost 0 */
	PROTO_COST_SRC_PROVIDER,    /* the provider's usage.cost */
	PROTO_COST_SRC_PRICE_TABLE, /* the node's per-model prices */
	PROTO_COST_SRC_USAGE,       /* the node's CPU-second and GiB-second prices */
} proto_cost_source;

typedef struct proto_cost_item {
	int step; /* the step's index; -1 for a plain task */
	proto_cost_kind kind;
	proto_cost_source source;
	char *model; /* llm: the model requested */
	int64_t prompt_tokens, completion_tokens;
	int64_t execution_ms, cpu_ms, memory_peak_bytes;
	int64_t cost; /* micro-USD */
} proto_cost_item;

typedef struct proto_cost {
	int64_t total; /* the sum of the items */
	proto_cost_item *items;
	size_t n_items;
	/* a sealed result's public cost: the total only, no items; the breakdown (which names
	 * the steps' models) is in the document sealed to the buyer ("breakdown_sealed": true) */
	bool breakdown_sealed;
} proto_cost;

proto_cost *proto_cost_new(void);
proto_cost_item *proto_cost_add(proto_cost *c, proto_cost_kind kind);
proto_cost *proto_cost_free(proto_cost *c);
const char *proto_cost_kind_name(proto_cost_kind k);
/* The cost as the result carries it ({"unit": "micro_usd", "total", "breakdown"}), compact
 * JSON text; the signed statement embeds the same text. Caller frees. */
char *proto_cost_json(const proto_cost *c);
const char *proto_cost_source_name(proto_cost_source s);
