/* Warm pools of sandboxes keyed by (runtime, image digest, language), each with a warm target;
 * a node-wide cap on live sandboxes and a cap on concurrent creations. Taking a warm sandbox
 * is O(1) and starts no process; a miss creates one on demand. Used sandboxes are destroyed in
 * the background and the pool refills. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "sandbox/sandbox.h"

typedef struct pool pool;

typedef struct pool_opts {
	size_t max_live;        /* node-wide cap on sandboxes in any state; default 32 */
	size_t max_creating;    /* concurrent creations; default 2 */
	int64_t max_age_ms;     /* recycle warm sandboxes older than this; 0: never */
	int64_t backoff_min_ms; /* after a failed creation; default 200 */
	int64_t backoff_max_ms; /* default 30000 */
} pool_opts;

int pool_new(pool **out, sandbox_ctx *ctx, const pool_opts *o, err **e);
/* Destroys every sandbox the pool owns; cb runs when all are gone. The pool itself is freed
 * by pool_free() after that. */
void pool_shutdown(pool *p, void (*cb)(void *arg), void *arg);
pool *pool_free(pool *p);

/* Declares a warm pool for a spec (copied) with a warm target. Returns -1 on a duplicate key. */
int pool_add(pool *p, const sandbox_spec *spec, size_t warm_target, err **e);

/* Called with a READY sandbox (e == NULL), or with the error that made creating one fail. */
typedef void (*pool_take_fn)(sandbox *sb, const err *e, void *arg);

/* Asks for a READY sandbox for spec. A warm hit calls cb before returning (*hit = true); a miss
 * creates one (the cold path) and calls cb from the loop later. The caller owns the sandbox
 * it receives and gives it back with pool_release() after its task. */
void pool_take(pool *p, const sandbox_spec *spec, pool_take_fn cb, void *arg, bool *hit);
/* Gives a used sandbox back: it is destroyed in the background and its pool refills. */
void pool_release(pool *p, sandbox *sb);

typedef struct pool_stats {
	size_t creating, warm, busy, destroying;
	uint64_t created, failed, hits, misses, recycled, died;
	double acquire_ms_sum; /* sum of acquire latencies (ms), with takes = hits + misses */
} pool_stats;

/* Totals over all pools. */
void pool_get_stats(const pool *p, pool_stats *out);
/* Per-pool state as a JSON array (for the node registry and aisp nodes):
 * [{"runtime":..,"image":..,"lang":..,"target":N,"warm":N,"creating":N,"busy":N}, ...] */
void pool_describe_json(const pool *p, buf *out);
/* Prometheus lines for every pool (aisp_pool_sandboxes{runtime,image,lang,state} ...). */
void pool_metrics(const pool *p, buf *out);
