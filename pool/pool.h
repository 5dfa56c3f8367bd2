/* Warm pools of sandboxes keyed by (runtime, image digest, language), each with a warm target;
 * a node-wide cap on live sandboxes and a cap on concurrent creations, both for refills. Taking
 * a warm sandbox is O(1) and starts no process; a miss creates one at once, caps or not (the
 * caller's task slots bound those), and never waits out a failure backoff. Used sandboxes are
 * destroyed in the background once no task runs (pool_release) and the pool refills. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "sandbox/sandbox.h"

struct event_base;

typedef struct pool pool;

/* How the pool makes and unmakes sandboxes, in the manner of a hiredis adapter: the real ones
 * (pool_sandbox_ops) or a test's fakes. The pool never looks inside a sandbox; it hands each
 * one only to these operations and to its takers. `ctx` is the ops_ctx given to pool_new().
 * No callback may run before the operation that registered it has returned. */
typedef struct pool_ops {
	/* Starts creating a sandbox for spec (*out exists from now on); ready runs once, from
	 * the loop, with the outcome. A sandbox that failed must still be destroyed. Returns -1
	 * with *e only when nothing was started. */
	int (*create)(void *ctx, const sandbox_spec *spec, sandbox_ready_fn ready, void *arg,
	              sandbox **out, err **e);
	/* Destroys sb in the background, in any state; sb is invalid after the call. gone runs
	 * once, from the loop, when nothing of it is left. */
	void (*destroy)(void *ctx, sandbox *sb, sandbox_gone_fn gone, void *arg);
	/* While sb is READY, died runs when it dies on its own; died == NULL stops watching. */
	void (*watch)(void *ctx, sandbox *sb, sandbox_died_fn died, void *arg);
	/* When sb became READY, in now_mono_ms() milliseconds. */
	int64_t (*ready_at)(void *ctx, const sandbox *sb);
	/* What sb was created for. Borrowed; valid while sb lives. */
	const sandbox_spec *(*spec_of)(void *ctx, const sandbox *sb);
	/* Optional: sb's task is over and sb waits for its teardown; what is left of it should
	 * not compete with running tasks (the real one: the warming CPU share again). */
	void (*retire)(void *ctx, sandbox *sb);
} pool_ops;

/* The real sandboxes (sandbox_create, sandbox_destroy, ...): ops_ctx is a sandbox_ctx *. */
extern const pool_ops pool_sandbox_ops;

typedef struct pool_opts {
	size_t max_live;        /* cap on sandboxes in any state for refills; default 32 */
	size_t max_creating;    /* concurrent creations for refills; default 2 */
	int64_t max_age_ms;     /* recycle warm sandboxes older than this; 0: never */
	int64_t backoff_min_ms; /* after a failed creation; default 200 */
	int64_t backoff_max_ms; /* default 30000 */
	int64_t tick_ms;        /* how often ages and backoffs are looked at; default 1000 */
	size_t max_used;        /* used sandboxes that may wait for a quiet node; 0: none */
} pool_opts;

/* A pool on base (borrowed; the loop the ops' callbacks come from) that makes its sandboxes
 * with ops (borrowed, usually static) and ops_ctx (borrowed); both outlive the pool. */
int pool_new(pool **out, struct event_base *base, const pool_ops *ops, void *ops_ctx,
             const pool_opts *o, err **e);
/* Destroys every sandbox the pool owns; cb runs when all are gone (including those taken and
 * not yet released). The pool itself is freed by pool_free() after that. */
void pool_shutdown(pool *p, void (*cb)(void *arg), void *arg);
pool *pool_free(pool *p);

/* Declares a warm pool for a spec (copied) with a warm target. Returns -1 on a duplicate key. */
int pool_add(pool *p, const sandbox_spec *spec, size_t warm_target, err **e);

/* Called once with a READY sandbox (e == NULL), or with the error that made creating one fail
 * or "the pool is shutting down" (e borrowed). It may call into the pool, but not free it. */
typedef void (*pool_take_fn)(sandbox *sb, const err *e, void *arg);

/* Asks for a READY sandbox for spec. A warm hit calls cb before returning (*hit = true); a miss
 * creates one (the cold path) and calls cb from the loop later, or before returning when the
 * creation cannot even start. The caller owns the sandbox it receives and gives it back with
 * pool_release() after its task. */
void pool_take(pool *p, const sandbox_spec *spec, pool_take_fn cb, void *arg, bool *hit);
/* Gives a used sandbox back: it is destroyed in the background and its pool refills.
 *
 * Teardown yields to tasks. Tearing a used sandbox down (its processes' exit, the runtime's
 * `delete`, the cgroup and bundle removal) was what slowed the tasks that ran beside it: the
 * bench's back-to-back tasks ran as fast as idle ones once teardowns waited, refills or not
 * (the closing note of issue 17 has the figures). So a used sandbox waits, retired (ops
 * retire), until no task has run for POOL_QUIET_MS (10 ms); then they go, POOL_MAX_TEARING (2)
 * at a time, oldest first. It goes at once, tasks running or not, when more than max_used
 * wait, when a refill needs the room it holds under max_live (only as many as that needs),
 * when it has waited POOL_USED_MAX_MS (2 s: a long task never keeps the used ones alive) and
 * when the pool shuts down. What waiting costs: the memory of at most max_used used sandboxes
 * for at most 2 s, their workspace and /tmp included, at the warming CPU share (which bounds
 * nothing on idle cores: their own CPU limit does). Their programs ended: the agent kills
 * what is left 250 ms after the result; a program that subverted its agent keeps running that
 * long inside its limits. Under a load that never pauses, every task past the first max_used
 * still has a teardown beside it.
 *
 * Refills yield to tasks too. A creation is the runtime's `create` or `run --detach`, a Go
 * program of tens of ms of CPU (runc) to hundreds (runsc), and the loop's own work to start it
 * and take it in: beside a burst of warm tasks on a small host, it is their slowest part (issue
 * 17's closing note: runc at concurrency 8, p99 13.1 -> 10.4 ms once refills waited). So while
 * a sandbox is taken (a task's, or a chain's between its steps, an llm step included) or was
 * given back in the last POOL_QUIET_MS, a pool holding half its target or more (warm and
 * creating) starts no refill; below half it refills up to half (rounded up), and with a taker
 * waiting (a miss) up to its whole target and its waiters, as before. A held refill waits at
 * most POOL_USED_MAX_MS (2 s), then fills the pools beside the tasks; a held one does not
 * force a used sandbox's teardown for room under max_live. A burst of up to half the target
 * thus runs beside no creation, and the pool is full again once the node is quiet (caps and
 * backoff allowing); under a load that never pauses, a pool holds at least half its target
 * and is filled every 2 s. */
void pool_release(pool *p, sandbox *sb);

typedef struct pool_stats {
	size_t creating, warm, busy, destroying;
	size_t used; /* of destroying: used ones waiting for their teardown */
	uint64_t created, failed, hits, misses, recycled, died;
	double acquire_ms_sum; /* sum of acquire latencies (ms), with takes = hits + misses */
} pool_stats;

/* Totals over all pools. */
void pool_get_stats(const pool *p, pool_stats *out);
/* Why the last sandbox creation failed (the runtime's own first meaningful line, through the
 * sandbox's error), or NULL when the last one succeeded. Borrowed. Each failure is also logged
 * at warn, at most every 10 s per pool with a count of the ones not logged. */
const char *pool_last_error(const pool *p);
/* Per-pool state as a JSON array (for the node registry and aisp nodes), in declaration order:
 * [{"runtime":..,"image":..,"lang":..,"target":N,"warm":N,"creating":N,"busy":N,"hits":N,
 *   "misses":N,"failed":N,"backoff_ms":N}, ...]; backoff_ms is the current failure backoff
 * (0: none). */
void pool_describe_json(const pool *p, buf *out);
/* Appends the Prometheus text (format 0.0.4) of every pool/sandbox family, each once with
 * # HELP and # TYPE and its samples together: aisp_pool_sandboxes{runtime,image,lang,state},
 * aisp_pool_target{runtime,image,lang}, aisp_pool_sandboxes_total{state}, aisp_pool_destroying,
 * aisp_pool_takes_total{result}, aisp_pool_{hits,misses,recycled,died}_total,
 * aisp_sandbox_creations_total, aisp_sandbox_creation_failures_total. */
void pool_metrics(const pool *p, buf *out);
