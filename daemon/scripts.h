/* The Lua scripts aispd runs in Redis, one atomic step each, with a typed argument struct per
 * script. Each script's KEYS/ARGV order is fixed in one place only: next to its text in
 * scripts.c, where the struct is turned into the call. PROTOCOL.md ("Publishing") documents
 * the same order for independent implementations. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "daemon/redis.h"

/* LEASE: takes the run lease of a task id.
 * Reply: 0 the id already has a result; 1 leased (also when the lease was this node's own,
 * left by a previous life); 2 another node holds the lease. */
typedef struct script_lease_args {
	const char *result_key;  /* aisp:result:<id> */
	const char *running_key; /* aisp:running:<id> */
	const char *node_id;
	int64_t ttl_ms;
} script_lease_args;

/* PUBLISH: SET the result key NX; only if it was set, XADD the results stream and the reply
 * stream. Always XACK+XDEL the entry and DEL the lease if it is this node's.
 * Reply: 1 published, 0 a result already existed (the entry is acknowledged all the same).
 * DEAD: the same, after XADD of the dead-letter stream (dead_* fields set). */
typedef struct script_publish_args {
	const char *result_key;   /* aisp:result:<id> */
	const char *reply_stream; /* NULL or "": none */
	const char *running_key;  /* aisp:running:<id> */
	const char *result_json;
	size_t result_len;
	int64_t ttl_ms;
	const char *entry; /* the stream entry id, or NULL/"" when there is none */
	const char *id;
	const char *status;
	const char *node_id;
	/* DEAD only (dead_reason non-NULL selects the DEAD script): */
	const char *dead_reason;
	int dead_deliveries;
	const char *dead_task; /* the entry's payload */
	size_t dead_task_len;
} script_publish_args;

/* RELEASE: (shutdown) sets the entry's idle time past every reclaim time so that another
 * node's XAUTOCLAIM takes it at once, and drops this node's lease. Reply: 1. */
typedef struct script_release_args {
	const char *running_key; /* NULL or "": no lease held */
	const char *node_id;
	const char *entry;
} script_release_args;

/* Each sends EVALSHA (EVAL on NOSCRIPT); strings are copied. cb as for rconn_cmdv. */
void script_lease(rconn *rc, const script_lease_args *a, rconn_reply_fn cb, void *arg);
void script_publish(rconn *rc, const script_publish_args *a, rconn_reply_fn cb, void *arg);
void script_release(rconn *rc, const script_release_args *a, rconn_reply_fn cb, void *arg);
