/* WAIT after publishing, batched (durability.h). */
#include "daemon/durability.h"

#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/xalloc.h"

typedef struct waiter waiter;
struct waiter {
	durability_fn fn;
	void *arg;
	char *what;
	uint64_t conn; /* rconn_reconnects() when the write's reply came */
	waiter *next;
};

struct durability {
	rconn *rc;
	metrics *m;
	int64_t replicas, timeout_ms;
	waiter *queued, **queued_tail; /* for the next WAIT */
	waiter *inflight;              /* covered by the WAIT in flight */
	uint64_t sent_conn;            /* rconn_reconnects() when it was sent */
	bool closing;                  /* freed while a WAIT was in flight */
};

static void send_wait(durability *d);

/* Runs and frees a batch; acked is WAIT's answer, or -1 when it failed. */
static void finish_batch(durability *d, waiter *w, long long acked, const char *why)
{
	while (w) {
		waiter *next = w->next;
		bool ok = acked >= d->replicas && w->conn == d->sent_conn;
		if (!ok) {
			d->m->unreplicated++;
			if (acked < 0 || w->conn != d->sent_conn)
				log_warn(
				    "task %s: published, but not confirmed by any replica (%s): a "
				    "failover now may lose the result and run the task again",
				    w->what,
				    w->conn != d->sent_conn ? "the connection changed" : why);
			else
				log_warn(
				    "task %s: published, but %lld of %lld replicas confirmed it "
				    "within %lld ms: a failover now may lose the result and run "
				    "the "
				    "task again",
				    w->what, acked, (long long)d->replicas,
				    (long long)d->timeout_ms);
		}
		w->fn(w->arg, ok);
		free(w->what);
		free(w);
		w = next;
	}
}

static void on_wait(rconn *rc, redisReply *r, void *arg)
{
	durability *d = arg;
	waiter *batch = d->inflight;
	d->inflight = NULL;
	long long acked = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
	const char *why = !r                             ? rconn_last_error(rc)
	                  : r->type == REDIS_REPLY_ERROR ? r->str
	                                                 : "unexpected reply to WAIT";
	finish_batch(d, batch, acked, why);
	if (d->closing) {
		finish_batch(d, d->queued, -1, "shutting down");
		free(d);
		return;
	}
	if (d->queued)
		send_wait(d);
}

static void send_wait(durability *d)
{
	d->inflight = d->queued;
	d->queued = NULL;
	d->queued_tail = &d->queued;
	d->sent_conn = rconn_reconnects(d->rc);
	_cleanup_free_ char *n = xasprintf("%lld", (long long)d->replicas);
	_cleanup_free_ char *ms = xasprintf("%lld", (long long)d->timeout_ms);
	const char *argv[] = {"WAIT", n, ms};
	size_t lens[] = {4, strlen(n), strlen(ms)};
	/* WAIT blocks for up to its timeout: the request's own timer allows for that. */
	rconn_cmdv(d->rc, on_wait, d, d->timeout_ms, 3, argv, lens);
}

durability *durability_new(rconn *rc, int64_t replicas, int64_t timeout_ms, metrics *m)
{
	durability *d = xzalloc(sizeof(*d));
	d->rc = rc;
	d->m = m;
	d->replicas = replicas;
	d->timeout_ms = timeout_ms;
	d->queued_tail = &d->queued;
	return d;
}

durability *durability_free(durability *d)
{
	if (!d)
		return NULL;
	if (d->inflight) {
		d->closing = true; /* on_wait finishes both batches and frees */
		return NULL;
	}
	finish_batch(d, d->queued, -1, "shutting down");
	free(d);
	return NULL;
}

bool durability_enabled(const durability *d)
{
	return d && d->replicas > 0;
}

void durability_wait(durability *d, const char *what, durability_fn cb, void *arg)
{
	waiter *w = xzalloc(sizeof(*w));
	w->fn = cb;
	w->arg = arg;
	w->what = xstrdup(what ? what : "?");
	w->conn = rconn_reconnects(d->rc);
	*d->queued_tail = w;
	d->queued_tail = &w->next;
	if (!d->inflight)
		send_wait(d);
}
