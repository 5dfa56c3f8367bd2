/* The pure parts of aisp-gateway, unit-tested without a loop, Redis or PostgreSQL
 * (tests/unit/test-gateway.c): the configuration, the API keys file and each key's policy, the
 * IAM decision and the token bucket, the translation of a request body into a protocol task,
 * the cost estimate and problem+json (RFC 9457) rendering. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "proto/proto.h"

#define GW_CONFIG_PATH_DEFAULT "/etc/aisp/aisp-gateway.conf"
#define GW_ID_MAX              24 /* gateway ids: [A-Za-z0-9._-]{1,24}; task ids stay <= 64 */
#define GW_REPLY_PREFIX        "aisp:reply:gw:"
#define GW_API_KEY_PREFIX      "aisk_"
#define GW_SCHEMA_VERSION      "v1"

/* ---- configuration (config.c; every key in deploy/aisp-gateway.conf.example) ---- */

typedef struct gw_config {
	char *path;
	/* [gateway] */
	char *id;
	char *listen; /* host:port */
	char *key_path;
	bool create_key;
	char *keys_file;
	int log_level;
	int64_t wait_ms; /* longest wait for a result before 202 pending */
	int64_t poll_ms; /* GET aisp:result:<id> fallback while waiting */
	/* [http] */
	int64_t max_body_bytes;
	int64_t max_headers_bytes;
	int64_t idle_timeout_s;    /* no byte read or written for this long: closed */
	int64_t request_timeout_s; /* a whole request (headers and body) must arrive within */
	int64_t max_connections;
	/* [redis] */
	char *redis_address, *redis_user, *redis_password;
	int64_t redis_timeout_ms;
	int64_t block_ms;
	/* [calllog] */
	char *outbox;        /* the Redis stream every call record goes to first */
	int64_t outbox_max;  /* XADD MAXLEN ~: its length while PostgreSQL is away */
	char *postgres;      /* libpq conninfo; "" disables the call log (no outbox) */
	int64_t batch;       /* records per INSERT */
	int64_t interval_ms; /* writer poll interval when the outbox is empty */
	int64_t pg_timeout_ms;
	int64_t claim_idle_ms; /* outbox entries pending this long in a dead writer are taken */
	/* [cost] (micro-units of currency) */
	char *currency;
	int64_t per_call_micros;
	int64_t per_cpu_second_micros;
	int64_t per_gib_second_micros;
} gw_config;

void gw_config_defaults(gw_config *c);
/* For inih handlers: keeps the first error message in *error; returns 0 (inih's "error"). */
int gw_ini_fail(char **error, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reads path (or text, for tests) over the defaults. Returns 0, or -1 with *e naming
 * "file:line: reason" (or "file: reason" for whole-file checks). */
int gw_config_load(gw_config *c, const char *path, err **e);
int gw_config_load_string(gw_config *c, const char *name, const char *text, err **e);
void gw_config_deinit(gw_config *c);

/* ---- API keys and their policies (iam.c) ---- */

/* A list of names from the keys file; "*" (any) is the default for allow lists. */
typedef struct gw_list {
	char **v; /* NULL-terminated */
	bool any; /* "*" */
} gw_list;

typedef struct gw_key {
	char *id;         /* [key.<id>] */
	uint8_t hash[32]; /* SHA-256 of the API key text */
	gw_list allow_tools, block_tools;
	gw_list allow_languages, block_languages;
	gw_list allow_runtimes, block_runtimes;
	gw_list allow_images, block_images;
	gw_list allow_skills, block_skills;
	proto_limits max;   /* 0: no maximum of the key's own */
	int64_t rate_milli; /* tokens per second, in thousandths; 0: no rate limit */
	int64_t burst;      /* bucket size */
	char *trust_level;  /* optional, recorded ("L0".."L2"); NULL when not set */
	bool requires_payment;
} gw_key;

typedef struct gw_keys {
	gw_key *keys;
	size_t n;
} gw_keys;

/* Reads a keys file (INI: one [key.<id>] section per key). Returns 0, or -1 with *e naming
 * "file:line: reason". A file with no key is valid (every call is then refused with 401). */
int gw_keys_load(gw_keys *k, const char *path, err **e);
int gw_keys_load_string(gw_keys *k, const char *name, const char *text, err **e);
void gw_keys_deinit(gw_keys *k);
/* The key whose hash is SHA-256(presented): every key is compared, in constant time
 * (CRYPTO_memcmp), whatever matches. NULL when none. Borrowed. */
const gw_key *gw_keys_find(const gw_keys *k, const char *presented, size_t len);
/* A fresh API key: "aisk_" + 43 base64url characters (256 random bits). Caller frees. */
char *gw_key_generate(void);
/* "sha256:<hex>" of an API key's text into out (72 bytes). */
void gw_key_hash_text(const char *key, char out[72]);
/* The section `aisp-gateway key add` appends for a new key (hash only, never the key). */
char *gw_key_section(const char *id, const char *key, const char *const *policy_lines);
/* True when id is a valid key id ([A-Za-z0-9._-]{1,64}). */
bool gw_key_id_valid(const char *id);

/* ---- the IAM decision (iam.c) ---- */

typedef enum gw_verdict {
	GW_ALLOW = 0,
	GW_DENY_NO_KEY,   /* 401 */
	GW_DENY_BAD_KEY,  /* 401 */
	GW_DENY_RATE,     /* 429 */
	GW_DENY_TOOL,     /* 403 */
	GW_DENY_LANGUAGE, /* 403 */
	GW_DENY_RUNTIME,  /* 403 */
	GW_DENY_IMAGE,    /* 403 */
	GW_DENY_SKILL,    /* 403 */
	GW_DENY_LIMIT,    /* 403 */
	GW_DENY_PAYMENT,  /* 402 */
	GW_VERDICT__COUNT,
} gw_verdict;

/* "allow", "no_key", "bad_key", "rate_limited", "tool_blocked", ..., "payment_required". */
const char *gw_verdict_name(gw_verdict v);
/* The HTTP status of a verdict (200 for allow). */
int gw_verdict_status(gw_verdict v);

typedef struct gw_decision {
	gw_verdict verdict;
	char *detail; /* why, for problem+json; NULL when allowed. Owned. */
} gw_decision;

void gw_decision_deinit(gw_decision *d);

/* What a task's image is on the live nodes: the (name, digest) pairs of their registry fields
 * `images` and `image_digests` (a node writes both in the same order) whose name or digest is
 * the image, each pair once. A task may name an image either way, so the key's image lists
 * are matched against both forms. */
typedef struct gw_image_pair {
	char *name, *digest;
} gw_image_pair;

typedef struct gw_images {
	gw_image_pair *v;
	size_t n;
} gw_images;

#define GW_IMAGES_INIT                                                                             \
	{                                                                                          \
		NULL, 0                                                                            \
	}

/* Adds the pairs of one node (its images and image_digests fields, comma-separated; either
 * may be NULL) that match image. A node whose two lists differ in length is skipped: its
 * pairs cannot be told. */
void gw_images_add_node(gw_images *im, const char *image, const char *names_csv,
                        const char *digests_csv);
void gw_images_deinit(gw_images *im);
/* True when judging t's image needs the registry: t names an image and the key's image lists
 * restrict it (an allow list that is not "*", or a block list). */
bool gw_policy_needs_images(const gw_key *k, const proto_task *t);

/* The policy of key k on a tool (and its skill, NULL for run_code) and, for run_code, a
 * parsed task: tools, languages, runtimes, images, skills, then the key's maximum limits.
 * The image is judged by every form it has on the live nodes (im: gw_images_add_node; NULL
 * when the registry could not be read): blocked when any form is blocked; allowed when the
 * task's own form is allowed or every pair has an allowed form; a digest that no live node
 * advertises is refused when the key's image lists restrict images (what it is cannot be
 * known). When the key has a maximum for a limit the task leaves unset, the task gets that
 * maximum (so t may be changed: its limits are the resolved ones). Payment is not looked at
 * here. */
void gw_policy_check(const gw_key *k, const char *tool, const char *skill, proto_task *t,
                     const gw_images *im, gw_decision *d);

typedef enum gw_kind {
	GW_KIND_TOOL = 0,
	GW_KIND_LANGUAGE,
	GW_KIND_RUNTIME,
	GW_KIND_IMAGE,
	GW_KIND_SKILL,
} gw_kind;
/* True when the key allows this name of this kind (allow list, then not blocked). */
bool gw_policy_allows(const gw_key *k, gw_kind kind, const char *name);
/* The key's allow and block lists of a kind. Borrowed. */
const gw_list *gw_policy_list(const gw_key *k, gw_kind kind, bool blocked);

/* A token bucket: rate_milli tokens per second (thousandths), at most burst tokens. */
typedef struct gw_bucket {
	int64_t tokens_micro; /* millionths of a token */
	int64_t last_ms;
	bool primed;
} gw_bucket;

/* Takes one token at now_ms. Returns true when there was one; otherwise false and
 * *retry_after_s (optional) gets the seconds until one will be there (at least 1). A key with
 * rate 0 is never limited. */
bool gw_bucket_take(gw_bucket *b, int64_t rate_milli, int64_t burst, int64_t now_ms,
                    int64_t *retry_after_s);

/* ---- a request body as a task (translate.c) ---- */

typedef enum gw_form {
	GW_FORM_TASK = 0, /* the Redis protocol's task JSON */
	GW_FORM_SEED, /* {"agentId", "tool": {"name", "args", "timeout_s"}, "dryRun", "context"} */
} gw_form;

typedef struct gw_exec_req {
	gw_form form;
	char *task_json; /* the task as it goes to aisp:tasks (id and reply_stream set); owned */
	char *task_id;
	char *tool;  /* "run_code" or a skill name */
	char *skill; /* NULL for run_code */
	char *agent_id;
	bool dry_run;
} gw_exec_req;

void gw_exec_req_deinit(gw_exec_req *r);
/* Reads a request body: a task (form TASK, recognised by "lang"/"code") or the seed's form.
 * The task gets a unique id ("gw-<gateway id>-<32 hex>") unless it has its own, and the
 * gateway's reply stream (a task that names its own reply_stream is refused: the gateway
 * reads the result). dry_default: dryRun when the body does not say. Returns 0, or -1 with a
 * precise, client-facing message in *e. The task itself is validated by the caller with
 * proto_task_parse(). */
int gw_exec_req_parse(const char *body, size_t len, const char *gateway_id, bool dry_default,
                      gw_exec_req *r, err **e);
/* "gw-<gateway id>-<32 random hex>". Caller frees. */
char *gw_task_id_new(const char *gateway_id);
/* The skill name rule: [a-z0-9][a-z0-9_-]{0,63}. */
bool gw_skill_name_valid(const char *name);

/* ---- cost (translate.c) ---- */

/* The most a task may cost with its resolved limits: per call, plus CPUs x timeout x per CPU
 * second, plus memory GiB x timeout x per GiB second (micro-units, rounded up). */
int64_t gw_cost_max(const gw_config *c, const proto_limits *l);
/* What a finished task cost: per call, plus cpu_ms x per CPU second, plus memory limit GiB x
 * wall_ms x per GiB second. */
int64_t gw_cost_actual(const gw_config *c, const proto_limits *l, int64_t cpu_ms, int64_t wall_ms);

/* ---- problem+json (problem.c) ---- */

/* Renders an RFC 9457 problem document: type "https://aisp.dev/problems/<slug>", title (the
 * status's reason phrase), status, detail, instance (the request path, may be NULL), and the
 * extra members given as NULL-terminated key/value string pairs (may be NULL). */
void gw_problem_render(buf *out, int status, const char *slug, const char *detail,
                       const char *instance, const char *const *extra);
/* The reason phrase of an HTTP status ("Not Found"); "Error" when unknown. */
const char *gw_status_reason(int status);
/* "2026-03-23T00:00:00.123Z" for ms since the epoch into out (32 bytes). */
void gw_iso8601(int64_t ms, char out[32]);
