/* One task's path through the node (task.h) as a state machine: every callback (a Redis reply,
 * the pool handing out a sandbox, the sandbox reporting the run, a timer, the shutdown) becomes
 * an event, and task_step() looks up what it means in the current state in one table. A pair
 * the table leaves empty is an event that outlived its state (a reply arriving after the task
 * was released): it is ignored, and logged at debug level.
 *
 * Lifetime: a task is reference counted. Its life holds one reference until it reaches DONE;
 * every outstanding Redis request, pool_take and sandbox_run holds one more. Each state has at
 * most one outstanding request whose answer matters. */
#include "daemon/task.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "daemon/scripts.h"

typedef enum tstate {
	TS_NEW = 0, /* created; START parses, validates and admits it */
	TS_LEASE,   /* the LEASE script is in flight */
	TS_ACQUIRE, /* waiting for a sandbox from the pool */
	TS_RUN,     /* the program runs in the sandbox */
	TS_PUBLISH, /* the PUBLISH (or DEAD) script is in flight, or waiting to be resent */
	TS_FAULT,   /* a sandbox error: XPENDING reads the delivery count (or waits to resend) */
	TS_BACKOFF, /* waiting to retry after a sandbox error */
	TS_RECLAIM, /* XCLAIM (which counts the delivery) is in flight before the retry */
	TS_DONE,    /* finished: gone from the node; only late callbacks remain */
	TS__COUNT,
} tstate;

static const char *const state_names[TS__COUNT] = {
    "new", "lease", "acquire", "run", "publish", "fault", "backoff", "reclaim", "done",
};

typedef enum tevent {
	TE_START = 0, /* task_start() */
	TE_REPLY,     /* a Redis reply (reply NULL: the request failed) */
	TE_SANDBOX,   /* the pool's answer (sb NULL: creating one failed) */
	TE_RAN,       /* the sandbox reported the run */
	TE_TIMER,     /* the task's timer fired */
	TE_RELEASE,   /* shutdown: give the entry back */
	TE__COUNT,
} tevent;

static const char *const event_names[TE__COUNT] = {
    "start", "reply", "sandbox", "ran", "timer", "release",
};

typedef struct task_ev {
	tevent kind;
	redisReply *reply;         /* TE_REPLY */
	const char *redis_error;   /* TE_REPLY without a reply: why */
	sandbox *sb;               /* TE_SANDBOX, TE_RAN */
	const err *e;              /* TE_SANDBOX without a sandbox: why */
	const proto_output *out;   /* TE_RAN */
	const proto_usage *usage;  /* TE_RAN */
	rconn_reply_fn release_cb; /* TE_RELEASE */
	void *release_arg;
} task_ev;

struct task {
	const task_host *h;
	int refs;
	tstate state;
	bool fresh;
	bool leased;
	bool parsed;  /* t holds a parsed task */
	bool planned; /* plan holds a resolved plan */
	bool dead;    /* publishing an internal result after max_deliveries */

	char *entry;
	char *payload;
	size_t len;
	char *id;
	char *result_key, *running_key;
	proto_task t;
	task_plan plan;
	sandbox *sb;

	int64_t received_ms, started_ms, finished_ms;
	int64_t t_acquire_us, t_run_us, t_publish_us;
	int deliveries;
	int attempt; /* of the request being retried in this state */
	char *fault;
	proto_status status;
	char *result_json;
	size_t result_len;

	struct event *timer;
};

static void task_step(task *t, const task_ev *ev);

/* ---- lifetime ---- */

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

/* The end of the life: DONE, off the node, the life's reference dropped. */
static void finish(task *t)
{
	if (t->state == TS_DONE)
		return;
	t->state = TS_DONE;
	t->leased = false;
	if (t->timer)
		evtimer_del(t->timer);
	t->h->ops->gone(t->h->arg, t);
	drop(t);
}

static void enter(task *t, tstate s)
{
	if (t->state != s)
		t->attempt = 0;
	t->state = s;
}

/* ---- callbacks: every one becomes an event ---- */

static void on_reply(rconn *rc, redisReply *r, void *arg)
{
	task *t = arg;
	task_ev ev = {.kind = TE_REPLY, .reply = r, .redis_error = r ? NULL : rconn_last_error(rc)};
	task_step(t, &ev);
	drop(t);
}

static void on_sandbox(sandbox *sb, const err *e, void *arg)
{
	task *t = arg;
	task_ev ev = {.kind = TE_SANDBOX, .sb = sb, .e = e};
	task_step(t, &ev);
	drop(t);
}

static void on_ran(sandbox *sb, const proto_output *out, const proto_usage *usage, void *arg)
{
	task *t = arg;
	task_ev ev = {.kind = TE_RAN, .sb = sb, .out = out, .usage = usage};
	task_step(t, &ev);
	drop(t);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	task_ev ev = {.kind = TE_TIMER};
	task_step(arg, &ev);
}

static void after(task *t, int64_t ms)
{
	if (!t->timer)
		t->timer = evtimer_new(t->h->base, on_timer, t);
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(t->timer, &tv);
}

static const char *redis_why(const task_ev *ev)
{
	if (ev->reply && ev->reply->type == REDIS_REPLY_ERROR && ev->reply->str)
		return ev->reply->str;
	return ev->reply ? "unexpected reply" : ev->redis_error;
}

/* ---- results ---- */

/* Signs r (the node's op advances its chain). Errors are logged: an unsigned result is still
 * a result. */
static void sign(task *t, proto_result *r, char **envelope, char **exec_digest)
{
	_cleanup_err_ err *e = NULL;
	proto_env *env = NULL;
	size_t n_env = 0;
	if (t->planned)
		n_env = sandbox_environment(&t->plan.spec, &t->t, &t->plan.limits, &env);
	attest_claim c = {
	    .task = t->parsed ? &t->t : NULL,
	    .result = r,
	    .limits = t->planned ? &t->plan.limits : NULL,
	    .env = env,
	    .n_env = n_env,
	};
	if (t->h->ops->sign(t->h->arg, &c, envelope, exec_digest, &e) < 0)
		log_error("task %s: cannot sign the result: %s", t->id, err_msg(e));
	proto_env_list_free(env, n_env);
}

/* Serialises the result of this task around out (borrowed) into t->result_json. */
static void make_result(task *t, const proto_output *out, const proto_usage *usage)
{
	proto_result r;
	proto_result_init(&r);
	r.id = t->id;
	r.output = *out;
	if (usage)
		r.usage = *usage;
	r.node_id = (char *)t->h->node_id;
	r.runtime = t->planned ? (char *)sandbox_runtime_name(t->plan.rt) : NULL;
	r.image_digest = t->planned ? t->plan.img->digest : NULL;
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

/* A result the node made up (rejected, internal): only a status and a message. */
static void make_status_result(task *t, proto_status status, const char *msg)
{
	proto_output o;
	proto_output_init(&o);
	o.status = status;
	o.error = (char *)msg;
	make_result(t, &o, NULL);
	o.error = NULL;
	proto_output_deinit(&o);
}

/* ---- publishing ---- */

static void send_publish(task *t, const task_ev *ev)
{
	const task_host *h = t->h;
	script_publish_args a = {
	    .result_key = t->result_key,
	    .reply_stream = t->parsed ? t->t.reply_stream : NULL,
	    .running_key = t->running_key,
	    .result_json = t->result_json,
	    .result_len = t->result_len,
	    .ttl_ms = h->result_ttl_ms,
	    .entry = t->entry,
	    .id = t->id,
	    .status = proto_status_name(t->status),
	    .node_id = h->node_id,
	};
	if (t->dead) {
		a.dead_reason = t->fault ? t->fault : "sandbox error";
		a.dead_deliveries = t->deliveries;
		a.dead_task = t->payload;
		a.dead_task_len = t->len;
	}
	script_publish(h->rc, &a, on_reply, hold(t));
}

static void publish(task *t)
{
	enter(t, TS_PUBLISH);
	t->t_publish_us = now_mono_us();
	send_publish(t, NULL);
}

static void on_publish_reply(task *t, const task_ev *ev)
{
	metrics *m = t->h->m;
	if (!ev->reply || ev->reply->type != REDIS_REPLY_INTEGER) {
		int64_t ms = rconn_backoff_ms(t->attempt++, 200, 5000);
		log_warn("task %s: publish failed (%s), retrying in %lld ms", t->id, redis_why(ev),
		         (long long)ms);
		after(t, ms);
		return;
	}
	metrics_hist_observe(&m->publish, (double)(now_mono_us() - t->t_publish_us) / 1e6);
	if (ev->reply->integer == 1) {
		m->tasks[t->status]++;
		m->tasks_done++;
		log_info("task %s entry %s: published status=%s attempts=%d", t->id, t->entry,
		         proto_status_name(t->status), t->deliveries);
	} else {
		m->duplicates++;
		log_info("task %s entry %s: a result already existed; entry acknowledged", t->id,
		         t->entry);
	}
	finish(t);
}

static void reject(task *t, const char *msg)
{
	log_info("task %s entry %s: rejected: %s", t->id, t->entry, msg);
	make_status_result(t, PROTO_STATUS_REJECTED, msg);
	publish(t);
}

/* Acknowledges and deletes the entry without a result (the id has one, or runs elsewhere). */
static void ack_drop(task *t)
{
	rconn_cmd(t->h->rc, NULL, NULL, "XACK", PROTO_KEY_TASKS, PROTO_GROUP, t->entry, NULL);
	rconn_cmd(t->h->rc, NULL, NULL, "XDEL", PROTO_KEY_TASKS, t->entry, NULL);
	t->h->m->duplicates++;
	finish(t);
}

/* ---- sandbox errors: read the delivery count, retry with backoff, then dead-letter ---- */

static void send_pending(task *t, const task_ev *ev)
{
	rconn_cmd(t->h->rc, on_reply, hold(t), "XPENDING", PROTO_KEY_TASKS, PROTO_GROUP, t->entry,
	          t->entry, "1", NULL);
}

static void fault(task *t, const char *reason)
{
	enter(t, TS_FAULT);
	free(t->fault);
	t->fault = xstrdup(reason);
	send_pending(t, NULL);
}

static void dead_letter(task *t)
{
	_cleanup_free_ char *msg =
	    xasprintf("gave up after %d deliveries: %s", t->deliveries, t->fault);
	log_error("task %s entry %s: %s; dead-lettered", t->id, t->entry, msg);
	t->dead = true;
	t->h->m->dead++;
	make_status_result(t, PROTO_STATUS_INTERNAL, msg);
	publish(t);
}

static void on_pending_reply(task *t, const task_ev *ev)
{
	redisReply *r = ev->reply;
	if (!r || r->type != REDIS_REPLY_ARRAY) {
		after(t, rconn_backoff_ms(t->attempt++, 500, 5000));
		return;
	}
	if (r->elements == 0) {
		log_info("task %s: entry %s is no longer pending; dropping", t->id, t->entry);
		finish(t);
		return;
	}
	redisReply *p = r->element[0];
	if (p->type == REDIS_REPLY_ARRAY && p->elements >= 4 &&
	    p->element[3]->type == REDIS_REPLY_INTEGER)
		t->deliveries = (int)p->element[3]->integer;
	if (t->deliveries >= t->h->max_deliveries) {
		dead_letter(t);
		return;
	}
	int64_t ms = rconn_backoff_ms(t->deliveries - 1, 500, 30000);
	log_warn("task %s entry %s: sandbox error (%s); retry %d in %lld ms", t->id, t->entry,
	         t->fault, t->deliveries, (long long)ms);
	t->h->m->retries++;
	enter(t, TS_BACKOFF);
	after(t, ms);
}

static void acquire(task *t);

/* Without JUSTID, XCLAIM increments the delivery count: the retry is counted. */
static void send_reclaim(task *t, const task_ev *ev)
{
	enter(t, TS_RECLAIM);
	rconn_cmd(t->h->rc, on_reply, hold(t), "XCLAIM", PROTO_KEY_TASKS, PROTO_GROUP,
	          t->h->node_id, "0", t->entry, NULL);
}

static void on_reclaim_reply(task *t, const task_ev *ev)
{
	if (ev->reply && ev->reply->type == REDIS_REPLY_ARRAY && ev->reply->elements == 0) {
		log_info("task %s: entry %s is no longer pending; dropping", t->id, t->entry);
		finish(t);
		return;
	}
	if (ev->reply)
		t->deliveries++;
	acquire(t);
}

/* ---- running ---- */

static void on_ran_event(task *t, const task_ev *ev)
{
	const task_host *h = t->h;
	t->sb = NULL;
	t->finished_ms = now_wall_ms();
	metrics_hist_observe(&h->m->execute, (double)(now_mono_us() - t->t_run_us) / 1e6);
	if (ev->out->status == PROTO_STATUS_SANDBOX_ERROR) {
		pool_release(h->pool, ev->sb);
		fault(t, ev->out->error ? ev->out->error : "sandbox error");
		return;
	}
	make_result(t, ev->out, ev->usage);
	/* The sandbox goes after the result: its teardown must not delay the publish. */
	pool_release(h->pool, ev->sb);
	publish(t);
}

static void run(task *t, sandbox *sb)
{
	_cleanup_err_ err *e = NULL;
	enter(t, TS_RUN);
	t->sb = sb;
	t->started_ms = now_wall_ms();
	t->t_run_us = now_mono_us();
	log_debug("task %s: running in %s", t->id, sandbox_id(sb));
	if (sandbox_run(sb, &t->t, &t->plan.limits, on_ran, hold(t), &e) < 0) {
		t->sb = NULL;
		drop(t);
		pool_release(t->h->pool, sb);
		fault(t, err_msg(e));
	}
}

static void on_sandbox_event(task *t, const task_ev *ev)
{
	if (!ev->sb) {
		fault(t, err_msg(ev->e));
		return;
	}
	metrics_hist_observe(&t->h->m->acquire, (double)(now_mono_us() - t->t_acquire_us) / 1e6);
	run(t, ev->sb);
}

static void acquire(task *t)
{
	bool hit = false;
	enter(t, TS_ACQUIRE);
	t->t_acquire_us = now_mono_us();
	pool_take(t->h->pool, &t->plan.spec, on_sandbox, hold(t), &hit);
	log_debug("task %s: sandbox %s", t->id, hit ? "warm" : "cold");
}

/* ---- admission ---- */

static void on_lease_reply(task *t, const task_ev *ev)
{
	redisReply *r = ev->reply;
	if (!r || r->type != REDIS_REPLY_INTEGER) {
		/* The entry stays pending: re-read after a reconnect, or reclaimed. */
		log_warn("task %s entry %s: cannot take the lease (%s); leaving it pending", t->id,
		         t->entry, redis_why(ev));
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
		 * be reclaimed again (see daemon/README.md, "A held lease"). */
		log_info("task %s entry %s: lease still held elsewhere; leaving it pending", t->id,
		         t->entry);
		finish(t);
	} else {
		t->leased = true;
		acquire(t);
	}
}

static void lease(task *t)
{
	const task_host *h = t->h;
	/* Another entry of the same id past admission on this node: the lease script would hand
	 * this node's own lease to it, since it cannot tell two local entries apart. */
	if (h->ops->id_active(h->arg, t, t->id)) {
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
	enter(t, TS_LEASE);
	script_lease_args a = {
	    .result_key = t->result_key,
	    .running_key = t->running_key,
	    .node_id = h->node_id,
	    .ttl_ms = h->lease_ttl_ms,
	};
	script_lease(h->rc, &a, on_reply, hold(t));
}

static void set_id(task *t, const char *id)
{
	free(t->id);
	free(t->result_key);
	free(t->running_key);
	t->id = xstrdup(id);
	t->result_key = xasprintf(PROTO_KEY_RESULT_PREFIX "%s", id);
	t->running_key = xasprintf(PROTO_KEY_RUNNING_PREFIX "%s", id);
}

/* Parses and validates; a bad task is rejected under the best id that can be read. */
static void admit(task *t, const task_ev *ev)
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
		set_id(t, id && proto_id_valid(id) ? id : entry_id);
		reject(t, err_msg(e));
		return;
	}
	t->parsed = true;
	set_id(t, t->t.id);
	_cleanup_free_ char *msg = NULL;
	if (t->h->ops->resolve(t->h->arg, &t->t, &t->plan, &msg) < 0) {
		reject(t, msg);
		return;
	}
	t->planned = true;
	lease(t);
}

/* ---- shutdown ---- */

static void release(task *t, const task_ev *ev)
{
	log_info("task %s entry %s: released for another node", t->id ? t->id : "?", t->entry);
	script_release_args a = {
	    .running_key = t->leased ? t->running_key : NULL,
	    .node_id = t->h->node_id,
	    .entry = t->entry,
	};
	script_release(t->h->rc, &a, ev->release_cb, ev->release_arg);
	finish(t);
}

/* Still running: the sandbox is destroyed now (pool_shutdown only owns idle sandboxes). A
 * destroyed sandbox never reports its run, so the reference that report held goes here. */
static void release_running(task *t, const task_ev *ev)
{
	sandbox *sb = t->sb;
	t->sb = NULL;
	pool_release(t->h->pool, sb);
	release(t, ev);
	drop(t);
}

/* A sandbox handed out after the task was released goes straight back. */
static void return_sandbox(task *t, const task_ev *ev)
{
	if (ev->sb)
		pool_release(t->h->pool, ev->sb);
}

/* ---- the table ---- */

typedef void (*handler)(task *t, const task_ev *ev);

/* What each event means in each state. An empty cell: the event outlived its state. */
static const handler table[TS__COUNT][TE__COUNT] = {
    [TS_NEW] = {[TE_START] = admit, [TE_RELEASE] = release},
    [TS_LEASE] = {[TE_REPLY] = on_lease_reply, [TE_RELEASE] = release},
    [TS_ACQUIRE] = {[TE_SANDBOX] = on_sandbox_event, [TE_RELEASE] = release},
    [TS_RUN] = {[TE_RAN] = on_ran_event, [TE_RELEASE] = release_running},
    [TS_PUBLISH] =
        {[TE_REPLY] = on_publish_reply, [TE_TIMER] = send_publish, [TE_RELEASE] = release},
    [TS_FAULT] = {[TE_REPLY] = on_pending_reply, [TE_TIMER] = send_pending, [TE_RELEASE] = release},
    [TS_BACKOFF] = {[TE_TIMER] = send_reclaim, [TE_RELEASE] = release},
    [TS_RECLAIM] = {[TE_REPLY] = on_reclaim_reply, [TE_RELEASE] = release},
    [TS_DONE] = {[TE_SANDBOX] = return_sandbox, [TE_RAN] = return_sandbox},
};

static void task_step(task *t, const task_ev *ev)
{
	handler h = table[t->state][ev->kind];
	if (!h) {
		log_debug("task %s: %s ignored in state %s", t->id ? t->id : "?",
		          event_names[ev->kind], state_names[t->state]);
		return;
	}
	h(t, ev);
}

/* ---- interface ---- */

task *task_new(const task_host *h, const char *entry, const char *payload, size_t len, bool fresh)
{
	task *t = xzalloc(sizeof(*t));
	t->h = h;
	t->refs = 1;
	t->state = TS_NEW;
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
	return t;
}

void task_start(task *t)
{
	task_ev ev = {.kind = TE_START};
	task_step(t, &ev);
}

void task_release(task *t, rconn_reply_fn cb, void *arg)
{
	task_ev ev = {.kind = TE_RELEASE, .release_cb = cb, .release_arg = arg};
	task_step(t, &ev);
}

const char *task_entry(const task *t)
{
	return t->entry;
}

const char *task_id(const task *t)
{
	return t->id;
}

const char *task_lease_key(const task *t)
{
	return t->leased && t->state != TS_DONE ? t->running_key : NULL;
}

bool task_admitted(const task *t)
{
	return t->parsed && t->state >= TS_LEASE && t->state != TS_DONE;
}

const char *task_state_name(const task *t)
{
	return state_names[t->state];
}
