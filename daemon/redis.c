/* A Redis connection on the libevent loop with per-request timeouts and reconnects, and the
 * Sentinel client that finds the master for it (redis.h).
 *
 * Lifetimes: every request is an rreq. A request handed to hiredis is freed only in on_reply,
 * which hiredis calls exactly once (with NULL when the context is freed). A request that could
 * not be sent is failed from a zero-delay event (a "deferred" request, on a list so that
 * rconn_free can fail it too). The context is only ever freed with redisAsyncFree, which
 * hiredis defers itself when called from inside one of its callbacks.
 *
 * A sentinel connection is an squery, reference counted: one reference while its context
 * lives (dropped when we free the context, or when hiredis reports it failed or closed), one
 * per command in flight and one for the +switch-master subscription (each dropped in its
 * callback, which hiredis calls with NULL when the context goes). The context's data pointer
 * is cleared before we free it, so that the connect and disconnect callbacks of a context we
 * closed ourselves do nothing. */
#include "daemon/redis.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"

#define MAX_ARGS 64
/* The most a sentinel may take to connect and answer before the next one is asked. */
#define SENTINEL_TIMEOUT_MS 1000

typedef struct rreq rreq;
struct rreq {
	rconn *rc;
	rconn_reply_fn fn;
	void *arg;
	struct event *ev; /* the timeout, or the deferred failure */
	bool done;        /* fn was called */
	rreq *next;       /* on rc->deferred */
};

typedef struct squery squery;

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

	/* Sentinel mode (sentinels != NULL); address is then the master's local address. */
	char **sentinels, **amap, *master_name, *s_user, *s_password;
	size_t n_sentinels, next_sentinel, tried;
	char *announced;        /* the master as Sentinel names it, host:port */
	squery *sq;             /* resolving, then watching +switch-master */
	struct event *watch_ev; /* re-opens a lost watch */
	int watch_attempt;
};

struct squery {
	rconn *rc; /* NULL once detached from its rconn */
	redisAsyncContext *ac;
	int refs;
	size_t idx;    /* which sentinel */
	bool rewatch;  /* opened to watch a master already connected to */
	bool watching; /* subscribed */
	struct event *timeout;
};

static void start_connect(rconn *rc);
static void sq_close(squery *sq);

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

/* Replies that say this server is not a master we can use (now): reconnect (and, with
 * Sentinel, ask for the master again). */
static bool not_a_master(const redisReply *r)
{
	return rconn_reply_is_error(r, "READONLY") || rconn_reply_is_error(r, "LOADING") ||
	       rconn_reply_is_error(r, "MASTERDOWN");
}

static void set_error(rconn *rc, const char *msg)
{
	free(rc->last_error);
	rc->last_error = xstrdup(msg);
}

/* For logs: the address, or the master's name while Sentinel has not named it. */
static const char *where(const rconn *rc)
{
	return rc->address ? rc->address : rc->master_name;
}

static void set_timer(struct event *ev, int64_t ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(ev, &tv);
}

static void schedule_retry(rconn *rc)
{
	int64_t ms = rconn_backoff_ms(rc->attempt++, 200, 5000);
	log_warn("redis %s (%s) unreachable (%s), retrying in %.1fs", where(rc), rc->name,
	         rc->last_error ? rc->last_error : "?", (double)ms / 1000.0);
	set_timer(rc->retry_ev, ms);
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
	if (rc->watch_ev)
		evtimer_del(rc->watch_ev);
	sq_close(rc->sq);
	set_error(rc, why);
	if (was_ready)
		log_warn("redis %s (%s): connection lost: %s", where(rc), rc->name, why);
	redisAsyncFree(ac);
	if (was_ready && rc->on_lost)
		rc->on_lost(rc, rc->arg);
	schedule_retry(rc);
}

/* A reply that says the server is not a master (a failover under way) reaches the caller as
 * no reply, as when the connection is lost, which it is about to be: every caller retries it
 * as Redis being away, none mistakes it for its command failing. */
static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	rreq *q = privdata;
	rconn *rc = q->rc;
	_cleanup_free_ char *why =
	    not_a_master(r) ? xasprintf("%s replied %s", rc->address, ((redisReply *)r)->str)
	                    : NULL;
	if (why)
		set_error(rc, why);
	if (!q->done) {
		q->done = true;
		event_free(q->ev);
		q->ev = NULL;
		if (q->fn)
			q->fn(rc, why ? NULL : r, q->arg);
	}
	free(q);
	if (why && rc->ac == ac)
		drop(rc, why);
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
	q->ev = evtimer_new(rc->base, on_timeout, q);
	set_timer(q->ev, rc->timeout_ms + extra_ms);
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

/* A command on the connection before it is ready (AUTH, ROLE). */
static void send_setup(rconn *rc, rconn_reply_fn cb, int argc, const char **argv)
{
	size_t lens[4];
	for (int i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	send_cmd(rc, false, cb, NULL, 0, argc, argv, lens);
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

/* ROLE's first element: "master", "slave" or "sentinel". */
static void on_role(rconn *rc, redisReply *r, void *arg)
{
	if (!r)
		return; /* the connection is already being dropped */
	const char *role = r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
	                           r->element[0]->type == REDIS_REPLY_STRING
	                       ? r->element[0]->str
	                       : NULL;
	if (!role || strcmp(role, "master")) {
		_cleanup_free_ char *msg =
		    xasprintf("%s is not the master Sentinel named (ROLE: %s)", rc->address,
		              role                           ? role
		              : r->type == REDIS_REPLY_ERROR ? r->str
		                                             : "unexpected reply");
		drop(rc, msg);
		return;
	}
	became_ready(rc);
}

/* Authenticated (or no AUTH): with Sentinel, ROLE confirms the master first. */
static void authenticated(rconn *rc)
{
	if (!rc->sentinels) {
		became_ready(rc);
		return;
	}
	const char *argv[] = {"ROLE"};
	send_setup(rc, on_role, 1, argv);
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
	authenticated(rc);
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
		sq_close(rc->sq);
		schedule_retry(rc);
		return;
	}
	if (rc->password) {
		const char *argv[3] = {"AUTH"};
		int argc = 1;
		if (rc->user)
			argv[argc++] = rc->user;
		argv[argc++] = rc->password;
		send_setup(rc, on_auth, argc, argv);
		return;
	}
	authenticated(rc);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	rconn *rc = ac->data;
	if (rc->ac != ac)
		return; /* dropped by us: already handled */
	bool was_ready = rc->ready;
	rc->ac = NULL;
	rc->ready = false;
	if (rc->watch_ev)
		evtimer_del(rc->watch_ev);
	sq_close(rc->sq);
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

/* A context to addr on the loop with our callbacks, or NULL with *errmsg (caller frees). */
static redisAsyncContext *open_ctx(struct event_base *base, const char *addr, void *data,
                                   redisConnectCallback *on_conn, redisDisconnectCallback *on_disc,
                                   char **errmsg)
{
	_cleanup_free_ char *host = NULL, *path = NULL;
	int port = 0;
	err *e = NULL;
	if (addr_split(addr, &host, &port, &path, &e) < 0) {
		*errmsg = xstrdup(err_msg(e));
		err_free(e);
		return NULL;
	}
	redisAsyncContext *ac = path ? redisAsyncConnectUnix(path) : redisAsyncConnect(host, port);
	if (!ac || ac->err) {
		*errmsg = xstrdup(ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		return NULL;
	}
	ac->data = data;
	redisLibeventAttach(ac, base);
	redisAsyncSetConnectCallback(ac, on_conn);
	redisAsyncSetDisconnectCallback(ac, on_disc);
	return ac;
}

/* Connects to rc->address (the master, when Sentinel named it). */
static void connect_address(rconn *rc)
{
	_cleanup_free_ char *msg = NULL;
	redisAsyncContext *ac =
	    open_ctx(rc->base, rc->address, rc, on_connect, on_disconnect, &msg);
	if (!ac) {
		set_error(rc, msg);
		sq_close(rc->sq);
		schedule_retry(rc);
		return;
	}
	rc->ac = ac;
	set_timer(rc->connect_ev, rc->timeout_ms);
}

/* ---- Sentinel ---- */

static squery *sq_hold(squery *sq)
{
	sq->refs++;
	return sq;
}

static void sq_unref(squery *sq)
{
	if (--sq->refs > 0)
		return;
	event_free(sq->timeout);
	free(sq);
}

/* Detaches sq from its rconn and frees its context (its callbacks then do nothing). */
static void sq_close(squery *sq)
{
	if (!sq)
		return;
	if (sq->rc && sq->rc->sq == sq)
		sq->rc->sq = NULL;
	sq->rc = NULL;
	evtimer_del(sq->timeout);
	redisAsyncContext *ac = sq->ac;
	sq->ac = NULL;
	if (ac) {
		ac->data = NULL;
		redisAsyncFree(ac);
		sq_unref(sq); /* the context's reference */
	}
}

static const char *sentinel_addr(const squery *sq, const rconn *rc)
{
	return rc->sentinels[sq->idx];
}

static void sq_open(rconn *rc, bool rewatch);

static void schedule_rewatch(rconn *rc)
{
	set_timer(rc->watch_ev, rconn_backoff_ms(rc->watch_attempt++, 1000, 5000));
}

/* sq could not do its job: the next sentinel is asked (or, once all were, the connection
 * backs off); a lost watch is re-opened later on the next sentinel. */
static void sq_failed(squery *sq, const char *why)
{
	rconn *rc = sq->rc;
	if (!rc)
		return;
	bool rewatch = sq->rewatch;
	_cleanup_free_ char *msg = xasprintf("sentinel %s: %s", sentinel_addr(sq, rc), why);
	sq_close(sq);
	rc->next_sentinel = (rc->next_sentinel + 1) % rc->n_sentinels;
	if (rewatch) {
		log_warn("redis %s (%s): cannot watch for a master switch: %s", where(rc), rc->name,
		         msg);
		schedule_rewatch(rc);
		return;
	}
	if (++rc->tried < rc->n_sentinels) {
		log_debug("redis (%s): %s; asking the next sentinel", rc->name, msg);
		sq_open(rc, false);
		return;
	}
	_cleanup_free_ char *all =
	    xasprintf("no sentinel named the master \"%s\" (last: %s)", rc->master_name, msg);
	set_error(rc, all);
	schedule_retry(rc);
}

/* The local address to connect to for the announced host:port (address_map), or NULL. */
static const char *map_address(const rconn *rc, const char *announced)
{
	if (!rc->amap)
		return announced;
	for (size_t i = 0; rc->amap[i] && rc->amap[i + 1]; i += 2)
		if (!strcasecmp(rc->amap[i], announced))
			return rc->amap[i + 1];
	return NULL;
}

/* "host:port" (with [] around an IPv6 host) from SENTINEL get-master-addr-by-name's reply. */
static char *master_from_reply(const redisReply *r)
{
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
		return NULL;
	const char *h = r->element[0]->str;
	return strchr(h, ':') ? xasprintf("[%s]:%s", h, r->element[1]->str)
	                      : xasprintf("%s:%s", h, r->element[1]->str);
}

/* +switch-master: "<name> <old ip> <old port> <new ip> <new port>". */
static void on_switch(redisAsyncContext *ac, void *reply, void *privdata)
{
	squery *sq = privdata;
	redisReply *r = reply;
	if (!r) {
		sq_unref(sq); /* the subscription's reference: the context is gone */
		return;
	}
	rconn *rc = sq->rc;
	if (!rc || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
	    r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "message") ||
	    r->element[2]->type != REDIS_REPLY_STRING)
		return; /* the subscribe confirmation, or not ours */
	char name[128], oh[64], nh[64];
	int op, np;
	if (sscanf(r->element[2]->str, "%127s %63s %d %63s %d", name, oh, &op, nh, &np) != 5 ||
	    strcmp(name, rc->master_name))
		return;
	_cleanup_free_ char *now =
	    strchr(nh, ':') ? xasprintf("[%s]:%d", nh, np) : xasprintf("%s:%d", nh, np);
	if (rc->announced && !strcmp(now, rc->announced))
		return;
	_cleanup_free_ char *why = xasprintf("sentinel %s: +switch-master %s to %s",
	                                     sentinel_addr(sq, rc), rc->master_name, now);
	log_warn("redis (%s): %s", rc->name, why);
	drop(rc, why);
}

static void sq_subscribe(squery *sq)
{
	rconn *rc = sq->rc;
	sq->watching = true;
	evtimer_del(sq->timeout);
	rc->watch_attempt = 0;
	log_debug("redis (%s): watching +switch-master on sentinel %s", rc->name,
	          sentinel_addr(sq, rc));
	if (redisAsyncCommand(sq->ac, on_switch, sq_hold(sq), "SUBSCRIBE +switch-master") !=
	    REDIS_OK)
		sq_unref(sq);
}

/* The master is known (and mapped): connect to it, or, when watching again, check that it is
 * still the one connected to. */
static void sq_named(squery *sq, const char *announced, const char *local)
{
	rconn *rc = sq->rc;
	if (sq->rewatch) {
		if (strcmp(announced, rc->announced)) {
			_cleanup_free_ char *why = xasprintf("sentinel %s names a new master %s",
			                                     sentinel_addr(sq, rc), announced);
			drop(rc, why);
			return;
		}
		sq_subscribe(sq);
		return;
	}
	if (!rc->announced || strcmp(announced, rc->announced))
		log_info("redis (%s): sentinel %s: master \"%s\" is %s%s%s", rc->name,
		         sentinel_addr(sq, rc), rc->master_name, announced,
		         strcmp(announced, local) ? ", reached at " : "",
		         strcmp(announced, local) ? local : "");
	free(rc->announced);
	rc->announced = xstrdup(announced);
	free(rc->address);
	rc->address = xstrdup(local);
	sq_subscribe(sq);
	connect_address(rc);
}

static void on_master_addr(redisAsyncContext *ac, void *reply, void *privdata)
{
	squery *sq = privdata;
	redisReply *r = reply;
	if (r && sq->rc) {
		_cleanup_free_ char *announced = master_from_reply(r);
		const char *local = announced ? map_address(sq->rc, announced) : NULL;
		if (!announced) {
			_cleanup_free_ char *why =
			    r->type == REDIS_REPLY_ERROR ? xstrdup(r->str)
			    : r->type == REDIS_REPLY_NIL
			        ? xasprintf("does not know the master \"%s\"", sq->rc->master_name)
			        : xstrdup("unexpected reply to SENTINEL get-master-addr-by-name");
			sq_failed(sq, why);
		} else if (!local) {
			_cleanup_free_ char *why = xasprintf(
			    "names the master %s, which has no tunnel in address_map (not "
			    "connecting around it)",
			    announced);
			sq_failed(sq, why);
		} else {
			sq_named(sq, announced, local);
		}
	}
	sq_unref(sq);
}

static void sq_ask(squery *sq)
{
	rconn *rc = sq->rc;
	if (redisAsyncCommand(sq->ac, on_master_addr, sq_hold(sq),
	                      "SENTINEL get-master-addr-by-name %s", rc->master_name) != REDIS_OK) {
		sq_unref(sq);
		sq_failed(sq, "cannot send");
	}
}

static void on_sq_auth(redisAsyncContext *ac, void *reply, void *privdata)
{
	squery *sq = privdata;
	redisReply *r = reply;
	if (r && sq->rc) {
		if (r->type == REDIS_REPLY_ERROR) {
			_cleanup_free_ char *why = xasprintf("AUTH failed: %s", r->str);
			sq_failed(sq, why);
		} else {
			sq_ask(sq);
		}
	}
	sq_unref(sq);
}

static void on_sq_connect(const redisAsyncContext *ac, int status)
{
	squery *sq = ac->data;
	if (!sq)
		return; /* closed by us */
	if (status != REDIS_OK) {
		/* hiredis frees the context after this callback: its reference goes here */
		sq->ac = NULL;
		sq_failed(sq, ac->errstr[0] ? ac->errstr : "connect failed");
		sq_unref(sq);
		return;
	}
	rconn *rc = sq->rc;
	if (!rc->s_password) {
		sq_ask(sq);
		return;
	}
	int ret = rc->s_user ? redisAsyncCommand(sq->ac, on_sq_auth, sq_hold(sq), "AUTH %s %s",
	                                         rc->s_user, rc->s_password)
	                     : redisAsyncCommand(sq->ac, on_sq_auth, sq_hold(sq), "AUTH %s",
	                                         rc->s_password);
	if (ret != REDIS_OK) {
		sq_unref(sq);
		sq_failed(sq, "cannot send AUTH");
	}
}

static void on_sq_disconnect(const redisAsyncContext *ac, int status)
{
	squery *sq = ac->data;
	if (!sq)
		return; /* closed by us */
	sq->ac = NULL;  /* hiredis frees it */
	rconn *rc = sq->rc;
	bool was_watching = sq->watching;
	_cleanup_free_ char *why = xstrdup(ac->errstr[0] ? ac->errstr : "connection closed");
	if (rc && was_watching) {
		/* the master connection goes on; only the watch is re-made */
		log_warn("redis %s (%s): sentinel %s closed the watch: %s", where(rc), rc->name,
		         sentinel_addr(sq, rc), why);
		sq_close(sq);
		rc->next_sentinel = (rc->next_sentinel + 1) % rc->n_sentinels;
		schedule_rewatch(rc);
	} else {
		sq_failed(sq, why);
	}
	sq_unref(sq); /* the context's reference */
}

static void on_sq_timeout(evutil_socket_t fd, short what, void *arg)
{
	sq_failed(arg, "no answer in time");
}

/* Opens a connection to the next sentinel: it names the master, then watches. */
static void sq_open(rconn *rc, bool rewatch)
{
	squery *sq = xzalloc(sizeof(*sq));
	sq->rc = rc;
	sq->refs = 1;
	sq->idx = rc->next_sentinel;
	sq->rewatch = rewatch;
	sq->timeout = evtimer_new(rc->base, on_sq_timeout, sq);
	rc->sq = sq;
	_cleanup_free_ char *msg = NULL;
	sq->ac =
	    open_ctx(rc->base, rc->sentinels[sq->idx], sq, on_sq_connect, on_sq_disconnect, &msg);
	if (!sq->ac) {
		sq_failed(sq, msg);
		sq_unref(sq);
		return;
	}
	set_timer(sq->timeout,
	          rc->timeout_ms < SENTINEL_TIMEOUT_MS ? rc->timeout_ms : SENTINEL_TIMEOUT_MS);
}

static void on_rewatch(evutil_socket_t fd, short what, void *arg)
{
	rconn *rc = arg;
	if (rc->ac && !rc->sq)
		sq_open(rc, true);
}

/* ---- connecting ---- */

static void start_connect(rconn *rc)
{
	if (!rc->sentinels) {
		connect_address(rc);
		return;
	}
	rc->tried = 0;
	sq_close(rc->sq);
	sq_open(rc, false);
}

static char **copy_strv(const char *const *v, size_t *n_out)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	char **c = xcalloc(n + 1, sizeof(*c));
	for (size_t i = 0; i < n; i++)
		c[i] = xstrdup(v[i]);
	if (n_out)
		*n_out = n;
	return c;
}

rconn *rconn_new(struct event_base *base, const rconn_opts *o)
{
	rconn *rc = xzalloc(sizeof(*rc));
	rc->base = base;
	rc->name = xstrdup(o->name ? o->name : "redis");
	rc->user = o->user ? xstrdup(o->user) : NULL;
	rc->password = o->password ? xstrdup(o->password) : NULL;
	rc->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 2000;
	rc->on_ready = o->on_ready;
	rc->on_lost = o->on_lost;
	rc->arg = o->arg;
	rc->retry_ev = evtimer_new(base, on_retry, rc);
	rc->connect_ev = evtimer_new(base, on_connect_timeout, rc);
	if (o->sentinels && o->sentinels[0]) {
		rc->sentinels = copy_strv(o->sentinels, &rc->n_sentinels);
		rc->master_name = xstrdup(o->master_name ? o->master_name : "mymaster");
		rc->s_user = o->sentinel_user ? xstrdup(o->sentinel_user) : NULL;
		rc->s_password = o->sentinel_password ? xstrdup(o->sentinel_password) : NULL;
		rc->amap = o->address_map ? copy_strv(o->address_map, NULL) : NULL;
		rc->watch_ev = evtimer_new(base, on_rewatch, rc);
	} else {
		rc->address = xstrdup(o->address);
	}
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
	sq_close(rc->sq);
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
	if (rc->watch_ev)
		event_free(rc->watch_ev);
	addr_list_free(rc->sentinels);
	addr_list_free(rc->amap);
	free(rc->master_name);
	free(rc->s_user);
	free(rc->s_password);
	free(rc->announced);
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

const char *rconn_address(const rconn *rc)
{
	return rc->address ? rc->address : "";
}
