/* A Redis connection on the libevent loop with per-request timeouts and reconnects (redis.h).
 *
 * Lifetimes: every request is an rreq. A request handed to hiredis is freed only in on_reply,
 * which hiredis calls exactly once (with NULL when the context is freed). A request that could
 * not be sent is failed from a zero-delay event (a "deferred" request, on a list so that
 * rconn_free can fail it too). The context is only ever freed with redisAsyncFree, which
 * hiredis defers itself when called from inside one of its callbacks. */
#include "daemon/redis.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"

#define MAX_ARGS 64

typedef struct rreq rreq;
struct rreq {
	rconn *rc;
	rconn_reply_fn fn;
	void *arg;
	struct event *ev; /* the timeout, or the deferred failure */
	bool done;        /* fn was called */
	rreq *next;       /* on rc->deferred */
};

struct rconn {
	struct event_base *base;
	char *name, *address, *user, *password;
	int64_t timeout_ms;
	void (*on_ready)(rconn *rc, void *arg);
	void (*on_lost)(rconn *rc, void *arg);
	void *arg;

	redisAsyncContext *ac; /* NULL while not connected or connecting */
	bool ready;            /* connected and authenticated */
	bool ever_ready;
	int attempt;
	uint64_t reconnects;
	char *last_error;
	struct event *retry_ev;
	struct event *connect_ev;
	rreq *deferred;
};

static void start_connect(rconn *rc);

int64_t rconn_backoff_ms(int attempt, int64_t base, int64_t max)
{
	int64_t d = base;
	for (int i = 0; i < attempt && d < max; i++)
		d *= 2;
	if (d > max)
		d = max;
	return d / 2 + (int64_t)(random() % (d + 1));
}

bool rconn_reply_is_error(const redisReply *r, const char *prefix)
{
	return r && r->type == REDIS_REPLY_ERROR && r->str &&
	       !strncmp(r->str, prefix, strlen(prefix));
}

static void set_error(rconn *rc, const char *msg)
{
	free(rc->last_error);
	rc->last_error = xstrdup(msg);
}

static void schedule_retry(rconn *rc)
{
	int64_t ms = rconn_backoff_ms(rc->attempt++, 200, 5000);
	log_warn("redis %s unreachable (%s), retrying in %.1fs", rc->address,
	         rc->last_error ? rc->last_error : "?", (double)ms / 1000.0);
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(rc->retry_ev, &tv);
}

/* Forgets and frees the current context: its pending requests fail (NULL replies). */
static void drop(rconn *rc, const char *why)
{
	redisAsyncContext *ac = rc->ac;
	bool was_ready = rc->ready;
	if (!ac)
		return;
	rc->ac = NULL;
	rc->ready = false;
	evtimer_del(rc->connect_ev);
	set_error(rc, why);
	if (was_ready)
		log_warn("redis %s (%s): connection lost: %s", rc->address, rc->name, why);
	redisAsyncFree(ac);
	if (was_ready && rc->on_lost)
		rc->on_lost(rc, rc->arg);
	schedule_retry(rc);
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	rreq *q = privdata;
	if (!q->done) {
		q->done = true;
		event_free(q->ev);
		q->ev = NULL;
		if (q->fn)
			q->fn(q->rc, r, q->arg);
	}
	free(q);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	rreq *q = arg;
	rconn *rc = q->rc;
	q->done = true;
	event_free(q->ev);
	q->ev = NULL;
	if (q->fn)
		q->fn(rc, NULL, q->arg);
	/* q itself is freed by on_reply when the context goes. */
	drop(rc, "request timed out");
}

static void on_deferred(evutil_socket_t fd, short what, void *arg)
{
	rreq *q = arg;
	rconn *rc = q->rc;
	for (rreq **p = &rc->deferred; *p; p = &(*p)->next)
		if (*p == q) {
			*p = q->next;
			break;
		}
	event_free(q->ev);
	if (q->fn)
		q->fn(rc, NULL, q->arg);
	free(q);
}

static void fail_later(rreq *q)
{
	static const struct timeval zero = {0, 0};
	q->ev = evtimer_new(q->rc->base, on_deferred, q);
	q->next = q->rc->deferred;
	q->rc->deferred = q;
	evtimer_add(q->ev, &zero);
}

static void send_cmd(rconn *rc, bool need_ready, rconn_reply_fn cb, void *arg, int64_t extra_ms,
                     int argc, const char **argv, const size_t *lens)
{
	rreq *q = xzalloc(sizeof(*q));
	q->rc = rc;
	q->fn = cb;
	q->arg = arg;
	if (!rc->ac || (need_ready && !rc->ready)) {
		fail_later(q);
		return;
	}
	if (redisAsyncCommandArgv(rc->ac, on_reply, q, argc, argv, lens) != REDIS_OK) {
		fail_later(q);
		return;
	}
	int64_t ms = rc->timeout_ms + extra_ms;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	q->ev = evtimer_new(rc->base, on_timeout, q);
	evtimer_add(q->ev, &tv);
}

void rconn_cmdv(rconn *rc, rconn_reply_fn cb, void *arg, int64_t extra_ms, int argc,
                const char **argv, const size_t *lens)
{
	send_cmd(rc, true, cb, arg, extra_ms, argc, argv, lens);
}

void rconn_cmd(rconn *rc, rconn_reply_fn cb, void *arg, ...)
{
	const char *argv[MAX_ARGS];
	size_t lens[MAX_ARGS];
	int argc = 0;
	va_list ap;
	va_start(ap, arg);
	for (const char *s = va_arg(ap, const char *); s && argc < MAX_ARGS;
	     s = va_arg(ap, const char *)) {
		argv[argc] = s;
		lens[argc++] = strlen(s);
	}
	va_end(ap);
	send_cmd(rc, true, cb, arg, 0, argc, argv, lens);
}

static void became_ready(rconn *rc)
{
	rc->ready = true;
	rc->attempt = 0;
	if (rc->ever_ready) {
		rc->reconnects++;
		log_info("redis %s (%s): reconnected", rc->address, rc->name);
	} else {
		log_info("redis %s (%s): connected", rc->address, rc->name);
	}
	rc->ever_ready = true;
	if (rc->on_ready)
		rc->on_ready(rc, rc->arg);
}

static void on_auth(rconn *rc, redisReply *r, void *arg)
{
	if (!r)
		return; /* the connection is already being dropped */
	if (r->type == REDIS_REPLY_ERROR) {
		_cleanup_free_ char *msg = xasprintf("AUTH failed: %s", r->str);
		log_error("redis %s: %s", rc->address, msg);
		drop(rc, msg);
		return;
	}
	became_ready(rc);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	rconn *rc = ac->data;
	if (rc->ac != ac)
		return;
	evtimer_del(rc->connect_ev);
	if (status != REDIS_OK) {
		/* hiredis frees the context after this callback returns. */
		rc->ac = NULL;
		set_error(rc, ac->errstr[0] ? ac->errstr : "connect failed");
		schedule_retry(rc);
		return;
	}
	if (rc->password) {
		const char *argv[3] = {"AUTH"};
		int argc = 1;
		if (rc->user)
			argv[argc++] = rc->user;
		argv[argc++] = rc->password;
		size_t lens[3];
		for (int i = 0; i < argc; i++)
			lens[i] = strlen(argv[i]);
		send_cmd(rc, false, on_auth, NULL, 0, argc, argv, lens);
		return;
	}
	became_ready(rc);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	rconn *rc = ac->data;
	if (rc->ac != ac)
		return; /* dropped by us: already handled */
	bool was_ready = rc->ready;
	rc->ac = NULL;
	rc->ready = false;
	set_error(rc, ac->errstr[0] ? ac->errstr : "connection closed");
	if (was_ready) {
		log_warn("redis %s (%s): connection lost: %s", rc->address, rc->name,
		         rc->last_error);
		if (rc->on_lost)
			rc->on_lost(rc, rc->arg);
	}
	schedule_retry(rc);
}

static void on_connect_timeout(evutil_socket_t fd, short what, void *arg)
{
	drop(arg, "connect timed out");
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	start_connect(arg);
}

static void start_connect(rconn *rc)
{
	_cleanup_free_ char *host = NULL, *path = NULL;
	int port = 0;
	err *e = NULL;
	if (addr_split(rc->address, &host, &port, &path, &e) < 0) {
		set_error(rc, err_msg(e));
		err_free(e);
		schedule_retry(rc);
		return;
	}
	redisAsyncContext *ac = path ? redisAsyncConnectUnix(path) : redisAsyncConnect(host, port);
	if (!ac || ac->err) {
		set_error(rc, ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		schedule_retry(rc);
		return;
	}
	ac->data = rc;
	redisLibeventAttach(ac, rc->base);
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	rc->ac = ac;
	struct timeval tv = {rc->timeout_ms / 1000, (rc->timeout_ms % 1000) * 1000};
	evtimer_add(rc->connect_ev, &tv);
}

rconn *rconn_new(struct event_base *base, const rconn_opts *o)
{
	rconn *rc = xzalloc(sizeof(*rc));
	rc->base = base;
	rc->name = xstrdup(o->name ? o->name : "redis");
	rc->address = xstrdup(o->address);
	rc->user = o->user ? xstrdup(o->user) : NULL;
	rc->password = o->password ? xstrdup(o->password) : NULL;
	rc->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 2000;
	rc->on_ready = o->on_ready;
	rc->on_lost = o->on_lost;
	rc->arg = o->arg;
	rc->retry_ev = evtimer_new(base, on_retry, rc);
	rc->connect_ev = evtimer_new(base, on_connect_timeout, rc);
	set_error(rc, "not connected yet");
	start_connect(rc);
	return rc;
}

rconn *rconn_free(rconn *rc)
{
	if (!rc)
		return NULL;
	rc->on_lost = NULL;
	rc->on_ready = NULL;
	redisAsyncContext *ac = rc->ac;
	rc->ac = NULL;
	rc->ready = false;
	if (ac)
		redisAsyncFree(ac);
	while (rc->deferred) {
		rreq *q = rc->deferred;
		rc->deferred = q->next;
		event_free(q->ev);
		if (q->fn)
			q->fn(rc, NULL, q->arg);
		free(q);
	}
	event_free(rc->retry_ev);
	event_free(rc->connect_ev);
	free(rc->name);
	free(rc->address);
	free(rc->user);
	free(rc->password);
	free(rc->last_error);
	free(rc);
	return NULL;
}

bool rconn_ready(const rconn *rc)
{
	return rc && rc->ready;
}

uint64_t rconn_reconnects(const rconn *rc)
{
	return rc->reconnects;
}

const char *rconn_last_error(const rconn *rc)
{
	return rc->last_error ? rc->last_error : "";
}
