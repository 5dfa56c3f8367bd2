/* The Lua scripts aispd runs in Redis, one atomic step each, with a typed argument struct per
 * script. Each script's KEYS/ARGV order is fixed in one place only: next to its text in
 * scripts.c, where the struct is turned into the call. PROTOCOL.md ("Scripts") documents the
 * same steps for independent implementations.
 *
 * Reply streams: a script that adds to a reply stream also sets its TTL (reply_ttl_ms) and
 * never trims it (the stream's owner deletes what it has read). A duplicate entry's reply
 * stream hears the first result: at once when it exists, else from the PUBLISH of the entry
 * that runs (the duplicate's stream waits in aisp:waiters:<id>). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/redis.h"

/* LEASE: takes the run lease of a task id for one stream entry.
 * Reply: [code, deliveries]. code 0: the id already has a result (copied to the reply stream,
 * entry acknowledged); 1: leased (also when the lease was this node's own, left by a previous
 * life), deliveries = the entry's delivery count (XPENDING); 2: another node holds the lease
 * and the entry was fresh: a duplicate (its reply stream now waits for the result, entry
 * acknowledged); 3: another node holds the lease of a reclaimed entry: left pending; 4: a
 * client cancelled the id before it ran (no lease taken; the node publishes `cancelled`). */
typedef struct script_lease_args {
	const char *id;
	const char *entry;
	const char *reply_stream; /* NULL: none */
	const char *node_id;
	int64_t ttl_ms;
	int64_t reply_ttl_ms;
	bool fresh; /* delivered for the first time (XREADGROUP >) */
} script_lease_args;

/* DUPLICATE: an entry whose id another entry on this node is already running. Copies the
 * result to the reply stream when it exists, else makes the reply stream wait for it; always
 * acknowledges and deletes the entry. Reply: 0 result copied (or none asked), 1 waiting. */
typedef struct script_duplicate_args {
	const char *id;
	const char *entry;
	const char *reply_stream; /* NULL: none */
	int64_t reply_ttl_ms;
} script_duplicate_args;

/* PUBLISH: SET the result key NX; only if it was set: XADD aisp:results, the reply stream and
 * every waiting reply stream. Always XACK+XDEL the entry and DEL the lease if it is this
 * node's. Reply: 1 published, 0 a result already existed.
 * With only_if_free (a rejection under a client's id): when the id already has a result, the
 * reply stream gets that result (reply 0); when another entry holds the id's lease, the reply
 * stream waits for its result (reply 2); the entry is acknowledged either way.
 * A signed result (sequence > 0) that is not published (reply 0 or 2) goes to the node's
 * audit stream aisp:audit:<node id> (id, sequence, result; the stream's TTL renewed to ttl_ms),
 * so that every number of the node's chain is accounted for (ATTESTATION.md, section 10).
 * DEAD: the same, after XADD of the dead-letter stream (dead_reason non-NULL selects it). */
typedef struct script_publish_args {
	const char *id;
	const char *entry;        /* NULL: none */
	const char *reply_stream; /* NULL: none */
	const char *result_json;
	size_t result_len;
	int64_t ttl_ms; /* of the result key, and of reply streams */
	const char *status;
	const char *node_id;
	bool only_if_free;
	uint64_t sequence; /* the result's number in the node's chain; 0: unsigned (no audit) */
	/* DEAD only: */
	const char *dead_reason;
	int dead_deliveries;
	const char *dead_task; /* the entry's payload */
	size_t dead_task_len;
} script_publish_args;

/* RELEASE: (shutdown) sets the entry's idle time past every reclaim time so that another
 * node's XAUTOCLAIM takes it at once, and drops this node's lease. Reply: 1. */
typedef struct script_release_args {
	const char *id; /* NULL: no lease held */
	const char *node_id;
	const char *entry;
} script_release_args;

/* HANDOFF: an entry this node cannot serve (its runtime, image or limits) goes to a live node
 * of the registry that advertises them: XCLAIM to that node's consumer (JUSTID: no delivery
 * counted; the node finds it by its pending scan), counting hops in aisp:handoff:<entry>.
 * Reply: [code, hops, node]: 2 handed to node; 1 no live node offers what the task needs;
 * 0 the entry already made max_hops hops. */
typedef struct script_handoff_args {
	const char *entry;
	const char *node_id; /* this node (never a target) */
	const char *runtime; /* NULL: any (the target's default) */
	const char *image;   /* NULL: any (the target's default); a name or a digest */
	const char *limits;  /* "field=value,..." the target's max_<field> must reach */
	int64_t max_hops;
	int64_t ttl_ms; /* of the hop counter */
	/* A sealed task: this node cannot open it (SCRIPT_AGE_OTHER: the target must hold an
	 * age identity, its registry field "age", other than age_recipient, this node's, "" when
	 * none), or it opened it but does not serve it (SCRIPT_AGE_SAME: only a node holding
	 * the same identity can open it). */
	enum { SCRIPT_AGE_ANY = 0, SCRIPT_AGE_OTHER, SCRIPT_AGE_SAME } age_rule;
	const char *age_recipient;
} script_handoff_args;

/* PENDING: this node's own pending entries (XPENDING, then XRANGE for each), without counting
 * a delivery (which XREADGROUP ... 0 would). Reply: [[entry, payload or false, deliveries],
 * ...], at most count. */
typedef struct script_pending_args {
	const char *node_id;
	int64_t count;
} script_pending_args;

/* LOCK: the node id lock aisp:lock:<id> (PROTOCOL.md, "The node registry"): SET to token with
 * a TTL when it is free, its TTL refreshed when it holds token. Reply: [1, ""] held by this
 * process (taken or refreshed), or [0, holder's token]. */
typedef struct script_lock_args {
	const char *node_id;
	const char *token;
	int64_t ttl_ms;
} script_lock_args;

/* UNREGISTER: (shutdown) only while the lock holds token: DEL aisp:node:<id>, SREM aisp:nodes
 * <id>, DEL the lock. Reply: 1 removed, 0 another process holds the id (nothing touched). */
typedef struct script_unregister_args {
	const char *node_id;
	const char *token;
} script_unregister_args;

/* Each sends EVALSHA (EVAL on NOSCRIPT); strings are copied. cb as for rconn_cmdv. */
void script_lease(rconn *rc, const script_lease_args *a, rconn_reply_fn cb, void *arg);
void script_duplicate(rconn *rc, const script_duplicate_args *a, rconn_reply_fn cb, void *arg);
void script_publish(rconn *rc, const script_publish_args *a, rconn_reply_fn cb, void *arg);
void script_release(rconn *rc, const script_release_args *a, rconn_reply_fn cb, void *arg);
void script_pending(rconn *rc, const script_pending_args *a, rconn_reply_fn cb, void *arg);
void script_handoff(rconn *rc, const script_handoff_args *a, rconn_reply_fn cb, void *arg);
void script_lock(rconn *rc, const script_lock_args *a, rconn_reply_fn cb, void *arg);
void script_unregister(rconn *rc, const script_unregister_args *a, rconn_reply_fn cb, void *arg);
