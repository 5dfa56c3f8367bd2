/* One PostgreSQL connection on the libevent loop, never blocking it: PQconnectStart and
 * PQconnectPoll driven by the socket's readiness, queries with PQsendQuery(Params), PQflush
 * and PQconsumeInput, a timer on connecting and on every query (a query that times out, or any
 * connection failure, drops the connection; it is re-made with jittered backoff). One query at
 * a time: the call log writer is the only user. A conninfo naming a host by name makes libpq
 * resolve it synchronously: use hostaddr= or a unix socket directory (documented). */
#include "gateway/pg.h"

#include <event2/event.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "daemon/redis.h"

typedef enum pg_state { PG_DOWN = 0, PG_CONNECTING, PG_SETUP, PG_IDLE, PG_BUSY } pg_state;

struct pgc {
	struct event_base *base;
	char *conninfo, *setup;
	int64_t timeout_ms;
	void (*on_ready)(pgc *p, void *arg);
	void *arg;
	PGconn *conn;
	pg_state state;
	struct event *io, *deadline, *retry;
	int attempt;
	uint64_t errors;
	char *last_error;
	/* the query in flight */
	pgc_fn cb;
	void *cb_arg;
	bool q_ok;
	char *q_error, *q_tuples;
};

static void start_connect(pgc *p);
static void on_io(evutil_socket_t fd, short what, void *arg);

static void set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = v ? xstrdup(v) : NULL;
}

static void wait_io(pgc *p, short what)
{
	if (p->io)
		event_free(p->io);
	p->io = event_new(p->base, PQsocket(p->conn), what, on_io, p);
	event_add(p->io, NULL);
}

static void arm_deadline(pgc *p)
{
	struct timeval tv = {p->timeout_ms / 1000, (p->timeout_ms % 1000) * 1000};
	evtimer_add(p->deadline, &tv);
}

/* Forgets the connection; a query in flight fails. */
static void fail(pgc *p, const char *why)
{
	char msg[512];
	snprintf(msg, sizeof(msg), "%s", why && why[0] ? why : "connection lost");
	msg[strcspn(msg, "\n")] = '\0';
	bool was_up = p->state >= PG_IDLE;
	set_str(&p->last_error, msg);
	p->errors++;
	if (p->io)
		event_free(p->io);
	p->io = NULL;
	evtimer_del(p->deadline);
	if (p->conn)
		PQfinish(p->conn);
	p->conn = NULL;
	p->state = PG_DOWN;
	if (was_up)
		log_warn("postgres: connection lost: %s", msg);
	int64_t ms = rconn_backoff_ms(p->attempt++, 250, 5000);
	log_debug("postgres: %s; retrying in %lld ms", msg, (long long)ms);
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(p->retry, &tv);
	pgc_fn cb = p->cb;
	p->cb = NULL;
	if (cb)
		cb(p, false, msg, NULL, p->cb_arg);
}

static void query_done(pgc *p)
{
	evtimer_del(p->deadline);
	pgc_fn cb = p->cb;
	p->cb = NULL;
	bool setup = p->state == PG_SETUP;
	p->state = PG_IDLE;
	if (setup) {
		if (!p->q_ok) {
			_cleanup_free_ char *m = xasprintf("schema setup: %s", p->q_error);
			fail(p, m);
			return;
		}
		p->attempt = 0;
		log_info("postgres: connected");
		if (p->on_ready)
			p->on_ready(p, p->arg);
		return;
	}
	if (cb)
		cb(p, p->q_ok, p->q_error, p->q_tuples, p->cb_arg);
}

static void read_results(pgc *p)
{
	if (!PQconsumeInput(p->conn)) {
		fail(p, PQerrorMessage(p->conn));
		return;
	}
	while (!PQisBusy(p->conn)) {
		PGresult *r = PQgetResult(p->conn);
		if (!r) {
			query_done(p);
			return;
		}
		ExecStatusType st = PQresultStatus(r);
		if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
			p->q_ok = false;
			set_str(&p->q_error, PQresultErrorMessage(r));
		} else {
			set_str(&p->q_tuples, PQcmdTuples(r));
		}
		PQclear(r);
	}
	wait_io(p, EV_READ);
}

static void flush(pgc *p)
{
	int r = PQflush(p->conn);
	if (r < 0)
		fail(p, PQerrorMessage(p->conn));
	else
		wait_io(p, r ? EV_READ | EV_WRITE : EV_READ);
}

static void connect_step(pgc *p)
{
	switch (PQconnectPoll(p->conn)) {
	case PGRES_POLLING_READING:
		wait_io(p, EV_READ);
		return;
	case PGRES_POLLING_WRITING:
		wait_io(p, EV_WRITE);
		return;
	case PGRES_POLLING_OK:
		break;
	default:
		fail(p, PQerrorMessage(p->conn));
		return;
	}
	p->state = PG_SETUP;
	p->q_ok = true;
	if (!PQsendQuery(p->conn, p->setup)) {
		fail(p, PQerrorMessage(p->conn));
		return;
	}
	arm_deadline(p);
	flush(p);
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
	pgc *p = arg;
	if (p->state == PG_CONNECTING) {
		connect_step(p);
		return;
	}
	if (what & EV_WRITE) {
		int r = PQflush(p->conn);
		if (r < 0) {
			fail(p, PQerrorMessage(p->conn));
			return;
		}
		if (r == 1 && !(what & EV_READ)) {
			wait_io(p, EV_READ | EV_WRITE);
			return;
		}
	}
	read_results(p);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	pgc *p = arg;
	fail(p, p->state == PG_CONNECTING ? "connect timed out" : "query timed out");
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	start_connect(arg);
}

static void on_notice(void *arg, const char *msg)
{
	log_debug("postgres: %.*s", (int)strcspn(msg, "\n"), msg);
}

static void start_connect(pgc *p)
{
	p->conn = PQconnectStart(p->conninfo);
	if (!p->conn || PQstatus(p->conn) == CONNECTION_BAD) {
		fail(p, p->conn ? PQerrorMessage(p->conn) : "out of memory");
		return;
	}
	PQsetnonblocking(p->conn, 1);
	PQsetNoticeProcessor(p->conn, on_notice, p);
	p->state = PG_CONNECTING;
	arm_deadline(p);
	wait_io(p, EV_WRITE);
}

pgc *pgc_new(struct event_base *base, const pgc_opts *o)
{
	pgc *p = xzalloc(sizeof(*p));
	p->base = base;
	p->conninfo = xstrdup(o->conninfo);
	p->setup = xstrdup(o->setup_sql ? o->setup_sql : "SELECT 1");
	p->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 5000;
	p->on_ready = o->on_ready;
	p->arg = o->arg;
	p->deadline = evtimer_new(base, on_deadline, p);
	p->retry = evtimer_new(base, on_retry, p);
	set_str(&p->last_error, "not connected yet");
	start_connect(p);
	return p;
}

pgc *pgc_free(pgc *p)
{
	if (!p)
		return NULL;
	p->cb = NULL;
	if (p->io)
		event_free(p->io);
	event_free(p->deadline);
	event_free(p->retry);
	if (p->conn)
		PQfinish(p->conn);
	free(p->conninfo);
	free(p->setup);
	free(p->last_error);
	free(p->q_error);
	free(p->q_tuples);
	free(p);
	return NULL;
}

bool pgc_ready(const pgc *p)
{
	return p && p->state == PG_IDLE;
}

bool pgc_connected(const pgc *p)
{
	return p && (p->state == PG_IDLE || p->state == PG_BUSY);
}

const char *pgc_last_error(const pgc *p)
{
	return p->last_error ? p->last_error : "";
}

uint64_t pgc_errors(const pgc *p)
{
	return p->errors;
}

int pgc_query(pgc *p, const char *sql, int nparams, const char *const *params, pgc_fn cb, void *arg)
{
	if (!pgc_ready(p))
		return -1;
	int ok = nparams > 0 ? PQsendQueryParams(p->conn, sql, nparams, NULL, params, NULL, NULL, 0)
	                     : PQsendQuery(p->conn, sql);
	p->state = PG_BUSY;
	p->cb = cb;
	p->cb_arg = arg;
	p->q_ok = true;
	set_str(&p->q_error, NULL);
	set_str(&p->q_tuples, NULL);
	if (!ok) {
		fail(p, PQerrorMessage(p->conn));
		return 0; /* cb has been called */
	}
	arm_deadline(p);
	flush(p);
	return 0;
}
