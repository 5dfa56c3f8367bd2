/* The node's Redis side: the consumer group, reading only as many entries as free slots (own
 * pending entries first after every (re)connect), keeping running tasks' claims and leases
 * fresh, taking over entries of dead nodes (XAUTOCLAIM), the registry heartbeat, and the
 * drain on SIGTERM.
 *
 * Shutdown choice (PROTOCOL.md, "Shutdown"): tasks still running when drain_s ends are
 * released with the RELEASE script, which sets their entry's idle time far past any reclaim
 * time (XCLAIM ... IDLE) and drops the lease, so the next XAUTOCLAIM of any node takes them at
 * once; then the node deletes its registry hash and leaves aisp:nodes. */
#include "daemon/node.h"

#include <dirent.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"

/* The idle time given to released entries: longer than any sensible reclaim time. */
#define RELEASE_IDLE_MS "315360000000"

static void node_stop(node *n);

size_t node_free_slots(const node *n)
{
	size_t slots = (size_t)n->cfg->slots;
	return n->busy >= slots ? 0 : slots - n->busy;
}

const sandbox_runtime *node_runtime(const node *n, const char *name)
{
	for (size_t i = 0; i < n->n_rts; i++)
		if (!strcmp(sandbox_runtime_name(n->rts[i]), name))
			return n->rts[i];
	return NULL;
}

const sandbox_image *node_image(node *n, const char *name_or_digest, err **e)
{
	sandbox_image img = {0};
	if (sandbox_image_resolve(n->cfg->image_store, name_or_digest, &img, e) < 0)
		return NULL;
	for (size_t i = 0; i < n->n_imgs; i++)
		if (!strcmp(n->imgs[i].digest, img.digest)) {
			sandbox_image_deinit(&img);
			return &n->imgs[i];
		}
	/* Kept for the node's lifetime: pools and specs borrow these strings. The array only
	 * grows by appending, so earlier elements must not move: allocate in blocks. */
	if (n->n_imgs % 64 == 0 && n->n_imgs > 0) {
		log_error("more than %zu distinct images; not caching", n->n_imgs);
		sandbox_image_deinit(&img);
		err_set(e, 0, "too many distinct images on this node");
		return NULL;
	}
	if (!n->imgs)
		n->imgs = xcalloc(64, sizeof(*n->imgs));
	n->imgs[n->n_imgs] = img;
	return &n->imgs[n->n_imgs++];
}

void node_list_images(node *n)
{
	buf b = BUF_INIT;
	_cleanup_free_ char *dir = xasprintf("%s/names", n->cfg->image_store);
	DIR *d = opendir(dir);
	for (struct dirent *de = d ? readdir(d) : NULL; de; de = readdir(d)) {
		if (de->d_name[0] == '.')
			continue;
		if (b.len)
			buf_append_str(&b, ",");
		buf_append_str(&b, de->d_name);
	}
	if (d)
		closedir(d);
	free(n->images_csv);
	n->images_csv = xstrdup(buf_str(&b));
	buf_deinit(&b);
}

/* ---- releasing (shutdown) ---- */

void node_release_entry(node *n, const char *entry, const char *running_key, rconn_reply_fn cb,
                        void *arg)
{
	const char *kv[] = {PROTO_KEY_TASKS, running_key ? running_key : "",
	                    PROTO_GROUP,     n->cfg->node_id,
	                    entry,           RELEASE_IDLE_MS};
	script_call(n->rc, SCRIPT_RELEASE, cb, arg, 2, 4, kv, NULL);
}

static void maybe_finish_stop(node *n);

static void on_stop_reply(rconn *rc, redisReply *r, void *arg)
{
	node *n = arg;
	if (r && r->type == REDIS_REPLY_ERROR)
		log_warn("shutdown: redis: %s", r->str);
	n->outstanding--;
	maybe_finish_stop(n);
}

/* ---- entries ---- */

void node_handle_entry(node *n, const char *entry, const char *payload, size_t len, bool fresh)
{
	for (const task *t = n->tasks; t;) {
		if (!strcmp(task_entry(t), entry))
			return; /* already ours and in flight */
		t = task_next(t);
	}
	if (n->draining || n->stopping) {
		n->outstanding++;
		node_release_entry(n, entry, NULL, on_stop_reply, n);
		return;
	}
	task *t = task_new(n, entry, payload, len, fresh);
	task_start(t);
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
		const char *payload = NULL;
		size_t len = 0;
		for (size_t j = 0; j + 1 < f->elements; j += 2)
			if (f->element[j]->type == REDIS_REPLY_STRING &&
			    !strcmp(f->element[j]->str, "task") &&
			    f->element[j + 1]->type == REDIS_REPLY_STRING) {
				payload = f->element[j + 1]->str;
				len = f->element[j + 1]->len;
			}
		node_handle_entry(n, id, payload, len, fresh);
	}
	if (oldest)
		n->m.queue_lag_s = (double)(now_wall_ms() - oldest) / 1000.0;
}

static void on_read(rconn *rc, redisReply *r, void *arg)
{
	node *n = arg;
	bool was_pending = !n->pending_read;
	n->reading = false;
	if (!r)
		return; /* lost: on_ready starts again */
	if (r->type == REDIS_REPLY_ERROR) {
		log_error("XREADGROUP: %s", r->str);
		if (rconn_reply_is_error(r, "NOGROUP"))
			n->group_ok = false;
		return; /* the reclaim tick retries */
	}
	if (was_pending)
		n->pending_read = true;
	if (r->type == REDIS_REPLY_ARRAY)
		for (size_t i = 0; i < r->elements; i++) {
			const redisReply *s = r->element[i];
			if (s->type == REDIS_REPLY_ARRAY && s->elements == 2)
				handle_entries(n, s->element[1], !was_pending);
		}
	if (n->stopping)
		maybe_finish_stop(n);
	else
		node_read_more(n);
}

void node_read_more(node *n)
{
	if (!rconn_ready(n->rd) || !n->group_ok || n->reading || n->draining || n->stopping)
		return;
	size_t free_slots = node_free_slots(n);
	if (!free_slots)
		return;
	_cleanup_free_ char *count = xasprintf("%zu", free_slots);
	_cleanup_free_ char *block = xasprintf("%lld", (long long)n->cfg->block_ms);
	n->reading = true;
	if (!n->pending_read) {
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
	n->group_ok = true;
	node_read_more(n);
}

static void create_group(node *n)
{
	rconn_cmd(n->rd, on_group, n, "XGROUP", "CREATE", PROTO_KEY_TASKS, PROTO_GROUP, "0",
	          "MKSTREAM", NULL);
}

static void on_rd_ready(rconn *rc, void *arg)
{
	node *n = arg;
	n->pending_read = false;
	n->group_ok = false;
	create_group(n);
}

static void on_rd_lost(rconn *rc, void *arg)
{
	node *n = arg;
	n->group_ok = false;
}

/* ---- registry ---- */

static void heartbeat(node *n)
{
	const config *c = n->cfg;
	if (!rconn_ready(n->rc) || n->stopping)
		return;
	node_update_health(n);
	node_list_images(n); /* images built since the start are served: announce them */
	_cleanup_free_ char *key = xasprintf(PROTO_KEY_NODE_PREFIX "%s", c->node_id);
	_cleanup_free_ char *slots = xasprintf("%lld", (long long)c->slots);
	_cleanup_free_ char *busy = xasprintf("%zu", n->busy);
	_cleanup_free_ char *done = xasprintf("%llu", (unsigned long long)n->tasks_done);
	_cleanup_free_ char *started = xasprintf("%lld", (long long)n->started_ms);
	_cleanup_free_ char *now = xasprintf("%lld", (long long)now_wall_ms());
	_cleanup_free_ char *ttl = xasprintf("%lld", (long long)c->heartbeat_ms * 3);
	buf pools = BUF_INIT;
	pool_describe_json(n->pool, &pools);
	const char *key_id = n->key ? attest_key_id(n->key) : "";
	rconn_cmd(n->rc, NULL, NULL, "HSET", key, "version", AISP_VERSION, "pubkey",
	          n->pubkey_pem ? n->pubkey_pem : "", "key_id", key_id, "runtimes", n->runtimes_csv,
	          "images", n->images_csv, "slots", slots, "busy", busy, "tasks_done", done,
	          "pools", buf_str(&pools), "started_ms", started, "heartbeat_ms", now, "draining",
	          n->draining ? "1" : "0", NULL);
	rconn_cmd(n->rc, NULL, NULL, "PEXPIRE", key, ttl, NULL);
	rconn_cmd(n->rc, NULL, NULL, "SADD", PROTO_KEY_NODES, c->node_id, NULL);
	buf_deinit(&pools);
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	heartbeat(arg);
}

static void on_rc_ready(rconn *rc, void *arg)
{
	heartbeat(arg);
}

/* ---- leases and reclaiming ---- */

static void on_lease_tick(evutil_socket_t fd, short what, void *arg)
{
	node *n = arg;
	if (!rconn_ready(n->rc))
		return;
	const char *argv[5 + 1024];
	size_t lens[5 + 1024];
	int argc = 0;
	argv[argc++] = "XCLAIM";
	argv[argc++] = PROTO_KEY_TASKS;
	argv[argc++] = PROTO_GROUP;
	argv[argc++] = n->cfg->node_id;
	argv[argc++] = "0";
	int first = argc;
	_cleanup_free_ char *ttl = xasprintf("%lld", (long long)n->cfg->reclaim_ms);
	for (const task *t = n->tasks; t && argc < 1024; t = task_next(t)) {
		if (!task_leased(t))
			continue;
		argv[argc++] = task_entry(t);
		_cleanup_free_ char *rk = xasprintf("aisp:running:%s", task_id(t));
		rconn_cmd(n->rc, NULL, NULL, "PEXPIRE", rk, ttl, NULL);
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
	n->reclaiming = false;
	if (!r || n->stopping)
		return;
	if (r->type == REDIS_REPLY_ERROR) {
		log_warn("XAUTOCLAIM: %s", r->str);
		return;
	}
	if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
		size_t before = n->busy;
		handle_entries(n, r->element[1], false);
		if (n->busy > before)
			log_info("reclaimed %zu entries idle over %lld ms", n->busy - before,
			         (long long)n->cfg->reclaim_ms);
	}
}

static void on_reclaim_tick(evutil_socket_t fd, short what, void *arg)
{
	node *n = arg;
	if (n->draining || n->stopping)
		return;
	if (rconn_ready(n->rd) && !n->group_ok && !n->reading)
		create_group(n);
	size_t free_slots = node_free_slots(n);
	if (!rconn_ready(n->rc) || !free_slots || n->reclaiming)
		return;
	_cleanup_free_ char *idle = xasprintf("%lld", (long long)n->cfg->reclaim_ms);
	_cleanup_free_ char *count = xasprintf("%zu", free_slots);
	n->reclaiming = true;
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

void node_start(node *n)
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
	o.name = "read";
	o.on_ready = on_rd_ready;
	o.on_lost = on_rd_lost;
	n->rd = rconn_new(n->base, &o);
	n->ev_heartbeat = every(n, c->heartbeat_ms, on_heartbeat);
	int64_t lease_ms = c->reclaim_ms / 3;
	n->ev_lease = every(n, lease_ms > 100 ? lease_ms : 100, on_lease_tick);
	int64_t rec = c->reclaim_ms / 3;
	rec = rec < 500 ? 500 : rec > 5000 ? 5000 : rec;
	n->ev_reclaim = every(n, rec, on_reclaim_tick);
}

void node_task_gone(node *n)
{
	if (n->draining && !n->stopping && n->busy == 0) {
		log_info("drained: no task in flight");
		node_stop(n);
		return;
	}
	node_read_more(n);
}

static void on_pool_down(void *arg)
{
	node *n = arg;
	log_info("pool shut down; exiting");
	event_base_loopexit(n->base, NULL);
}

static void maybe_finish_stop(node *n)
{
	if (!n->stopping || n->outstanding > 0 || n->reading)
		return;
	if (n->outstanding < 0)
		return;
	n->outstanding = -1; /* once */
	log_info("shutting the pool down");
	pool_shutdown(n->pool, on_pool_down, n);
}

static void node_stop(node *n)
{
	if (n->stopping)
		return;
	n->stopping = true;
	if (n->ev_drain)
		event_del(n->ev_drain);
	while (n->tasks) {
		n->outstanding++;
		task_release(n->tasks, on_stop_reply, n);
	}
	_cleanup_free_ char *key = xasprintf(PROTO_KEY_NODE_PREFIX "%s", n->cfg->node_id);
	n->outstanding += 2;
	rconn_cmd(n->rc, on_stop_reply, n, "DEL", key, NULL);
	rconn_cmd(n->rc, on_stop_reply, n, "SREM", PROTO_KEY_NODES, n->cfg->node_id, NULL);
	log_info("deregistering %s", n->cfg->node_id);
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	node *n = arg;
	log_warn("drain time (%llds) is over: releasing %zu task(s) to other nodes",
	         (long long)n->cfg->drain_s, n->busy);
	node_stop(n);
}

void node_drain(node *n)
{
	if (n->draining) {
		log_warn("second signal: stopping now");
		node_stop(n);
		return;
	}
	n->draining = true;
	log_info("draining: %zu task(s) in flight, waiting up to %llds", n->busy,
	         (long long)n->cfg->drain_s);
	heartbeat(n);
	if (n->busy == 0) {
		node_stop(n);
		return;
	}
	n->ev_drain = evtimer_new(n->base, on_drain_timeout, n);
	struct timeval tv = {n->cfg->drain_s, 0};
	evtimer_add(n->ev_drain, &tv);
}

void node_update_health(node *n)
{
	pool_stats s;
	pool_get_stats(n->pool, &s);
	if (s.created != n->seen_created)
		n->creation_failing = false;
	else if (s.failed != n->seen_failed)
		n->creation_failing = true;
	n->seen_created = s.created;
	n->seen_failed = s.failed;
}
