/* The node's revocation checks (revocation.h): a poller on the loop that asks the revocation
 * store about every watched task's parties with one HMGET per tick, and the one-shot check at
 * admission. Replies may come back after a watch ended or the poller was freed: each request
 * names the watches it asked for by a number that is never reused, and holds a reference. */
#include "daemon/revocation.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "proto/proto.h"

typedef struct watch {
	uint64_t id; /* never reused: a reply finds its watch by it */
	void *owner;
	char **fields;
	size_t n;
} watch;

struct revocation {
	int refs; /* the owner's, plus one per request in flight */
	bool freed;
	struct event_base *base;
	rconn *rc;
	struct event *tick;
	int64_t interval_ms;
	revocation_fn cb;
	void *arg;
	watch *w;
	size_t n_w;
	uint64_t next_id;
	uint64_t polls;
};

/* One poll: which watch each field of the HMGET belongs to. */
typedef struct ask {
	revocation *r;
	size_t n;
	struct {
		uint64_t watch;
		char *field; /* borrowed from argv, owned here */
	} item[];
} ask;

static void watch_deinit(watch *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->fields[i]);
	free(w->fields);
}

static void unref(revocation *r)
{
	if (--r->refs > 0)
		return;
	for (size_t i = 0; i < r->n_w; i++)
		watch_deinit(&r->w[i]);
	free(r->w);
	free(r);
}

static watch *find(revocation *r, uint64_t id)
{
	for (size_t i = 0; i < r->n_w; i++)
		if (r->w[i].id == id)
			return &r->w[i];
	return NULL;
}

static void drop_watch(revocation *r, watch *w)
{
	watch_deinit(w);
	*w = r->w[--r->n_w];
}

static void on_poll(rconn *rc, redisReply *rep, void *arg)
{
	ask *a = arg;
	revocation *r = a->r;
	bool ok = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == a->n;
	if (!r->freed && !ok)
		log_warn("revocation poll failed (%s); asking again in %lld ms",
		         rep && rep->type == REDIS_REPLY_ERROR ? rep->str : rconn_last_error(rc),
		         (long long)r->interval_ms);
	if (!r->freed && ok)
		r->polls++;
	for (size_t i = 0; !r->freed && ok && i < a->n; i++) {
		const redisReply *v = rep->element[i];
		watch *w = v->type == REDIS_REPLY_STRING ? find(r, a->item[i].watch) : NULL;
		if (!w)
			continue;
		_cleanup_free_ char *why =
		    attest_revocation_describe(a->item[i].field, v->str, v->len);
		void *owner = w->owner;
		drop_watch(r, w);
		r->cb(r->arg, owner, a->item[i].field, why);
	}
	for (size_t i = 0; i < a->n; i++)
		free(a->item[i].field);
	free(a);
	unref(r);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	revocation_poll(arg);
}

void revocation_poll(revocation *r)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n_w; i++)
		n += r->w[i].n;
	if (!n || !rconn_ready(r->rc))
		return;
	ask *a = xzalloc(sizeof(*a) + n * sizeof(a->item[0]));
	_cleanup_free_ const char **argv = xcalloc(n + 2, sizeof(char *));
	_cleanup_free_ size_t *lens = xcalloc(n + 2, sizeof(size_t));
	argv[0] = "HMGET";
	argv[1] = PROTO_KEY_REVOKED;
	for (size_t i = 0; i < r->n_w; i++)
		for (size_t j = 0; j < r->w[i].n; j++) {
			a->item[a->n].watch = r->w[i].id;
			a->item[a->n].field = xstrdup(r->w[i].fields[j]);
			argv[2 + a->n] = a->item[a->n].field;
			a->n++;
		}
	for (size_t i = 0; i < n + 2; i++)
		lens[i] = strlen(argv[i]);
	a->r = r;
	r->refs++;
	rconn_cmdv(r->rc, on_poll, a, 0, (int)(n + 2), argv, lens);
}

revocation *revocation_new(struct event_base *base, rconn *rc, int64_t interval_ms,
                           revocation_fn cb, void *arg)
{
	revocation *r = xzalloc(sizeof(*r));
	r->refs = 1;
	r->base = base;
	r->rc = rc;
	r->interval_ms = interval_ms > 0 ? interval_ms : 1000;
	r->cb = cb;
	r->arg = arg;
	r->next_id = 1;
	r->tick = event_new(base, -1, EV_PERSIST, on_tick, r);
	struct timeval tv = {r->interval_ms / 1000, (r->interval_ms % 1000) * 1000};
	event_add(r->tick, &tv);
	return r;
}

revocation *revocation_free(revocation *r)
{
	if (!r)
		return NULL;
	event_free(r->tick);
	r->tick = NULL;
	r->freed = true;
	unref(r);
	return NULL;
}

void revocation_unwatch(revocation *r, void *owner)
{
	for (size_t i = 0; i < r->n_w; i++)
		if (r->w[i].owner == owner) {
			drop_watch(r, &r->w[i]);
			return;
		}
}

void revocation_watch(revocation *r, void *owner, char *const *fields, size_t n)
{
	revocation_unwatch(r, owner);
	if (!n)
		return;
	r->w = xreallocarray(r->w, r->n_w + 1, sizeof(*r->w));
	watch *w = &r->w[r->n_w++];
	w->id = r->next_id++;
	w->owner = owner;
	w->n = n;
	w->fields = xcalloc(n, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		w->fields[i] = xstrdup(fields[i]);
}

size_t revocation_watching(const revocation *r)
{
	return r->n_w;
}

uint64_t revocation_polls(const revocation *r)
{
	return r->polls;
}

/* ---- the admission check ---- */

typedef struct check {
	revocation_check_fn cb;
	void *arg;
	size_t n;
	char *fields[ATTEST_PARTY__COUNT];
	attest_party party[ATTEST_PARTY__COUNT];
} check;

static void check_free(check *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->fields[i]);
	free(c);
}

static void on_check(rconn *rc, redisReply *rep, void *arg)
{
	check *c = arg;
	if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != c->n) {
		const char *why = rep && rep->type == REDIS_REPLY_ERROR ? rep->str
		                  : rep                                 ? "unexpected reply"
		                                                        : rconn_last_error(rc);
		_cleanup_free_ char *msg =
		    xasprintf("cannot read %s: %s", PROTO_KEY_REVOKED, why ? why : "no reply");
		c->cb(c->arg, NULL, msg);
		check_free(c);
		return;
	}
	attest_revocations rev = {0};
	for (size_t i = 0; i < c->n; i++)
		if (rep->element[i]->type == REDIS_REPLY_STRING)
			attest_revocations_set(&rev, c->party[i], c->fields[i],
			                       rep->element[i]->str, rep->element[i]->len);
	c->cb(c->arg, &rev, NULL);
	attest_revocations_deinit(&rev);
	check_free(c);
}

/* A task without parties: answered from the loop, like every other check. */
static void on_nothing(evutil_socket_t fd, short what, void *arg)
{
	check *c = arg;
	attest_revocations rev = {0};
	c->cb(c->arg, &rev, NULL);
	check_free(c);
}

void revocation_check(revocation *r, const attest_task_auth *a, revocation_check_fn cb, void *arg)
{
	check *c = xzalloc(sizeof(*c));
	c->cb = cb;
	c->arg = arg;
	c->n = attest_task_auth_fields(a, c->fields, c->party);
	if (!c->n) {
		event_base_once(r->base, -1, EV_TIMEOUT, on_nothing, c, &(struct timeval){0, 0});
		return;
	}
	const char *argv[2 + ATTEST_PARTY__COUNT] = {"HMGET", PROTO_KEY_REVOKED};
	size_t lens[2 + ATTEST_PARTY__COUNT];
	for (size_t i = 0; i < c->n; i++)
		argv[2 + i] = c->fields[i];
	for (size_t i = 0; i < c->n + 2; i++)
		lens[i] = strlen(argv[i]);
	rconn_cmdv(r->rc, on_check, c, 0, (int)c->n + 2, argv, lens);
}
