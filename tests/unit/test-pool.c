/* The warm pool's logic on a real libevent loop, with fake sandbox operations (pool_ops) and no
 * runtime: refill to target, the live and creation caps, misses, bursts, ageing, failure
 * backoff, deaths, release, shutdown, stats, describe_json and the Prometheus text. Fake
 * creations and destructions complete when a test says so or, in auto mode, on a zero timer of
 * the loop; failures and deaths are injected. The real-runtime counterpart is
 * tests/integration/test-pool.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "common/buf.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "pool/pool.h"
#include "proto/proto.h"
#include "sandbox/sandbox.h"

/* ---- the fake sandboxes ---- */

#define FAKE_MAX 64

typedef enum fake_state {
	FK_CREATING = 0,
	FK_READY,
	FK_FAILED,
	FK_DEAD,
	FK_DESTROYING,
	FK_GONE,
} fake_state;

/* What the pool holds as a `sandbox *`: it never looks inside one, it only hands it back to
 * the fake operations below and to takers, which cast it back. */
typedef struct fake_sb {
	int id; /* creation order */
	fake_state state;
	sandbox_spec spec; /* as created; strings borrowed from the pool */
	bool fail;         /* in auto mode: end the creation in an error */
	sandbox_ready_fn ready;
	void *ready_arg;
	sandbox_died_fn died;
	void *died_arg;
	sandbox_gone_fn gone;
	void *gone_arg;
	int64_t ready_at;
	struct event *timer; /* auto completion */
} fake_sb;

typedef struct fake {
	fake_sb *sb[FAKE_MAX];
	int n;                      /* creations started */
	int urgent;                 /* of which for a waiting taker */
	int refused;                /* create calls that failed at once */
	int creating, max_creating; /* in flight now, and the most ever */
	int destroyed[FAKE_MAX];    /* ids in the order destroy was called */
	int n_destroyed;
	int n_gone;
	int destroying, max_destroying; /* destructions in flight now, and the most ever */
	int retired[FAKE_MAX];          /* ids in the order retire was called */
	int n_retired;
	int refuse;      /* the next N create calls fail at once */
	int fail;        /* in auto mode, the next N creations end in an error */
	bool auto_ready; /* creations complete on a zero timer */
	bool auto_gone;  /* destructions complete on a zero timer */
} fake;

static struct event_base *base;
static struct event *heartbeat;
static fake F;
static sandbox_runtime *rt, *rt_odd;
static sandbox_spec py, sh; /* two pools of one image on rt */
static char rt_dir[] = "/tmp/aisp-test-pool-XXXXXX";

static fake_sb *fk(sandbox *sb)
{
	return (fake_sb *)sb;
}

static void arm(fake_sb *s, void (*cb)(evutil_socket_t, short, void *))
{
	if (s->timer)
		event_free(s->timer);
	s->timer = evtimer_new(base, cb, s);
	struct timeval zero = {0, 0};
	assert_int_equal(evtimer_add(s->timer, &zero), 0);
}

/* Ends a creation: READY (ok) or FAILED with "fake: creation N failed". */
static void fake_finish(int id, bool ok)
{
	assert_true(id < F.n);
	fake_sb *s = F.sb[id];
	assert_int_equal(s->state, FK_CREATING);
	F.creating--;
	s->state = ok ? FK_READY : FK_FAILED;
	s->ready_at = now_mono_ms();
	err *e = NULL;
	if (!ok)
		err_set(&e, 0, "fake: creation %d failed", id);
	s->ready((sandbox *)s, e, s->ready_arg);
	err_free(e);
}

/* Ends a destruction. */
static void fake_gone(int id)
{
	assert_true(id < F.n);
	fake_sb *s = F.sb[id];
	assert_int_equal(s->state, FK_DESTROYING);
	s->state = FK_GONE;
	F.n_gone++;
	F.destroying--;
	s->gone(s->gone_arg);
}

/* The sandbox dies on its own; returns whether anyone was watching. */
static bool fake_kill(int id)
{
	fake_sb *s = F.sb[id];
	assert_int_equal(s->state, FK_READY);
	s->state = FK_DEAD;
	if (!s->died)
		return false;
	s->died((sandbox *)s, s->died_arg);
	return true;
}

static void on_auto_ready(evutil_socket_t fd, short what, void *arg)
{
	fake_sb *s = arg;
	fake_finish(s->id, !s->fail);
}

static void on_auto_gone(evutil_socket_t fd, short what, void *arg)
{
	fake_gone(((fake_sb *)arg)->id);
}

static int fk_create(void *ctx, const sandbox_spec *spec, sandbox_ready_fn ready, void *arg,
                     sandbox **out, err **e)
{
	fake *f = ctx;
	if (f->refuse > 0) {
		f->refuse--;
		f->refused++;
		return err_set(e, 0, "fake: refused");
	}
	assert_true(f->n < FAKE_MAX);
	fake_sb *s = xzalloc(sizeof(*s));
	*s = (fake_sb){.id = f->n, .spec = *spec, .ready = ready, .ready_arg = arg};
	if (f->fail > 0) {
		f->fail--;
		s->fail = true;
	}
	f->sb[f->n++] = s;
	f->urgent += spec->urgent;
	if (++f->creating > f->max_creating)
		f->max_creating = f->creating;
	if (f->auto_ready)
		arm(s, on_auto_ready);
	*out = (sandbox *)s;
	return 0;
}

static void fk_destroy(void *ctx, sandbox *sb, sandbox_gone_fn gone, void *arg)
{
	fake *f = ctx;
	fake_sb *s = fk(sb);
	/* the pool waits for a creation to end before it destroys the sandbox, and never twice */
	assert_true(s->state == FK_READY || s->state == FK_FAILED || s->state == FK_DEAD);
	s->state = FK_DESTROYING;
	s->gone = gone;
	s->gone_arg = arg;
	s->died = NULL;
	f->destroyed[f->n_destroyed++] = s->id;
	if (++f->destroying > f->max_destroying)
		f->max_destroying = f->destroying;
	if (f->auto_gone)
		arm(s, on_auto_gone);
}

static void fk_watch(void *ctx, sandbox *sb, sandbox_died_fn died, void *arg)
{
	fake_sb *s = fk(sb);
	assert_int_equal(s->state, FK_READY);
	s->died = died;
	s->died_arg = arg;
}

static int64_t fk_ready_at(void *ctx, const sandbox *sb)
{
	return ((const fake_sb *)sb)->ready_at;
}

static const sandbox_spec *fk_spec_of(void *ctx, const sandbox *sb)
{
	return &((const fake_sb *)sb)->spec;
}

static void fk_retire(void *ctx, sandbox *sb)
{
	fake *f = ctx;
	f->retired[f->n_retired++] = fk(sb)->id;
}

static const pool_ops fake_ops = {
    .create = fk_create,
    .destroy = fk_destroy,
    .watch = fk_watch,
    .ready_at = fk_ready_at,
    .spec_of = fk_spec_of,
    .retire = fk_retire,
};

/* ---- helpers ---- */

/* Runs the loop one iteration at a time until cond holds (the heartbeat keeps it from
 * blocking; the deadline only keeps a broken pool from hanging the suite). */
#define RUN_UNTIL(cond)                                                                            \
	do {                                                                                       \
		int64_t end_ = now_mono_ms() + 20000;                                              \
		while (!(cond) && now_mono_ms() < end_)                                            \
			event_base_loop(base, EVLOOP_ONCE);                                        \
		assert_true(cond);                                                                 \
	} while (0)

/* Runs the loop for a while, for checks that nothing more happens. */
static void spin(int ms)
{
	struct timeval tv = {0, ms * 1000};
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
}

static sandbox_spec spec_for(const sandbox_runtime *r, const char *digest, proto_lang lang)
{
	sandbox_spec s = {
	    .rt = r, .rootfs = "/images/x/rootfs", .image_digest = digest, .lang = lang};
	proto_limits l;
	proto_limits_default(&l);
	sandbox_spec_set_limits(&s, &l);
	return s;
}

static pool *new_pool(pool_opts o)
{
	if (!o.tick_ms)
		o.tick_ms = 3600 * 1000; /* no tick unless a test asks for one */
	pool *p;
	err *e = NULL;
	assert_int_equal(pool_new(&p, base, &fake_ops, &F, &o, &e), 0);
	return p;
}

static void add(pool *p, const sandbox_spec *s, size_t target)
{
	err *e = NULL;
	assert_int_equal(pool_add(p, s, target, &e), 0);
}

static pool_stats stats(const pool *p)
{
	pool_stats s;
	pool_get_stats(p, &s);
	return s;
}

/* Every count of pool_get_stats() (not the acquire latency) equals want's. */
static void assert_stats(const pool *p, pool_stats want)
{
	pool_stats got = stats(p);
	const size_t g1[] = {got.creating, got.warm, got.busy, got.destroying};
	const size_t w1[] = {want.creating, want.warm, want.busy, want.destroying};
	const uint64_t g2[] = {got.created, got.failed,   got.hits,
	                       got.misses,  got.recycled, got.died};
	const uint64_t w2[] = {want.created, want.failed,   want.hits,
	                       want.misses,  want.recycled, want.died};
	for (size_t i = 0; i < 4; i++)
		if (g1[i] != w1[i])
			fail_msg("gauge %zu (creating, warm, busy, destroying): %zu, want %zu", i,
			         g1[i], w1[i]);
	for (size_t i = 0; i < 6; i++)
		if (g2[i] != w2[i])
			fail_msg(
			    "counter %zu (created, failed, hits, misses, recycled, died): %llu, "
			    "want %llu",
			    i, (unsigned long long)g2[i], (unsigned long long)w2[i]);
}

typedef struct taker {
	int calls;
	int id; /* the fake's id, -1 on an error */
	sandbox *sb;
	char err[128];
} taker;

static void on_take(sandbox *sb, const err *e, void *arg)
{
	taker *t = arg;
	t->calls++;
	t->sb = sb;
	t->id = sb ? fk(sb)->id : -1;
	snprintf(t->err, sizeof(t->err), "%s", e ? err_msg(e) : "");
}

static bool take(pool *p, const sandbox_spec *s, taker *t)
{
	bool hit = false;
	pool_take(p, s, on_take, t, &hit);
	return hit;
}

/* A pool of py sandboxes in auto mode, filled to target. */
static pool *full_pool(pool_opts o, size_t target)
{
	F.auto_ready = F.auto_gone = true;
	pool *p = new_pool(o);
	add(p, &py, target);
	RUN_UNTIL(stats(p).warm == target);
	return p;
}

/* Takes n warm sandboxes, each a hit. */
static void take_hits(pool *p, taker *t, int n)
{
	for (int i = 0; i < n; i++)
		assert_true(take(p, &py, &t[i]));
}

static void on_down(void *arg)
{
	(*(int *)arg)++;
}

/* Lets every outstanding creation and destruction finish, shuts the pool down and checks
 * that every sandbox it ever created is gone and the callback ran once. */
static void shutdown_all(pool *p)
{
	F.auto_ready = F.auto_gone = true;
	for (int i = 0; i < F.n; i++) {
		if (F.sb[i]->state == FK_DESTROYING && !F.sb[i]->timer)
			arm(F.sb[i], on_auto_gone);
		if (F.sb[i]->state == FK_CREATING && !F.sb[i]->timer)
			arm(F.sb[i], on_auto_ready);
	}
	int downs = 0;
	pool_shutdown(p, on_down, &downs);
	RUN_UNTIL(downs > 0 && F.n_gone == F.n);
	spin(5);
	assert_int_equal(downs, 1);
	assert_int_equal(F.n_gone, F.n);
	assert_int_equal(F.n_destroyed, F.n);
	pool_free(p);
}

/* The value of key in the i-th object of pool_describe_json(). */
static long long described(const pool *p, size_t i, const char *key)
{
	buf b = BUF_INIT;
	pool_describe_json(p, &b);
	char errbuf[128];
	yajl_val v = yajl_tree_parse(buf_str(&b), errbuf, sizeof(errbuf));
	buf_deinit(&b);
	assert_true(YAJL_IS_ARRAY(v));
	assert_true(i < v->u.array.len);
	const char *path[] = {key, NULL};
	yajl_val n = yajl_tree_get(v->u.array.values[i], path, yajl_t_number);
	assert_non_null(n);
	long long r = YAJL_GET_INTEGER(n);
	yajl_tree_free(v);
	return r;
}

/* ---- refill and caps ---- */

static void test_refill_to_target(void **state)
{
	pool *p = new_pool((pool_opts){.max_creating = 2});
	add(p, &py, 3);
	assert_int_equal(F.n, 2); /* the creation cap */
	assert_int_equal(F.urgent, 0);
	/* each finished creation frees a slot for the next at once, without waiting for a tick */
	fake_finish(0, true);
	assert_int_equal(F.n, 3);
	fake_finish(1, true);
	fake_finish(2, true);
	assert_stats(p, (pool_stats){.warm = 3, .created = 3});
	spin(5);
	assert_int_equal(F.n, 3); /* nothing beyond the target */
	assert_int_equal(F.max_creating, 2);
	shutdown_all(p);
}

static void test_creation_cap_across_pools(void **state)
{
	pool *p = new_pool((pool_opts){.max_creating = 2});
	add(p, &py, 3);
	add(p, &sh, 3);
	assert_int_equal(F.n, 2);
	for (int i = 0; i < 6; i++) {
		fake_finish(i, true);
		assert_int_equal(F.n, i + 3 < 6 ? i + 3 : 6);
	}
	assert_int_equal(F.max_creating, 2);
	assert_int_equal(described(p, 0, "warm"), 3);
	assert_int_equal(described(p, 1, "warm"), 3);
	shutdown_all(p);
}

static void test_live_cap(void **state)
{
	pool *p = new_pool((pool_opts){.max_live = 3, .max_creating = 8});
	add(p, &py, 2);
	add(p, &sh, 2);
	assert_int_equal(F.n, 3);
	for (int i = 0; i < 3; i++)
		fake_finish(i, true);
	assert_int_equal(F.n, 3);
	assert_int_equal(stats(p).warm, 3);
	taker t = {0};
	assert_true(take(p, &py, &t));
	pool_release(p, t.sb);
	RUN_UNTIL(F.n_destroyed == 1);
	assert_int_equal(F.n, 3); /* a sandbox being destroyed still counts */
	fake_gone(t.id);
	RUN_UNTIL(F.n == 4);
	assert_int_equal(F.sb[3]->spec.lang, PROTO_LANG_PYTHON); /* the first pool short of one */
	fake_finish(3, true);
	spin(5);
	assert_int_equal(F.n, 4);
	shutdown_all(p);
}

static void test_miss_creates_beyond_caps(void **state)
{
	pool *p = new_pool((pool_opts){.max_live = 1, .max_creating = 1});
	add(p, &py, 1);
	assert_int_equal(F.n, 1);
	taker a = {0}, b = {0};
	/* the first taker waits for the creation already under way; the second gets its own at
	 * once, though both caps are reached */
	assert_false(take(p, &py, &a));
	assert_int_equal(F.n, 1);
	assert_false(take(p, &py, &b));
	assert_int_equal(F.n, 2);
	assert_int_equal(F.urgent, 1);
	assert_true(F.sb[1]->spec.urgent);
	fake_finish(1, true); /* whichever is ready first goes to the first taker */
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.id, 1);
	assert_int_equal(b.calls, 0);
	fake_finish(0, true);
	assert_int_equal(b.id, 0);
	assert_stats(p, (pool_stats){.busy = 2, .created = 2, .misses = 2});
	pool_release(p, a.sb);
	pool_release(p, b.sb);
	shutdown_all(p);
}

static void test_burst_larger_than_pool(void **state)
{
	pool *p = full_pool((pool_opts){.max_creating = 2}, 2);
	taker t[5] = {0};
	for (int i = 0; i < 5; i++) {
		bool hit = take(p, &py, &t[i]);
		assert_int_equal(hit, i < 2);
		assert_int_equal(t[i].calls, i < 2); /* a hit is served before pool_take returns */
	}
	/* the third taker's creation, a refill under the cap (which the fourth taker waits for),
	 * and the fifth taker's own beyond the cap */
	assert_int_equal(F.n, 5);
	assert_int_equal(F.urgent, 2);
	RUN_UNTIL(t[2].calls && t[3].calls && t[4].calls);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(t[i].calls, 1);
		assert_true(t[i].id >= 0);
		for (int k = 0; k < i; k++)
			assert_int_not_equal(t[i].id, t[k].id);
	}
	for (int i = 0; i < 5; i++)
		pool_release(p, t[i].sb);
	RUN_UNTIL(F.n_gone == 5 && stats(p).warm == 2 && stats(p).creating == 0);
	assert_int_equal(F.n, 7);
	assert_stats(p, (pool_stats){.warm = 2, .created = 7, .hits = 2, .misses = 3});
	shutdown_all(p);
}

/* ---- ageing ---- */

static void test_ageing_one_per_pool_per_tick(void **state)
{
	pool *p = new_pool((pool_opts){.max_creating = 8, .max_age_ms = 60000, .tick_ms = 2});
	add(p, &py, 3);
	add(p, &sh, 2);
	assert_int_equal(F.n, 5);
	for (int i = 0; i < 5; i++)
		fake_finish(i, true);
	/* all five an hour old, in the order they became ready */
	int64_t now = now_mono_ms();
	for (int i = 0; i < 5; i++)
		F.sb[i]->ready_at = now - 3600 * 1000 + i;
	F.auto_ready = F.auto_gone = true; /* the replacements are young */
	const int order[5] = {0, 3, 1, 4, 2};
	RUN_UNTIL(stats(p).recycled > 0);
	assert_int_equal(stats(p).recycled, 2);
	assert_memory_equal(F.destroyed, order, 2 * sizeof(int));
	RUN_UNTIL(stats(p).recycled > 2);
	assert_int_equal(stats(p).recycled, 4);
	assert_memory_equal(F.destroyed, order, 4 * sizeof(int));
	RUN_UNTIL(stats(p).recycled > 4);
	assert_int_equal(stats(p).recycled, 5);
	assert_memory_equal(F.destroyed, order, 5 * sizeof(int));
	RUN_UNTIL(stats(p).warm == 5 && stats(p).destroying == 0);
	spin(20);
	assert_int_equal(stats(p).recycled, 5);
	assert_int_equal(F.n, 10);
	shutdown_all(p);
}

/* ---- failures ---- */

static void test_backoff_doubles_to_max_and_resets(void **state)
{
	F.auto_ready = F.auto_gone = true;
	F.fail = 5;
	pool *p = new_pool((pool_opts){.backoff_min_ms = 10, .backoff_max_ms = 40, .tick_ms = 1});
	add(p, &py, 1);
	const long long want[5] = {10, 20, 40, 40, 40};
	for (int k = 0; k < 5; k++) {
		RUN_UNTIL(stats(p).failed == (uint64_t)k + 1);
		assert_int_equal(described(p, 0, "backoff_ms"), want[k]);
		/* the reason is kept for /healthz (and logged, at most every 10 s) */
		assert_non_null(pool_last_error(p));
		assert_non_null(strstr(pool_last_error(p), "fake: creation "));
	}
	RUN_UNTIL(stats(p).warm == 1);
	assert_int_equal(described(p, 0, "backoff_ms"), 0);
	assert_null(pool_last_error(p)); /* it works again */
	assert_int_equal(F.n, 6);        /* one retry after each failure */
	assert_int_equal(F.max_creating, 1);
	assert_int_equal(stats(p).created, 1);
	assert_int_equal(F.n_destroyed, 5); /* every failed sandbox destroyed */
	shutdown_all(p);
}

static void test_backoff_and_waiters(void **state)
{
	const int64_t hour = 3600 * 1000;
	pool *p = new_pool((pool_opts){
	    .max_creating = 4, .backoff_min_ms = hour, .backoff_max_ms = 4 * hour, .tick_ms = 1});
	add(p, &py, 2);
	assert_int_equal(F.n, 2);
	fake_finish(0, false);
	fake_finish(1, false);
	assert_int_equal(described(p, 0, "backoff_ms"), 2 * hour);
	spin(20); /* many ticks, no retry within the backoff */
	assert_int_equal(F.n, 2);
	/* a taker gets its creation at once, and only its own: refills still wait */
	taker a = {0}, b = {0};
	assert_false(take(p, &py, &a));
	assert_int_equal(F.n, 3);
	assert_true(F.sb[2]->spec.urgent);
	/* the failure reaches the waiting taker at once */
	fake_finish(2, false);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.id, -1);
	assert_string_equal(a.err, "fake: creation 2 failed");
	assert_int_equal(described(p, 0, "backoff_ms"), 4 * hour);
	assert_int_equal(F.n, 3);
	/* a success resets the backoff and the refills resume at once: up to half the target
	 * while b's task runs, the rest once the node is quiet */
	assert_false(take(p, &py, &b));
	assert_int_equal(F.n, 4);
	fake_finish(3, true);
	assert_int_equal(b.id, 3);
	assert_int_equal(described(p, 0, "backoff_ms"), 0);
	assert_int_equal(F.n, 5);
	spin(30);
	assert_int_equal(F.n, 5);
	pool_release(p, b.sb);
	RUN_UNTIL(F.n == 6);
	assert_int_equal(stats(p).failed, 3);
	shutdown_all(p);
}

static void test_refused_creation(void **state)
{
	pool *p = new_pool((pool_opts){0});
	/* a taker whose creation cannot start hears it before pool_take returns */
	F.refuse = 1;
	taker a = {0};
	assert_false(take(p, &py, &a));
	assert_int_equal(a.calls, 1);
	assert_string_equal(a.err, "fake: refused");
	/* a refill that cannot start backs off like one that failed */
	F.refuse = 1;
	add(p, &sh, 1);
	assert_int_equal(F.refused, 2);
	assert_int_equal(F.n, 0);
	assert_int_equal(described(p, 1, "backoff_ms"), 200);
	assert_int_equal(described(p, 1, "failed"), 1);
	assert_int_equal(stats(p).failed, 2);
	shutdown_all(p);
}

/* ---- deaths, release, shutdown ---- */

static void test_warm_death_is_replaced(void **state)
{
	F.auto_ready = F.auto_gone = true;
	pool *p = new_pool((pool_opts){0});
	add(p, &py, 2);
	RUN_UNTIL(stats(p).warm == 2);
	assert_true(fake_kill(0));
	assert_int_equal(stats(p).died, 1);
	assert_int_equal(stats(p).warm, 1);
	assert_int_equal(F.n_destroyed, 1);
	assert_int_equal(F.destroyed[0], 0);
	assert_int_equal(F.n, 3); /* the replacement starts at once */
	RUN_UNTIL(stats(p).warm == 2 && stats(p).destroying == 0);
	/* a sandbox handed out is no longer watched: its death is its taker's business */
	taker t = {0};
	assert_true(take(p, &py, &t));
	assert_false(fake_kill(t.id));
	assert_int_equal(stats(p).died, 1);
	pool_release(p, t.sb);
	RUN_UNTIL(stats(p).warm == 2 && stats(p).destroying == 0);
	assert_int_equal(F.n, 4);
	shutdown_all(p);
}

static void test_release_destroys_later_and_refills(void **state)
{
	pool *p = new_pool((pool_opts){0});
	add(p, &py, 1);
	fake_finish(0, true);
	taker t = {0};
	assert_true(take(p, &py, &t));
	assert_int_equal(stats(p).busy, 1);
	pool_release(p, t.sb);
	/* not destroyed yet: whatever the caller does next goes first */
	assert_int_equal(F.n_destroyed, 0);
	assert_int_equal(F.n, 1);
	pool_stats st = stats(p);
	assert_int_equal(st.busy, 0);
	assert_int_equal(st.destroying, 1);
	RUN_UNTIL(F.n_destroyed == 1);
	assert_int_equal(F.destroyed[0], 0);
	assert_int_equal(F.n, 2); /* and the pool refills */
	fake_gone(0);
	assert_int_equal(stats(p).destroying, 0);
	fake_finish(1, true);
	assert_int_equal(stats(p).warm, 1);
	shutdown_all(p);
}

/* Teardown yields to tasks (pool.h): a used sandbox is retired at once and waits while any
 * task runs; once none has run for a moment they all go, oldest first. */
static void test_teardown_waits_for_quiet(void **state)
{
	pool *p = full_pool((pool_opts){.max_used = 4}, 3);
	taker t[3] = {0};
	take_hits(p, t, 3);
	pool_release(p, t[0].sb);
	pool_release(p, t[1].sb);
	assert_int_equal(F.n_retired, 2);
	assert_int_equal(F.retired[0], t[0].id);
	/* t[2] still runs: nothing is torn down, however long it runs; the pool still refills, to
	 * half its target (refills yield to tasks too) */
	spin(100);
	assert_int_equal(F.n_destroyed, 0);
	pool_stats st = stats(p);
	assert_int_equal(st.used, 2);
	assert_int_equal(st.destroying, 2);
	assert_int_equal(st.busy, 1);
	assert_int_equal(st.warm, 2);
	/* the last task ends: all three go, and the pool is full again */
	pool_release(p, t[2].sb);
	RUN_UNTIL(F.n_gone == 3 && stats(p).warm == 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(F.destroyed[i], t[i].id);
	assert_int_equal(F.max_destroying, 2); /* POOL_MAX_TEARING at a time */
	st = stats(p);
	assert_int_equal(st.used, 0);
	assert_int_equal(st.destroying, 0);
	shutdown_all(p);
}

/* More than max_used waiting: the oldest goes, tasks running or not. */
static void test_teardown_forced_by_max_used(void **state)
{
	pool *p = full_pool((pool_opts){.max_used = 1}, 3);
	taker t[3] = {0};
	take_hits(p, t, 3);
	pool_release(p, t[0].sb);
	spin(50);
	assert_int_equal(F.n_destroyed, 0); /* one may wait */
	pool_release(p, t[1].sb);
	RUN_UNTIL(F.n_destroyed == 1); /* two may not: the oldest goes */
	assert_int_equal(F.destroyed[0], t[0].id);
	spin(50);
	assert_int_equal(F.n_destroyed, 1);
	assert_int_equal(stats(p).used, 1);
	pool_release(p, t[2].sb);
	shutdown_all(p);
}

/* The node at max_live: the room a refill needs goes to it, one used sandbox, not all. */
static void test_teardown_forced_by_max_live(void **state)
{
	pool *p = full_pool((pool_opts){.max_used = 8, .max_live = 4}, 2);
	taker t[4] = {0};
	take_hits(p, t, 2);
	/* t[1] runs; the refill (to half the target) takes the node to 3 */
	pool_release(p, t[0].sb);
	RUN_UNTIL(stats(p).warm == 1);
	take_hits(p, t + 2, 1);
	pool_release(p, t[1].sb); /* t[2] runs, 2 used; the refill makes 1: the node at 4 */
	RUN_UNTIL(stats(p).warm == 1);
	take_hits(p, t + 3, 1);
	pool_release(p, t[2].sb); /* t[3] runs, 3 used; the refill wants room */
	RUN_UNTIL(F.n_destroyed == 1 && stats(p).warm == 1);
	assert_int_equal(F.destroyed[0], t[0].id);
	spin(50);
	assert_int_equal(F.n_destroyed, 1);
	assert_int_equal(stats(p).used, 2);
	pool_release(p, t[3].sb);
	shutdown_all(p); /* used ones go at the shutdown, tasks or not */
}

/* However long a task runs, a used sandbox waits at most POOL_USED_MAX_MS. */
static void test_teardown_forced_by_age(void **state)
{
	pool *p = full_pool((pool_opts){.max_used = 8}, 2);
	taker t[2] = {0};
	take_hits(p, t, 2);
	pool_release(p, t[0].sb);
	RUN_UNTIL(F.n_destroyed == 1); /* t[1] still runs */
	assert_int_equal(F.destroyed[0], t[0].id);
	assert_int_equal(stats(p).busy, 1);
	pool_release(p, t[1].sb);
	shutdown_all(p);
}

/* Refills yield to tasks (pool.h): while one runs, a pool holding half its target starts no
 * creation; below half it refills to half at once; the rest waits for the quiet moment. */
static void test_refill_yields_to_tasks(void **state)
{
	/* no tick: only the pool's own timers refill */
	pool *p = full_pool((pool_opts){.max_creating = 4, .tick_ms = 3600 * 1000}, 4);
	taker t[3] = {0};
	take_hits(p, t, 2);
	pool_release(p, t[0].sb); /* t[1] runs: 2 warm of 4 */
	RUN_UNTIL(F.n_destroyed == 1);
	spin(50);
	assert_int_equal(F.n, 4);
	assert_int_equal(stats(p).warm, 2);
	take_hits(p, t + 2, 1);   /* below half: one creation, without a release or a tick, */
	assert_int_equal(F.n, 4); /* after the take's own iteration */
	RUN_UNTIL(F.n == 5 && stats(p).warm == 2);
	spin(50);
	assert_int_equal(F.n, 5);
	assert_int_equal(stats(p).busy, 2);
	pool_release(p, t[1].sb);
	pool_release(p, t[2].sb); /* quiet: the pool fills */
	RUN_UNTIL(stats(p).warm == 4);
	assert_int_equal(F.n, 7);
	shutdown_all(p);
}

/* A sandbox may stay taken long (a chain's llm step): a refill waits for the quiet moment at
 * most POOL_USED_MAX_MS (2 s), then fills the pool beside the tasks. */
static void test_refill_waits_at_most_used_max(void **state)
{
	pool *p = full_pool((pool_opts){.max_creating = 4, .tick_ms = 50}, 4);
	taker t[2] = {0};
	take_hits(p, t, 2); /* half the target warm: the ticks' refills wait */
	spin(500);
	assert_int_equal(F.n, 4);
	RUN_UNTIL(stats(p).warm == 4);
	assert_int_equal(F.n, 6);
	assert_int_equal(stats(p).busy, 2);
	pool_release(p, t[0].sb);
	pool_release(p, t[1].sb);
	shutdown_all(p);
}

static void test_shutdown(void **state)
{
	pool *p = new_pool((pool_opts){.max_creating = 3});
	add(p, &py, 3);
	for (int i = 0; i < 3; i++)
		fake_finish(i, true);
	taker busy = {0}, waiting = {0}, late = {0};
	assert_true(take(p, &py, &busy));
	assert_int_equal(busy.id, 2); /* the newest */
	add(p, &sh, 1); /* 3: the second pool's (the first holds half its target: a task runs) */
	assert_false(take(p, &sh, &waiting));
	assert_int_equal(F.n, 5); /* 4: the second pool's target beside its waiting taker */
	int downs = 0;
	pool_shutdown(p, on_down, &downs);
	assert_int_equal(waiting.calls, 1);
	assert_string_equal(waiting.err, "the pool is shutting down");
	assert_int_equal(F.n_destroyed, 2); /* the warm ones, at once */
	assert_false(take(p, &py, &late));
	assert_int_equal(late.calls, 1);
	assert_string_equal(late.err, "the pool is shutting down");
	/* creations that end now are destroyed, whatever their outcome; nothing new starts */
	fake_finish(3, true);
	fake_finish(4, false);
	assert_int_equal(F.n_destroyed, 4);
	assert_int_equal(F.n, 5);
	for (int i = 0; i < 5; i++)
		if (i != busy.id)
			fake_gone(i);
	assert_int_equal(downs, 0); /* one still taken */
	pool_release(p, busy.sb);
	RUN_UNTIL(F.n_destroyed == 5);
	assert_int_equal(downs, 0);
	fake_gone(busy.id);
	assert_int_equal(downs, 1);
	spin(5);
	assert_int_equal(downs, 1);
	assert_int_equal(F.n, 5);
	pool_stats st = stats(p);
	assert_int_equal(st.warm + st.creating + st.busy + st.destroying, 0);
	pool_free(p);
}

/* ---- stats, describe_json, metrics ---- */

/* Two pools in a known state. The first (python, target 2): both warm ones taken, a third
 * taker waiting, three creations under way (its own and the refill to target). The second (shell, another image, on a runtime whose name needs
 * escaping): its one creation failed and it is backing off. */
static pool *scene(taker t[3])
{
	static sandbox_spec a, b;
	a = spec_for(rt, "sha256:aa", PROTO_LANG_PYTHON);
	b = spec_for(rt_odd, "sha256:bb", PROTO_LANG_SHELL);
	pool *p = new_pool((pool_opts){.max_creating = 8});
	add(p, &a, 2);
	add(p, &b, 1);
	assert_int_equal(F.n, 3);
	fake_finish(0, true);
	fake_finish(1, true);
	for (int i = 0; i < 3; i++)
		assert_int_equal(take(p, &a, &t[i]), i < 2);
	assert_int_equal(F.n, 6);
	assert_int_equal(F.urgent, 1);
	fake_finish(2, false);
	return p;
}

static void release_scene(pool *p, taker t[3])
{
	pool_release(p, t[0].sb);
	pool_release(p, t[1].sb);
	fake_finish(3, true);
	pool_release(p, t[2].sb);
	shutdown_all(p);
}

static void test_stats_and_describe(void **state)
{
	taker t[3] = {0};
	pool *p = scene(t);
	assert_stats(p, (pool_stats){.creating = 3,
	                             .busy = 2,
	                             .destroying = 1,
	                             .created = 2,
	                             .failed = 1,
	                             .hits = 2,
	                             .misses = 1});
	buf b = BUF_INIT;
	pool_describe_json(p, &b);
	assert_string_equal(
	    buf_str(&b),
	    "[{\"runtime\":\"fake\",\"image\":\"sha256:aa\",\"lang\":\"python\",\"target\":2,"
	    "\"warm\":0,\"creating\":3,\"busy\":2,\"hits\":2,\"misses\":1,\"failed\":0,"
	    "\"backoff_ms\":0},"
	    "{\"runtime\":\"fa\\\"ke\\\\rt\",\"image\":\"sha256:bb\",\"lang\":\"shell\","
	    "\"target\":1,\"warm\":0,\"creating\":0,\"busy\":0,\"hits\":0,\"misses\":0,"
	    "\"failed\":1,\"backoff_ms\":200}]");
	buf_deinit(&b);
	release_scene(p, t);
}

/* A strict reader of the Prometheus text format (0.0.4) as a scraper sees it: each family has
 * exactly one # HELP, then one # TYPE, then all its samples together; no family twice, no
 * sample twice; names, label syntax and escapes, and values are checked. Returns NULL or what
 * is wrong (static). */
typedef struct prom {
	char fam[64][80];
	int n_fam;
	char type[16];
	bool typed;
	char seen[256][256];
	int n_seen;
	int line;
	char why[320];
} prom;

static const char *prom_name(const char *s, char *out, size_t max, bool colon)
{
	size_t n = 0;
	while ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') || s[n] == '_' ||
	       (colon && s[n] == ':') || (n > 0 && s[n] >= '0' && s[n] <= '9'))
		n++;
	if (n == 0 || n >= max)
		return NULL;
	memcpy(out, s, n);
	out[n] = '\0';
	return s + n;
}

static bool prom_fail(prom *m, const char *what, const char *text)
{
	snprintf(m->why, sizeof(m->why), "line %d: %s: %.200s", m->line, what, text);
	return false;
}

static bool prom_comment(prom *m, const char *l)
{
	char name[80];
	bool help = !strncmp(l, "# HELP ", 7);
	if (!help && strncmp(l, "# TYPE ", 7))
		return prom_fail(m, "a comment other than HELP or TYPE", l);
	const char *r = prom_name(l + 7, name, sizeof(name), true);
	if (!r || *r != ' ' || !r[1])
		return prom_fail(m, "bad HELP/TYPE line", l);
	if (help) {
		for (int i = 0; i < m->n_fam; i++)
			if (!strcmp(m->fam[i], name))
				return prom_fail(m, "family appears twice", l);
		if (m->n_fam > 0 && !m->typed)
			return prom_fail(m, "the previous family has no TYPE", l);
		snprintf(m->fam[m->n_fam++], sizeof(m->fam[0]), "%s", name);
		m->typed = false;
		return true;
	}
	if (!m->n_fam || strcmp(m->fam[m->n_fam - 1], name) || m->typed)
		return prom_fail(m, "TYPE without its HELP just before, or twice", l);
	if (strcmp(r + 1, "counter") && strcmp(r + 1, "gauge"))
		return prom_fail(m, "type is neither counter nor gauge", l);
	snprintf(m->type, sizeof(m->type), "%s", r + 1);
	m->typed = true;
	return true;
}

/* {name="value",...}: returns what follows, or NULL. */
static const char *prom_labels(const char *s)
{
	if (*s != '{')
		return s;
	s++;
	while (*s != '}') {
		char name[80];
		s = prom_name(s, name, sizeof(name), false);
		if (!s || s[0] != '=' || s[1] != '"')
			return NULL;
		for (s += 2; *s != '"'; s++) {
			if (!*s || *s == '\n')
				return NULL;
			if (*s == '\\' && (s[1] == '\\' || s[1] == '"' || s[1] == 'n'))
				s++;
			else if (*s == '\\')
				return NULL;
		}
		s++;
		if (*s == ',')
			s++;
		else if (*s != '}')
			return NULL;
	}
	return s + 1;
}

static bool prom_sample(prom *m, const char *l)
{
	char name[80];
	const char *r = prom_name(l, name, sizeof(name), true);
	if (!r)
		return prom_fail(m, "bad metric name", l);
	if (!m->n_fam || !m->typed || strcmp(m->fam[m->n_fam - 1], name))
		return prom_fail(m, "sample outside its family's HELP/TYPE group", l);
	const char *v = prom_labels(r);
	if (!v || *v != ' ')
		return prom_fail(m, "bad labels", l);
	char *end;
	double d = strtod(v + 1, &end);
	if (end == v + 1 || *end)
		return prom_fail(m, "bad value", l);
	if (!strcmp(m->type, "counter") && d < 0)
		return prom_fail(m, "negative counter", l);
	for (int i = 0; i < m->n_seen; i++)
		if (!strncmp(m->seen[i], l, (size_t)(v - l)) && m->seen[i][v - l] == '\0')
			return prom_fail(m, "sample twice", l);
	assert_true(m->n_seen < 256 && (size_t)(v - l) < sizeof(m->seen[0]));
	memcpy(m->seen[m->n_seen], l, (size_t)(v - l));
	m->seen[m->n_seen++][v - l] = '\0';
	return true;
}

static const char *prom_check(prom *m, const char *text)
{
	memset(m, 0, sizeof(*m));
	if (!*text || text[strlen(text) - 1] != '\n')
		return "empty, or the last line does not end in a newline";
	char *copy = xstrdup(text), *save = NULL;
	bool ok = true;
	for (char *l = strtok_r(copy, "\n", &save); ok && l; l = strtok_r(NULL, "\n", &save)) {
		m->line++;
		ok = l[0] == '#' ? prom_comment(m, l) : prom_sample(m, l);
	}
	if (ok && m->n_fam && !m->typed)
		ok = prom_fail(m, "the last family has no TYPE", "");
	free(copy);
	return ok ? NULL : m->why;
}

/* The checker itself rejects what issue 15 found in /metrics. */
static void test_prometheus_checker(void **state)
{
	prom m;
	assert_null(prom_check(&m, "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n"));
	const char *bad[] = {
	    "# TYPE a gauge\na 1\n",                                                /* no HELP */
	    "# HELP a A.\n# TYPE a gauge\na 1\n# HELP a A.\n# TYPE a gauge\na 2\n", /* twice */
	    "# HELP a A.\n# TYPE a gauge\n# HELP b B.\n# TYPE b gauge\na{x=\"1\"} 1\nb 1\n",
	    "# HELP a A.\n# TYPE a gauge\na{x=\"1\"} 1\na{x=\"1\"} 2\n",
	    "# HELP a A.\n# TYPE a gauge\na{x=\"a\"b\"} 1\n",
	    "# HELP a A.\n# TYPE a gauge\na{x=\"\\q\"} 1\n",
	    "# HELP a A.\n# TYPE a gauge\na one\n",
	    "# HELP a A.\n# TYPE a gauge\na 1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		if (!prom_check(&m, bad[i]))
			fail_msg("accepted bad text %zu", i);
}

static void test_metrics_text(void **state)
{
	taker t[3] = {0};
	pool *p = scene(t);
	buf b = BUF_INIT;
	pool_metrics(p, &b);
	prom m;
	const char *why = prom_check(&m, buf_str(&b));
	if (why)
		fail_msg("%s\n%s", why, buf_str(&b));
	const char *want_fam[] = {
	    "aisp_pool_sandboxes",
	    "aisp_pool_target",
	    "aisp_pool_sandboxes_total",
	    "aisp_pool_destroying",
	    "aisp_pool_used",
	    "aisp_pool_takes_total",
	    "aisp_pool_hits_total",
	    "aisp_pool_misses_total",
	    "aisp_pool_recycled_total",
	    "aisp_pool_died_total",
	    "aisp_sandbox_creations_total",
	    "aisp_sandbox_creation_failures_total",
	};
	assert_int_equal(m.n_fam, sizeof(want_fam) / sizeof(*want_fam));
	for (int i = 0; i < m.n_fam; i++)
		assert_string_equal(m.fam[i], want_fam[i]);
	const char *lines[] = {
	    "aisp_pool_sandboxes{runtime=\"fake\",image=\"sha256:aa\",lang=\"python\","
	    "state=\"creating\"} 3\n",
	    "aisp_pool_sandboxes{runtime=\"fake\",image=\"sha256:aa\",lang=\"python\","
	    "state=\"busy\"} 2\n",
	    "aisp_pool_sandboxes{runtime=\"fa\\\"ke\\\\rt\",image=\"sha256:bb\",lang=\"shell\","
	    "state=\"warm\"} 0\n",
	    "aisp_pool_target{runtime=\"fake\",image=\"sha256:aa\",lang=\"python\"} 2\n",
	    "aisp_pool_target{runtime=\"fa\\\"ke\\\\rt\",image=\"sha256:bb\",lang=\"shell\"} 1\n",
	    "aisp_pool_sandboxes_total{state=\"destroying\"} 1\n",
	    "aisp_pool_sandboxes_total{state=\"busy\"} 2\n",
	    "\naisp_pool_destroying 1\n",
	    "\naisp_pool_used 0\n",
	    "aisp_pool_takes_total{result=\"hit\"} 2\n",
	    "aisp_pool_takes_total{result=\"miss\"} 1\n",
	    "\naisp_pool_hits_total 2\n",
	    "\naisp_pool_misses_total 1\n",
	    "\naisp_sandbox_creations_total 2\n",
	    "\naisp_sandbox_creation_failures_total 1\n",
	};
	for (size_t i = 0; i < sizeof(lines) / sizeof(*lines); i++)
		if (!strstr(buf_str(&b), lines[i]))
			fail_msg("missing %s in\n%s", lines[i], buf_str(&b));
	assert_int_equal(m.n_seen, 6 + 2 + 4 + 1 + 1 + 2 + 6);
	buf_deinit(&b);
	release_scene(p, t);
}

/* ---- setup ---- */

static int setup(void **state)
{
	memset(&F, 0, sizeof(F));
	py = spec_for(rt, "sha256:aa", PROTO_LANG_PYTHON);
	sh = spec_for(rt, "sha256:aa", PROTO_LANG_SHELL);
	base = event_base_new();
	heartbeat = event_new(base, -1, EV_PERSIST, on_heartbeat, NULL);
	struct timeval tv = {0, 10000};
	return base && heartbeat && event_add(heartbeat, &tv) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	for (int i = 0; i < F.n; i++) {
		if (F.sb[i]->timer)
			event_free(F.sb[i]->timer);
		free(F.sb[i]);
	}
	event_free(heartbeat);
	event_base_free(base);
	return 0;
}

/* Runtime objects name the pools; a harmless binary stands in for the runtime's --version. */
static int group_setup(void **state)
{
	err *e = NULL;
	if (!mkdtemp(rt_dir))
		return -1;
	sandbox_runtime_opts a = {.name = "fake", .path = "/bin/true", .kind = SANDBOX_RT_OCI};
	sandbox_runtime_opts b = {
	    .name = "fa\"ke\\rt", .path = "/bin/true", .kind = SANDBOX_RT_OCI};
	if (sandbox_runtime_new(&rt, &a, rt_dir, &e) < 0 ||
	    sandbox_runtime_new(&rt_odd, &b, rt_dir, &e) < 0) {
		fprintf(stderr, "setup: %s\n", err_msg(e));
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	sandbox_runtime_free(rt);
	sandbox_runtime_free(rt_odd);
	rm_rf_at(AT_FDCWD, rt_dir, NULL);
	return 0;
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_refill_to_target),
	    T(test_creation_cap_across_pools),
	    T(test_live_cap),
	    T(test_miss_creates_beyond_caps),
	    T(test_burst_larger_than_pool),
	    T(test_ageing_one_per_pool_per_tick),
	    T(test_backoff_doubles_to_max_and_resets),
	    T(test_backoff_and_waiters),
	    T(test_refused_creation),
	    T(test_warm_death_is_replaced),
	    T(test_release_destroys_later_and_refills),
	    T(test_teardown_waits_for_quiet),
	    T(test_teardown_forced_by_max_used),
	    T(test_teardown_forced_by_max_live),
	    T(test_teardown_forced_by_age),
	    T(test_refill_yields_to_tasks),
	    T(test_refill_waits_at_most_used_max),
	    T(test_shutdown),
	    T(test_stats_and_describe),
	    T(test_prometheus_checker),
	    T(test_metrics_text),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
