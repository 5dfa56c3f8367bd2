/* The node's stream consumer: the consumer group, reading only as many entries as free slots
 * (own pending entries first after every (re)connect), keeping running tasks' claims and
 * leases fresh, taking over entries of dead nodes (XAUTOCLAIM), and the drain on SIGTERM.
 *
 * Shutdown choice (PROTOCOL.md, "Shutdown"): tasks still running when drain_s ends are
 * released with the RELEASE script, which sets their entry's idle time far past any reclaim
 * time (XCLAIM ... IDLE) and drops the lease, so the next XAUTOCLAIM of any node takes them at
 * once; then the node deletes its registry hash and leaves aisp:nodes. */
#include "daemon/node.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "daemon/scripts.h"

/* The most entries one lease refresh names (XCLAIM's argv); slots are at most 1024. */
#define LEASE_BATCH 1024
/* How often the node looks at its own pending list for entries it does not run (handed to it
 * by another node, or left by a previous life). */
#define SCAN_MS 1000
/* How often the node asks whether a client cancelled a task it holds. */
#define CANCEL_MS 500

static void consumer_stop(node *n);
static void maybe_finish_stop(node *n);

static void on_stop_reply(rconn *rc, redisReply *r, void *arg)
{
	node *n = arg;
	if (r && r->type == REDIS_REPLY_ERROR)
		log_warn("shutdown: redis: %s", r->str);
	n->cons.outstanding--;
	maybe_finish_stop(n);
}

/* ---- slots ---- */

size_t consumer_free_slots(const node *n)
{
	const consumer *c = &n->cons;
	size_t used = n->n_tasks + c->reserved;
	size_t slots = (size_t)n->cfg->slots;
	return used >= slots ? 0 : slots - used;
}

/* ---- entries ---- */

/* The entry's "task" payload (NULL when it has none); *bad names a field other than "task"
 * (the protocol's entries have exactly one field). */
static const redisReply *task_field(const redisReply *f, char **bad)
{
	const redisReply *tf = NULL;
	*bad = NULL;
	for (size_t j = 0; j + 1 < f->elements; j += 2) {
		const redisReply *k = f->element[j], *v = f->element[j + 1];
		if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		if (!strcmp(k->str, "task") && !tf) {
			tf = v;
		} else if (!*bad) {
			_cleanup_free_ char *q = proto_quote(k->str, k->len);
			*bad =
			    xasprintf("the stream entry has a field %s besides \"task\" (an entry "
			              "has exactly one field, \"task\")",
			              q);
		}
	}
	return tf;
}

/* One entry: [id, [field, value, ...]] or [id, nil] when it was deleted while pending.
 * Returns true when it became a task. */
static bool handle_entry(node *n, const redisReply *e, bool fresh)
{
	if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
	    e->element[0]->type != REDIS_REPLY_STRING)
		return false;
	const char *entry = e->element[0]->str;
	const redisReply *f = e->element[1];
	if (f->type != REDIS_REPLY_ARRAY) {
		/* Deleted while pending (its result was published): just acknowledge. */
		rconn_cmd(n->rc, NULL, NULL, "XACK", PROTO_KEY_TASKS, PROTO_GROUP, entry, NULL);
		return false;
	}
	if (node_find_entry(n, entry))
		return false; /* already ours and in flight */
	if (n->cons.draining || n->cons.stopping) {
		script_release_args a = {.node_id = n->cfg->node_id, .entry = entry};
		n->cons.outstanding++;
		script_release(n->rc, &a, on_stop_reply, n);
		return false;
	}
	if (n->chain_error) {
		/* Read before the chain state failed to save: nothing may be signed, so it is
		 * given back (claimable at once) rather than run. */
		script_release_args a = {.node_id = n->cfg->node_id, .entry = entry};
		script_release(n->rc, &a, NULL, NULL);
		return false;
	}
	if (n->n_tasks >= (size_t)n->cfg->slots)
		return false; /* cannot happen (slots are reserved); stays pending for a scan */
	_cleanup_free_ char *bad = NULL;
	const redisReply *tf = task_field(f, &bad);
	node_add_task(n, entry, tf ? tf->str : NULL, tf ? tf->len : 0, fresh, bad);
	return true;
}

/* Entries as XREADGROUP/XAUTOCLAIM/PENDING return them. Returns how many became tasks. */
static size_t handle_entries(node *n, const redisReply *entries, bool fresh)
{
	int64_t oldest = 0;
	size_t started = 0;
	for (size_t i = 0; entries && i < entries->elements; i++) {
		const redisReply *e = entries->element[i];
		if (e->type == REDIS_REPLY_ARRAY && e->elements >= 1 &&
		    e->element[0]->type == REDIS_REPLY_STRING) {
			int64_t ms = strtoll(e->element[0]->str, NULL, 10);
			if (ms > 0 && (!oldest || ms < oldest))
				oldest = ms;
		}
		started += handle_entry(n, e, fresh);
	}
	if (oldest)
		n->m.queue_lag_s = (double)(now_wall_ms() - oldest) / 1000.0;
	return started;
}

/* The read in flight has been handled: its slots are free again. */
static void read_done(node *n)
{
	n->cons.in_flight = READ_NONE;
	n->cons.reserved = 0;
	if (n->cons.stopping)
		maybe_finish_stop(n);
	else
		consumer_read_more(n);
}

static void on_read(rconn *rc, redisReply *r, void *arg)
{
	node *n = arg;
	if (r && r->type == REDIS_REPLY_ERROR) {
		log_error("XREADGROUP: %s", r->str);
		/* NOGROUP, but also NOREPLICAS (a master below min-replicas-to-write, e.g. just
		 * after a failover) or OOM: reading at once would spin on the error; the reclaim
		 * tick retries through XGROUP CREATE. */
		n->cons.group_ok = false;
	} else if (r && r->type == REDIS_REPLY_ARRAY) {
		for (size_t i = 0; i < r->elements; i++) {
			const redisReply *s = r->element[i];
			if (s->type == REDIS_REPLY_ARRAY && s->elements == 2)
				handle_entries(n, s->element[1], true);
		}
	}
	read_done(n); /* lost (r NULL): the loop goes on when rd is ready again */
}

static void read_new(node *n, size_t free_slots)
{
	_cleanup_free_ char *count = xasprintf("%zu", free_slots);
	_cleanup_free_ char *block = xasprintf("%lld", (long long)n->cfg->block_ms);
	const char *argv[] = {"XREADGROUP", "GROUP", PROTO_GROUP, n->cfg->node_id, "COUNT", count,
	                      "BLOCK",      block,   "STREAMS",   PROTO_KEY_TASKS, ">"};
	size_t lens[ARRAY_SIZE(argv)];
	for (size_t i = 0; i < ARRAY_SIZE(argv); i++)
		lens[i] = strlen(argv[i]);
	rconn_cmdv(n->rd, on_read, n, n->cfg->block_ms, (int)ARRAY_SIZE(argv), argv, lens);
}

/* The node's own pending entries that it is not running: left by a previous life of this
 * node, handed to it by a node that could not serve them, or left pending on purpose. */
static void on_scan(rconn *rc, redisReply *r, void *arg)
{
	node *n = arg;
	if (r && r->type == REDIS_REPLY_ARRAY) {
		n->cons.pending_read = true;
		handle_entries(n, r, false);
	} else if (r) {
		log_warn("pending scan: %s", r->str ? r->str : "unexpected reply");
	}
	read_done(n);
}

static void read_pending(node *n, size_t free_slots)
{
	/* The scan lists the node's whole pending list, the entries it runs too; only
	 * free_slots of them can become tasks (handle_entry checks). */
	script_pending_args a = {.node_id = n->cfg->node_id, .count = n->cfg->slots + free_slots};
	script_pending(n->rc, &a, on_scan, n);
}

static void on_autoclaim(rconn *rc, redisReply *r, void *arg)
{
	node *n = arg;
	if (r && r->type == REDIS_REPLY_ERROR) {
		log_warn("XAUTOCLAIM: %s", r->str);
	} else if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 2 && !n->cons.stopping) {
		/* Redis looks at COUNT x 10 pending entries per call: go on from where it stopped,
		 * so that entries behind many live ones are reached too ("0-0" after a full pass). */
		if (r->element[0]->type == REDIS_REPLY_STRING &&
		    r->element[0]->len < sizeof(n->cons.claim_cursor))
			memcpy(n->cons.claim_cursor, r->element[0]->str, r->element[0]->len + 1);
		size_t k = handle_entries(n, r->element[1], false);
		if (k)
			log_info("reclaimed %zu entries idle over %lld ms", k,
			         (long long)n->cfg->reclaim_ms);
	}
	read_done(n);
}

static void read_claim(node *n, size_t free_slots)
{
	_cleanup_free_ char *idle = xasprintf("%lld", (long long)n->cfg->reclaim_ms);
	_cleanup_free_ char *count = xasprintf("%zu", free_slots);
	rconn_cmd(n->rc, on_autoclaim, n, "XAUTOCLAIM", PROTO_KEY_TASKS, PROTO_GROUP,
	          n->cfg->node_id, idle, n->cons.claim_cursor[0] ? n->cons.claim_cursor : "0-0",
	          "COUNT", count, NULL);
}

/* The read loop: one read at a time, by priority — the pending scan (always first after a
 * (re)connect), a due takeover, then new entries. */
void consumer_read_more(node *n)
{
	consumer *c = &n->cons;
	if (c->in_flight || !c->group_ok || !n->lock_held || c->draining || c->stopping)
		return;
	/* A node that cannot save its chain state signs nothing: it takes no task. */
	if (n->chain_error)
		return;
	size_t free_slots = consumer_free_slots(n);
	if (!free_slots)
		return;
	if ((c->want_scan || !c->pending_read) && rconn_ready(n->rc)) {
		c->want_scan = false;
		c->in_flight = READ_SCAN;
		c->reserved = free_slots;
		read_pending(n, free_slots);
	} else if (c->want_claim && c->pending_read && rconn_ready(n->rc)) {
		c->want_claim = false;
		c->in_flight = READ_CLAIM;
		c->reserved = free_slots;
		read_claim(n, free_slots);
	} else if (c->pending_read && rconn_ready(n->rd)) {
		c->in_flight = READ_NEW;
		c->reserved = free_slots;
		read_new(n, free_slots);
	}
}

static void on_group(rconn *rc, redisReply *r, void *arg)
{
	node *n = arg;
	if (!r)
		return;
	if (r->type == REDIS_REPLY_ERROR && !rconn_reply_is_error(r, "BUSYGROUP")) {
		log_error("XGROUP CREATE %s %s: %s", PROTO_KEY_TASKS, PROTO_GROUP, r->str);
		return;
	}
	n->cons.group_ok = true;
	consumer_read_more(n); /* own pending entries first, then new ones */
}

static void create_group(node *n)
{
	rconn_cmd(n->rd, on_group, n, "XGROUP", "CREATE", PROTO_KEY_TASKS, PROTO_GROUP, "0",
	          "MKSTREAM", NULL);
}

static void on_rd_ready(rconn *rc, void *arg)
{
	node *n = arg;
	n->cons.pending_read = false;
	n->cons.group_ok = false;
	create_group(n);
}

static void on_rd_lost(rconn *rc, void *arg)
{
	node *n = arg;
	n->cons.group_ok = false;
}

/* A watched party of a running task was revoked (daemon/revocation.h). */
static void on_revoked(void *arg, void *owner, const char *field, const char *why)
{
	node *n = arg;
	for (size_t i = 0; i < n->n_tasks; i++)
		if (n->tasks[i] == owner) {
			task_revoke(owner, why);
			return;
		}
}

static void on_rc_ready(rconn *rc, void *arg)
{
	registry_heartbeat(arg);
	consumer_read_more(arg); /* the pending scan runs on rc */
}

/* ---- leases and reclaiming ---- */

static void on_lease_tick(evutil_socket_t fd, short what, void *arg)
{
	node *n = arg;
	if (!rconn_ready(n->rc))
		return;
	const char *argv[6 + LEASE_BATCH];
	size_t lens[6 + LEASE_BATCH];
	int argc = 0;
	argv[argc++] = "XCLAIM";
	argv[argc++] = PROTO_KEY_TASKS;
	argv[argc++] = PROTO_GROUP;
	argv[argc++] = n->cfg->node_id;
	argv[argc++] = "0";
	int first = argc;
	_cleanup_free_ char *ttl = xasprintf("%lld", (long long)n->cfg->reclaim_ms);
	for (size_t i = 0; i < n->n_tasks && argc < first + LEASE_BATCH; i++) {
		const task *t = n->tasks[i];
		const char *key = task_lease_key(t);
		if (!key)
			continue;
		argv[argc++] = task_entry(t);
		rconn_cmd(n->rc, NULL, NULL, "PEXPIRE", key, ttl, NULL);
	}
	if (argc == first)
		return;
	argv[argc++] = "JUSTID";
	for (int i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	rconn_cmdv(n->rc, NULL, NULL, 0, argc, argv, lens);
}

static void on_reclaim_tick(evutil_socket_t fd, short what, void *arg)
{
	node *n = arg;
	consumer *c = &n->cons;
	if (c->draining || c->stopping)
		return;
	if (rconn_ready(n->rd) && !c->group_ok && c->in_flight != READ_NEW)
		create_group(n);
	if (node_chain_retry(n) < 0)
		return;
	c->want_claim = true;
	consumer_read_more(n);
}

/* ---- cancels ---- */

/* The ids whose cancel keys one MGET asked about, in order. */
typedef struct cancel_ask {
	node *n;
	size_t n_ids;
	char *ids[];
} cancel_ask;

static void on_cancels(rconn *rc, redisReply *r, void *arg)
{
	cancel_ask *a = arg;
	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == a->n_ids)
		for (size_t i = 0; i < a->n_ids; i++) {
			if (r->element[i]->type == REDIS_REPLY_NIL)
				continue;
			/* The task may have ended (or be another entry of the id) by now. */
			for (size_t k = 0; k < a->n->n_tasks; k++) {
				task *t = a->n->tasks[k];
				if (task_lease_key(t) && !strcmp(task_id(t), a->ids[i])) {
					task_cancel(t);
					break;
				}
			}
		}
	for (size_t i = 0; i < a->n_ids; i++)
		free(a->ids[i]);
	free(a);
}

/* Every half second, one MGET of the cancel keys (aisp:cancel:<id>) of the tasks this node
 * holds a lease for; a queued task's cancel is seen by its LEASE. */
static void on_cancel_tick(evutil_socket_t fd, short what, void *arg)
{
	node *n = arg;
	if (!rconn_ready(n->rc) || n->cons.stopping)
		return;
	cancel_ask *a = xzalloc(sizeof(*a) + n->n_tasks * sizeof(char *));
	a->n = n;
	_cleanup_free_ const char **argv = xcalloc(n->n_tasks + 1, sizeof(char *));
	_cleanup_free_ size_t *lens = xcalloc(n->n_tasks + 1, sizeof(size_t));
	argv[0] = "MGET";
	for (size_t i = 0; i < n->n_tasks; i++)
		if (task_lease_key(n->tasks[i])) {
			a->ids[a->n_ids] = xstrdup(task_id(n->tasks[i]));
			argv[++a->n_ids] =
			    xasprintf(PROTO_KEY_CANCEL_PREFIX "%s", task_id(n->tasks[i]));
		}
	for (size_t i = 0; i <= a->n_ids; i++)
		lens[i] = strlen(argv[i]);
	if (a->n_ids)
		rconn_cmdv(n->rc, on_cancels, a, 0, (int)a->n_ids + 1, argv, lens);
	for (size_t i = 1; i <= a->n_ids; i++)
		free((char *)argv[i]);
	if (!a->n_ids)
		free(a);
}

static void on_scan_tick(evutil_socket_t fd, short what, void *arg)
{
	node *n = arg;
	n->cons.want_scan = true;
	consumer_read_more(n);
}

/* ---- lifecycle ---- */

static struct event *every(node *n, int64_t ms, event_callback_fn fn)
{
	struct event *ev = event_new(n->base, -1, EV_PERSIST, fn, n);
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	event_add(ev, &tv);
	return ev;
}

void consumer_start(node *n)
{
	const config *c = n->cfg;
	rconn_opts o = {
	    .name = "cmd",
	    .address = c->redis_address,
	    .user = c->redis_user,
	    .password = c->redis_password,
	    .timeout_ms = c->redis_timeout_ms,
	    .on_ready = on_rc_ready,
	    .arg = n,
	    .sentinels = (const char *const *)c->redis_sentinels,
	    .master_name = c->redis_master_name,
	    .sentinel_user = c->redis_sentinel_user,
	    .sentinel_password = c->redis_sentinel_password,
	    .address_map = (const char *const *)c->redis_address_map,
	};
	n->rc = rconn_new(n->base, &o);
	n->host.rc = n->rc;
	n->dur = durability_new(n->rc, c->redis_wait_replicas, c->redis_wait_timeout_ms, &n->m);
	n->host.dur = n->dur;
	n->rv = revocation_new(n->base, n->rc, c->trust.revocation_poll_ms, on_revoked, n);
	n->host.rv = n->rv;
	o.name = "read";
	o.on_ready = on_rd_ready;
	o.on_lost = on_rd_lost;
	n->rd = rconn_new(n->base, &o);
	registry_start(n);
	int64_t lease_ms = c->reclaim_ms / 3;
	n->cons.ev_lease = every(n, lease_ms > 100 ? lease_ms : 100, on_lease_tick);
	int64_t rec = c->reclaim_ms / 3;
	rec = rec < 500 ? 500 : rec > 5000 ? 5000 : rec;
	n->cons.ev_reclaim = every(n, rec, on_reclaim_tick);
	n->cons.ev_scan = every(n, SCAN_MS, on_scan_tick);
	n->cons.ev_cancel = every(n, CANCEL_MS, on_cancel_tick);
}

void consumer_task_gone(node *n)
{
	consumer *c = &n->cons;
	if (c->draining && !c->stopping && n->n_tasks == 0) {
		log_info("drained: no task in flight");
		consumer_stop(n);
		return;
	}
	consumer_read_more(n);
}

static void on_pool_down(void *arg)
{
	node *n = arg;
	log_info("pool shut down; exiting");
	event_base_loopexit(n->base, NULL);
}

static void maybe_finish_stop(node *n)
{
	consumer *c = &n->cons;
	if (!c->stopping || c->outstanding > 0 || c->in_flight)
		return;
	if (c->outstanding < 0)
		return;
	c->outstanding = -1; /* once */
	log_info("shutting the pool down");
	pool_shutdown(n->pool, on_pool_down, n);
}

static void consumer_stop(node *n)
{
	consumer *c = &n->cons;
	if (c->stopping)
		return;
	c->stopping = true;
	if (c->ev_drain)
		event_del(c->ev_drain);
	while (n->n_tasks) {
		c->outstanding++;
		task_release(n->tasks[0], on_stop_reply, n);
	}
	c->outstanding += registry_remove(n, on_stop_reply, n);
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	node *n = arg;
	log_warn("drain time (%llds) is over: releasing %zu task(s) to other nodes",
	         (long long)n->cfg->drain_s, n->n_tasks);
	consumer_stop(n);
}

void consumer_drain(node *n)
{
	consumer *c = &n->cons;
	if (c->draining) {
		log_warn("second signal: stopping now");
		consumer_stop(n);
		return;
	}
	c->draining = true;
	log_info("draining: %zu task(s) in flight, waiting up to %llds", n->n_tasks,
	         (long long)n->cfg->drain_s);
	registry_heartbeat(n);
	if (n->n_tasks == 0) {
		consumer_stop(n);
		return;
	}
	c->ev_drain = evtimer_new(n->base, on_drain_timeout, n);
	struct timeval tv = {n->cfg->drain_s, 0};
	evtimer_add(c->ev_drain, &tv);
}

void consumer_deinit(node *n)
{
	consumer *c = &n->cons;
	struct event *evs[] = {c->ev_lease, c->ev_reclaim, c->ev_scan, c->ev_cancel, c->ev_drain};
	for (size_t i = 0; i < ARRAY_SIZE(evs); i++)
		if (evs[i])
			event_free(evs[i]);
	c->ev_lease = c->ev_reclaim = c->ev_scan = c->ev_cancel = c->ev_drain = NULL;
}
