/* The connection layer under evhttp (libevent 2.1 has no connection cap, no request deadline
 * and no hook for its own error pages): every connection's bufferevent is made here
 * (evhttp_set_bevcb) and tracked, which gives
 *
 *  - a connection cap: a connection beyond max_connections gets a 503 problem+json written
 *    to its socket and is shut down;
 *  - a request deadline against slow clients (slowloris, slow bodies): a connection must
 *    deliver a whole request within request_timeout_s of connecting or of its previous reply
 *    (evhttp's own timeout only bounds the gap between two bytes); past it the client gets a
 *    408 (if it had started a request) and the socket is shut down, which evhttp sees as EOF;
 *  - no HTML: evhttp answers malformed requests and bodies over the limit itself, with an
 *    HTML page. Bytes the gateway writes are marked (the gw_conn_send* wrappers); anything
 *    else evhttp adds to a connection's output is its own. An HTML page there is replaced,
 *    in the same loop iteration and before the socket is written, by the problem+json of the
 *    same status. (Own bytes and evhttp's never interleave: evhttp writes an error page only
 *    when no request is with the gateway and the previous reply has drained.)
 *
 * Lifetime: the gateway holds a reference on each bufferevent, so that it outlives evhttp's
 * connection; evhttp clears its callbacks when it frees the connection, and the sweep (every
 * 200 ms) then drops the reference (closing the socket) and forgets the connection. */
#include "gateway/gateway.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"

#define SWEEP_MS      200
#define READ_HIGH_WM  (256 * 1024)
#define HEAD_PEEK_MAX 4096

typedef struct gw_conn gw_conn;
struct gw_conn {
	gw_conns *cs;
	struct bufferevent *bev;
	int64_t deadline_ms; /* 0 while the gateway handles a request */
	uint64_t bytes_in;   /* received since the last reply completed */
	/* what has arrived of the current request, to say precisely why evhttp refused it */
	bool in_body;
	buf head;               /* the request line and headers so far (bounded) */
	int64_t content_length; /* -1: none */
	bool chunked;
	uint64_t body_in;
	char chunk1[24]; /* the start of a chunked body: its first chunk-size line */
	size_t chunk1_len;
	size_t foreign_start; /* offset of evhttp's own bytes in the output, or SIZE_MAX */
	bool own;             /* inside a gw_conn_send* call */
	bool rewriting;
	bool refused;
	bool expired;
	struct event *fix_ev;
	gw_conn *next;
};

struct gw_conns {
	gw *g;
	gw_conn *list;
	size_t n;
	struct event *sweep_ev;
};

/* A whole HTTP/1.1 reply with a problem+json body that closes the connection. */
static void problem_message(int status, const char *slug, const char *detail, buf *msg)
{
	buf body = BUF_INIT;
	gw_problem_render(&body, status, slug, detail, NULL, NULL);
	buf_appendf(msg,
	            "HTTP/1.1 %d %s\r\nContent-Type: application/problem+json\r\n"
	            "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
	            status, gw_status_reason(status), body.len, buf_str(&body));
	buf_deinit(&body);
}

static void send_raw(gw_conn *c, int status, const char *slug, const char *detail)
{
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	if (fd < 0)
		return;
	buf msg = BUF_INIT;
	problem_message(status, slug, detail, &msg);
	/* best effort: a client that does not read does not get it */
	(void)!send(fd, msg.data, msg.len, MSG_DONTWAIT | MSG_NOSIGNAL);
	shutdown(fd, SHUT_RDWR);
	buf_deinit(&msg);
}

/* Copies up to n bytes of b from offset at into dst: the count, or -1 when evbuffer failed
 * (the input's start is never frozen, so this needs no unfreezing). */
static ev_ssize_t copy_at(struct evbuffer *b, size_t at, void *dst, size_t n)
{
	struct evbuffer_ptr p;
	if (evbuffer_ptr_set(b, &p, at, EVBUFFER_PTR_SET) < 0)
		return -1;
	return evbuffer_copyout_from(b, &p, dst, n);
}

/* Why evhttp refused the request (its page only says 400 or 413): the status to answer, the
 * problem's slug and a precise detail, from what arrived of the request. */
static int page_detail(const gw_conn *c, int status, const char **slug, char *tmp, size_t n)
{
	const gw_config *cfg = c->cs->g->cfg;
	long long mh = (long long)cfg->max_headers_bytes, mb = (long long)cfg->max_body_bytes;
	*slug = "malformed-request";
	if (!c->in_body && c->head.len > (size_t)cfg->max_headers_bytes) {
		*slug = "headers-too-large";
		snprintf(tmp, n, "the request line and headers are more than the %lld-byte limit",
		         mh);
		return 431;
	}
	if (status != 413 || !c->in_body) {
		snprintf(tmp, n,
		         "malformed HTTP request: the request line or a header could not be "
		         "parsed");
		return 400;
	}
	if (c->content_length > mb) {
		*slug = "too-large";
		snprintf(tmp, n, "the body is %lld bytes, above the %lld-byte limit",
		         (long long)c->content_length, mb);
		return 413;
	}
	if (c->chunked && c->body_in <= (uint64_t)mb) {
		char *end = NULL;
		long long size = strtoll(c->chunk1, &end, 16);
		if (end != c->chunk1 && size > mb) {
			*slug = "too-large";
			snprintf(tmp, n, "a chunk of %lld bytes is above the %lld-byte body limit",
			         size, mb);
			return 413;
		}
		snprintf(tmp, n, "malformed HTTP request: the chunked body could not be read");
		return 400;
	}
	*slug = "too-large";
	snprintf(tmp, n,
	         "the request's headers or body are above their limits (%lld and %lld bytes)", mh,
	         mb);
	return 413;
}

/* The request line and headers are complete (end: just past the blank line): the body's
 * framing, for page_detail. */
static void head_done(gw_conn *c, size_t end)
{
	c->in_body = true;
	c->body_in = c->head.len - end;
	c->chunk1_len = c->body_in < sizeof(c->chunk1) - 1 ? c->body_in : sizeof(c->chunk1) - 1;
	memcpy(c->chunk1, c->head.data + end, c->chunk1_len);
	c->chunk1[c->chunk1_len] = '\0';
	c->head.data[end] = '\0';
	const char *h = (const char *)c->head.data;
	const char *cl = strcasestr(h, "\r\nContent-Length:");
	c->content_length = cl ? strtoll(cl + 17, NULL, 10) : -1;
	const char *te = strcasestr(h, "\r\nTransfer-Encoding:");
	const char *eol = te ? strstr(te + 2, "\r\n") : NULL;
	const char *ch = te ? strcasestr(te, "chunked") : NULL;
	c->chunked = ch && eol && ch < eol;
	buf_deinit(&c->head);
}

static void request_reset(gw_conn *c)
{
	c->bytes_in = 0;
	c->in_body = false;
	buf_deinit(&c->head);
	c->content_length = -1;
	c->chunked = false;
	c->body_in = 0;
	c->chunk1_len = 0;
	c->chunk1[0] = '\0';
}

/* The problem+json reply that stands for evhttp's page of this status. */
static void page_reply(const gw_conn *c, int status, buf *msg)
{
	char detail[256];
	const char *slug;
	status = page_detail(c, status, &slug, detail, sizeof(detail));
	problem_message(status, slug, detail, msg);
}

/* out[0..start) stays, out[start..] becomes msg. The start of a socket bufferevent's output
 * is frozen once it has written anything (bufferevent_writecb refreezes it after each write),
 * so on a connection that already served a request every read or drain of the front fails:
 * unfreeze it for the rewrite and freeze it again, as libevent does around its own writes
 * (freezing a start that was not frozen is harmless: every path of libevent that drains the
 * output unfreezes it first). Returns 0, or -1 when an evbuffer call failed. */
static int splice_page(struct evbuffer *out, size_t start, const buf *msg)
{
	struct evbuffer *keep = evbuffer_new();
	size_t len = evbuffer_get_length(out);
	int rc = keep ? 0 : -1;
	if (rc == 0 && evbuffer_unfreeze(out, 1) < 0)
		rc = -1;
	if (rc == 0 &&
	    (evbuffer_remove_buffer(out, keep, start) != (int)start ||
	     evbuffer_drain(out, len - start) < 0 || evbuffer_add_buffer(out, keep) < 0 ||
	     evbuffer_add(out, msg->data, msg->len) < 0))
		rc = -1;
	if (evbuffer_freeze(out, 1) < 0)
		rc = -1;
	if (keep)
		evbuffer_free(keep);
	return rc;
}

/* Replaces evhttp's HTML page at the end of the output (from foreign_start on). When that
 * cannot be done the connection is shut down rather than let HTML through. */
static void rewrite_page(gw_conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t len = evbuffer_get_length(out), start = c->foreign_start;
	c->foreign_start = SIZE_MAX;
	if (start >= len)
		return;
	char head[HEAD_PEEK_MAX + 1];
	ev_ssize_t got = -1;
	if (evbuffer_unfreeze(out, 1) == 0) /* see splice_page */
		got = copy_at(out, start, head, HEAD_PEEK_MAX);
	if (evbuffer_freeze(out, 1) < 0 || got < 0) {
		log_warn("connection: evhttp's reply could not be read to replace it: closed");
		shutdown(bufferevent_getfd(c->bev), SHUT_RDWR);
		return;
	}
	head[got] = '\0';
	char *eoh = strstr(head, "\r\n\r\n");
	int status = 0;
	if (!eoh || sscanf(head, "HTTP/1.%*d %d", &status) != 1)
		return;
	*eoh = '\0';
	if (!strcasestr(head, "\r\nContent-Type: text/html"))
		return; /* 100 Continue and the like pass */
	buf msg = BUF_INIT;
	page_reply(c, status, &msg);
	c->rewriting = true;
	int rc = splice_page(out, start, &msg);
	c->rewriting = false;
	buf_deinit(&msg);
	if (rc < 0) {
		log_warn("connection: evhttp's %d page could not be replaced: closed", status);
		shutdown(bufferevent_getfd(c->bev), SHUT_RDWR);
		return;
	}
	c->cs->g->m.error_pages++;
}

static void on_fix(evutil_socket_t fd, short what, void *arg)
{
	gw_conn *c = arg;
	if (c->refused) {
		char detail[128];
		snprintf(detail, sizeof(detail), "too many connections (the limit is %lld)",
		         (long long)c->cs->g->cfg->max_connections);
		send_raw(c, 503, "overloaded", detail);
		return;
	}
	rewrite_page(c);
}

static void on_output(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	gw_conn *c = arg;
	if (c->rewriting || c->own || !info->n_added || c->foreign_start != SIZE_MAX)
		return;
	c->foreign_start = info->orig_size - info->n_deleted;
	event_active(c->fix_ev, EV_TIMEOUT, 0);
}

static void on_input(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	gw_conn *c = arg;
	if (!info->n_added)
		return;
	c->bytes_in += info->n_added;
	if (c->in_body) {
		if (c->chunked && c->chunk1_len < sizeof(c->chunk1) - 1) {
			ev_ssize_t got =
			    copy_at(b, info->orig_size - info->n_deleted, c->chunk1 + c->chunk1_len,
			            sizeof(c->chunk1) - 1 - c->chunk1_len);
			c->chunk1_len += got > 0 ? (size_t)got : 0; /* -1: a vaguer detail */
			c->chunk1[c->chunk1_len] = '\0';
		}
		c->body_in += info->n_added;
		return;
	}
	/* copy the new bytes (at most max_headers_bytes + 4 kept) and look for the blank line */
	size_t cap = (size_t)c->cs->g->cfg->max_headers_bytes + 4, old = c->head.len;
	size_t take = old >= cap ? 0 : info->n_added < cap - old ? info->n_added : cap - old;
	if (take) {
		buf_reserve(&c->head, take + 1);
		ev_ssize_t got =
		    copy_at(b, info->orig_size - info->n_deleted, c->head.data + old, take);
		c->head.len += got > 0 ? (size_t)got : 0; /* -1: a vaguer detail */
		c->head.data[c->head.len] = '\0';
	} else {
		return; /* over the limit: evhttp refuses it, page_detail says why */
	}
	size_t from = old > 3 ? old - 3 : 0;
	const char *end = memmem(c->head.data + from, c->head.len - from, "\r\n\r\n", 4);
	if (end)
		head_done(c, (size_t)(end - (const char *)c->head.data) + 4);
}

static struct bufferevent *on_new_bev(struct event_base *base, void *arg)
{
	gw_conns *cs = arg;
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!bev)
		return NULL;
	bufferevent_incref(bev);
	bufferevent_setwatermark(bev, EV_READ, 0, READ_HIGH_WM);
	gw_conn *c = xzalloc(sizeof(*c));
	c->cs = cs;
	c->bev = bev;
	c->foreign_start = SIZE_MAX;
	c->content_length = -1;
	c->deadline_ms = now_mono_ms() + cs->g->cfg->request_timeout_s * 1000;
	c->fix_ev = event_new(base, -1, 0, on_fix, c);
	evbuffer_add_cb(bufferevent_get_output(bev), on_output, c);
	evbuffer_add_cb(bufferevent_get_input(bev), on_input, c);
	if (cs->n >= (size_t)cs->g->cfg->max_connections) {
		c->refused = true; /* answered once evhttp has given it its socket */
		cs->g->m.conns_refused++;
		event_active(c->fix_ev, EV_TIMEOUT, 0);
	}
	c->next = cs->list;
	cs->list = c;
	cs->n++;
	return bev;
}

static void conn_free(gw_conn *c)
{
	evbuffer_remove_cb(bufferevent_get_output(c->bev), on_output, c);
	evbuffer_remove_cb(bufferevent_get_input(c->bev), on_input, c);
	event_free(c->fix_ev);
	bufferevent_decref(c->bev);
	buf_deinit(&c->head);
	free(c);
}

static bool orphaned(const gw_conn *c)
{
	bufferevent_event_cb ev = NULL;
	bufferevent_getcb(c->bev, NULL, NULL, &ev, NULL);
	return ev == NULL;
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	gw_conns *cs = arg;
	int64_t now = now_mono_ms();
	for (gw_conn **pp = &cs->list; *pp;) {
		gw_conn *c = *pp;
		if (orphaned(c)) {
			*pp = c->next;
			cs->n--;
			conn_free(c);
			continue;
		}
		if (c->deadline_ms && now > c->deadline_ms && !c->expired && !c->refused) {
			c->expired = true;
			cs->g->m.conns_timed_out++;
			if (c->bytes_in)
				send_raw(c, 408, "request-timeout",
				         "the request did not arrive completely within "
				         "request_timeout_s");
			else
				shutdown(bufferevent_getfd(c->bev), SHUT_RDWR);
		}
		pp = &c->next;
	}
}

gw_conns *gw_conns_new(gw *g)
{
	gw_conns *cs = xzalloc(sizeof(*cs));
	cs->g = g;
	evhttp_set_bevcb(g->http, on_new_bev, cs);
	cs->sweep_ev = event_new(g->base, -1, EV_PERSIST, on_sweep, cs);
	struct timeval tv = {0, SWEEP_MS * 1000};
	event_add(cs->sweep_ev, &tv);
	return cs;
}

/* After evhttp_free(): every connection is orphaned. */
gw_conns *gw_conns_free(gw_conns *cs)
{
	if (!cs)
		return NULL;
	while (cs->list) {
		gw_conn *c = cs->list;
		cs->list = c->next;
		conn_free(c);
	}
	event_free(cs->sweep_ev);
	free(cs);
	return NULL;
}

size_t gw_conns_open(const gw_conns *cs)
{
	return cs->n;
}

static gw_conn *conn_of(gw_conns *cs, struct evhttp_request *req)
{
	struct evhttp_connection *ec = evhttp_request_get_connection(req);
	struct bufferevent *bev = ec ? evhttp_connection_get_bufferevent(ec) : NULL;
	for (gw_conn *c = bev ? cs->list : NULL; c; c = c->next)
		if (c->bev == bev)
			return c;
	return NULL;
}

static void on_complete(struct evhttp_request *req, void *arg)
{
	gw_conn *c = arg;
	c->deadline_ms = now_mono_ms() + c->cs->g->cfg->request_timeout_s * 1000;
	request_reset(c);
}

void gw_conn_request_begin(gw_conns *cs, struct evhttp_request *req)
{
	gw_conn *c = conn_of(cs, req);
	if (!c)
		return;
	c->deadline_ms = 0;
	evhttp_request_set_on_complete_cb(req, on_complete, c);
}

/* Runs one evhttp send call with the connection's bytes marked as the gateway's. */
#define OWN(cs, req, call)                                                                         \
	do {                                                                                       \
		gw_conn *c_ = conn_of(cs, req);                                                    \
		if (c_)                                                                            \
			c_->own = true;                                                            \
		call;                                                                              \
		if (c_)                                                                            \
			c_->own = false;                                                           \
	} while (0)

void gw_conn_send_reply(gw_conns *cs, struct evhttp_request *req, int code, const char *reason,
                        struct evbuffer *body)
{
	OWN(cs, req, evhttp_send_reply(req, code, reason, body));
}

void gw_conn_reply_start(gw_conns *cs, struct evhttp_request *req, int code, const char *reason)
{
	OWN(cs, req, evhttp_send_reply_start(req, code, reason));
}

void gw_conn_reply_chunk(gw_conns *cs, struct evhttp_request *req, struct evbuffer *body)
{
	OWN(cs, req, evhttp_send_reply_chunk(req, body));
}

void gw_conn_reply_end(gw_conns *cs, struct evhttp_request *req)
{
	OWN(cs, req, evhttp_send_reply_end(req));
}
