/* One task's life on a node: parse and validate (bad -> a rejected result), take the run lease,
 * get a sandbox from the pool, run, sign, publish; sandbox errors are retried with backoff and
 * dead-lettered after max_deliveries (PROTOCOL.md). The life is an explicit state machine: one
 * transition table in task.c, documented in daemon/README.md.
 *
 * A task borrows what it needs from its node through task_host (a Redis connection, the pool,
 * the metrics, a few settings, and callbacks that resolve, sign and say goodbye); it never
 * sees the node itself. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attest/attest.h"
#include "common/err.h"
#include "daemon/durability.h"
#include "daemon/llm.h"
#include "daemon/metrics.h"
#include "daemon/proxy.h"
#include "daemon/redis.h"
#include "daemon/revocation.h"
#include "pool/pool.h"
#include "proto/proto.h"
#include "sandbox/sandbox.h"

struct event_base;

typedef struct task task;

/* What the node resolved a task to. The runtime and image are the node's (they outlive every
 * task); the spec borrows their strings. */
typedef struct task_plan {
	const sandbox_runtime *rt;
	const sandbox_image *img;
	proto_limits limits; /* resolved against the node's defaults and maxima */
	sandbox_spec spec;
} task_plan;

/* What a node can do with a parsed task. */
typedef enum task_verdict {
	TASK_SERVE = 0,  /* *plan is filled */
	TASK_ELSEWHERE,  /* this node does not offer its runtime, image or limits: hand it off */
	TASK_NODE_FAULT, /* this node should serve it but cannot now (its default image is gone) */
	TASK_REJECT,     /* no node of this fleet serves it (a chain's llm step): rejected */
} task_verdict;

typedef struct task_host_ops {
	/* Resolves a parsed task against what this node serves (runtime, image, limits). Returns
	 * a verdict; unless TASK_SERVE, *msg (caller frees) says why, for the client. */
	task_verdict (*resolve)(void *arg, const proto_task *t, task_plan *plan, char **msg);
	/* Signs a claim: fills its chain fields (previous, sequence), signs, and advances the
	 * node's chain. Returns 0 with the envelope and execution digest (caller frees; both
	 * NULL when the node has no key), -1 with *e (not signed: the result goes out
	 * unsigned), or -2 with *e when the node cannot sign now (its chain state cannot be
	 * saved): nothing was signed and the task gives its entry back. */
	int (*sign)(void *arg, attest_claim *c, char **envelope, char **execution_digest, err **e);
	/* True once the chain state of this sequence is on disk: a result signed under it may
	 * leave the node. Until then the task waits for task_chain_saved(). */
	bool (*saved)(void *arg, uint64_t sequence);
	/* True when another task of this node with this id is past admission (self excluded). */
	bool (*id_active)(void *arg, const task *self, const char *id);
	/* The task has finished (published, dropped or released): called exactly once. The
	 * task stays valid until the callback returns; afterwards it frees itself when the last
	 * of its outstanding requests has come back. */
	void (*gone)(void *arg, task *t);
} task_host_ops;

typedef struct task_host {
	struct event_base *base;
	rconn *rc; /* commands: scripts, acknowledgements, XPENDING/XCLAIM */
	/* WAIT after a publish ([redis] wait_replicas); NULL: none */
	durability *dur;
	pool *pool;
	metrics *m;
	const char *node_id;
	int64_t result_ttl_ms;
	int64_t lease_ttl_ms; /* the run lease and the reclaim time */
	int64_t max_deliveries;
	int64_t handoff_max_hops; /* an entry no node serves is rejected after this many hops */
	/* Sealed tasks and trust (attest/SEALED.md, attest/TRUST.md): the node's age identities
	 * (n_age_ids 0: it takes no sealed task), what it trusts, the revocation poller. */
	attest_age_identity *const *age_ids;
	size_t n_age_ids;
	const char *age_recipient; /* of age_ids[0] ("age1..."), or NULL */
	const attest_trust_config *trust;
	revocation *rv;
	llm *llm;     /* a chain's llm steps; NULL: this node has no [llm] */
	proxy *proxy; /* the credential proxy; NULL: this node serves no services */
	/* Skills and secrets (daemon/task-skill.c): the skill store, the secret store (NULL: the
	 * node holds no secrets: a skill that declares one is rejected) and its config. */
	const char *skill_store;
	const struct secrets *secrets;
	const struct secrets_config *secrets_cfg;
	int64_t cpu_second_nusd; /* [cost]: nano-USD per CPU-second of a sandbox's run */
	int64_t gib_second_nusd; /* ... and per GiB-second of its memory */
	const task_host_ops *ops;
	void *arg;
} task_host;

/* A task for one stream entry (payload NULL: the entry had no "task" field). fresh: delivered
 * for the first time (XREADGROUP >), as opposed to reclaimed or re-read pending. bad_entry
 * (copied): the entry is malformed beyond its payload; the task is rejected with it. h is
 * borrowed and must outlive the task. Nothing happens until task_start(). */
task *task_new(const task_host *h, const char *entry, const char *payload, size_t len, bool fresh,
               const char *bad_entry);
/* Starts the life: parse, validate, lease, acquire, run, publish (all from the loop). */
void task_start(task *t);
/* Shutdown: forgets the task without publishing; its entry and lease are released in Redis
 * (the entry made claimable at once) and a running sandbox is destroyed. cb runs once, when
 * Redis answered (or failed). The task finishes (gone) before this returns. */
void task_release(task *t, rconn_reply_fn cb, void *arg);

/* A client asked to cancel this task: a running program is stopped (its result says
 * cancelled, with what it printed so far); one that has not started never will. */
void task_cancel(task *t);
/* A party of this task (its signer, passport or the passport's issuer) was revoked: as a
 * cancel, with the status revoked and why as the result's error. */
void task_revoke(task *t, const char *why);
/* The node's chain state is on disk up to sequence (e NULL): a task waiting to publish a result
 * signed under a number up to it publishes it. Or a save failed (e): a waiting task discards
 * its signature and gives its entry back, to run again. Other tasks ignore it. */
void task_chain_saved(task *t, uint64_t sequence, const err *e);

const char *task_entry(const task *t);
/* The task id, or NULL before it was read. */
const char *task_id(const task *t);
/* The run lease key, or NULL while the task holds no lease (so nothing to keep fresh). */
const char *task_lease_key(const task *t);
/* True once the task has passed admission under its id (leasing or later). */
bool task_admitted(const task *t);
/* The name of the task's state ("lease", "run", ...), for logs and tests. */
const char *task_state_name(const task *t);
