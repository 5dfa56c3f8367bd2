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

/* ---- entries ---- */

static void handle_entry(node *n, const char *entry, const char *payload, size_t len, bool fresh)
{
	if (node_find_entry(n, entry))
		return; /* already ours and in flight */
	if (n->cons.draining || n->cons.stopping) {
		script_release_args a = {.node_id = n->cfg->node_id, .entry = entry};
		n->cons.outstanding++;
		script_release(n->rc, &a, on_stop_reply, n);
		return;
	}
	node_add_task(n, entry, payload, len, fresh);
}

/* The "task" field of an entry's field list, or NULL. */
static const redisReply *task_field(const redisReply *f)
{
	for (size_t j = 0; j + 1 < f->elements; j += 2)
		if (f->element[j]->type == REDIS_REPLY_STRING &&
		    !strcmp(f->element[j]->str, "task") &&
		    f->element[j + 1]->type == REDIS_REPLY_STRING)
			return f->element[j + 1];
	return NULL;
}

/* Entries as XREADGROUP/XAUTOCLAIM return them: [[id, [field, value, ...]], ...]. */
static void handle_entries(node *n, const redisReply *entries, bool fresh)
{
	int64_t oldest = 0;
	for (size_t i = 0; entries && i < entries->elements; i++) {
		const redisReply *e = entries->element[i];
		if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
		    e->element[0]->type != REDIS_REPLY_STRING)
			continue;
		const char *id = e->element[0]->str;
		int64_t ms = strtoll(id, NULL, 10);
		if (ms > 0 && (!oldest || ms < oldest))
			oldest = ms;
		const redisReply *f = e->element[1];
		if (f->type != REDIS_REPLY_ARRAY) {
			/* Deleted while pending (its result was published): just acknowledge. */
			rconn_cmd(n->rc, NULL, NULL, "XACK", PROTO_KEY_TASKS, PROTO_GROUP, id,
			          NULL);
			continue;
		}
		const redisReply *tf = task_field(f);
		handle_entry(n, id, tf ? tf->str : NULL, tf ? tf->len : 0, fresh);
	}
	if (oldest)
		n->m.queue_lag_s = (double)(now_wall_ms() - oldest) / 1000.0;
}

static void on_read(rconn *rc, redisReply *r, void *arg)
{
	node *n = arg;
	consumer *c = &n->cons;
	bool was_pending = !c->pending_read;
	c->reading = false;
	if (!r)
		return; /* lost: on_rd_ready starts again */
	if (r->type == REDIS_REPLY_ERROR) {
		log_error("XREADGROUP: %s", r->str);
		if (rconn_reply_is_error(r, "NOGROUP"))
			c->group_ok = false;
		return; /* the reclaim tick retries */
	}
	if (was_pending)
		c->pending_read = true;
	if (r->type == REDIS_REPLY_ARRAY)
		for (size_t i = 0; i < r->elements; i++) {
			const redisReply *s = r->element[i];
			if (s->type == REDIS_REPLY_ARRAY && s->elements == 2)
				handle_entries(n, s->element[1], !was_pending);
		}
	if (c->stopping)
		maybe_finish_stop(n);
	else
		consumer_read_more(n);
}

void consumer_read_more(node *n)
{
	consumer *c = &n->cons;
	if (!rconn_ready(n->rd) || !c->group_ok || c->reading || c->draining || c->stopping)
		return;
	size_t free_slots = node_free_slots(n);
	if (!free_slots)
		return;
	_cleanup_free_ char *count = xasprintf("%zu", free_slots);
	_cleanup_free_ char *block = xasprintf("%lld", (long long)n->cfg->block_ms);
	c->reading = true;
	if (!c->pending_read) {
		rconn_cmd(n->rd, on_read, n, "XREADGROUP", "GROUP", PROTO_GROUP, n->cfg->node_id,
		          "COUNT", count, "STREAMS", PROTO_KEY_TASKS, "0", NULL);
		return;
	}
	const char *argv[] = {"XREADGROUP", "GROUP", PROTO_GROUP, n->cfg->node_id, "COUNT", count,
	                      "BLOCK",      block,   "STREAMS",   PROTO_KEY_TASKS, ">"};
	size_t lens[ARRAY_SIZE(argv)];
	for (size_t i = 0; i < ARRAY_SIZE(argv); i++)
		lens[i] = strlen(argv[i]);
	rconn_cmdv(n->rd, on_read, n, n->cfg->block_ms, (int)ARRAY_SIZE(argv), argv, lens);
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
	consumer_read_more(n);
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

static void on_rc_ready(rconn *rc, void *arg)
{
	registry_heartbeat(arg);
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

static void on_autoclaim(rconn *rc, redisReply *r, void *arg)
{
	node *n = arg;
	n->cons.reclaiming = false;
	if (!r || n->cons.stopping)
		return;
	if (r->type == REDIS_REPLY_ERROR) {
		log_warn("XAUTOCLAIM: %s", r->str);
		return;
	}
	if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
		size_t before = n->n_tasks;
		handle_entries(n, r->element[1], false);
		if (n->n_tasks > before)
			log_info("reclaimed %zu entries idle over %lld ms", n->n_tasks - before,
			         (long long)n->cfg->reclaim_ms);
	}
}

static void on_reclaim_tick(evutil_socket_t fd, short what, void *arg)
{
	node *n = arg;
	consumer *c = &n->cons;
	if (c->draining || c->stopping)
		return;
	if (rconn_ready(n->rd) && !c->group_ok && !c->reading)
		create_group(n);
	size_t free_slots = node_free_slots(n);
	if (!rconn_ready(n->rc) || !free_slots || c->reclaiming)
		return;
	_cleanup_free_ char *idle = xasprintf("%lld", (long long)n->cfg->reclaim_ms);
	_cleanup_free_ char *count = xasprintf("%zu", free_slots);
	c->reclaiming = true;
	rconn_cmd(n->rc, on_autoclaim, n, "XAUTOCLAIM", PROTO_KEY_TASKS, PROTO_GROUP,
	          n->cfg->node_id, idle, "0-0", "COUNT", count, NULL);
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
	};
	n->rc = rconn_new(n->base, &o);
	n->host.rc = n->rc;
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
	if (!c->stopping || c->outstanding > 0 || c->reading)
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
	log_info("deregistering %s", n->cfg->node_id);
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
	struct event *evs[] = {c->ev_lease, c->ev_reclaim, c->ev_drain};
	for (size_t i = 0; i < ARRAY_SIZE(evs); i++)
		if (evs[i])
			event_free(evs[i]);
	c->ev_lease = c->ev_reclaim = c->ev_drain = NULL;
}
