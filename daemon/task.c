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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "daemon/scripts.h"

typedef enum tstate {
	TS_NEW = 0, /* created; START parses, validates and admits it */
	TS_HANDOFF, /* this node cannot serve it: the HANDOFF script is in flight */
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
    "new", "handoff", "lease", "acquire", "run", "publish", "fault", "backoff", "reclaim", "done",
};

typedef enum tevent {
	TE_START = 0, /* task_start() */
	TE_REPLY,     /* a Redis reply (reply NULL: the request failed) */
	TE_SANDBOX,   /* the pool's answer (sb NULL: creating one failed) */
	TE_RAN,       /* the sandbox reported the run */
	TE_TIMER,     /* the task's timer fired */
	TE_RELEASE,   /* shutdown: give the entry back */
	TE_CANCEL,    /* a client asked to cancel the task (aisp:cancel:<id>) */
	TE__COUNT,
} tevent;

static const char *const event_names[TE__COUNT] = {
    "start", "reply", "sandbox", "ran", "timer", "release", "cancel",
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
	bool cancel;  /* a client asked to cancel it: it never starts a program */

	char *entry;
	char *bad_entry;
	char *payload;
	size_t len;
	char *id;
	char *reply;       /* the reply stream, once it could be read (also of a bad task) */
	bool client_id;    /* id is the client's own, not entry-<entry> */
	char *running_key; /* aisp:running:<id> */
	proto_task t;
	task_plan plan;
	sandbox *sb;
	char *sandbox_name; /* the sandbox it ran in (for the log), once it had one */
	bool warm;          /* that sandbox came from the warm pool */

	int64_t received_ms, started_ms, finished_ms;
	int64_t t_acquire_us, t_run_us, t_publish_us;
	int deliveries;
	int attempt; /* of the request being retried in this state */
	char *fault;
	char *why_not_here; /* TS_HANDOFF: why this node does not serve it */
	proto_status status;
	uint64_t sequence; /* the signed result's number in the node's chain; 0: unsigned */
	char *result_json;
	size_t result_len;

	struct event *timer;
};

static void task_step(task *t, const task_ev *ev);

/* ---- the log: one key=value line per event (daemon/README.md, "Logs") ---- */

/* A number as a log value, in storage that lives as long as the full expression it is in. */
#define NUM(v) fmt_num((char[24]){0}, (long long)(v))

static const char *fmt_num(char *s, long long v)
{
	snprintf(s, 24, "%lld", v);
	return s;
}

/* Logs an event of t: task=, entry=, event=, then the key, value pairs (NULL-terminated; a
 * NULL value leaves its key out), then sandbox= and runtime= once known, and ms=, the time
 * since the node read the entry. Every value goes through log_kv(). */
static void __attribute__((sentinel)) tlog(const task *t, int level, const char *event, ...)
{
	if (level < log_get_level())
		return;
	buf b = BUF_INIT;
	log_kv(&b, "task", t->id ? t->id : "-");
	log_kv(&b, "entry", t->entry);
	log_kv(&b, "event", event);
	va_list ap;
	va_start(ap, event);
	for (const char *k; (k = va_arg(ap, const char *));)
		log_kv(&b, k, va_arg(ap, const char *));
	va_end(ap);
	log_kv(&b, "sandbox", t->sandbox_name);
	log_kv(&b, "runtime", t->planned ? sandbox_runtime_name(t->plan.rt) : NULL);
	log_kv(&b, "ms", NUM(now_wall_ms() - t->received_ms));
	log_msg(level, "%s", buf_str(&b) + 1);
	buf_deinit(&b);
}

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
	free(t->bad_entry);
	free(t->payload);
	free(t->id);
	free(t->reply);
	free(t->running_key);
	free(t->sandbox_name);
	if (t->parsed)
		proto_task_deinit(&t->t);
	free(t->fault);
	free(t->why_not_here);
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

/* Signs r (the node's op advances its chain). Returns 0, also when it could not be signed (an
 * unsigned result is still a result; the error is logged), or -1 when the node cannot sign now
 * (its chain state cannot be saved): then nothing may be published and the task gives its
 * entry back. */
static int sign(task *t, proto_result *r, char **envelope, char **exec_digest)
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
	int rc = t->h->ops->sign(t->h->arg, &c, envelope, exec_digest, &e);
	if (rc < 0)
		tlog(t, LOG_LVL_ERROR, "unsigned", "error", err_msg(e), NULL);
	t->sequence = rc == 0 ? c.sequence : 0;
	proto_env_list_free(env, n_env);
	return rc == -2 ? -1 : 0;
}

/* Serialises the signed result of this task around out (borrowed) into t->result_json.
 * Returns 0, or -1 when the node cannot sign now (sign()). */
static int make_result(task *t, const proto_output *out, const proto_usage *usage)
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
	if (sign(t, &r, &envelope, &exec) < 0)
		return -1;
	r.attestation = envelope;
	r.execution_digest = exec;
	buf b = BUF_INIT;
	proto_result_to_json(&r, &b);
	free(t->result_json);
	t->result_json = buf_steal(&b, &t->result_len);
	t->status = out->status;
	/* r borrowed everything: nothing to deinit. */
	return 0;
}

/* A result the node made up (rejected, internal): only a status and a message. Returns as
 * make_result(). */
static int make_status_result(task *t, proto_status status, const char *msg)
{
	proto_output o;
	proto_output_init(&o);
	o.status = status;
	o.error = (char *)msg;
	int rc = make_result(t, &o, NULL);
	o.error = NULL;
	proto_output_deinit(&o);
	return rc;
}

static void release(task *t, const task_ev *ev);

/* The node cannot sign now: the entry goes back to the stream unpublished, to run again once a
 * node can sign its result (ATTESTATION.md, "The chain state"). */
static void give_back(task *t)
{
	tlog(t, LOG_LVL_WARN, "given_back", "reason",
	     "its result could not be signed (the chain state cannot be saved)", NULL);
	task_ev ev = {.kind = TE_RELEASE};
	release(t, &ev);
}

/* ---- publishing ---- */

static void send_publish(task *t, const task_ev *ev)
{
	const task_host *h = t->h;
	script_publish_args a = {
	    .id = t->id,
	    .entry = t->entry,
	    .reply_stream = t->reply,
	    .result_json = t->result_json,
	    .result_len = t->result_len,
	    .ttl_ms = h->result_ttl_ms,
	    .status = proto_status_name(t->status),
	    .node_id = h->node_id,
	    /* A rejection under the client's id must not win over an entry that runs it. */
	    .only_if_free = t->status == PROTO_STATUS_REJECTED && t->client_id,
	    .sequence = t->sequence,
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
		tlog(t, LOG_LVL_WARN, "publish_failed", "error", redis_why(ev), "retry_in_ms",
		     NUM(ms), NULL);
		after(t, ms);
		return;
	}
	metrics_hist_observe(&m->publish, (double)(now_mono_us() - t->t_publish_us) / 1e6);
	if (ev->reply->integer == 1) {
		m->tasks[t->status]++;
		m->tasks_done++;
		tlog(t, LOG_LVL_INFO, "published", "status", proto_status_name(t->status),
		     "attempts", NUM(t->deliveries), NULL);
	} else if (ev->reply->integer == 2) {
		m->duplicates++;
		tlog(t, LOG_LVL_INFO, "duplicate", "reason",
		     "rejected, but another entry runs this id: its result will reach this entry's "
		     "reply stream",
		     NULL);
	} else {
		m->duplicates++;
		tlog(t, LOG_LVL_INFO, "duplicate", "reason", "a result already existed", NULL);
	}
	finish(t);
}

/* An entry of an id that another entry on this node already runs: acknowledged without a
 * result of its own; its reply stream gets the first result. */
static void duplicate(task *t)
{
	tlog(t, LOG_LVL_INFO, "duplicate", "reason", "the same id is running on this node", NULL);
	script_duplicate_args a = {
	    .id = t->id,
	    .entry = t->entry,
	    .reply_stream = t->reply,
	    .reply_ttl_ms = t->h->result_ttl_ms,
	};
	script_duplicate(t->h->rc, &a, NULL, NULL);
	t->h->m->duplicates++;
	finish(t);
}

static void publish_cancelled(task *t)
{
	if (make_status_result(t, PROTO_STATUS_CANCELLED, "cancelled by request before it ran") < 0)
		return give_back(t);
	publish(t);
}

static void reject(task *t, const char *msg)
{
	if (t->client_id && t->h->ops->id_active(t->h->arg, t, t->id)) {
		duplicate(t);
		return;
	}
	tlog(t, LOG_LVL_INFO, "rejected", "reason", msg, NULL);
	if (make_status_result(t, PROTO_STATUS_REJECTED, msg) < 0)
		return give_back(t);
	publish(t);
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
	tlog(t, LOG_LVL_ERROR, "dead_lettered", "deliveries", NUM(t->deliveries), "error", t->fault,
	     NULL);
	if (make_status_result(t, PROTO_STATUS_INTERNAL, msg) < 0)
		return give_back(t);
	t->dead = true;
	t->h->m->dead++;
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
		tlog(t, LOG_LVL_INFO, "dropped", "reason", "the entry is no longer pending", NULL);
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
	if (t->cancel) {
		publish_cancelled(t);
		return;
	}
	int64_t ms = rconn_backoff_ms(t->deliveries - 1, 500, 30000);
	tlog(t, LOG_LVL_WARN, "sandbox_error", "error", t->fault, "retry", NUM(t->deliveries),
	     "retry_in_ms", NUM(ms), NULL);
	t->h->m->retries++;
	enter(t, TS_BACKOFF);
	after(t, ms);
}

static void acquire(task *t);
static void decide(task *t);

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
		tlog(t, LOG_LVL_INFO, "dropped", "reason", "the entry is no longer pending", NULL);
		finish(t);
		return;
	}
	if (ev->reply)
		t->deliveries++;
	if (t->cancel)
		publish_cancelled(t);
	else if (t->planned)
		acquire(t);
	else
		decide(t); /* the fault came before a plan: look again */
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
	int rc = make_result(t, ev->out, ev->usage);
	/* The sandbox goes after the result: its teardown must not delay the publish. */
	pool_release(h->pool, ev->sb);
	if (rc < 0)
		return give_back(t);
	publish(t);
}

static void run(task *t, sandbox *sb)
{
	_cleanup_err_ err *e = NULL;
	enter(t, TS_RUN);
	t->sb = sb;
	t->started_ms = now_wall_ms();
	t->t_run_us = now_mono_us();
	free(t->sandbox_name);
	t->sandbox_name = xstrdup(sandbox_id(sb));
	tlog(t, LOG_LVL_INFO, "started", "warm", t->warm ? "yes" : "no", NULL);
	if (sandbox_run(sb, &t->t, &t->plan.limits, on_ran, hold(t), &e) < 0) {
		t->sb = NULL;
		drop(t);
		pool_release(t->h->pool, sb);
		fault(t, err_msg(e));
	}
}

static void on_sandbox_event(task *t, const task_ev *ev)
{
	if (ev->sb && t->cancel) {
		pool_release(t->h->pool, ev->sb);
		publish_cancelled(t);
		return;
	}
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
	free(t->sandbox_name); /* a retry's log lines name no sandbox until it has one */
	t->sandbox_name = NULL;
	t->t_acquire_us = now_mono_us();
	pool_take(t->h->pool, &t->plan.spec, on_sandbox, hold(t), &hit);
	t->warm = hit;
}

/* ---- admission ---- */

static void on_lease_reply(task *t, const task_ev *ev)
{
	redisReply *r = ev->reply;
	long long code = -1;
	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    r->element[0]->type == REDIS_REPLY_INTEGER &&
	    r->element[1]->type == REDIS_REPLY_INTEGER)
		code = r->element[0]->integer;
	if (code < 0) {
		/* The entry stays pending: re-read after a reconnect, or reclaimed. */
		tlog(t, LOG_LVL_WARN, "pending", "reason", "cannot take the lease", "error",
		     redis_why(ev), NULL);
		finish(t);
	} else if (code == 0) {
		tlog(t, LOG_LVL_INFO, "duplicate", "reason", "it already has a result", NULL);
		t->h->m->duplicates++;
		finish(t);
	} else if (code == 2) {
		tlog(t, LOG_LVL_INFO, "duplicate", "reason",
		     "the same id is running on another node", NULL);
		t->h->m->duplicates++;
		finish(t);
	} else if (code == 4) {
		t->deliveries = (int)r->element[1]->integer;
		tlog(t, LOG_LVL_INFO, "cancelled", "reason", "cancelled before it ran", NULL);
		publish_cancelled(t);
	} else if (code == 3) {
		/* A reclaimed entry whose lease has not expired yet: leave it pending, it will
		 * be reclaimed again (see daemon/README.md, "A held lease"). */
		tlog(t, LOG_LVL_INFO, "pending", "reason", "its lease is still held elsewhere",
		     NULL);
		finish(t);
	} else {
		t->leased = true;
		t->deliveries = (int)r->element[1]->integer;
		if (t->cancel)
			publish_cancelled(t);
		else
			acquire(t);
	}
}

static void lease(task *t)
{
	const task_host *h = t->h;
	/* Another entry of the same id past admission on this node: the lease script would hand
	 * this node's own lease to it, since it cannot tell two local entries apart. */
	if (h->ops->id_active(h->arg, t, t->id)) {
		if (t->fresh)
			duplicate(t);
		else
			finish(t);
		return;
	}
	enter(t, TS_LEASE);
	script_lease_args a = {
	    .id = t->id,
	    .entry = t->entry,
	    .reply_stream = t->reply,
	    .node_id = h->node_id,
	    .ttl_ms = h->lease_ttl_ms,
	    .reply_ttl_ms = h->result_ttl_ms,
	    .fresh = t->fresh,
	};
	script_lease(h->rc, &a, on_reply, hold(t));
}

/* Where the result goes: the client's id when it could be read, else entry-<entry>; and the
 * reply stream when it could be read. */
static void set_head(task *t, const proto_task_head *head)
{
	t->client_id = head && head->id;
	t->id = t->client_id ? xstrdup(head->id) : xasprintf("entry-%s", t->entry);
	t->reply = head && head->reply_stream ? xstrdup(head->reply_stream) : NULL;
	t->running_key = xasprintf(PROTO_KEY_RUNNING_PREFIX "%s", t->id);
}

static void lease(task *t);
static void handoff(task *t, char *why);

/* What this node does with a parsed task: run it, hand it to a node that serves it, or count
 * a fault of its own (retried, then dead-lettered). */
static void decide(task *t)
{
	char *msg = NULL;
	switch (t->h->ops->resolve(t->h->arg, &t->t, &t->plan, &msg)) {
	case TASK_SERVE:
		t->planned = true;
		lease(t);
		break;
	case TASK_ELSEWHERE:
		handoff(t, msg);
		break;
	case TASK_NODE_FAULT:
		fault(t, msg);
		free(msg);
		break;
	}
}

/* ---- unlike nodes: a task this node does not serve goes to one that does ---- */

static void on_handoff_reply(task *t, const task_ev *ev)
{
	redisReply *r = ev->reply;
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER) {
		/* The entry stays in this node's pending list: the next pending scan retries. */
		tlog(t, LOG_LVL_WARN, "pending", "reason", "cannot hand it off", "error",
		     redis_why(ev), NULL);
		finish(t);
		return;
	}
	long long code = r->element[0]->integer, hops = r->element[1]->integer;
	if (code == 2) {
		tlog(t, LOG_LVL_INFO, "handed_off", "to", r->element[2]->str, "hop", NUM(hops),
		     "reason", t->why_not_here, NULL);
		t->h->m->handoffs++;
		finish(t);
		return;
	}
	_cleanup_free_ char *msg =
	    code == 1 ? xasprintf("%s; no live node offers it", t->why_not_here)
	              : xasprintf("%s; passed between nodes %lld times without finding one that "
	                          "serves it",
	                          t->why_not_here, hops);
	reject(t, msg);
}

static void handoff(task *t, char *why)
{
	enter(t, TS_HANDOFF);
	t->why_not_here = why;
	buf lim = BUF_INIT;
	for (size_t i = 0; i < PROTO_LIMIT_COUNT; i++) {
		int64_t v = proto_limit_get(&t->t.limits, &proto_limit_fields[i]);
		if (v > 0)
			buf_appendf(&lim, "%s%s=%lld", lim.len ? "," : "",
			            proto_limit_fields[i].field, (long long)v);
	}
	script_handoff_args a = {
	    .entry = t->entry,
	    .node_id = t->h->node_id,
	    .runtime = t->t.runtime,
	    .image = t->t.image,
	    .limits = buf_str(&lim),
	    .max_hops = t->h->handoff_max_hops,
	    .ttl_ms = t->h->result_ttl_ms,
	};
	script_handoff(t->h->rc, &a, on_reply, hold(t));
	buf_deinit(&lim);
}

/* Parses and validates; a bad task is rejected under the best id that can be read. */
static void admit(task *t, const task_ev *ev)
{
	if (!t->payload) {
		set_head(t, NULL);
		reject(t, "the stream entry has no \"task\" field");
		return;
	}
	_cleanup_err_ err *e = NULL;
	proto_task_head head = {0};
	int rc = proto_task_parse(t->payload, t->len, &t->t, &head, &e);
	set_head(t, &head);
	proto_task_head_deinit(&head);
	if (rc < 0 || t->bad_entry) {
		reject(t, rc < 0 ? err_msg(e) : t->bad_entry);
		return;
	}
	t->parsed = true;
	decide(t);
}

/* ---- shutdown ---- */

static void release(task *t, const task_ev *ev)
{
	tlog(t, LOG_LVL_INFO, "released", "reason", "released for another node", NULL);
	if (t->state == TS_PUBLISH && t->sequence)
		tlog(t, LOG_LVL_WARN, "sequence_lost", "sequence", NUM(t->sequence), "reason",
		     "its signed result was never published: that number of the chain is lost",
		     NULL);
	script_release_args a = {
	    .id = t->leased ? t->id : NULL,
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

/* ---- cancel ---- */

/* In any state before the program starts: it never will (acquire and the backoff look). */
static void note_cancel(task *t, const task_ev *ev)
{
	if (!t->cancel)
		tlog(t, LOG_LVL_INFO, "cancel_requested", NULL);
	t->cancel = true;
}

/* Running: the sandbox ends the run now; its report (status cancelled, what the program
 * printed so far) becomes the result. */
static void cancel_running(task *t, const task_ev *ev)
{
	note_cancel(t, ev);
	sandbox_stop(t->sb, PROTO_STATUS_CANCELLED, "cancelled by request while it ran");
}

/* Waiting to retry after a sandbox error: the retry will not come. */
static void cancel_backoff(task *t, const task_ev *ev)
{
	note_cancel(t, ev);
	if (t->timer)
		evtimer_del(t->timer);
	publish_cancelled(t);
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
    [TS_HANDOFF] = {[TE_REPLY] = on_handoff_reply, [TE_RELEASE] = release},
    [TS_LEASE] = {[TE_REPLY] = on_lease_reply, [TE_RELEASE] = release, [TE_CANCEL] = note_cancel},
    [TS_ACQUIRE] =
        {[TE_SANDBOX] = on_sandbox_event, [TE_RELEASE] = release, [TE_CANCEL] = note_cancel},
    [TS_RUN] =
        {[TE_RAN] = on_ran_event, [TE_RELEASE] = release_running, [TE_CANCEL] = cancel_running},
    [TS_PUBLISH] =
        {[TE_REPLY] = on_publish_reply, [TE_TIMER] = send_publish, [TE_RELEASE] = release},
    [TS_FAULT] = {[TE_REPLY] = on_pending_reply,
                  [TE_TIMER] = send_pending,
                  [TE_RELEASE] = release,
                  [TE_CANCEL] = note_cancel},
    [TS_BACKOFF] =
        {[TE_TIMER] = send_reclaim, [TE_RELEASE] = release, [TE_CANCEL] = cancel_backoff},
    [TS_RECLAIM] =
        {[TE_REPLY] = on_reclaim_reply, [TE_RELEASE] = release, [TE_CANCEL] = note_cancel},
    [TS_DONE] = {[TE_SANDBOX] = return_sandbox, [TE_RAN] = return_sandbox},
};

static void task_step(task *t, const task_ev *ev)
{
	handler h = table[t->state][ev->kind];
	if (!h) {
		tlog(t, LOG_LVL_DEBUG, "ignored", "what", event_names[ev->kind], "state",
		     state_names[t->state], NULL);
		return;
	}
	h(t, ev);
}

/* ---- interface ---- */

task *task_new(const task_host *h, const char *entry, const char *payload, size_t len, bool fresh,
               const char *bad_entry)
{
	task *t = xzalloc(sizeof(*t));
	t->h = h;
	t->refs = 1;
	t->state = TS_NEW;
	t->fresh = fresh;
	t->entry = xstrdup(entry);
	t->bad_entry = bad_entry ? xstrdup(bad_entry) : NULL;
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

void task_cancel(task *t)
{
	task_ev ev = {.kind = TE_CANCEL};
	task_step(t, &ev);
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
