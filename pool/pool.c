/* Warm pools (see pool.h). Each entry (one per spec) keeps a stack of READY sandboxes, a
 * queue of takers waiting on a miss, and counts; creations for waiting takers start at once,
 * refills only under the node's caps, outside the entry's failure backoff and, while tasks
 * run, below half the target (pool.h: "Refills yield to tasks too"). Sandboxes are
 * made and unmade only through p->ops (pool_sandbox_ops in sandbox-ops.c, or a test's fakes),
 * and every callback the pool gives them runs later from the loop; takers' callbacks run from
 * the pool, so they must not free it (pool_shutdown first). */
#include "pool/pool.h"

#include <event2/event.h>

#include "proto/json.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"

/* Used sandboxes wait for their teardown, and a pool holding half its target or more for its
 * refills, until no task has run for this long (pool.h). */
#define POOL_QUIET_MS 10
/* Teardowns started at a time while the node is quiet. */
#define POOL_MAX_TEARING 2
/* ... and never longer than this, tasks running or not; nor do refills. */
#define POOL_USED_MAX_MS 2000

/* A failing pool logs its creation failures at most this often (each log says how many it
 * did not log since). */
#define FAILURE_LOG_MS 10000

typedef struct waiter {
	pool_take_fn cb;
	void *arg;
	int64_t since_us;
	struct waiter *next;
} waiter;

typedef struct entry {
	pool *p;
	sandbox_spec spec; /* strings owned */
	size_t target;
	sandbox **warm; /* READY, newest last */
	size_t n_warm, cap_warm;
	size_t creating, busy;
	waiter *waiters, *waiters_tail;
	size_t n_waiters;
	int64_t backoff_ms, retry_at_ms;
	uint64_t created, failed, hits, misses, recycled, died;
	int64_t failure_logged_ms; /* when the last failure was logged (0: never) */
	uint64_t failures_unlogged;
} entry;

struct pool {
	struct event_base *base;
	const pool_ops *ops;
	void *ops_ctx;
	pool_opts o;
	entry **entries;
	size_t n_entries;
	size_t creating, destroying, live;
	int64_t busy_end_ms; /* when the last task running gave its sandbox back */
	struct used_sb {     /* given back, waiting for their teardown; oldest first */
		sandbox *sb;
		int64_t since_ms;
	} * used;
	size_t n_used, cap_used;
	size_t tearing;   /* used ones being torn down */
	bool room_wanted; /* the last refill wanted a sandbox that max_live refused */
	struct event *teardown_ev;
	struct event *refill_ev; /* a held refill's quiet moment, or its POOL_USED_MAX_MS */
	int64_t held_since_ms;   /* when refills began to wait for a quiet node (0: they do not) */
	double acquire_ms_sum;
	struct event *tick;
	bool shutting_down;
	void (*shutdown_cb)(void *);
	void *shutdown_arg;
	char *last_error; /* the reason of the last creation that failed; NULL after a success */
};

static void refill(pool *p);
static void teardown(pool *p);
static void on_teardown_timer(evutil_socket_t fd, short what, void *arg);
static int64_t quiet_in(const pool *p, int64_t now);

/* Arms one of the pool's timers ms from now (re-arming a pending one moves it). */
static void arm_in(struct event *ev, int64_t ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(ev, &tv);
}

static bool spec_equal(const sandbox_spec *a, const sandbox_spec *b)
{
	return a->rt == b->rt && a->lang == b->lang && !strcmp(a->rootfs, b->rootfs) &&
	       a->cpus_milli == b->cpus_milli && a->memory_bytes == b->memory_bytes &&
	       a->pids == b->pids && a->workspace_bytes == b->workspace_bytes;
}

static entry *find_entry(pool *p, const sandbox_spec *s)
{
	for (size_t i = 0; i < p->n_entries; i++)
		if (spec_equal(&p->entries[i]->spec, s))
			return p->entries[i];
	return NULL;
}

static entry *new_entry(pool *p, const sandbox_spec *s, size_t target)
{
	entry *en = xzalloc(sizeof(*en));
	en->p = p;
	en->spec = *s;
	en->spec.rootfs = xstrdup(s->rootfs);
	en->spec.image_digest = s->image_digest ? xstrdup(s->image_digest) : NULL;
	en->target = target;
	p->entries = xreallocarray(p->entries, p->n_entries + 1, sizeof(entry *));
	p->entries[p->n_entries++] = en;
	return en;
}

static void maybe_shutdown_done(pool *p)
{
	if (p->shutting_down && p->live == 0 && p->shutdown_cb) {
		void (*cb)(void *) = p->shutdown_cb;
		p->shutdown_cb = NULL;
		cb(p->shutdown_arg);
	}
}

static void on_gone(void *arg)
{
	pool *p = arg;
	p->destroying--;
	p->live--;
	if (p->shutting_down) {
		maybe_shutdown_done(p);
	} else {
		teardown(p);
		refill(p);
	}
}

static void destroy(pool *p, sandbox *sb)
{
	p->destroying++;
	p->ops->destroy(p->ops_ctx, sb, on_gone, p);
}

static void warm_remove(entry *en, sandbox *sb)
{
	for (size_t i = 0; i < en->n_warm; i++)
		if (en->warm[i] == sb) {
			memmove(&en->warm[i], &en->warm[i + 1], (en->n_warm - i - 1) * sizeof(sb));
			en->n_warm--;
			return;
		}
}

static void on_died(sandbox *sb, void *arg)
{
	entry *en = arg;
	warm_remove(en, sb);
	en->died++;
	destroy(en->p, sb);
	refill(en->p);
}

static void hand_out(entry *en, sandbox *sb, waiter *w)
{
	pool *p = en->p;
	en->busy++;
	p->acquire_ms_sum += (double)(now_mono_us() - w->since_us) / 1000.0;
	p->ops->watch(p->ops_ctx, sb, NULL, NULL);
	w->cb(sb, NULL, w->arg);
	free(w);
}

static waiter *pop_waiter(entry *en)
{
	waiter *w = en->waiters;
	if (w) {
		en->waiters = w->next;
		if (!en->waiters)
			en->waiters_tail = NULL;
		en->n_waiters--;
	}
	return w;
}

/* A creation failed (or could not start): the pool's refills wait, twice as long as after the
 * previous failure, up to the maximum. Waiting takers do not (see start_for_waiters). */
static void note_failure(entry *en, const err *e)
{
	pool *p = en->p;
	const char *why = e ? err_msg(e) : "the sandbox could not be created";
	free(p->last_error);
	p->last_error = xstrdup(why);
	int64_t now = now_mono_ms();
	if (!en->failure_logged_ms || now - en->failure_logged_ms >= FAILURE_LOG_MS) {
		char more[64] = "";
		if (en->failures_unlogged)
			snprintf(more, sizeof(more),
			         " (and %" PRIu64 " more since the last report)",
			         en->failures_unlogged);
		log_warn("pool %s/%s/%s: a sandbox creation failed: %s%s",
		         sandbox_runtime_name(en->spec.rt),
		         en->spec.image_digest ? en->spec.image_digest : "-",
		         proto_lang_name(en->spec.lang), why, more);
		en->failure_logged_ms = now;
		en->failures_unlogged = 0;
	} else {
		en->failures_unlogged++;
	}
	en->failed++;
	en->backoff_ms = en->backoff_ms ? en->backoff_ms * 2 : p->o.backoff_min_ms;
	if (en->backoff_ms > p->o.backoff_max_ms)
		en->backoff_ms = p->o.backoff_max_ms;
	en->retry_at_ms = now_mono_ms() + en->backoff_ms;
}

static void keep_warm(entry *en, sandbox *sb)
{
	pool *p = en->p;
	if (en->n_warm == en->cap_warm) {
		en->cap_warm = en->cap_warm ? 2 * en->cap_warm : 8;
		en->warm = xreallocarray(en->warm, en->cap_warm, sizeof(sandbox *));
	}
	en->warm[en->n_warm++] = sb;
	p->ops->watch(p->ops_ctx, sb, on_died, en);
}

static void on_ready(sandbox *sb, const err *e, void *arg)
{
	entry *en = arg;
	pool *p = en->p;
	en->creating--;
	p->creating--;
	if (e) {
		note_failure(en, e);
		destroy(p, sb);
		/* A waiting task hears about the failure (the node retries it later) rather than
		 * waiting through the backoff. */
		waiter *w = pop_waiter(en);
		if (w) {
			w->cb(NULL, e, w->arg);
			free(w);
		}
		refill(p);
		return;
	}
	en->created++;
	if (en->failure_logged_ms && en->backoff_ms)
		log_info("pool %s/%s/%s: sandboxes are created again",
		         sandbox_runtime_name(en->spec.rt),
		         en->spec.image_digest ? en->spec.image_digest : "-",
		         proto_lang_name(en->spec.lang));
	free(p->last_error);
	p->last_error = NULL;
	en->backoff_ms = 0; /* the runtime works again: so do the refills */
	en->retry_at_ms = 0;
	if (p->shutting_down) {
		destroy(p, sb);
		return;
	}
	waiter *w = pop_waiter(en);
	if (w)
		hand_out(en, sb, w);
	else
		keep_warm(en, sb);
	/* this creation's slot under the cap is free: the next refill need not wait for a tick */
	refill(p);
}

static int start_one(entry *en, bool urgent, err **e)
{
	pool *p = en->p;
	sandbox *sb;
	sandbox_spec spec = en->spec;
	spec.urgent = urgent;
	if (p->ops->create(p->ops_ctx, &spec, on_ready, en, &sb, e) < 0) {
		note_failure(en, e ? *e : NULL);
		return -1;
	}
	en->creating++;
	p->creating++;
	p->live++;
	return 0;
}

/* Takers waiting on a miss get their creations at once, whatever the caps and the backoff; a
 * creation already under way counts as theirs (it is handed to the first waiter when ready). */
static void start_for_waiters(entry *en)
{
	while (en->creating < en->n_waiters) {
		err *e = NULL;
		if (start_one(en, true, &e) < 0) {
			waiter *w = pop_waiter(en);
			w->cb(NULL, e, w->arg);
			free(w);
			err_free(e);
		}
	}
}

/* Below its target (and its waiters), and outside its failure backoff. */
static bool wants_one(const entry *en)
{
	return en->retry_at_ms <= now_mono_ms() &&
	       en->n_warm + en->creating < en->target + en->n_waiters;
}

/* Refills yield to tasks (pool.h): while one ran in the last POOL_QUIET_MS, a pool refills only
 * below half its target or with takers waiting. */
static bool below_half(const entry *en)
{
	return 2 * (en->n_warm + en->creating) < en->target;
}

static bool may_refill(const entry *en, bool quiet)
{
	return quiet || en->n_waiters > 0 || below_half(en);
}

/* Each pool aims at warm + creating = target + waiting takers; beyond the waiters' own
 * creations, under the node's caps, outside the pool's backoff and when refills may start. */
static void refill(pool *p)
{
	if (p->shutting_down)
		return;
	int64_t now = now_mono_ms(), quiet_ms = quiet_in(p, now);
	/* a refill waits for the quiet moment at most POOL_USED_MAX_MS (a chain's sandbox stays
	 * taken through its llm steps); once overdue, until the pools are full */
	bool overdue = p->held_since_ms && now - p->held_since_ms >= POOL_USED_MAX_MS;
	bool quiet = overdue || quiet_ms <= 0;
	bool wanted = false, held = false, short_of = false;
	for (size_t i = 0; i < p->n_entries; i++) {
		entry *en = p->entries[i];
		start_for_waiters(en);
		/* may_refill each time: a pool below half refills only up to half */
		while (wants_one(en) && may_refill(en, quiet) && p->creating < p->o.max_creating &&
		       p->live < p->o.max_live)
			if (start_one(en, false, NULL) < 0)
				break;
		if (!wants_one(en))
			continue;
		short_of = true;
		if (!may_refill(en, quiet))
			held = true;
		else if (p->live >= p->o.max_live)
			wanted = true;
	}
	p->room_wanted = wanted;
	if (wanted && p->n_used > 0)
		teardown(p); /* the room a used sandbox holds is wanted */
	if (!held) {
		if (!overdue || !short_of)
			p->held_since_ms = 0;
		return;
	}
	if (!p->held_since_ms)
		p->held_since_ms = now;
	/* again at the quiet moment (a task runs: the last one's release calls too), or when the
	 * wait is up */
	int64_t ms = p->held_since_ms + POOL_USED_MAX_MS - now;
	arm_in(p->refill_ev, quiet_ms < ms ? quiet_ms : ms);
}

static void on_refill_timer(evutil_socket_t fd, short what, void *arg)
{
	refill(arg);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	pool *p = arg;
	int64_t now = now_mono_ms();
	for (size_t i = 0; p->o.max_age_ms > 0 && i < p->n_entries; i++) {
		entry *en = p->entries[i];
		/* Recycle at most one per pool per tick, oldest first, so a pool never empties. */
		if (en->n_warm > 0 &&
		    now - p->ops->ready_at(p->ops_ctx, en->warm[0]) > p->o.max_age_ms) {
			sandbox *sb = en->warm[0];
			warm_remove(en, sb);
			en->recycled++;
			destroy(p, sb);
		}
	}
	teardown(p);
	refill(p);
}

int pool_new(pool **out, struct event_base *base, const pool_ops *ops, void *ops_ctx,
             const pool_opts *o, err **e)
{
	pool *p = xzalloc(sizeof(*p));
	p->base = base;
	p->ops = ops;
	p->ops_ctx = ops_ctx;
	p->o = *o;
	if (!p->o.max_live)
		p->o.max_live = 32;
	if (!p->o.max_creating)
		p->o.max_creating = 2;
	if (!p->o.backoff_min_ms)
		p->o.backoff_min_ms = 200;
	if (!p->o.backoff_max_ms)
		p->o.backoff_max_ms = 30000;
	if (p->o.tick_ms <= 0)
		p->o.tick_ms = 1000;
	p->teardown_ev = evtimer_new(base, on_teardown_timer, p);
	p->refill_ev = evtimer_new(base, on_refill_timer, p);
	p->tick = event_new(base, -1, EV_PERSIST, on_tick, p);
	struct timeval tv = {p->o.tick_ms / 1000, (p->o.tick_ms % 1000) * 1000};
	if (!p->tick || !p->teardown_ev || !p->refill_ev || event_add(p->tick, &tv) < 0) {
		pool_free(p);
		return err_set(e, 0, "pool: cannot add its timer");
	}
	*out = p;
	return 0;
}

pool *pool_free(pool *p)
{
	if (!p)
		return NULL;
	if (p->tick)
		event_free(p->tick);
	if (p->teardown_ev)
		event_free(p->teardown_ev);
	if (p->refill_ev)
		event_free(p->refill_ev);
	free(p->used);
	for (size_t i = 0; i < p->n_entries; i++) {
		entry *en = p->entries[i];
		waiter *w;
		while ((w = pop_waiter(en)))
			free(w);
		free(en->warm);
		free((char *)en->spec.rootfs);
		free((char *)en->spec.image_digest);
		free(en);
	}
	free(p->entries);
	free(p->last_error);
	free(p);
	return NULL;
}

int pool_add(pool *p, const sandbox_spec *spec, size_t warm_target, err **e)
{
	entry *en = find_entry(p, spec);
	if (en && en->target > 0)
		return err_set(e, 0, "pool %s/%s/%s is declared twice",
		               sandbox_runtime_name(spec->rt), spec->image_digest,
		               proto_lang_name(spec->lang));
	if (en)
		en->target = warm_target;
	else
		new_entry(p, spec, warm_target);
	refill(p);
	return 0;
}

void pool_take(pool *p, const sandbox_spec *spec, pool_take_fn cb, void *arg, bool *hit)
{
	entry *en = find_entry(p, spec);
	if (!en)
		en = new_entry(p, spec, 0); /* an on-demand pool: cold creations only */
	waiter *w = xzalloc(sizeof(*w));
	w->cb = cb;
	w->arg = arg;
	w->since_us = now_mono_us();
	if (en->n_warm > 0 && !p->shutting_down) {
		sandbox *sb = en->warm[--en->n_warm];
		en->hits++;
		if (hit)
			*hit = true;
		hand_out(en, sb, w);
		/* below half its target, a pool refills beside the tasks: after this iteration, so
		 * that the task's dispatch goes first (a real 1 ms timer, as in pool_release) */
		if (below_half(en))
			arm_in(p->refill_ev, 1);
		return;
	}
	en->misses++;
	if (hit)
		*hit = false;
	if (p->shutting_down) {
		err *e = NULL;
		err_set(&e, 0, "the pool is shutting down");
		cb(NULL, e, arg);
		err_free(e);
		free(w);
		return;
	}
	if (en->waiters_tail)
		en->waiters_tail->next = w;
	else
		en->waiters = w;
	en->waiters_tail = w;
	en->n_waiters++;
	refill(p);
}

/* ---- teardown (pool.h: "Teardown yields to tasks") ---- */

/* Sandboxes handed out and not given back: the tasks running. */
static size_t busy(const pool *p)
{
	size_t n = 0;
	for (size_t i = 0; i < p->n_entries; i++)
		n += p->entries[i]->busy;
	return n;
}

static void on_torn_down(void *arg)
{
	pool *p = arg;
	p->tearing--;
	on_gone(p); /* refills, and goes on tearing down while the node stays quiet */
}

/* Must a used sandbox go now, tasks running or not? Only as many as max_live needs: those
 * already being torn down count as gone. */
static bool teardown_forced(const pool *p, int64_t now)
{
	return p->shutting_down || p->n_used > p->o.max_used ||
	       (p->room_wanted && p->live - p->tearing >= p->o.max_live) ||
	       now - p->used[0].since_ms >= POOL_USED_MAX_MS;
}

/* ms until the node is quiet (no task has run for POOL_QUIET_MS): <= 0 when it is, INT64_MAX
 * while one runs. */
static int64_t quiet_in(const pool *p, int64_t now)
{
	return busy(p) ? INT64_MAX : p->busy_end_ms + POOL_QUIET_MS - now;
}

/* Starts the teardowns that may start now: every one that is forced; else, once no task has
 * run for POOL_QUIET_MS, up to POOL_MAX_TEARING at a time, oldest first. */
static void teardown(pool *p)
{
	int64_t now = now_mono_ms();
	int64_t quiet_ms = quiet_in(p, now);
	while (p->n_used > 0 &&
	       (teardown_forced(p, now) || (quiet_ms <= 0 && p->tearing < POOL_MAX_TEARING))) {
		sandbox *sb = p->used[0].sb;
		memmove(p->used, p->used + 1, --p->n_used * sizeof(*p->used));
		p->tearing++;
		p->ops->destroy(p->ops_ctx, sb, on_torn_down, p);
	}
	if (p->n_used == 0)
		return;
	/* the oldest one's age limit, or the quiet moment (a teardown ending also goes on) */
	int64_t ms = p->used[0].since_ms + POOL_USED_MAX_MS - now;
	if (quiet_ms > 0 && quiet_ms < ms)
		ms = quiet_ms;
	arm_in(p->teardown_ev, ms);
}

static void on_teardown_timer(evutil_socket_t fd, short what, void *arg)
{
	pool *p = arg;
	teardown(p);
	refill(p);
}

void pool_release(pool *p, sandbox *sb)
{
	entry *en = find_entry(p, p->ops->spec_of(p->ops_ctx, sb));
	if (en && en->busy > 0)
		en->busy--;
	if (!busy(p))
		p->busy_end_ms = now_mono_ms();
	if (p->ops->retire)
		p->ops->retire(p->ops_ctx, sb);
	/* Counted as destroying from now on. */
	p->destroying++;
	if (p->n_used == p->cap_used) {
		p->cap_used = p->cap_used ? 2 * p->cap_used : 8;
		p->used = xreallocarray(p->used, p->cap_used, sizeof(*p->used));
	}
	p->used[p->n_used++] = (struct used_sb){sb, now_mono_ms()};
	/* Teardown and refill spawn runtime processes: never in this iteration, so that what the
	 * caller sends with the task's result (the publish) goes out first. A real (1 ms) timer:
	 * a zero timeout would run in this very iteration. */
	arm_in(p->teardown_ev, 1);
}

void pool_shutdown(pool *p, void (*cb)(void *arg), void *arg)
{
	p->shutting_down = true;
	p->shutdown_cb = cb;
	p->shutdown_arg = arg;
	for (size_t i = 0; i < p->n_entries; i++) {
		entry *en = p->entries[i];
		waiter *w;
		while ((w = pop_waiter(en))) {
			err *e = NULL;
			err_set(&e, 0, "the pool is shutting down");
			w->cb(NULL, e, w->arg);
			err_free(e);
			free(w);
		}
		while (en->n_warm > 0)
			destroy(p, en->warm[--en->n_warm]);
	}
	teardown(p); /* forced: every used one goes */
	maybe_shutdown_done(p);
}

const char *pool_last_error(const pool *p)
{
	return p->last_error;
}

void pool_get_stats(const pool *p, pool_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->destroying = p->destroying;
	out->used = p->n_used;
	out->acquire_ms_sum = p->acquire_ms_sum;
	for (size_t i = 0; i < p->n_entries; i++) {
		const entry *en = p->entries[i];
		out->creating += en->creating;
		out->warm += en->n_warm;
		out->busy += en->busy;
		out->created += en->created;
		out->failed += en->failed;
		out->hits += en->hits;
		out->misses += en->misses;
		out->recycled += en->recycled;
		out->died += en->died;
	}
}

void pool_describe_json(const pool *p, buf *out)
{
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	proto_json_gen_open(g, false);
	for (size_t i = 0; i < p->n_entries; i++) {
		const entry *en = p->entries[i];
		proto_json_gen_open(g, true);
		proto_json_gen_kstr(g, "runtime", sandbox_runtime_name(en->spec.rt));
		proto_json_gen_kstr(g, "image", en->spec.image_digest ? en->spec.image_digest : "");
		proto_json_gen_kstr(g, "lang", proto_lang_name(en->spec.lang));
		proto_json_gen_kint(g, "target", en->target);
		proto_json_gen_kint(g, "warm", en->n_warm);
		proto_json_gen_kint(g, "creating", en->creating);
		proto_json_gen_kint(g, "busy", en->busy);
		proto_json_gen_kint(g, "hits", en->hits);
		proto_json_gen_kint(g, "misses", en->misses);
		proto_json_gen_kint(g, "failed", en->failed);
		proto_json_gen_kint(g, "backoff_ms", en->backoff_ms);
		proto_json_gen_close(g, true);
	}
	proto_json_gen_close(g, false);
	proto_json_gen_take_valid(g, out);
}

/* ---- Prometheus text (format 0.0.4) ----
 * The pool is the only emitter of the aisp_pool_* and aisp_sandbox_* families. Each family is
 * written once, with # HELP and # TYPE, all its samples together. */

static void family(buf *out, const char *name, const char *type, const char *help)
{
	buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: backslash, double quote and newline escaped. */
static void label_value(buf *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			buf_appendf(out, "\\%c", *s);
		else if (*s == '\n')
			buf_append_str(out, "\\n");
		else
			buf_append(out, s, 1);
	}
}

/* name{runtime="..",image="..",lang=".." and what follows (the caller closes the braces). */
static void pool_sample(buf *out, const char *name, const entry *en)
{
	buf_appendf(out, "%s{runtime=\"", name);
	label_value(out, sandbox_runtime_name(en->spec.rt));
	buf_append_str(out, "\",image=\"");
	label_value(out, en->spec.image_digest ? en->spec.image_digest : "");
	buf_appendf(out, "\",lang=\"%s\"", proto_lang_name(en->spec.lang));
}

static void per_pool_metrics(const pool *p, buf *out)
{
	family(out, "aisp_pool_sandboxes", "gauge",
	       "Sandboxes of each warm pool by state (creating, warm, busy).");
	for (size_t i = 0; i < p->n_entries; i++) {
		const entry *en = p->entries[i];
		const char *state[] = {"creating", "warm", "busy"};
		size_t n[] = {en->creating, en->n_warm, en->busy};
		for (size_t k = 0; k < 3; k++) {
			pool_sample(out, "aisp_pool_sandboxes", en);
			buf_appendf(out, ",state=\"%s\"} %zu\n", state[k], n[k]);
		}
	}
	family(out, "aisp_pool_target", "gauge", "Warm sandboxes each pool aims at.");
	for (size_t i = 0; i < p->n_entries; i++) {
		pool_sample(out, "aisp_pool_target", p->entries[i]);
		buf_appendf(out, "} %zu\n", p->entries[i]->target);
	}
}

void pool_metrics(const pool *p, buf *out)
{
	per_pool_metrics(p, out);
	pool_stats s;
	pool_get_stats(p, &s);
	family(out, "aisp_pool_sandboxes_total", "gauge", "Sandboxes of this node by state.");
	buf_appendf(out,
	            "aisp_pool_sandboxes_total{state=\"creating\"} %zu\n"
	            "aisp_pool_sandboxes_total{state=\"warm\"} %zu\n"
	            "aisp_pool_sandboxes_total{state=\"busy\"} %zu\n"
	            "aisp_pool_sandboxes_total{state=\"destroying\"} %zu\n",
	            s.creating, s.warm, s.busy, s.destroying);
	family(out, "aisp_pool_destroying", "gauge",
	       "Sandboxes being destroyed, with the used ones waiting for their teardown.");
	buf_appendf(out, "aisp_pool_destroying %zu\n", s.destroying);
	family(out, "aisp_pool_used", "gauge",
	       "Used sandboxes waiting for their teardown: until no task has run for 10 ms, or "
	       "while more than [pool] max_used wait.");
	buf_appendf(out, "aisp_pool_used %zu\n", s.used);
	family(out, "aisp_pool_takes_total", "counter",
	       "Sandboxes taken, by warm hit or cold miss.");
	buf_appendf(out,
	            "aisp_pool_takes_total{result=\"hit\"} %" PRIu64 "\n"
	            "aisp_pool_takes_total{result=\"miss\"} %" PRIu64 "\n",
	            s.hits, s.misses);
	const struct {
		const char *name, *help;
		uint64_t v;
	} counters[] = {
	    {"aisp_pool_hits_total", "Takes served by a warm sandbox.", s.hits},
	    {"aisp_pool_misses_total", "Takes that needed a creation.", s.misses},
	    {"aisp_pool_recycled_total", "Warm sandboxes replaced for their age.", s.recycled},
	    {"aisp_pool_died_total", "Warm sandboxes that died on their own.", s.died},
	    {"aisp_sandbox_creations_total", "Sandboxes created.", s.created},
	    {"aisp_sandbox_creation_failures_total", "Sandbox creations that failed.", s.failed},
	};
	for (size_t i = 0; i < sizeof(counters) / sizeof(*counters); i++) {
		family(out, counters[i].name, "counter", counters[i].help);
		buf_appendf(out, "%s %" PRIu64 "\n", counters[i].name, counters[i].v);
	}
}
