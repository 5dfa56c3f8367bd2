/* Live output events on a task's reply stream (daemon/live.h). */
#include "daemon/live.h"

#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"

struct live {
	rconn *rc;
	char *stream, *id;
	int64_t ttl_ms;
	struct event *timer;
	buf pending[2];     /* stdout, stderr bytes not sent yet */
	uint64_t offset[2]; /* where pending[k] starts in its stream */
	size_t budget;      /* data bytes the task's events may still carry */
	unsigned events;    /* output events sent */
	bool ttl_set;
};

static const char *const stream_names[2] = {"stdout", "stderr"};

static void set_ttl(live *l)
{
	if (l->ttl_set)
		return;
	l->ttl_set = true;
	char ms[24];
	snprintf(ms, sizeof(ms), "%lld", (long long)l->ttl_ms);
	rconn_cmd(l->rc, NULL, NULL, "PEXPIRE", l->stream, ms, NULL);
}

/* The bytes at the end of p[0..n) that start a UTF-8 sequence not complete yet (0 to 3): held
 * back until the next flush, so that an event never splits a character (a text client, the
 * gateway's NDJSON, would see two U+FFFD). */
static size_t utf8_tail(const uint8_t *p, size_t n)
{
	for (size_t i = 1; i <= 3 && i <= n; i++) {
		uint8_t c = p[n - i];
		if ((c & 0xC0) == 0x80)
			continue; /* a continuation byte: look further back */
		size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
		return need > i ? i : 0;
	}
	return 0;
}

/* Sends stream k's pending bytes (all of them when final, else up to a whole character). */
static void flush_stream(live *l, int k, bool final)
{
	buf *b = &l->pending[k];
	size_t keep = final ? 0 : utf8_tail(b->data, b->len);
	if (b->len == keep)
		return;
	if (++l->events > LIVE_EVENTS_MAX) { /* past the cap nothing more is sent */
		l->budget = 0;
		buf_reset(b);
		return;
	}
	char off[24];
	snprintf(off, sizeof(off), "%llu", (unsigned long long)l->offset[k]);
	const char *argv[] = {"XADD",
	                      l->stream,
	                      "*",
	                      "id",
	                      l->id,
	                      "event",
	                      "output",
	                      "stream",
	                      stream_names[k],
	                      "offset",
	                      off,
	                      "data",
	                      (const char *)b->data};
	size_t lens[ARRAY_SIZE(argv)];
	for (size_t i = 0; i < ARRAY_SIZE(argv); i++)
		lens[i] = strlen(argv[i]);
	size_t n = b->len - keep;
	lens[ARRAY_SIZE(argv) - 1] = n; /* binary safe: the program's bytes */
	rconn_cmdv(l->rc, NULL, NULL, 0, (int)ARRAY_SIZE(argv), argv, lens);
	set_ttl(l);
	l->offset[k] += n;
	memmove(b->data, b->data + n, keep);
	b->len = keep;
	b->data[keep] = '\0';
}

static void flush(live *l, bool final)
{
	flush_stream(l, 0, final);
	flush_stream(l, 1, final);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	flush(arg, false);
}

live *live_new(struct event_base *base, rconn *rc, const char *stream, const char *id,
               int64_t ttl_ms)
{
	live *l = xcalloc(1, sizeof(*l));
	l->rc = rc;
	l->stream = xstrdup(stream);
	l->id = xstrdup(id);
	l->ttl_ms = ttl_ms;
	l->budget = LIVE_TOTAL_MAX;
	l->timer = evtimer_new(base, on_timer, l);
	buf_init(&l->pending[0]);
	buf_init(&l->pending[1]);
	return l;
}

void live_started(live *l, const char *node, const char *runtime, const char *sandbox)
{
	char at[24];
	snprintf(at, sizeof(at), "%lld", (long long)now_wall_ms());
	rconn_cmd(l->rc, NULL, NULL, "XADD", l->stream, "*", "id", l->id, "event", "started",
	          "node", node, "runtime", runtime, "sandbox", sandbox, "at_ms", at, NULL);
	set_ttl(l);
}

void live_output(live *l, int stream, const uint8_t *p, size_t n)
{
	if (stream < 0 || stream > 1)
		return;
	buf *b = &l->pending[stream];
	/* Past the budget nothing more is sent: the result has it. */
	size_t take = n < l->budget ? n : l->budget;
	bool cut = take < n;
	while (take) {
		size_t room = LIVE_EVENT_MAX - b->len;
		size_t k = take < room ? take : room;
		buf_append(b, p, k);
		l->budget -= k, p += k, take -= k;
		if (b->len == LIVE_EVENT_MAX)
			flush_stream(l, stream, false);
	}
	if (cut) { /* the budget ends here: a character it cut in two is never sent */
		b->len -= utf8_tail(b->data, b->len);
		if (b->data)
			b->data[b->len] = '\0';
	}
	if ((l->pending[0].len || l->pending[1].len) && !evtimer_pending(l->timer, NULL)) {
		struct timeval tv = {0, LIVE_FLUSH_MS * 1000};
		evtimer_add(l->timer, &tv);
	}
}

void live_end(live *l)
{
	if (!l)
		return;
	flush(l, true);
	event_free(l->timer);
	buf_deinit(&l->pending[0]);
	buf_deinit(&l->pending[1]);
	free(l->stream);
	free(l->id);
	free(l);
}
