/* An asynchronous PostgreSQL connection on the libevent loop (pg.c): nonblocking connect,
 * one query at a time, timeouts, reconnect with backoff. Used by the call log writer. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct event_base;
typedef struct pgc pgc;

/* Called once per query: ok, or the error message (borrowed); tuples: PQcmdTuples of the last
 * result ("3" rows inserted), borrowed, may be NULL. */
typedef void (*pgc_fn)(pgc *p, bool ok, const char *error, const char *tuples, void *arg);

typedef struct pgc_opts {
	const char *conninfo;
	const char *setup_sql; /* run (PQsendQuery) after every connect, before ready */
	int64_t timeout_ms;    /* connecting, and each query */
	void (*on_ready)(pgc *p, void *arg);
	void *arg;
} pgc_opts;

/* Starts connecting; never fails (retries with backoff, logging at debug level). */
pgc *pgc_new(struct event_base *base, const pgc_opts *o);
pgc *pgc_free(pgc *p);
/* Connected, set up and idle: a query may be sent. */
bool pgc_ready(const pgc *p);
bool pgc_connected(const pgc *p);
const char *pgc_last_error(const pgc *p);
uint64_t pgc_errors(const pgc *p);
/* Sends a query (nparams > 0: PQsendQueryParams with text parameters; 0: PQsendQuery). cb is
 * called exactly once, possibly before this returns (a send failure). Returns -1 (cb not
 * called) when not ready. */
int pgc_query(pgc *p, const char *sql, int nparams, const char *const *params, pgc_fn cb,
              void *arg);
