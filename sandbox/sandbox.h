/* Sandboxes: OCI bundles, the runtime driver (runsc, runc, any OCI CLI), the agent protocol,
 * limits, output collection and host-side usage.
 *
 * A sandbox is created and started asynchronously on a libevent loop (the spawn helper's loop
 * must be initialised: spawn_loop_init), reports "ready" when its agent has the interpreter
 * warm, runs exactly one task, and is then destroyed (also asynchronously: runsc takes seconds
 * to wind down, which must never sit on a task's path).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "proto/proto.h"
#include "sandbox/agent/frame.h"
#include "sandbox/image.h"

struct event_base;

/* ---- runtimes ---- */

typedef enum sandbox_runtime_kind {
	SANDBOX_RT_RUNSC = 0, /* gVisor: --network=none, --platform */
	SANDBOX_RT_RUNC,      /* runc: seccomp deny-list, user namespace where allowed */
	SANDBOX_RT_OCI,       /* any other OCI CLI (crun, kata-runtime): treated like runc */
} sandbox_runtime_kind;

typedef struct sandbox_runtime_opts {
	const char *name; /* "runsc", "runc", "crun"... (what tasks ask for) */
	const char *path; /* the binary; NULL: name looked up in PATH */
	sandbox_runtime_kind kind;
	const char *platform;           /* runsc only; NULL: "ptrace" */
	const char *root;               /* runtime state dir (--root); NULL: <state_dir>/<name> */
	const char *const *extra_flags; /* NULL-terminated global flags, or NULL */
} sandbox_runtime_opts;

typedef struct sandbox_runtime sandbox_runtime;

/* Probes the runtime (`<bin> --version`); fails with a message naming it when it is missing
 * or broken. */
int sandbox_runtime_new(sandbox_runtime **out, const sandbox_runtime_opts *o, const char *state_dir,
                        err **e);
sandbox_runtime *sandbox_runtime_free(sandbox_runtime *rt);
const char *sandbox_runtime_name(const sandbox_runtime *rt);
/* The first line of `--version`. Borrowed. */
const char *sandbox_runtime_version(const sandbox_runtime *rt);
/* The flags that shape execution, space-separated (for the environment digest). Borrowed. */
const char *sandbox_runtime_flags(const sandbox_runtime *rt);
sandbox_runtime_kind sandbox_runtime_get_kind(const sandbox_runtime *rt);
/* Lists container ids in the runtime's state dir that start with the prefix (leftovers).
 * Returns the count, or -1. */
int sandbox_runtime_list(const sandbox_runtime *rt, const char *prefix, char ***ids, err **e);

/* ---- the node context ---- */

typedef struct sandbox_ctx_opts {
	const char *state_dir;     /* bundles and runtime state; default /run/aisp */
	const char *agent_path;    /* the static agent binary */
	const char *cgroup_parent; /* cgroup path prefix; default "/aisp" */
	const char *cgroup_root;   /* the cgroup mount; default /sys/fs/cgroup (tests: a tree) */
	const char *id_prefix;     /* container id prefix; default "aisp-" */
} sandbox_ctx_opts;

typedef struct sandbox_ctx sandbox_ctx;

/* Creates the state directories, installs the agent and detects the cgroup hierarchy (v1 or
 * the unified v2). Returns 0, or -1 with *e naming the state dir. */
int sandbox_ctx_new(sandbox_ctx **out, struct event_base *base, const sandbox_ctx_opts *o, err **e);
sandbox_ctx *sandbox_ctx_free(sandbox_ctx *ctx);
struct event_base *sandbox_ctx_base(const sandbox_ctx *ctx);
/* The cgroup hierarchy sandboxes are accounted in: "v1" or "v2". */
const char *sandbox_ctx_cgroup(const sandbox_ctx *ctx);

/* ---- sandboxes ---- */

/* What a sandbox is built for: fixed at creation (container-level limits cannot change
 * afterwards, so a pool serves only tasks whose container limits equal its own). */
typedef struct sandbox_spec {
	const sandbox_runtime *rt; /* borrowed; outlives the sandbox */
	const char *rootfs;        /* the image's read-only rootfs */
	const char *image_digest;  /* "sha256:..." */
	proto_lang lang;
	int64_t cpus_milli;
	int64_t memory_bytes;
	int64_t pids;
	int64_t workspace_bytes;
	/* A task is waiting for this sandbox (a miss): it warms up at full CPU priority instead of
	 * the low priority of a refill. Not part of what a sandbox is built for. */
	bool urgent;
} sandbox_spec;

/* The container-level part of resolved limits, as a spec would hold it. */
void sandbox_spec_set_limits(sandbox_spec *s, const proto_limits *l);
/* True when a task with these resolved limits can run in a sandbox built for s. */
bool sandbox_spec_fits(const sandbox_spec *s, const proto_limits *l);

typedef struct sandbox sandbox;

typedef enum sandbox_state {
	SANDBOX_CREATING = 0,
	SANDBOX_READY,
	SANDBOX_RUNNING,
	SANDBOX_DONE,
	SANDBOX_DEAD, /* the agent died or the container failed */
	SANDBOX_DESTROYING,
} sandbox_state;

/* Called once creation finished: e == NULL on success (state READY), otherwise the sandbox
 * failed (state DEAD) and the caller must sandbox_destroy() it. e is borrowed. */
typedef void (*sandbox_ready_fn)(sandbox *sb, const err *e, void *arg);
/* Called when a READY sandbox dies on its own (agent EOF, container killed from outside). */
typedef void (*sandbox_died_fn)(sandbox *sb, void *arg);
/* Called once the task finished: out holds the status and everything collected (status
 * SANDBOX_ERROR when the sandbox failed); usage is measured on the host. Both borrowed. */
typedef void (*sandbox_done_fn)(sandbox *sb, const proto_output *out, const proto_usage *usage,
                                void *arg);
/* Called when the sandbox is gone (runtime state deleted, bundle and cgroup removed). */
typedef void (*sandbox_gone_fn)(void *arg);

typedef enum sandbox_stream {
	SANDBOX_STDOUT = 1,
	SANDBOX_STDERR = 2,
} sandbox_stream;

/* Called while a task runs, each time the agent forwards a chunk of the program's output:
 * p[0..n) are the next bytes of that stream, as the result will hold them (within the task's
 * cap, in order; the chunks of a stream, concatenated, are its part of the result). A chunk
 * is at most 64 KiB. For a live view (e.g. the reply stream's output events); the result that
 * sandbox_done_fn gets is the truth. p is borrowed for the call; the callback must not destroy
 * sb (the run's end comes through sandbox_done_fn). */
typedef void (*sandbox_output_fn)(sandbox *sb, sandbox_stream stream, const uint8_t *p, size_t n,
                                  void *arg);

/* Starts creating a sandbox; on return *out exists in state CREATING. Returns -1 with *e only
 * when nothing was started (bundle could not be written, runtime could not be spawned). */
int sandbox_create(sandbox_ctx *ctx, const sandbox_spec *spec, sandbox_ready_fn cb, void *arg,
                   sandbox **out, err **e);
/* While READY, tell cb when the sandbox dies on its own. */
void sandbox_watch(sandbox *sb, sandbox_died_fn cb, void *arg);
/* Hands the task to a READY sandbox; fails with *e (nothing started) in any other state. The
 * task and the limits must outlive the callback. resolved->timeout_ms is the wall limit,
 * measured from now and enforced on the host by killing the container. cb may run before this
 * returns (the agent's pipe is already broken). */
int sandbox_run(sandbox *sb, const proto_task *t, const proto_limits *resolved, sandbox_done_fn cb,
                void *arg, err **e);
/* ---- a chain's script steps (proto/CHAINS.md; sandbox/steps.c) ---- */

typedef struct sandbox_chain_step {
	proto_lang lang;  /* python or javascript */
	const char *code; /* borrowed for the call */
	size_t code_len;
	const char *input; /* the step's `input` variable, UTF-8 */
	size_t input_len;
	int64_t timeout_ms; /* the step's wall limit, from now, enforced on the host */
	int next_lang;      /* the next script step's proto_lang, or -1: the agent warms it now */
} sandbox_chain_step;

/* Runs one script step of a chain, in a READY sandbox (the chain's first) or in one whose last
 * step ended normally; everything in st is copied. Like sandbox_run(): cb is called once with
 * the step's stdout, stderr, exit and status (ok; error when the code raised, produced no
 * output or one that is not JSON; timeout; oom; output_limit; sandbox_error) and the host-side
 * usage of the step, and sandbox_step_output() is its output while cb runs. resolved gives the
 * caps and limits. After a timeout, a stop or a failure of the sandbox, no step runs again
 * (-1 with *e). */
int sandbox_run_step(sandbox *sb, const sandbox_chain_step *st, const proto_limits *resolved,
                     sandbox_done_fn cb, void *arg, err **e);
/* The output of the step whose done callback is running: its JSON text (a JSON string for a
 * string output), at most PROTO_STEP_OUTPUT_MAX bytes, or NULL when it sent none (or a larger
 * one: the status is then output_limit). Borrowed. */
const char *sandbox_step_output(const sandbox *sb, size_t *len);
/* Fills a step's record from what the step's done callback received: status, error, exit,
 * usage, the output as a value (parsed and measured again: one that is not JSON, or is above
 * PROTO_STEP_OUTPUT_MAX as the result carries it, fails the step), and the first
 * PROTO_STEP_LOG_MAX bytes of stdout and stderr (the rest dropped: truncated). json may be
 * NULL. The same for the node and for aisp verify --replay. */
void sandbox_step_record(const proto_output *o, const proto_usage *u, const char *json, size_t len,
                         proto_step_run *rec);

/* ---- skills and blobs delivered to a warm sandbox (proto/PROTOCOL.md, "Skills") ---- */

/* One entry of a sandbox's skills tree, below /.aisp/skills (the agent's SKILL_FILE frame). */
typedef struct sandbox_skill_file {
	uint8_t kind; /* 'd' directory, 'f' file, 'x' executable file, 's' a sealed skill's root */
	char *path;   /* "<skill name>/<path in the skill>", or "<skill name>" for its root */
	uint8_t *data;
	size_t len;
} sandbox_skill_file;

/* The room of a sandbox's skills tree (its tmpfs, bundle.c; the agent's cap): the files of a
 * task's skills, summed. */
#define SANDBOX_SKILLS_TREE_MAX (64u * 1024 * 1024)

/* What a task's sandbox receives before its program starts. */
typedef struct sandbox_payload {
	sandbox_skill_file *files; /* owned; parents before their entries */
	size_t n_files;
	uint64_t bytes;
	const proto_blob *blobs; /* borrowed: the input blobs, checked against their ids */
	size_t n_blobs;
	/* borrowed: "NAME=VALUE" entries (the skill's secrets) after the task's env, NULL-terminated,
	 * or NULL; they reach the program's environment and nothing else */
	const char *const *env;
} sandbox_payload;

void sandbox_payload_deinit(sandbox_payload *p);
/* Hands p (borrowed until the done callback) to the next sandbox_run(): its skill files and
 * blobs go to the agent before the TASK. Call it before sandbox_run(); NULL: none. */
void sandbox_set_payload(sandbox *sb, const sandbox_payload *p);

/* Ends a RUNNING task now, by its owner's decision (a cancel, a revocation): the container is
 * killed and the done callback reports status (with why as its error, copied) and whatever
 * the run collected so far. Ignored in any other state. */
void sandbox_stop(sandbox *sb, proto_status status, const char *why);
/* Sets the output callback for the sandbox's run (NULL: none); call it before sandbox_run(). */
void sandbox_on_output(sandbox *sb, sandbox_output_fn cb, void *arg);
/* ---- the credential proxy (issue 21; sandbox/agent/frame.h, "The credential proxy") ---- */

/* Called for each PROXY_REQUEST while a task runs, at most one at a time: rq is borrowed for
 * the call (framing and sizes checked, contents not). The owner answers exactly once, now or
 * later, with sandbox_proxy_reply() or sandbox_proxy_reply_error(); until then the agent sends
 * no other request. The callback must not destroy sb. */
typedef void (*sandbox_proxy_fn)(sandbox *sb, const sandbox_proxy_request *rq, void *arg);
/* Sets the proxy callback for the sandbox's run (NULL: a request is answered "this task names
 * no services"); call it before sandbox_run(), and with NULL when the run is over. */
void sandbox_on_proxy(sandbox *sb, sandbox_proxy_fn cb, void *arg);
/* Answers the request in flight with a PROXY_RESPONSE payload (PX_STATUS, PX_HEADER*, PX_BODY
 * or PX_ERROR, at most PROXY_RESPONSE_MAX bytes); ignored when none is in flight or the run
 * is over. */
void sandbox_proxy_reply(sandbox *sb, const void *payload, size_t n);
/* The same with PX_ERROR msg alone: the program's proxy_fetch raises with msg. */
void sandbox_proxy_reply_error(sandbox *sb, const char *msg);

/* The sandbox's task is over and it waits for sandbox_destroy(): what still runs in it (the
 * agent, a program's last 250 ms) gets the warming CPU share again, so that it never slows a
 * running task. */
void sandbox_retire(sandbox *sb);

/* Destroys the sandbox in the background (kill, delete, bundle, cgroup). sb is invalid after
 * this call; cb (optional) runs when everything is gone. Safe in any state. */
void sandbox_destroy(sandbox *sb, sandbox_gone_fn cb, void *arg);

const char *sandbox_id(const sandbox *sb);
sandbox_state sandbox_get_state(const sandbox *sb);
const sandbox_spec *sandbox_get_spec(const sandbox *sb);
/* Milliseconds (monotonic) when the sandbox became READY; 0 before. */
int64_t sandbox_ready_at(const sandbox *sb);
/* The runtime's own stderr of the last runtime command of this sandbox that failed (at most
 * 4096 bytes), for a log at debug level; the sandbox_error text already holds its first
 * meaningful line. NULL when none failed. Borrowed; valid until sandbox_destroy(). */
const char *sandbox_runtime_log(const sandbox *sb);
/* pid of the container's init (the agent) on the host, or 0. */
int sandbox_pid(const sandbox *sb);
/* Number of sandboxes of this context not yet fully gone. */
size_t sandbox_ctx_live(const sandbox_ctx *ctx);

/* Host CPU time spent on a runtime's sandboxes, by phase of their lives (issue 17: what a task
 * costs the host besides its run). create: the runtime's `run --detach` (and the user
 * namespace holder) and the sandbox's own processes until READY (sentry and gofer boot, the
 * agent, the warm interpreter); idle: READY until a run starts; run: the runs; teardown: from
 * the last run's end to its cgroup's removal (wind-down, `delete`). The runtime commands'
 * share comes from wait4, the rest from the sandbox's cgroup. */
typedef enum sandbox_cpu_phase {
	SANDBOX_CPU_CREATE = 0,
	SANDBOX_CPU_IDLE,
	SANDBOX_CPU_RUN,
	SANDBOX_CPU_TEARDOWN,
	SANDBOX_CPU_PHASES,
} sandbox_cpu_phase;

const char *sandbox_cpu_phase_name(sandbox_cpu_phase ph);
/* The totals so far for rt's sandboxes (zeros for one that has had none). */
void sandbox_ctx_cpu(const sandbox_ctx *ctx, const sandbox_runtime *rt,
                     uint64_t ns[SANDBOX_CPU_PHASES]);

/* The facts of the environment a task ran in, as sorted "key" -> "value" pairs for the
 * environment digest (ATTESTATION.md, "Environment"): runtime name/version/flags, limits, uid,
 * gid, cwd, hostname, every environment variable, network, agent version, architecture.
 * Returns the count; the caller frees with proto_env_list_free(). */
size_t sandbox_environment(const sandbox_spec *spec, const proto_task *t,
                           const proto_limits *resolved, proto_env **out);

/* The fixed environment every program sees, before the task's own variables (documented in
 * PROTOCOL.md; a task may not override them: proto_env_reserved()). NULL-terminated
 * "NAME=VALUE". */
extern const char *const sandbox_base_env[];

/* Resolves a runtime's kind from its name: "runsc" -> RUNSC, "runc" -> RUNC, others -> OCI. */
sandbox_runtime_kind sandbox_runtime_kind_for(const char *name);

/* Where the agent binary is: $AISP_AGENT, else next to the running binary in a build tree
 * (<exe dir>/../sandbox/agent/aisp-agent), else the installed <libexecdir>/aisp/aisp-agent.
 * Owned by the caller. */
char *sandbox_agent_default_path(void);

/* ---- skills (sandbox/skill*.c; the format is specified in proto/SKILLS.md) ----
 *
 * The skill store, beside the image store: one read-only tree per skill digest and a name ->
 * digest index. It is written only by `aisp skill add / import / rm` (as root) and read by
 * aispd, which bind-mounts a tree read-only at /skills/<name>/ in a task's sandbox.
 *   <store>/skills/<hex>/   the skill's files (skill.toml, SKILL.md, code/, resources/...):
 *                           directories 0755, files 0644 or 0755, owned by the store's writer
 *   <store>/names/<name>    "sha256:<hex>\n"
 *   <store>/tmp/            trees being built (renamed into skills/ when complete)
 *   <store>/.lock           flock()ed by every writer
 * A skill's digest is the SHA-256 of the canonical list of its files (names, modes, contents:
 * proto/SKILLS.md, "Digest"), the same whatever the file times, owners, umask or directory
 * order it was added with. */

#define SANDBOX_SKILL_STORE_DEFAULT "/var/lib/aisp/skills"
#define SANDBOX_SKILL_NAME_MAX      64                  /* [a-z][a-z0-9_]{0,63} */
#define SANDBOX_SKILL_FILES_MAX     1000                /* files and directories in one skill */
#define SANDBOX_SKILL_BYTES_MAX     (32u * 1024 * 1024) /* file contents, summed */
#define SANDBOX_SKILL_DEPTH_MAX     16                  /* directory levels below the root */
#define SANDBOX_SKILL_PATH_MAX      150                 /* bytes of a relative path */
#define SANDBOX_SKILL_NAME_PART_MAX 100                 /* bytes of one path component */
#define SANDBOX_SKILL_MANIFEST_MAX  (64u * 1024)        /* skill.toml */
#define SANDBOX_SKILL_SECRETS_MAX   32                  /* [permissions] secrets */
#define SANDBOX_SKILL_SERVICES_MAX  32                  /* [permissions] services */
#define SANDBOX_SKILL_DESC_MAX      1024                /* description */
#define SANDBOX_SKILL_DIGEST_LEN    71                  /* "sha256:" + 64 hex */

typedef enum sandbox_skill_mode {
	SANDBOX_SKILL_SOURCE = 0, /* the code may be shown (issue 20's "source") */
	SANDBOX_SKILL_SEALED,     /* the code is stored only encrypted to the node (issue 20) */
} sandbox_skill_mode;

/* skill.toml, validated. */
typedef struct sandbox_skill_manifest {
	char *name;        /* [a-z][a-z0-9_]{0,63}, not a Python keyword */
	char *version;     /* semantic version 2.0.0 */
	char *description; /* may be NULL */
	proto_lang lang;   /* PROTO_LANG_PYTHON or PROTO_LANG_JAVASCRIPT */
	char *entry_path;  /* "code/leads/sync.py": a regular file of the skill */
	char *entry_func;  /* "main" */
	sandbox_skill_mode mode;
	char **secrets; /* environment variable names the skill receives, as declared */
	size_t n_secrets;
	char **services; /* credential-proxy services it may call (issue 21), as declared */
	size_t n_services;
} sandbox_skill_manifest;

/* Parses and validates a manifest of len bytes (at most SANDBOX_SKILL_MANIFEST_MAX). file
 * names it in messages: every error is "FILE:LINE: KEY: reason" (or "FILE: KEY: missing"). It
 * checks the entrypoint's form, not that its file exists (sandbox_skill_add does). Returns 0
 * with *m filled (release with sandbox_skill_manifest_deinit), or -1 with *e. */
int sandbox_skill_manifest_parse(const char *file, const char *text, size_t len,
                                 sandbox_skill_manifest *m, err **e);
void sandbox_skill_manifest_deinit(sandbox_skill_manifest *m);
/* How a sandbox loads the entrypoint, for a skill mounted at /skills/<name>/ (proto/SKILLS.md,
 * "Imports"): Python "skills.<name>.leads.sync" (code/ is the package's directory), JavaScript
 * "skills/<name>/leads/sync.js" (for the runtime's require() resolver). Caller frees. */
char *sandbox_skill_entry_module(const sandbox_skill_manifest *m);

/* Skill names: [a-z][a-z0-9_]{0,63}, not a Python keyword (so `import skills.<name>` works). */
bool sandbox_skill_name_valid(const char *name);

/* A skill in the store. */
typedef struct sandbox_skill {
	sandbox_skill_manifest manifest;
	char *digest; /* "sha256:<hex>" */
	char *dir;    /* absolute path of <store>/skills/<hex> (what is mounted) */
	/* Entries and bytes of the tree: filled by add, import, list (with walk) and verify,
	 * which walk it; 0 from resolve, which reads only the manifest (it is on a task's path). */
	uint64_t files, bytes;
} sandbox_skill;

void sandbox_skill_deinit(sandbox_skill *s);
/* Frees an array of n skills. */
void sandbox_skill_list_free(sandbox_skill *v, size_t n);

/* The digest of the skill directory dir as it would be stored, walking it with the store's
 * rules (no links, devices or other special files; the caps). Returns 0 or -1 with *e. */
int sandbox_skill_digest_dir(const char *dir, char out[SANDBOX_SKILL_DIGEST_LEN + 1], err **e);

/* Adds the skill directory src to the store (created when missing; NULL: the default): copies
 * it into a temporary tree, computes the digest from the copy, validates skill.toml, checks
 * the entrypoint is one of its regular files, and publishes the tree and the name. Adding the
 * same tree again is fine (*added false); a name that already names another digest fails
 * unless replace is set (the old tree is removed). Sealed skills are refused until issue 20
 * stores them encrypted. Nothing partial is left on any failure. Returns 0 with *out (owned;
 * may be NULL) or -1 with *e. */
int sandbox_skill_add(const char *store, const char *src, bool replace, sandbox_skill *out,
                      bool *added, err **e);
/* Resolves a name or "sha256:<hex>" to the skill in the store (reading its manifest from the
 * tree). "skill X is not in the store at S" when missing. Returns 0 with *out or -1. */
int sandbox_skill_resolve(const char *store, const char *name_or_digest, sandbox_skill *out,
                          err **e);
/* Every skill of the store, sorted by name; with walk, each tree is walked for its counts
 * (files, bytes), else only manifests are read (cheap enough for a registry heartbeat). Returns
 * 0 with *out (n entries; free with sandbox_skill_list_free) or -1. A missing store is an
 * empty list. */
int sandbox_skill_list(const char *store, bool walk, sandbox_skill **out, size_t *n, err **e);
/* Removes a skill (its name, then its tree). *digest_out (optional) receives its digest. */
int sandbox_skill_remove(const char *store, const char *name_or_digest, char **digest_out, err **e);
/* Recomputes the digest of a stored tree and compares it with its name in the store. Returns
 * 0 when they match (with *out, counts included, when out is not NULL), -1 with *e naming
 * both digests otherwise. */
int sandbox_skill_verify(const char *store, const char *name_or_digest, sandbox_skill *out,
                         err **e);

/* Writes the skill's bundle (proto/SKILLS.md, "Export and import": a ustar archive of
 * "digest" and "skill/...", byte-for-byte reproducible) to fd. Returns 0 or -1 with *e. */
int sandbox_skill_export(const char *store, const char *name_or_digest, int fd, err **e);
/* Writes the bundle as a directory dir (created; must not exist): dir/digest, dir/skill/. */
int sandbox_skill_export_dir(const char *store, const char *name_or_digest, const char *dir,
                             err **e);
/* Imports a bundle: an archive read from fd (at most the caps plus headers), or a directory
 * bundle when dir is not NULL. The tree's digest must equal the bundle's digest file and, when
 * expect is not NULL, expect; then it is added as sandbox_skill_add() does. Returns 0 with
 * *out (may be NULL) and *added, or -1 with *e and nothing stored. */
/* The caller's check of an imported tree before it is stored (aisp skill import: that a sealed
 * skill opens with the node's identity): dirfd is the unpacked tree, label names the bundle.
 * Returns >= 0, or -1 with *e and nothing is stored. */
typedef struct sandbox_skill_import_check {
	int (*fn)(int dirfd, const char *label, void *arg, err **e);
	void *arg;
} sandbox_skill_import_check;
int sandbox_skill_import(const char *store, int fd, const char *dir, const char *expect,
                         bool replace, const sandbox_skill_import_check *check, sandbox_skill *out,
                         bool *added, err **e);
/* ---- sealed skills (sandbox/skill-sealed.c; proto/SKILLS.md, "Sealed skills") ----
 * A sealed skill's stored tree is skill.toml (mode = "sealed", in the clear) and skill.age: an
 * age file to the node whose plaintext is a ustar archive of the skill's tree (what `tar -cf -
 * -C DIR .` writes, or sandbox_skill_seal_archive). This module never decrypts: the caller
 * holds the node's age identity. */
#define SANDBOX_SKILL_SEALED_FILE "skill.age"

/* The archive of the skill directory dir to seal (its entries sorted, reproducible) and the
 * bytes of its skill.toml, which must say mode = "sealed" and name an entrypoint it holds. */
int sandbox_skill_seal_archive(const char *dir, buf *manifest, buf *tar, err **e);
/* Writes the sealed skill directory out (created; must not exist): skill.toml and skill.age. */
int sandbox_skill_sealed_write(const char *out, const void *manifest, size_t manifest_len,
                               const void *age, size_t age_len, err **e);
/* The stored files of the sealed skill s (resolved): its skill.toml and skill.age, read from a
 * tree that must still hash to s->digest. */
int sandbox_skill_sealed_read(const char *store, const sandbox_skill *s, buf *manifest, buf *age,
                              err **e);
/* Checks the decrypted archive tar[0..n) of the sealed skill whose public manifest is m (its
 * text: manifest[0..manifest_len)): skill paths within the caps, each directory before its
 * entries, nothing twice, the same skill.toml, the entrypoint a file. With p, appends the
 * entries below "<name>/" (the root as 's'; contents copied, wiped when p is). Returns 0, or
 * -1 with "sealed skill NAME: ..." and p as it was. */
int sandbox_skill_sealed_unpack(const uint8_t *tar, size_t n, const void *manifest,
                                size_t manifest_len, const sandbox_skill_manifest *m,
                                sandbox_payload *p, err **e);

/* For a task: walks the stored tree of s (resolved by sandbox_skill_resolve), refuses it unless
 * it hashes to s->digest (a tree changed in the store is never run), and appends its entries,
 * with their contents, to p below "<name>/". Returns 0 or -1 with *e. */
int sandbox_skill_load(const char *store, const sandbox_skill *s, sandbox_payload *p, err **e);
