/* Durability of published results across a Sentinel failover (proto/PROTOCOL.md, "Failover";
 * deploy/REDIS.md): after the PUBLISH script returned, WAIT <replicas> <timeout> on the same
 * connection, so that the node counts a result as published only once that many replicas
 * have it, and logs and counts the ones they did not confirm in time. A result is on the
 * master and its entry acknowledged before WAIT is sent (the script is atomic), so WAIT
 * cannot undo anything: it tells the node whether a failover could still lose the result.
 *
 * WAITs are batched: at most one is in flight; results published while it is out join the
 * next one (WAIT covers every earlier write of its connection). A result published on an
 * earlier connection than the one WAIT goes out on is never confirmed: WAIT on a new
 * connection says nothing about writes of the old one. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "daemon/metrics.h"
#include "daemon/redis.h"

typedef struct durability durability;

/* confirmed: at least the configured number of replicas acknowledged the result. */
typedef void (*durability_fn)(void *arg, bool confirmed);

/* rc and m are borrowed and outlive the object (free it after rconn_free(rc)). replicas 0
 * disables WAIT: durability_enabled() is then false. Counts unconfirmed results in
 * m->unreplicated. */
durability *durability_new(rconn *rc, int64_t replicas, int64_t timeout_ms, metrics *m);
/* Pending callbacks run (unconfirmed) first. NULL is fine; returns NULL. */
durability *durability_free(durability *d);
bool durability_enabled(const durability *d);
/* Call from the reply callback of the write to confirm (so that the connection is the one
 * the write went out on). cb runs exactly once, from the loop, never before this returns.
 * what names the result in logs (the task id); copied. */
void durability_wait(durability *d, const char *what, durability_fn cb, void *arg);
