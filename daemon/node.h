/* aispd's process-wide state and the pieces that share it: the consumer (consumer.c), the
 * task path (task.c), the Lua scripts (scripts.c), the HTTP endpoints (http.c) and the startup
 * checks (checks.c). Only daemon/ sees this header. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attest/attest.h"
#include "common/buf.h"
#include "common/err.h"
#include "daemon/config.h"
#include "daemon/metrics.h"
#include "daemon/redis.h"
#include "pool/pool.h"
#include "proto/proto.h"
#include "sandbox/sandbox.h"

struct event_base;
struct event;
struct evhttp;

typedef struct task task;

typedef struct node {
	const config *cfg;
	struct event_base *base;
	rconn *rc; /* commands: scripts, leases, registry */
	rconn *rd; /* blocking XREADGROUP only (it would hold up everything else) */

	sandbox_ctx *sbx;
	pool *pool;
	sandbox_runtime **rts; /* one per enabled runtime, in config order */
	size_t n_rts;

	attest_key *key;
	char *pubkey_pem;
	attest_chain chain;
	int state_dirfd;

	task *tasks; /* in flight on this node */
	size_t busy;
	uint64_t tasks_done;
	int64_t started_ms;
	char *runtimes_csv, *images_csv;

	bool group_ok;     /* the consumer group exists (created on rd) */
	bool reclaiming;   /* an XAUTOCLAIM is in flight */
	bool reading;      /* an XREADGROUP is in flight on rd */
	bool pending_read; /* own pending entries read since rd became ready */
	bool draining;
	bool stopping;   /* releasing, deregistering, shutting the pool */
	int outstanding; /* shutdown replies still awaited */

	/* /healthz: did the pool's last creation fail? (from pool_get_stats deltas) */
	uint64_t seen_created, seen_failed;
	bool creation_failing;

	sandbox_image *imgs; /* every image resolved so far; specs borrow their strings */
	size_t n_imgs;

	metrics m;
	struct evhttp *http;
	struct event *ev_term, *ev_int, *ev_hup, *ev_heartbeat, *ev_lease, *ev_reclaim, *ev_drain;
} node;

/* ---- consumer.c ---- */
/* Connects, creates the group, starts reading, the timers and the heartbeat. */
void node_start(node *n);
/* Reads more entries if there are free slots and nothing is being read. */
void node_read_more(node *n);
/* SIGTERM/SIGINT: stop reading, wait for running tasks up to drain_s, then node_stop(). */
void node_drain(node *n);
size_t node_free_slots(const node *n);
/* Turns one stream entry into a task (payload NULL: the entry had no "task" field). fresh:
 * delivered for the first time (XREADGROUP >), as opposed to reclaimed or re-read pending. */
void node_handle_entry(node *n, const char *entry, const char *payload, size_t len, bool fresh);
/* Updates creation_failing from the pool's counters. */
void node_update_health(node *n);

/* Called by task.c when a task left the node (published, dropped or released). */
void node_task_gone(node *n);
/* The runtime named name, when enabled; NULL otherwise. */
const sandbox_runtime *node_runtime(const node *n, const char *name);
/* Resolves an image and keeps it for the node's lifetime (sandbox specs borrow its strings).
 * Returns NULL with *e when the store does not have it. */
const sandbox_image *node_image(node *n, const char *name_or_digest, err **e);

/* Re-reads the image names in the store into images_csv (for the registry). */
void node_list_images(node *n);

/* ---- task.c ---- */
task *task_new(node *n, const char *entry, const char *payload, size_t len, bool fresh);
/* Starts the task path: parse, validate, lease, acquire, run, publish. */
void task_start(task *t);
const char *task_entry(const task *t);
/* The next task on the node's list. */
task *task_next(const task *t);
const char *task_id(const task *t);
/* True when the task holds its run lease (so its claim must be kept fresh). */
bool task_leased(const task *t);
/* Shutdown: forgets the task without publishing; its entry and lease are released in Redis
 * (the entry made claimable at once). cb runs once, when Redis answered (or failed). */
void task_release(task *t, rconn_reply_fn cb, void *arg);
/* Releases an entry this node holds but never started (read while draining). */
void node_release_entry(node *n, const char *entry, const char *running_key, rconn_reply_fn cb,
                        void *arg);

/* ---- scripts.c ---- */
typedef enum script_id {
	SCRIPT_LEASE = 0,
	SCRIPT_PUBLISH,
	SCRIPT_DEAD,
	SCRIPT_RELEASE,
	SCRIPT__COUNT,
} script_id;
/* EVALSHA (EVAL on NOSCRIPT) of a script with nkeys keys then args; strings copied. */
void script_call(rconn *rc, script_id s, rconn_reply_fn cb, void *arg, int nkeys, int nargs,
                 const char *const *keys_then_args, const size_t *lens);
const char *script_text(script_id s);

/* ---- http.c ---- */
int http_start(node *n, err **e);
void http_stop(node *n);

/* ---- checks.c ---- */
/* Everything the node needs before it can serve: runtimes, images, directories, cgroups, the
 * key, the chain, the sandbox context and the pool (dry: the pool's targets are checked but
 * neither the context nor the pool is created, so nothing starts). Returns 0 or -1 with a
 * message for the operator in *e. */
int checks_run(node *n, bool dry, err **e);
