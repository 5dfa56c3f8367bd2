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
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "daemon/scripts.h"
#include "daemon/task-internal.h"

static const char *const state_names[TS__COUNT] = {
    "new",         "trust", "handoff", "lease",   "blobs", "acquire", "run",     "step_llm",
    "step_script", "store", "save",    "publish", "fault", "backoff", "reclaim", "done",
};

static const char *const event_names[TE__COUNT] = {
    "start",  "reply", "sandbox", "ran",   "timer", "release",
    "cancel", "llm",   "durable", "trust", "saved",
};

static const char *const stage_names[TASK_STAGE__COUNT] = {
    "admitted", "leased", "acquired", "dispatched", "ran", "signed", "published",
};

/* ---- the log: task_log() (task-internal.h) ---- */

const char *task_fmt_num(char *s, long long v)
{
	snprintf(s, 24, "%lld", v);
	return s;
}

void task_stage_mark(task *t, task_stage s)
{
	t->stage_us[s] = now_mono_us();
}

/* stages_us=: each stage reached, "name:microseconds since the read", comma-separated. */
static char *stages_text(const task *t)
{
	buf b = BUF_INIT;
	for (int s = 0; s < TASK_STAGE__COUNT; s++)
		if (t->stage_us[s])
			buf_appendf(&b, "%s%s:%lld", b.len ? "," : "", stage_names[s],
			            (long long)(t->stage_us[s] - t->t_read_us));
	return buf_steal(&b, NULL);
}

void task_log(const task *t, int level, const char *event, ...)
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
	live_end(t->live);
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
	free(t->stop_why);
	attest_task_auth_deinit(&t->auth);
	free(t->result_json);
	proto_chain_run_free(t->run);
	proto_cost_free(t->cost);
	skill_free(t);
	proxy_session_free(t->px);
	proto_proxy_audit_free(t->proxy_audit);
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
	if (t->h->rv)
		revocation_unwatch(t->h->rv, t); /* the poller holds t until now */
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

static void on_durable(void *arg, bool confirmed)
{
	task *t = arg;
	task_ev ev = {.kind = TE_DURABLE};
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
static int sign(task *t, proto_result *r, const attest_sealed_out *sealed, bool with_task,
                char **envelope, char **exec_digest)
{
	_cleanup_err_ err *e = NULL;
	proto_env *env = NULL;
	size_t n_env = 0;
	if (task_sandboxed(t))
		n_env = sandbox_environment(&t->plan.spec, &t->t, &t->plan.limits, &env);
	attest_claim c = {
	    .task = t->parsed && with_task ? &t->t : NULL,
	    .result = r,
	    .limits = task_sandboxed(t) ? &t->plan.limits : NULL,
	    .env = env,
	    .n_env = n_env,
	    .sealed = sealed,
	};
	int rc = t->h->ops->sign(t->h->arg, &c, envelope, exec_digest, &e);
	if (rc < 0)
		task_log(t, LOG_LVL_ERROR, "unsigned", "error", err_msg(e), NULL);
	t->sequence = rc == 0 ? c.sequence : 0;
	proto_env_list_free(env, n_env);
	return rc == -2 ? -1 : 0;
}

static void keep_result(task *t, const proto_result *r)
{
	buf b = BUF_INIT;
	proto_result_to_json(r, &b);
	free(t->result_json);
	t->result_json = buf_steal(&b, &t->result_len);
	t->status = r->output.status;
}

/* A sealed task's result (attest/SEALED.md): the output goes to reply_to as one age file, the
 * public result keeps status, usage and the sealed statement. When reply_to cannot be used,
 * an ordinary rejection signed without the task (nothing of it leaks). */
static int make_sealed_result(task *t, proto_result *real)
{
	_cleanup_err_ err *e = NULL;
	proto_env *env = NULL;
	size_t n_env =
	    t->planned ? sandbox_environment(&t->plan.spec, &t->t, &t->plan.limits, &env) : 0;
	proto_result pub;
	attest_sealed_out so;
	int rc = attest_sealed_result(&t->t, real, env, n_env, &pub, &so, &e);
	proto_env_list_free(env, n_env);
	_cleanup_free_ char *envelope = NULL;
	if (rc < 0) {
		proto_result bad = *real;
		bad.cost = NULL; /* a chain's breakdown names its steps' models */
		proto_output_init(&bad.output);
		bad.output.status = PROTO_STATUS_REJECTED;
		bad.output.error = (char *)err_msg(e);
		if (sign(t, &bad, NULL, false, &envelope, NULL) < 0)
			return -1;
		bad.attestation = envelope;
		bad.execution_digest = NULL;
		keep_result(t, &bad);
		return 0;
	}
	rc = sign(t, &pub, &so, true, &envelope, NULL);
	OPENSSL_cleanse(&so, sizeof(so));
	if (rc == 0) {
		free(pub.attestation);
		pub.attestation = steal_pointer(&envelope);
		keep_result(t, &pub);
	}
	proto_result_deinit(&pub);
	return rc;
}

/* Serialises the signed result of this task around out (borrowed) into t->result_json, with
 * its cost: a chain's (t->cost), else what the run's usage costs (nothing without a run).
 * Returns 0, or -1 when the node cannot sign now (sign()). */
static int make_result(task *t, const proto_output *out, const proto_usage *usage)
{
	proto_result r;
	proto_result_init(&r);
	r.id = t->id;
	r.output = *out;
	if (usage)
		r.usage = *usage;
	_cleanup_(proto_cost_freep) proto_cost *own = t->cost ? NULL : proto_cost_new();
	if (own && usage && task_sandboxed(t))
		chain_cost_usage(t->h, own, PROTO_COST_TASK, -1, usage);
	r.cost = t->cost ? t->cost : own;
	r.proxy = t->proxy_audit;
	r.node_id = (char *)t->h->node_id;
	r.runtime = task_sandboxed(t) ? (char *)sandbox_runtime_name(t->plan.rt) : NULL;
	r.image_digest = task_sandboxed(t) ? t->plan.img->digest : NULL;
	r.received_ms = t->received_ms;
	r.started_ms = t->started_ms;
	r.finished_ms = t->finished_ms ? t->finished_ms : now_wall_ms();
	r.attempts = t->deliveries;
	/* A sealed task whose parts were never opened (another node's, or a bad ciphertext):
	 * nothing of it was read, the result is signed without it. One whose decrypted part was
	 * refused tells the buyer why, sealed. */
	bool sealed = t->parsed && t->t.sealed;
	if (sealed && (t->t.sealed->opened || t->t.sealed->private_error))
		return make_sealed_result(t, &r);
	_cleanup_free_ char *envelope = NULL, *exec = NULL;
	if (sign(t, &r, NULL, !sealed, &envelope, &exec) < 0)
		return -1;
	r.attestation = envelope;
	r.execution_digest = exec;
	keep_result(t, &r);
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
	task_log(t, LOG_LVL_WARN, "given_back", "reason",
	         "its result could not be signed (the chain state cannot be saved)", NULL);
	t->sequence = 0; /* discarded: the chain goes on from its saved state (node.c) */
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
	    /* A result this entry publishes without holding the id's lease (a rejection, a
	     * dead letter or a cancel before the run) must not win over an entry that runs it. */
	    .only_if_free = t->client_id && (t->status == PROTO_STATUS_REJECTED || !t->leased),
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

/* A signed result leaves the node once the chain state of its number is on disk. */
static void publish(task *t)
{
	if (t->sequence && !t->h->ops->saved(t->h->arg, t->sequence)) {
		enter(t, TS_SAVE);
		return;
	}
	enter(t, TS_PUBLISH);
	t->t_publish_us = now_mono_us();
	task_stage_mark(t, TASK_STAGE_SIGNED);
	send_publish(t, NULL);
}

static void on_saved(task *t, const task_ev *ev)
{
	if (ev->e)
		return give_back(t);
	publish(t);
}

/* Published (and, with [redis] wait_replicas, WAITed for: durability.h). */
static void published(task *t, const task_ev *ev)
{
	metrics *m = t->h->m;
	metrics_hist_observe(&m->publish, (double)(now_mono_us() - t->t_publish_us) / 1e6);
	m->tasks[t->status]++;
	m->tasks_done++;
	task_stage_mark(t, TASK_STAGE_PUBLISHED);
	_cleanup_free_ char *stages = stages_text(t);
	task_log(t, LOG_LVL_INFO, "published", "status", proto_status_name(t->status), "attempts",
	         NUM(t->deliveries), "sequence", NUM(t->sequence), "stages_us", stages, NULL);
	finish(t);
}

static void on_publish_reply(task *t, const task_ev *ev)
{
	metrics *m = t->h->m;
	/* NOREPLICAS: a master below min-replicas-to-write (just after a failover, deploy/REDIS.md)
	 * takes no write until a replica is back: Redis being away, retried, never counted as the
	 * script failing (READONLY and the like reach here as no reply: daemon/redis.c). */
	bool away = !ev->reply || rconn_reply_is_error(ev->reply, "NOREPLICAS");
	if (!away && ev->reply->type == REDIS_REPLY_ERROR && ++t->script_errors >= 3) {
		/* Not Redis being away: the script itself fails (a key of the wrong type, an
		 * ACL). Retrying would hold the slot forever: leave the entry pending (the pending
		 * scan looks at it again) and say so. */
		task_log(t, LOG_LVL_ERROR, "publish_refused", "error", ev->reply->str, "action",
		         "left pending", NULL);
		finish(t);
		return;
	}
	if (away || ev->reply->type != REDIS_REPLY_INTEGER) {
		int64_t ms = rconn_backoff_ms(t->attempt++, 200, 5000);
		task_log(t, LOG_LVL_WARN, "publish_failed", "error", redis_why(ev), "retry_in_ms",
		         NUM(ms), NULL);
		after(t, ms);
		return;
	}
	if (ev->reply->integer == 1 && durability_enabled(t->h->dur)) {
		_cleanup_free_ char *what =
		    xasprintf("%s sequence=%llu", t->id, (unsigned long long)t->sequence);
		durability_wait(t->h->dur, what, on_durable, hold(t)); /* then TE_DURABLE */
		return;
	}
	if (ev->reply->integer == 1) {
		published(t, ev);
		return;
	}
	metrics_hist_observe(&m->publish, (double)(now_mono_us() - t->t_publish_us) / 1e6);
	m->duplicates++;
	/* the signed result is not published: its sequence number stays unused in the chain */
	task_log(t, LOG_LVL_INFO, "duplicate", "reason",
	         ev->reply->integer == 2
	             ? "rejected, but another entry runs this id: its result will "
	               "reach this entry's reply stream"
	             : "a result already existed",
	         "sequence_discarded", NUM(t->sequence), NULL);
	finish(t);
}

/* An entry of an id that another entry on this node already runs: acknowledged without a
 * result of its own; its reply stream gets the first result. */
static void duplicate(task *t)
{
	task_log(t, LOG_LVL_INFO, "duplicate", "reason", "the same id is running on this node",
	         NULL);
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

/* A cancel or a revocation before the program started: the task's one result. */
static void publish_cancelled(task *t)
{
	_cleanup_free_ char *msg = t->stop == PROTO_STATUS_REVOKED
	                               ? xasprintf("revoked before it ran: %s", t->stop_why)
	                               : xstrdup("cancelled by request before it ran");
	if (make_status_result(t, t->stop ? t->stop : PROTO_STATUS_CANCELLED, msg) < 0)
		return give_back(t);
	publish(t);
}

static void reject(task *t, const char *msg)
{
	if (t->client_id && t->h->ops->id_active(t->h->arg, t, t->id)) {
		duplicate(t);
		return;
	}
	task_log(t, LOG_LVL_INFO, "rejected", "reason", msg, NULL);
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
	task_log(t, LOG_LVL_ERROR, "dead_lettered", "deliveries", NUM(t->deliveries), "error",
	         t->fault, NULL);
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
		task_log(t, LOG_LVL_INFO, "dropped", "reason", "the entry is no longer pending",
		         NULL);
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
	if (t->stop) {
		publish_cancelled(t);
		return;
	}
	int64_t ms = rconn_backoff_ms(t->deliveries - 1, 500, 30000);
	task_log(t, LOG_LVL_WARN, "sandbox_error", "error", t->fault, "retry", NUM(t->deliveries),
	         "retry_in_ms", NUM(ms), NULL);
	t->h->m->retries++;
	enter(t, TS_BACKOFF);
	after(t, ms);
}

static void acquire(task *t);
static void decide(task *t);
static void check_trust(task *t);

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
		task_log(t, LOG_LVL_INFO, "dropped", "reason", "the entry is no longer pending",
		         NULL);
		finish(t);
		return;
	}
	if (ev->reply)
		t->deliveries++;
	if (t->stop)
		publish_cancelled(t);
	else if (t->planned)
		acquire(t);
	else if (t->trusted)
		decide(t); /* the fault came before a plan: look again */
	else
		check_trust(t); /* the revocation store did not answer: ask again */
}

/* ---- running ---- */

/* Live output (daemon/live.h): a task that asks for it (live_output, with a reply stream)
 * shows what it prints as it runs, unless it is sealed (its output is the buyer's alone) or
 * its sandbox holds secrets (its output is redacted whole, after the run). */
static void on_output(sandbox *sb, sandbox_stream stream, const uint8_t *p, size_t n, void *arg)
{
	task *t = arg;
	if (t->live)
		live_output(t->live, stream == SANDBOX_STDERR, p, n);
}

static void start_live(task *t, sandbox *sb)
{
	if (!t->t.live_output || !t->t.reply_stream || t->t.sealed || skill_has_secrets(t))
		return;
	t->live = live_new(t->h->base, t->h->rc, t->reply, t->id, t->h->result_ttl_ms);
	live_started(t->live, t->h->node_id, sandbox_runtime_name(t->plan.rt), sandbox_id(sb));
	sandbox_on_output(sb, on_output, t);
}

/* The run is over (or abandoned): what is pending goes out before the result. */
static void end_live(task *t, sandbox *sb)
{
	if (sb)
		sandbox_on_output(sb, NULL, NULL);
	live_end(steal_pointer(&t->live));
}

/* The credential proxy (daemon/proxy.h): a task that names services gets a session for its
 * run; each call is logged (never its query, body or credential). */
static void on_proxy_call(void *arg, const proto_proxy_call *c, const char *refused)
{
	task *t = arg;
	/* a sealed program's paths and refusals may quote its input: the buyer's result has them */
	if (refused)
		task_log(t, LOG_LVL_INFO, "proxy_refused", "error",
		         task_shown(t, refused, "(sealed)"), NULL);
	else
		task_log(t, LOG_LVL_INFO, "proxy_call", "service", c->service, "method", c->method,
		         "host", c->host, "path", task_shown(t, c->path, "(sealed)"), "status",
		         NUM(c->status), "call_ms", NUM(c->ms), NULL);
}

static void start_proxy(task *t, sandbox *sb)
{
	if (!t->t.n_services || !t->h->proxy)
		return;
	t->px = proxy_session_new(t->h->proxy, &t->t, on_proxy_call, t);
	proxy_session_attach(t->px, sb);
}

/* The run is over (sb still valid): the trail goes into the result. */
static void end_proxy(task *t)
{
	if (!t->px)
		return;
	proto_proxy_audit_free(t->proxy_audit);
	t->proxy_audit = proxy_session_end(t->px);
	t->px = proxy_session_free(t->px);
}

static void on_ran_event(task *t, const task_ev *ev)
{
	const task_host *h = t->h;
	task_stage_mark(t, TASK_STAGE_RAN);
	t->sb = NULL;
	end_live(t, ev->sb);
	end_proxy(t);
	t->finished_ms = now_wall_ms();
	metrics_hist_observe(&h->m->execute, (double)(now_mono_us() - t->t_run_us) / 1e6);
	if (ev->out->status == PROTO_STATUS_SANDBOX_ERROR) {
		pool_release(h->pool, ev->sb);
		/* The agent's setup errors quote the task's input (a file's path): for a sealed
		 * task that is plaintext, and a fault reaches the log, aisp:dead and the public
		 * result. */
		fault(t, task_shown(t, ev->out->error ? ev->out->error : "sandbox error",
		                    TASK_SEALED_SANDBOX_ERROR));
		return;
	}
	/* Secrets redacted from what leaves the node; output blobs stored before the result. */
	const proto_output *out = skill_finish(t, ev->out, ev->usage);
	if (out->n_out_blobs) {
		pool_release(h->pool, ev->sb);
		skill_store_blobs(t);
		return;
	}
	int rc = make_result(t, out, ev->usage);
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
	task_log(t, LOG_LVL_INFO, "started", "warm", t->warm ? "yes" : "no", NULL);
	start_live(t, sb);
	skill_attach(t, sb);
	start_proxy(t, sb);
	if (sandbox_run(sb, &t->t, &t->plan.limits, on_ran, hold(t), &e) < 0) {
		end_live(t, sb);
		end_proxy(t);
		t->sb = NULL;
		drop(t);
		pool_release(t->h->pool, sb);
		fault(t, err_msg(e));
		return;
	}
	task_stage_mark(t, TASK_STAGE_DISPATCHED);
}

static void on_sandbox_event(task *t, const task_ev *ev)
{
	if (ev->sb && t->stop) {
		pool_release(t->h->pool, ev->sb);
		publish_cancelled(t);
		return;
	}
	if (!ev->sb) {
		fault(t, err_msg(ev->e));
		return;
	}
	metrics_hist_observe(&t->h->m->acquire, (double)(now_mono_us() - t->t_acquire_us) / 1e6);
	task_stage_mark(t, TASK_STAGE_ACQUIRED);
	if (t->t.n_steps)
		chain_start(t, ev->sb);
	else
		run(t, ev->sb);
}

static void acquire(task *t)
{
	if (!task_sandboxed(t)) { /* a chain of llm steps only: no sandbox */
		chain_start(t, NULL);
		return;
	}
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
		task_log(t, LOG_LVL_WARN, "pending", "reason", "cannot take the lease", "error",
		         redis_why(ev), NULL);
		finish(t);
	} else if (code == 0) {
		task_log(t, LOG_LVL_INFO, "duplicate", "reason", "it already has a result", NULL);
		t->h->m->duplicates++;
		finish(t);
	} else if (code == 2) {
		task_log(t, LOG_LVL_INFO, "duplicate", "reason",
		         "the same id is running on another node", NULL);
		t->h->m->duplicates++;
		finish(t);
	} else if (code == 4) {
		t->deliveries = (int)r->element[1]->integer;
		t->stop = PROTO_STATUS_CANCELLED;
		task_log(t, LOG_LVL_INFO, "cancelled", "reason", "cancelled before it ran", NULL);
		publish_cancelled(t);
	} else if (code == 3) {
		/* A reclaimed entry whose lease has not expired yet: leave it pending, it will
		 * be reclaimed again (see daemon/README.md, "A held lease"). */
		task_log(t, LOG_LVL_INFO, "pending", "reason", "its lease is still held elsewhere",
		         NULL);
		finish(t);
	} else {
		task_stage_mark(t, TASK_STAGE_LEASED);
		t->leased = true;
		t->deliveries = (int)r->element[1]->integer;
		if (t->stop)
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
	task_stage_mark(t, TASK_STAGE_ADMITTED);
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
	t->id =
	    t->client_id ? xstrdup(head->id) : xasprintf(PROTO_ID_RESERVED_PREFIX "%s", t->entry);
	t->reply = head && head->reply_stream ? xstrdup(head->reply_stream) : NULL;
	t->running_key = xasprintf(PROTO_KEY_RUNNING_PREFIX "%s", t->id);
}

static void lease(task *t);
static void handoff(task *t, char *why);
static void check_trust(task *t);
static int open_sealed(task *t);

/* A plan's rejection may quote the steps (node_llm_check names a step's model): for steps that
 * came sealed, the reason goes to the buyer's sealed result and the public one names the part. */
static void reject_plan(task *t, const char *msg)
{
	proto_sealed *sl = t->t.sealed;
	if (!sl || !sl->opened || !proto_task_part_sealed(&t->t, PROTO_SEALED_STEPS)) {
		reject(t, msg);
		return;
	}
	free(sl->private_error);
	sl->private_error = xasprintf("sealed part steps_age: %s", msg);
	reject(t, "sealed part steps_age: this node cannot run the decrypted steps (the reason is "
	          "in the result sealed to reply_to)");
}

/* What this node does with a parsed task: run it, hand it to a node that serves it, or count
 * a fault of its own (retried, then dead-lettered). */
static void decide(task *t)
{
	char *msg = NULL;
	if (skill_prepare(t, &msg) < 0) { /* before resolve: a skill task's lang is its skill's */
		reject(t, msg);
		free(msg);
		return;
	}
	switch (t->h->ops->resolve(t->h->arg, &t->t, &t->plan, &msg)) {
	case TASK_SERVE:
		t->planned = true;
		if (t->t.n_blobs)
			skill_fetch_blobs(t); /* then lease() */
		else
			lease(t);
		break;
	case TASK_ELSEWHERE:
		handoff(t, msg);
		break;
	case TASK_NODE_FAULT:
		/* Another node may serve it now; only when none can is it this node's fault to
		 * retry (and dead-letter). */
		t->fault_if_none = true;
		handoff(t, msg);
		break;
	case TASK_REJECT:
		reject_plan(t, msg);
		free(msg);
		break;
	}
}

void task_blobs_done(task *t, const char *why)
{
	if (why)
		reject(t, why);
	else
		lease(t);
}

void task_blobs_pending(task *t)
{
	task_log(t, LOG_LVL_WARN, "pending", "reason", "cannot read its input blobs from Redis",
	         NULL);
	finish(t);
}

void task_stored(task *t, const char *why)
{
	if (why) {
		fault(t, why);
		return;
	}
	const proto_usage *u;
	const proto_output *out = skill_output(t, &u);
	if (make_result(t, out, u) < 0)
		return give_back(t);
	publish(t);
}

/* ---- unlike nodes: a task this node does not serve goes to one that does ---- */

static void on_handoff_reply(task *t, const task_ev *ev)
{
	redisReply *r = ev->reply;
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER) {
		/* The entry stays in this node's pending list: the next pending scan retries. */
		task_log(t, LOG_LVL_WARN, "pending", "reason", "cannot hand it off", "error",
		         redis_why(ev), NULL);
		finish(t);
		return;
	}
	long long code = r->element[0]->integer, hops = r->element[1]->integer;
	if (code == 2) {
		task_log(t, LOG_LVL_INFO, "handed_off", "to", r->element[2]->str, "hop", NUM(hops),
		         "reason", t->why_not_here, NULL);
		t->h->m->handoffs++;
		finish(t);
		return;
	}
	if (t->stop) { /* revoked or cancelled meanwhile: it stays here, and never runs */
		publish_cancelled(t);
		return;
	}
	if (code == 1 && t->fault_if_none) {
		fault(t, t->why_not_here);
		return;
	}
	_cleanup_free_ char *msg =
	    code == 1 ? xasprintf("%s; no live node offers it", t->why_not_here)
	              : xasprintf("%s; passed between nodes %lld times without finding one that "
	                          "serves it",
	                          t->why_not_here, hops);
	reject(t, msg);
}

/* True when some part of the task came as age ciphertext (opened here or not). */
static bool sealed_parts(const task *t)
{
	for (int p = 0; t->parsed && p < PROTO_SEALED__COUNT; p++)
		if (proto_task_part_sealed(&t->t, (proto_sealed_part)p))
			return true;
	return false;
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
	    .age_rule = t->sealed_elsewhere ? SCRIPT_AGE_OTHER
	                : sealed_parts(t)   ? SCRIPT_AGE_SAME
	                                    : SCRIPT_AGE_ANY,
	    .age_recipient = t->h->age_recipient,
	};
	script_handoff(t->h->rc, &a, on_reply, hold(t));
	buf_deinit(&lim);
}

/* ---- sealed parts and trust ---- */

/* Decrypts the sealed parts into memory (attest/SEALED.md). Returns 0, or -1 when the task
 * went elsewhere: sealed for an age identity this node does not hold, it is handed to a node
 * that holds another one (the seed's "hand it on"), else rejected; a bad ciphertext is
 * rejected. The messages never quote plaintext. */
static int open_sealed(task *t)
{
	_cleanup_err_ err *e = NULL;
	int r =
	    t->h->n_age_ids ? attest_sealed_open(&t->t, t->h->age_ids, t->h->n_age_ids, &e) : -2;
	if (r == 0)
		return 0;
	if (r == -2) {
		t->sealed_elsewhere = true;
		handoff(t, t->h->n_age_ids
		               ? xasprintf("%s (the task is sealed for another node's "
		                           "age identity)",
		                           err_msg(e))
		               : xstrdup("this node holds no age identity, so it opens no "
		                         "sealed task"));
		return -1;
	}
	reject(t, err_msg(e));
	return -1;
}

static void on_revocations(void *arg, const attest_revocations *rev, const char *error)
{
	task *t = arg;
	task_ev ev = {.kind = TE_TRUST, .rev = rev, .trust_error = error};
	task_step(t, &ev);
	drop(t);
}

/* The task may run: its parties are watched while it does. */
static void trusted(task *t)
{
	char *fields[ATTEST_PARTY__COUNT];
	attest_party party[ATTEST_PARTY__COUNT];
	size_t n = attest_task_auth_fields(&t->auth, fields, party);
	t->trusted = true;
	if (n && t->h->rv)
		revocation_watch(t->h->rv, t, fields, n);
	for (size_t i = 0; i < n; i++)
		free(fields[i]);
	decide(t);
}

/* Signature, passport, trust level and revocation (attest/TRUST.md, "The decision"). A task
 * that names none of them, on a node that asks for none, skips the round trip. */
static void check_trust(task *t)
{
	attest_task_auth_deinit(&t->auth); /* a second look after the store did not answer */
	attest_task_auth_init(&t->auth, &t->t);
	if (!t->t.auth && t->h->trust->min_level == PROTO_TRUST_NONE) {
		trusted(t);
		return;
	}
	enter(t, TS_TRUST);
	revocation_check(t->h->rv, &t->auth, on_revocations, hold(t));
}

static void on_trust_event(task *t, const task_ev *ev)
{
	if (!ev->rev) {
		fault(t, ev->trust_error ? ev->trust_error : "the revocation store did not answer");
		return;
	}
	const proto_trust_req *reqs[1];
	size_t n = 0;
	if (t->t.auth)
		reqs[n++] = &t->t.auth->req;
	attest_trust_decision d;
	if (attest_trust_decide(t->h->trust, reqs, n, &t->auth, ev->rev, now_wall_ms() / 1000, &d) <
	    0) {
		reject(t, d.message);
		attest_trust_decision_deinit(&d);
		return;
	}
	attest_trust_decision_deinit(&d);
	trusted(t);
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
	int rc = proto_task_parse_entry(t->payload, t->len, &t->t, &head, &e);
	set_head(t, &head);
	proto_task_head_deinit(&head);
	t->parsed = rc == 0; /* t->t holds a task to free, also when the entry is refused */
	if (rc < 0 || t->bad_entry) {
		reject(t, rc < 0 ? err_msg(e) : t->bad_entry);
		return;
	}
	if (t->t.sealed && open_sealed(t) < 0)
		return;
	check_trust(t);
}

/* ---- shutdown ---- */

static void release(task *t, const task_ev *ev)
{
	task_log(t, LOG_LVL_INFO, "released", "reason", "released for another node", NULL);
	if ((t->state == TS_SAVE || t->state == TS_PUBLISH) && t->sequence)
		task_log(t, LOG_LVL_WARN, "sequence_lost", "sequence", NUM(t->sequence), "reason",
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
	end_live(t, sb);
	end_proxy(t);
	pool_release(t->h->pool, sb);
	release(t, ev);
	drop(t);
}

/* ---- cancel and revocation ---- */

/* In any state before the program starts: it never will (acquire and the backoff look). A
 * revocation wins over a cancel (it says more). */
static void note_cancel(task *t, const task_ev *ev)
{
	if (t->stop == PROTO_STATUS_REVOKED)
		return;
	task_log(t, LOG_LVL_INFO,
	         ev->stop_status == PROTO_STATUS_REVOKED ? "revoked" : "cancel_requested", "reason",
	         ev->stop_why, NULL);
	t->stop = ev->stop_status;
	free(t->stop_why);
	t->stop_why = xstrdup(ev->stop_why);
}

/* Running: the sandbox ends the run now; its report (status cancelled or revoked, what the
 * program printed so far) becomes the result. */
char *task_stop_reason(const task *t)
{
	return t->stop == PROTO_STATUS_REVOKED ? xasprintf("revoked while it ran: %s", t->stop_why)
	                                       : xstrdup("cancelled by request while it ran");
}

static void cancel_running(task *t, const task_ev *ev)
{
	note_cancel(t, ev);
	_cleanup_free_ char *why = task_stop_reason(t);
	sandbox_stop(t->sb, t->stop, why);
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
    [TS_TRUST] = {[TE_TRUST] = on_trust_event, [TE_RELEASE] = release, [TE_CANCEL] = note_cancel},
    [TS_HANDOFF] =
        {[TE_REPLY] = on_handoff_reply, [TE_RELEASE] = release, [TE_CANCEL] = note_cancel},
    [TS_LEASE] = {[TE_REPLY] = on_lease_reply, [TE_RELEASE] = release, [TE_CANCEL] = note_cancel},
    [TS_BLOBS] = {[TE_REPLY] = skill_on_blob, [TE_RELEASE] = release, [TE_CANCEL] = note_cancel},
    [TS_ACQUIRE] =
        {[TE_SANDBOX] = on_sandbox_event, [TE_RELEASE] = release, [TE_CANCEL] = note_cancel},
    [TS_RUN] =
        {[TE_RAN] = on_ran_event, [TE_RELEASE] = release_running, [TE_CANCEL] = cancel_running},
    [TS_STEP_LLM] =
        {[TE_LLM] = chain_on_llm, [TE_RELEASE] = chain_release_llm, [TE_CANCEL] = chain_cancel_llm},
    [TS_STEP_SCRIPT] =
        {[TE_RAN] = chain_on_script, [TE_RELEASE] = release_running, [TE_CANCEL] = cancel_running},
    [TS_STORE] = {[TE_REPLY] = skill_on_stored, [TE_RELEASE] = release, [TE_CANCEL] = note_cancel},
    [TS_SAVE] = {[TE_SAVED] = on_saved, [TE_RELEASE] = release},
    [TS_PUBLISH] = {[TE_REPLY] = on_publish_reply,
                    [TE_TIMER] = send_publish,
                    [TE_DURABLE] = published,
                    [TE_RELEASE] = release},
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

void task_step(task *t, const task_ev *ev)
{
	handler h = table[t->state][ev->kind];
	if (!h) {
		task_log(t, LOG_LVL_DEBUG, "ignored", "what", event_names[ev->kind], "state",
		         state_names[t->state], NULL);
		return;
	}
	h(t, ev);
}

/* ---- for task-chain.c (task-internal.h) ---- */

task *task_hold(task *t)
{
	return hold(t);
}

void task_drop(task *t)
{
	drop(t);
}

void task_enter(task *t, tstate s)
{
	enter(t, s);
}

void task_on_ran(sandbox *sb, const proto_output *out, const proto_usage *usage, void *arg)
{
	on_ran(sb, out, usage, arg);
}

int task_make_result(task *t, const proto_output *out, const proto_usage *usage)
{
	return make_result(t, out, usage);
}

void task_publish(task *t)
{
	publish(t);
}

void task_give_back(task *t)
{
	give_back(t);
}

void task_fault(task *t, const char *reason)
{
	fault(t, reason);
}

const char *task_shown(const task *t, const char *s, const char *sealed)
{
	return t->t.sealed && t->t.sealed->opened ? sealed : s;
}

void task_release_entry(task *t, const task_ev *ev)
{
	release(t, ev);
}

void task_note_cancel(task *t, const task_ev *ev)
{
	note_cancel(t, ev);
}

bool task_sandboxed(const task *t)
{
	return t->planned && (!t->t.n_steps || proto_task_has_step(&t->t, PROTO_STEP_SCRIPT));
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
	t->t_read_us = now_mono_us();
	t->deliveries = 1;
	return t;
}

void task_cancel(task *t)
{
	task_ev ev = {
	    .kind = TE_CANCEL, .stop_status = PROTO_STATUS_CANCELLED, .stop_why = "cancel"};
	task_step(t, &ev);
}

void task_revoke(task *t, const char *why)
{
	task_ev ev = {.kind = TE_CANCEL, .stop_status = PROTO_STATUS_REVOKED, .stop_why = why};
	task_step(t, &ev);
}

void task_chain_saved(task *t, uint64_t sequence, const err *e)
{
	if (t->state != TS_SAVE || (!e && t->sequence > sequence))
		return;
	task_ev ev = {.kind = TE_SAVED, .e = e};
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
