/* Task and result types, their JSON codec and validation, Redis key names and the bounds on
 * every untrusted size. The wire format is specified in proto/PROTOCOL.md. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

/* ---- bounds on untrusted input (PROTOCOL.md, "Limits") ---- */
#define PROTO_TASK_MAX_BYTES  (16u * 1024 * 1024) /* one stream entry's payload */
#define PROTO_ID_MAX          64
#define PROTO_CODE_MAX        (1u * 1024 * 1024)
#define PROTO_STDIN_MAX       (4u * 1024 * 1024)
#define PROTO_ARGS_MAX        (64u * 1024) /* args JSON text */
#define PROTO_ARGV_MAX        256
#define PROTO_ENV_MAX         64
#define PROTO_ENV_NAME_MAX    128
#define PROTO_ENV_VALUE_MAX   4096
#define PROTO_FILES_MAX       64
#define PROTO_FILE_PATH_MAX   255
#define PROTO_FILES_TOTAL_MAX (8u * 1024 * 1024) /* decoded input files, summed */
#define PROTO_NAME_MAX        128                /* image, runtime, reply stream names */
#define PROTO_RETURN_MAX      4096               /* function mode return value JSON */
#define PROTO_OUT_FILES_MAX   100
#define PROTO_OUT_FILES_TOTAL (8u * 1024 * 1024)
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

/* ---- Redis names (PROTOCOL.md, "Keys") ---- */
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
} proto_task;

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
} proto_output;

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
} proto_result;

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
