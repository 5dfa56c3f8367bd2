/* One task's path through the node: parse and validate (bad -> a rejected result), take the
 * run lease, get a sandbox from the pool, run, sign, publish; sandbox errors are retried with
 * backoff and dead-lettered after max_deliveries (PROTOCOL.md; node.h).
 *
 * Lifetime: a task is reference counted. The node's list holds one reference until the task
 * finishes; every outstanding Redis request, pool_take and sandbox_run holds one more, and its
 * callback only acts when the task has not finished in the meantime (shutdown). */
#include "daemon/node.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"

enum stage { ST_NEW, ST_LEASE, ST_ACQUIRE, ST_RUN, ST_PUBLISH, ST_FAULT, ST_BACKOFF };

struct task {
	node *n;
	task *next;
	int refs;
	bool finished;
	enum stage stage;
	bool fresh;
	bool leased;
	bool dead; /* publishing an internal result after max_deliveries */

	char *entry;
	char *payload;
	size_t len;
	char *id;
	char *result_key, *running_key;
	proto_task t;
	bool parsed;

	const sandbox_image *img; /* node-owned */
	const sandbox_runtime *rt;
	sandbox_spec spec;
	proto_limits limits;
	bool validated;
	sandbox *sb;

	int64_t received_ms, started_ms, finished_ms;
	int64_t t_acquire_us, t_run_us, t_publish_us;
	int deliveries;
	int attempt;
	char *fault;
	proto_status status;
	char *result_json;
	size_t result_len;

	struct event *timer;
	void (*timer_fn)(task *t);
};

static void publish(task *t);
static void acquire(task *t);
static void fault(task *t, const char *reason);

static task *hold(task *t)
{
	t->refs++;
	return t;
}

static void drop(task *t)
{
	if (--t->refs > 0)
		return;
	if (t->timer)
		event_free(t->timer);
	free(t->entry);
	free(t->payload);
	free(t->id);
	free(t->result_key);
	free(t->running_key);
	if (t->parsed)
		proto_task_deinit(&t->t);
	free(t->fault);
	free(t->result_json);
	free(t);
}

/* Takes the task off the node; the callbacks still outstanding see t->finished. */
static void finish(task *t)
{
	node *n = t->n;
	if (t->finished)
		return;
	t->finished = true;
	if (t->timer)
		evtimer_del(t->timer);
	for (task **p = &n->tasks; *p; p = &(*p)->next)
		if (*p == t) {
			*p = t->next;
			break;
		}
	n->busy--;
	drop(t);
	node_task_gone(n);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	task *t = arg;
	if (!t->finished && t->timer_fn)
		t->timer_fn(t);
}

static void after(task *t, int64_t ms, void (*fn)(task *t))
{
	if (!t->timer)
		t->timer = evtimer_new(t->n->base, on_timer, t);
	t->timer_fn = fn;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(t->timer, &tv);
}

task *task_new(node *n, const char *entry, const char *payload, size_t len, bool fresh)
{
	task *t = xzalloc(sizeof(*t));
	t->n = n;
	t->refs = 1;
	t->fresh = fresh;
	t->entry = xstrdup(entry);
	if (payload) {
		t->payload = xmalloc(len + 1);
		memcpy(t->payload, payload, len);
		t->payload[len] = '\0';
		t->len = len;
	}
	proto_task_init(&t->t);
	t->received_ms = now_wall_ms();
	t->deliveries = 1;
	t->next = n->tasks;
	n->tasks = t;
	n->busy++;
	return t;
}

const char *task_entry(const task *t)
{
	return t->entry;
}

task *task_next(const task *t)
{
	return t->next;
}

const char *task_id(const task *t)
{
	return t->id;
}

bool task_leased(const task *t)
{
	return t->leased && !t->finished;
}

static void set_id(task *t, const char *id)
{
	free(t->id);
	free(t->result_key);
	free(t->running_key);
	t->id = xstrdup(id);
	t->result_key = xasprintf(PROTO_KEY_RESULT_PREFIX "%s", id);
	t->running_key = xasprintf("aisp:running:%s", id);
}

/* ---- results ---- */

/* Signs r (when the node has a key) and advances the chain. Errors are logged: an unsigned
 * result is still a result. */
static void sign(task *t, proto_result *r, char **envelope, char **exec_digest)
{
	node *n = t->n;
	_cleanup_err_ err *e = NULL;
	proto_env *env = NULL;
	size_t n_env = 0;
	if (!n->key)
		return;
	if (t->validated)
		n_env = sandbox_environment(&t->spec, &t->t, &t->limits, &env);
	attest_claim c = {
	    .task = t->parsed ? &t->t : NULL,
	    .result = r,
	    .limits = t->validated ? &t->limits : NULL,
	    .env = env,
	    .n_env = n_env,
	    .previous = n->chain.previous,
	    .sequence = n->chain.sequence + 1,
	};
	_cleanup_free_ char *att = NULL;
	if (attest_sign(n->key, &c, envelope, exec_digest, &att, &e) < 0) {
		log_error("task %s: cannot sign the result: %s", t->id, err_msg(e));
	} else {
		attest_chain_advance(&n->chain, att, c.sequence);
		if (attest_chain_save(n->state_dirfd, "chain.json", &n->chain, &e) < 0)
			log_error("task %s: cannot save the chain state: %s", t->id, err_msg(e));
	}
	proto_env_list_free(env, n_env);
}

/* Serialises the result of this task around out (borrowed) into t->result_json. */
static void make_result(task *t, const proto_output *out, const proto_usage *usage)
{
	node *n = t->n;
	proto_result r;
	proto_result_init(&r);
	r.id = t->id;
	r.output = *out;
	if (usage)
		r.usage = *usage;
	r.node_id = n->cfg->node_id;
	r.runtime = t->rt ? (char *)sandbox_runtime_name(t->rt) : NULL;
	r.image_digest = t->img ? t->img->digest : NULL;
	r.received_ms = t->received_ms;
	r.started_ms = t->started_ms;
	r.finished_ms = t->finished_ms ? t->finished_ms : now_wall_ms();
	r.attempts = t->deliveries;
	_cleanup_free_ char *envelope = NULL, *exec = NULL;
	sign(t, &r, &envelope, &exec);
	r.attestation = envelope;
	r.execution_digest = exec;
	buf b = BUF_INIT;
	proto_result_to_json(&r, &b);
	free(t->result_json);
	t->result_json = buf_steal(&b, &t->result_len);
	t->status = out->status;
	/* r borrowed everything: nothing to deinit. */
}

static void reject(task *t, const char *msg)
{
	proto_output o;
	proto_output_init(&o);
	o.status = PROTO_STATUS_REJECTED;
	o.error = (char *)msg;
	log_info("task %s entry %s: rejected: %s", t->id, t->entry, msg);
	make_result(t, &o, NULL);
	o.error = NULL;
	proto_output_deinit(&o);
	publish(t);
}

/* Acknowledges and deletes the entry without a result (the id has one, or runs elsewhere). */
static void ack_drop(task *t)
{
	node *n = t->n;
	rconn_cmd(n->rc, NULL, NULL, "XACK", PROTO_KEY_TASKS, PROTO_GROUP, t->entry, NULL);
	rconn_cmd(n->rc, NULL, NULL, "XDEL", PROTO_KEY_TASKS, t->entry, NULL);
	n->m.duplicates++;
	finish(t);
}

/* ---- publishing ---- */

static void on_published(rconn *rc, redisReply *r, void *arg)
{
	task *t = arg;
	node *n = t->n;
	if (t->finished) {
		drop(t);
		return;
	}
	if (!r || r->type != REDIS_REPLY_INTEGER) {
		int64_t ms = rconn_backoff_ms(t->attempt++, 200, 5000);
		log_warn("task %s: publish failed (%s), retrying in %lld ms", t->id,
		         r ? (r->str ? r->str : "unexpected reply") : rconn_last_error(rc),
		         (long long)ms);
		after(t, ms, publish);
		drop(t);
		return;
	}
	metrics_hist_observe(&n->m.publish, (double)(now_mono_us() - t->t_publish_us) / 1e6);
	if (r->integer == 1) {
		n->m.tasks[t->status]++;
		n->tasks_done++;
		log_info("task %s entry %s: published status=%s attempts=%d", t->id, t->entry,
		         proto_status_name(t->status), t->deliveries);
	} else {
		n->m.duplicates++;
		log_info("task %s entry %s: a result already existed; entry acknowledged", t->id,
		         t->entry);
	}
	t->leased = false;
	finish(t);
	drop(t);
}

static void publish(task *t)
{
	node *n = t->n;
	if (t->stage != ST_PUBLISH) {
		t->stage = ST_PUBLISH;
		t->attempt = 0;
		t->t_publish_us = now_mono_us();
	}
	_cleanup_free_ char *ttl = xasprintf("%lld", (long long)n->cfg->result_ttl_s * 1000);
	_cleanup_free_ char *deliveries = xasprintf("%d", t->deliveries);
	const char *reply = t->parsed && t->t.reply_stream ? t->t.reply_stream : "";
	const char *kv[16] = {t->result_key,
	                      PROTO_KEY_RESULTS,
	                      PROTO_KEY_TASKS,
	                      reply,
	                      t->running_key,
	                      t->result_json,
	                      ttl,
	                      PROTO_GROUP,
	                      t->entry,
	                      t->id,
	                      proto_status_name(t->status),
	                      n->cfg->node_id};
	size_t lens[16];
	int nkeys = 5, nargs = 7;
	if (t->dead) {
		/* KEYS + aisp:dead; ARGV + reason, deliveries, task JSON */
		memmove(&kv[6], &kv[5], 7 * sizeof(kv[0]));
		kv[5] = PROTO_KEY_DEAD;
		kv[13] = t->fault ? t->fault : "sandbox error";
		kv[14] = deliveries;
		kv[15] = t->payload ? t->payload : "";
		nkeys = 6;
		nargs = 10;
	}
	for (int i = 0; i < nkeys + nargs; i++)
		lens[i] = (kv[i] == t->result_json) ? t->result_len
		          : (kv[i] == t->payload)   ? t->len
		                                    : strlen(kv[i]);
	script_call(n->rc, t->dead ? SCRIPT_DEAD : SCRIPT_PUBLISH, on_published, hold(t), nkeys,
	            nargs, kv, lens);
}

/* ---- running ---- */

static void on_done(sandbox *sb, const proto_output *out, const proto_usage *usage, void *arg)
{
	task *t = arg;
	node *n = t->n;
	t->sb = NULL;
	if (t->finished) {
		pool_release(n->pool, sb);
		drop(t);
		return;
	}
	t->finished_ms = now_wall_ms();
	metrics_hist_observe(&n->m.execute, (double)(now_mono_us() - t->t_run_us) / 1e6);
	if (out->status == PROTO_STATUS_SANDBOX_ERROR) {
		pool_release(n->pool, sb);
		fault(t, out->error ? out->error : "sandbox error");
		drop(t);
		return;
	}
	make_result(t, out, usage);
	pool_release(n->pool, sb);
	publish(t);
	drop(t);
}

static void run(task *t, sandbox *sb)
{
	node *n = t->n;
	_cleanup_err_ err *e = NULL;
	t->stage = ST_RUN;
	t->sb = sb;
	t->started_ms = now_wall_ms();
	t->t_run_us = now_mono_us();
	log_debug("task %s: running in %s", t->id, sandbox_id(sb));
	if (sandbox_run(sb, &t->t, &t->limits, on_done, hold(t), &e) < 0) {
		t->sb = NULL;
		drop(t);
		pool_release(n->pool, sb);
		fault(t, err_msg(e));
	}
}

static void on_sandbox(sandbox *sb, const err *e, void *arg)
{
	task *t = arg;
	node *n = t->n;
	if (t->finished) {
		if (sb)
			pool_release(n->pool, sb);
		drop(t);
		return;
	}
	if (!sb) {
		n->creation_failing = true;
		fault(t, err_msg(e));
		drop(t);
		return;
	}
	metrics_hist_observe(&n->m.acquire, (double)(now_mono_us() - t->t_acquire_us) / 1e6);
	run(t, sb);
	drop(t);
}

static void acquire(task *t)
{
	node *n = t->n;
	bool hit = false;
	t->stage = ST_ACQUIRE;
	t->t_acquire_us = now_mono_us();
	pool_take(n->pool, &t->spec, on_sandbox, hold(t), &hit);
	log_debug("task %s: sandbox %s", t->id, hit ? "warm" : "cold");
}

/* ---- sandbox errors: retry with backoff, then dead-letter ---- */

static void on_reclaimed(rconn *rc, redisReply *r, void *arg)
{
	task *t = arg;
	if (!t->finished) {
		if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 0) {
			log_info("task %s: entry %s is no longer pending; dropping", t->id,
			         t->entry);
			finish(t);
		} else {
			if (r)
				t->deliveries++;
			acquire(t);
		}
	}
	drop(t);
}

static void retry(task *t)
{
	node *n = t->n;
	/* Without JUSTID XCLAIM increments the delivery count: the retry is counted. */
	rconn_cmd(n->rc, on_reclaimed, hold(t), "XCLAIM", PROTO_KEY_TASKS, PROTO_GROUP,
	          n->cfg->node_id, "0", t->entry, NULL);
}

static void check_deliveries(task *t);

static void on_pending(rconn *rc, redisReply *r, void *arg)
{
	task *t = arg;
	node *n = t->n;
	if (t->finished) {
		drop(t);
		return;
	}
	if (!r || r->type != REDIS_REPLY_ARRAY) {
		after(t, rconn_backoff_ms(t->attempt++, 500, 5000), check_deliveries);
		drop(t);
		return;
	}
	if (r->elements == 0) {
		log_info("task %s: entry %s is no longer pending; dropping", t->id, t->entry);
		finish(t);
		drop(t);
		return;
	}
	redisReply *p = r->element[0];
	if (p->type == REDIS_REPLY_ARRAY && p->elements >= 4 &&
	    p->element[3]->type == REDIS_REPLY_INTEGER)
		t->deliveries = (int)p->element[3]->integer;
	if (t->deliveries >= n->cfg->max_deliveries) {
		_cleanup_free_ char *msg =
		    xasprintf("gave up after %d deliveries: %s", t->deliveries, t->fault);
		log_error("task %s entry %s: %s; dead-lettered", t->id, t->entry, msg);
		proto_output o;
		proto_output_init(&o);
		o.status = PROTO_STATUS_INTERNAL;
		o.error = msg;
		t->dead = true;
		n->m.dead++;
		make_result(t, &o, NULL);
		o.error = NULL;
		proto_output_deinit(&o);
		publish(t);
	} else {
		int64_t ms = rconn_backoff_ms(t->deliveries - 1, 500, 30000);
		log_warn("task %s entry %s: sandbox error (%s); retry %d in %lld ms", t->id,
		         t->entry, t->fault, t->deliveries, (long long)ms);
		n->m.retries++;
		t->stage = ST_BACKOFF;
		after(t, ms, retry);
	}
	drop(t);
}

static void check_deliveries(task *t)
{
	node *n = t->n;
	rconn_cmd(n->rc, on_pending, hold(t), "XPENDING", PROTO_KEY_TASKS, PROTO_GROUP, t->entry,
	          t->entry, "1", NULL);
}

static void fault(task *t, const char *reason)
{
	t->stage = ST_FAULT;
	t->attempt = 0;
	free(t->fault);
	t->fault = xstrdup(reason);
	check_deliveries(t);
}

/* ---- admission ---- */

static void on_lease(rconn *rc, redisReply *r, void *arg)
{
	task *t = arg;
	if (t->finished) {
		drop(t);
		return;
	}
	if (!r || r->type != REDIS_REPLY_INTEGER) {
		/* The entry stays pending: re-read after a reconnect, or reclaimed. */
		log_warn("task %s entry %s: cannot take the lease (%s); leaving it pending", t->id,
		         t->entry, r && r->str ? r->str : rconn_last_error(rc));
		finish(t);
	} else if (r->integer == 0) {
		log_info("task %s entry %s: already has a result; acknowledged", t->id, t->entry);
		ack_drop(t);
	} else if (r->integer == 2 && t->fresh) {
		log_info("task %s entry %s: the same id is running on another node; "
		         "acknowledged as a duplicate",
		         t->id, t->entry);
		ack_drop(t);
	} else if (r->integer == 2) {
		/* A reclaimed entry whose lease has not expired yet: leave it pending, it will
		 * be reclaimed again (see PROTOCOL.md, "Leases"). */
		log_info("task %s entry %s: lease still held elsewhere; leaving it pending", t->id,
		         t->entry);
		finish(t);
	} else {
		t->leased = true;
		acquire(t);
	}
	drop(t);
}

/* Another entry of the same id is already past admission on this node. (The lease script
 * would take this node's own lease for it: it cannot tell two local entries apart.) */
static bool running_here(const task *t)
{
	for (const task *o = t->n->tasks; o; o = o->next)
		if (o != t && o->parsed && o->stage >= ST_LEASE && !strcmp(o->id, t->id))
			return true;
	return false;
}

static void lease(task *t)
{
	node *n = t->n;
	if (running_here(t)) {
		if (t->fresh) {
			log_info("task %s entry %s: the same id is running on this node; "
			         "acknowledged as a duplicate",
			         t->id, t->entry);
			ack_drop(t);
		} else {
			finish(t);
		}
		return;
	}
	t->stage = ST_LEASE;
	_cleanup_free_ char *ttl = xasprintf("%lld", (long long)n->cfg->reclaim_ms);
	const char *kv[] = {t->result_key, t->running_key, n->cfg->node_id, ttl};
	script_call(n->rc, SCRIPT_LEASE, on_lease, hold(t), 2, 2, kv, NULL);
}

/* Image, runtime, limits. Returns 0, or -1 with a client-facing message in *msg. */
static int validate(task *t, char **msg)
{
	node *n = t->n;
	const config *c = n->cfg;
	const char *rname = t->t.runtime ? t->t.runtime : c->runtime_default;
	t->rt = node_runtime(n, rname);
	if (!t->rt) {
		_cleanup_free_ char *l = config_enabled_list(c, ", ");
		*msg =
		    xasprintf("runtime \"%s\" is not enabled on this node (enabled: %s)", rname, l);
		return -1;
	}
	const char *iname = t->t.image ? t->t.image : c->image_default;
	_cleanup_err_ err *e = NULL;
	t->img = node_image(n, iname, &e);
	if (!t->img) {
		log_debug("task %s: %s", t->id, err_msg(e));
		*msg = xasprintf("unknown image \"%s\"", iname);
		return -1;
	}
	t->limits = t->t.limits;
	if (proto_limits_resolve(&t->limits, &c->limits_default, &c->limits_max, &e) < 0) {
		*msg = xstrdup(err_msg(e));
		return -1;
	}
	memset(&t->spec, 0, sizeof(t->spec));
	t->spec.rt = t->rt;
	t->spec.rootfs = t->img->rootfs;
	t->spec.image_digest = t->img->digest;
	t->spec.lang = t->t.lang;
	sandbox_spec_set_limits(&t->spec, &t->limits);
	t->validated = true;
	return 0;
}

void task_start(task *t)
{
	_cleanup_free_ char *entry_id = xasprintf("entry-%s", t->entry);
	if (!t->payload) {
		set_id(t, entry_id);
		reject(t, "the stream entry has no \"task\" field");
		return;
	}
	_cleanup_err_ err *e = NULL;
	_cleanup_free_ char *id = NULL;
	if (proto_task_parse(t->payload, t->len, &t->t, &id, &e) < 0) {
		proto_task_deinit(&t->t);
		proto_task_init(&t->t);
		set_id(t, id && proto_id_valid(id) ? id : entry_id);
		reject(t, err_msg(e));
		return;
	}
	t->parsed = true;
	set_id(t, t->t.id);
	_cleanup_free_ char *msg = NULL;
	if (validate(t, &msg) < 0) {
		reject(t, msg);
		return;
	}
	lease(t);
}

/* ---- shutdown ---- */

void task_release(task *t, rconn_reply_fn cb, void *arg)
{
	node *n = t->n;
	log_info("task %s entry %s: released for another node", t->id ? t->id : "?", t->entry);
	node_release_entry(n, t->entry, t->leased ? t->running_key : NULL, cb, arg);
	if (t->sb) {
		/* Still running: destroy it now (pool_shutdown only owns idle sandboxes). A
		 * destroyed sandbox never calls on_done, so the reference that callback held is
		 * dropped here (after finish, which dropped the list's). */
		sandbox *sb = t->sb;
		t->sb = NULL;
		pool_release(n->pool, sb);
		finish(t);
		drop(t);
		return;
	}
	finish(t);
}
