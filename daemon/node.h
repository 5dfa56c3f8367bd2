/* aispd's node: the process-wide state and who owns which part of it. Only daemon/ sees this
 * header.
 *
 *   node.c      node_new/node_free: key and chain, runtimes, images, sandbox context, pool;
 *               the task list and free slots; what tasks borrow (task_host: resolve, sign)
 *   checks.c    the startup checks (directories, cgroups, agent, key, runsc platforms; for
 *               --check also a sandbox per runtime, the HTTP address, Redis)
 *   consumer.c  the stream consumer: reads by free slots, leases, takeover, drain, shutdown
 *   registry.c  the node id lock, the node's entry in aisp:node:<id> and aisp:nodes
 *   http.c      /metrics and /healthz
 *   task.c      one task's life (task.h), which sees only its task_host */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attest/attest.h"
#include "common/err.h"
#include "daemon/config.h"
#include "daemon/http-client.h"
#include "daemon/llm.h"
#include "daemon/metrics.h"
#include "daemon/redis.h"
#include "daemon/task.h"
#include "pool/pool.h"
#include "sandbox/sandbox.h"

struct event_base;
struct event;
struct evhttp;

/* The stream consumer's state (consumer.c). */
typedef struct consumer {
	bool group_ok;     /* the consumer group exists (created on rd) */
	bool pending_read; /* own pending entries read since rd became ready */
	/* One accounting of slots for every source of entries (new entries, takeover, the
	 * pending scan): at most one read is in flight, and it reserves the COUNT it asked for
	 * until its reply has been handled. The timers only say that a takeover or a scan is
	 * due; the read loop runs it when the read in flight (a blocking XREADGROUP returns
	 * within block_ms) has come back. */
	enum { READ_NONE = 0, READ_NEW, READ_CLAIM, READ_SCAN } in_flight;
	size_t reserved;       /* slots the read in flight may fill */
	bool want_claim;       /* an XAUTOCLAIM is due */
	bool want_scan;        /* a pending scan is due */
	char claim_cursor[48]; /* where the next XAUTOCLAIM starts ("": 0-0) */
	bool draining;
	bool stopping;   /* releasing, deregistering, shutting the pool */
	int outstanding; /* shutdown replies still awaited */
	struct event *ev_lease, *ev_reclaim, *ev_scan, *ev_cancel, *ev_drain;
} consumer;

typedef struct node {
	const config *cfg;
	struct event_base *base;
	bool check_only; /* aispd --check: read the node's state, never write it */
	rconn *rc;       /* commands: scripts, leases, registry */
	rconn *rd;       /* blocking XREADGROUP only (it would hold up everything else) */
	/* WAIT after publishing (on rc) */
	durability *dur;

	sandbox_ctx *sbx;
	pool *pool;
	sandbox_runtime **rts; /* one per enabled runtime, in config order */
	size_t n_rts;
	sandbox_image *imgs; /* every image resolved so far; specs borrow their strings */
	size_t n_imgs;

	attest_key *key;
	char *pubkey_pem;
	attest_age_identity **age_ids; /* the node's age identity (sealed tasks), or none */
	size_t n_age_ids;
	char *age_recipient;     /* "age1..." of age_ids[0], or NULL */
	char *age_recipient_env; /* its recipient, signed by key (the registry's age_recipient) */
	revocation *rv;
	struct secrets *secrets; /* [secrets] dir, or NULL when it cannot be opened */
	/* The chain: its newest state (the last signature's) and the one on disk, saved on the
	 * saver's thread (chain-save.h); a result leaves the node once its number is saved. */
	attest_chain chain;
	attest_chain saved;
	struct chain_saver *saver;     /* NULL without a key (nothing signed) or with --check */
	attest_chain_file *chain_file; /* until the saver takes it */
	int state_dirfd;
	/* Why the last save of the chain state failed; while set the node signs nothing, takes
	 * no task and /healthz is 503 (a save after node_chain_retry() clears it). */
	char *chain_error;

	task **tasks; /* in flight on this node */
	size_t n_tasks, cap_tasks;
	task_host host; /* what every task borrows */

	consumer cons;
	int64_t started_ms;
	char *runtimes_csv, *images_csv, *image_digests_csv;
	/* /healthz: did the pool's last creation fail? (from pool_get_stats deltas) */
	uint64_t seen_created, seen_failed;
	bool creation_failing;

	http_client *hc; /* outbound HTTP: the llm client's ([llm]) */
	llm *llm;        /* chains' llm steps; NULL without [llm] */
	proxy *proxy;    /* the credential proxy; NULL without [proxy.NAME] */

	metrics m;
	struct evhttp *http;
	struct event *ev_heartbeat;
	/* The node id lock (registry.c): this process's token; held: the lock is ours (nothing
	 * is read or registered before); refused_ms: when another process was first seen holding
	 * it (monotonic, 0: not refused). */
	char *lock_token;
	bool lock_held;
	int64_t lock_refused_ms;
	int exit_code; /* aispd's exit status once the loop is over */
} node;

/* The startup checks' report: each problem is logged when it is found (checks_error: naming
 * the config's file:line of [section] key when the file sets it; section NULL: no line), and
 * counted. */
typedef struct checks {
	const config *cfg;
	int errors, warnings;
} checks;

/* ---- node.c ---- */
/* Runs every startup check, then loads the key and chain and creates the runtimes, images,
 * the HTTP listener, the sandbox context and the pool. Every problem is logged; returns 0 with *out, or -1 with
 * *e saying how many there were (*out NULL). cfg and base are borrowed and outlive the node. */
int node_new(node **out, const config *cfg, struct event_base *base, err **e);
/* aispd --check: the same checks as node_new (nothing of the pool is created), then one
 * sandbox created, used and destroyed per enabled runtime, the HTTP address bound, Redis and
 * the node id lock looked at. Findings go to k. */
void node_check(const config *cfg, struct event_base *base, checks *k);
/* Frees everything; a pool that was not shut down is shut down first (running the loop until
 * its sandboxes are gone). NULL is fine; returns NULL. */
node *node_free(node *n);

/* A task for an entry joins the node's list and starts. bad_entry: the entry itself is
 * malformed (the task is rejected with this message). */
void node_add_task(node *n, const char *entry, const char *payload, size_t len, bool fresh,
                   const char *bad_entry);
/* The task in flight for this stream entry, or NULL. */
task *node_find_entry(const node *n, const char *entry);
/* The runtime named name, when enabled; NULL otherwise. */
const sandbox_runtime *node_runtime(const node *n, const char *name);
/* Resolves an image and keeps it for the node's lifetime (sandbox specs borrow its strings).
 * Returns NULL with *e when the store does not have it. */
const sandbox_image *node_image(node *n, const char *name_or_digest, err **e);
/* Re-reads the image names in the store into images_csv (for the registry). */
void node_list_images(node *n);
/* Updates creation_failing from the pool's counters. */
void node_update_health(node *n);
/* When the chain state could not be saved: asks for the save again (the saver's answer clears
 * chain_error and reads on); returns 0 (nothing to do: chain_error is clear) or -1. */
int node_chain_retry(node *n);

/* ---- node-llm.c ---- */
/* With [llm]: reads the API key, creates the HTTP client and the llm. Returns 0 (nothing to do
 * without [llm]) or -1 with *e for the operator. */
int node_llm_open(node *n, err **e);
void node_llm_close(node *n);
/* NULL when this node runs every llm step of t (model allowed, max_tokens within its cap);
 * else why not, for the client's rejection (caller frees). */
char *node_llm_check(const node *n, const proto_task *t);

/* ---- checks.c ---- */
void checks_error(checks *k, const char *section, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void checks_warn(checks *k, const char *section, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A check that passed (--check says what it proved). */
void checks_ok(checks *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Directories (state_dir into *state_dirfd, left -1 when unusable), cgroups, the agent. */
void checks_host(checks *k, int *state_dirfd);
/* Creates the node key when create_key allows it and none exists. Returns 0, or -1 (reported)
 * when there is no key. */
int checks_key(checks *k);
/* The platform runsc runtime name (binary bin) is configured for is one it has. Returns 0,
 * or -1 when it was reported (the runtime cannot work). */
int checks_platform(checks *k, const char *name, const char *bin, const char *platform);
/* --check: creates n->sbx and, per runtime of n, a sandbox of image img: started, warmed, a
 * shell task run, destroyed. */
void checks_sandboxes(checks *k, node *n, const sandbox_image *img);
/* --check: the HTTP address can be bound (then it is closed again). */
void checks_http(checks *k, node *n);
/* --check: Redis reachable, AUTH accepted, the node id lock free (warnings only). */
void checks_redis(checks *k);

/* ---- consumer.c ---- */
/* Connects, creates the group, starts reading, the lease and reclaim timers. */
void consumer_start(node *n);
/* Slots neither running a task nor reserved by a read in flight. */
size_t consumer_free_slots(const node *n);
/* Reads more entries if there are free slots and nothing is being read. */
void consumer_read_more(node *n);
/* SIGTERM/SIGINT: stop reading, wait for running tasks up to drain_s, then stop. */
void consumer_drain(node *n);
/* A task left the node: read more, or finish the drain. */
void consumer_task_gone(node *n);
void consumer_deinit(node *n);

/* ---- registry.c ---- */
/* Starts the heartbeat: the node id lock, the node's hash, its TTL and the set of nodes. */
void registry_start(node *n);
/* Takes or refreshes the node id lock, then writes the node's entry (also on every rc
 * reconnect and when draining starts). Until the lock is held the node reads nothing; when
 * another live process holds it, the node stops (exit 1). */
void registry_heartbeat(node *n);
/* Shutdown: deletes the node's entry and the lock, when the lock is this process's; cb runs
 * once per command sent (returns the count). */
int registry_remove(node *n, rconn_reply_fn cb, void *arg);
void registry_deinit(node *n);

/* ---- http.c ---- */
int http_start(node *n, err **e);
void http_stop(node *n);
