/* One Redis connection for aispd on the libevent loop (hiredis async). hiredis 0.14 has no
 * timeouts, so every request carries a libevent timer: a request that times out declares the
 * connection dead; the connection is then freed and re-made with jittered backoff. AUTH (with
 * an ACL user when set) runs before the connection counts as ready.
 *
 * Sentinel (hiredis 0.14 has none): with sentinels and a master name instead of an address,
 * every (re)connect first asks the sentinels in turn (each with a short timeout) for the
 * master (SENTINEL get-master-addr-by-name), connects there, and counts as ready only once
 * ROLE says "master". The sentinel that answered stays subscribed to +switch-master: a switch
 * of this master drops the connection, and the reconnect asks again. Replies that mean the
 * server is no longer (or not yet) a usable master (READONLY, LOADING, MASTERDOWN) drop the
 * connection the same way, after the caller got the reply. deploy/REDIS.md has the setup. */
#pragma once

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct event_base;
typedef struct rconn rconn;

typedef struct rconn_opts {
	const char *name;    /* for logs: "cmd", "read" */
	const char *address; /* host:port or unix:/path */
	const char *user;    /* ACL user or NULL */
	const char *password;
	int64_t timeout_ms; /* per request, and for connecting */
	void (*on_ready)(rconn *rc, void *arg);
	void (*on_lost)(rconn *rc, void *arg);
	void *arg;
	/* Sentinel, an alternative to address (which is then unused): NULL-terminated host:port
	 * list, and the master's name. Sentinels are asked in turn, starting after the last one
	 * that answered. */
	const char *const *sentinels;
	const char *master_name;
	const char *sentinel_user; /* AUTH to the sentinels, when they require it */
	const char *sentinel_password;
	/* With sentinels: NULL-terminated pairs (announced host:port, local address). A master is
	 * reached at the local address of its pair (a TLS tunnel); one without a pair is refused
	 * (never reached around the tunnel). NULL: connect to the address Sentinel names. */
	const char *const *address_map;
} rconn_opts;

/* Called once per request: reply is the reply (borrowed, freed by hiredis after the call), or
 * NULL when the request failed (not connected, timed out, connection lost). */
typedef void (*rconn_reply_fn)(rconn *rc, redisReply *reply, void *arg);

/* Creates the connection object and starts connecting. Never fails for an unreachable server:
 * it logs and retries. */
rconn *rconn_new(struct event_base *base, const rconn_opts *o);
/* Frees the connection; pending requests get their callback with NULL first. Not from inside
 * one of its own callbacks. */
rconn *rconn_free(rconn *rc);
bool rconn_ready(const rconn *rc);
uint64_t rconn_reconnects(const rconn *rc);
/* The last connection error, for /healthz ("connection refused"); borrowed. */
const char *rconn_last_error(const rconn *rc);
/* Where the connection goes (or last went): the address, or with Sentinel the master's local
 * address, "" before one is known. Borrowed, valid until the next reconnect. */
const char *rconn_address(const rconn *rc);

/* Sends a command (argv form, binary safe). cb (may be NULL) is always called exactly once,
 * from the loop (never before this function returns when not connected). extra_ms adds to
 * the timeout (blocking commands). */
void rconn_cmdv(rconn *rc, rconn_reply_fn cb, void *arg, int64_t extra_ms, int argc,
                const char **argv, const size_t *lens);
/* Convenience: NULL-terminated list of C strings. */
void rconn_cmd(rconn *rc, rconn_reply_fn cb, void *arg, ...) __attribute__((sentinel));

/* Is this reply an error whose message starts with prefix ("NOSCRIPT", "BUSYGROUP")? */
bool rconn_reply_is_error(const redisReply *r, const char *prefix);

/* Jittered exponential backoff: base * 2^attempt capped at max, times a random 0.5..1.5. */
int64_t rconn_backoff_ms(int attempt, int64_t base, int64_t max);
