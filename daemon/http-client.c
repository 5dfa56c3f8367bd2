/* Outbound HTTP through libcurl's multi interface on the libevent loop (see http-client.h).
 *
 * The loop glue is the classic one (curl's hiperfifo example): CURLMOPT_SOCKETFUNCTION keeps
 * one persistent libevent event per socket libcurl watches, CURLMOPT_TIMERFUNCTION arms a
 * single evtimer, and both call curl_multi_socket_action() and then drain
 * curl_multi_info_read(), which is the only place a call is finished. User code (a call's fn)
 * runs only from that drain, never from inside a libcurl callback, so fn may submit or cancel
 * other calls freely. Sockets are created by our CURLOPT_OPENSOCKETFUNCTION (close-on-exec,
 * after the vetoes); every socket record is also on a list so that http_client_free() frees
 * whatever libcurl did not hand back. */
#include "daemon/http-client.h"

#include <ctype.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include "common/cleanup.h"
#include "common/xalloc.h"

typedef struct sockinfo sockinfo;
struct sockinfo {
	struct event *ev;
	LIST_ENTRY(sockinfo) link;
};

struct http_client {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	LIST_HEAD(, http_call) calls; /* in flight */
	size_t n_calls;
	LIST_HEAD(, sockinfo) socks;
};

struct http_call {
	http_client *c;
	CURL *easy;
	http_done_fn fn;
	void *arg;
	LIST_ENTRY(http_call) link;
	bool in_fn;
	struct curl_slist *headers;
	char *label; /* "POST https://host/path", for messages */
	size_t max_body;
	size_t header_bytes;
	bool allow_private;
	http_veto_fn veto_fn;
	void *veto_arg;
	char veto_why[160];    /* the last veto's reason */
	const char *too_large; /* "body" or "headers" when a cap was hit */
	http_response resp;
	char errbuf[CURL_ERROR_SIZE];
};

/* ---- the loop glue ---- */

static void check_done(http_client *c);

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
	http_client *c = arg;
	int flags =
	    (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
	int running = 0;
	curl_multi_socket_action(c->multi, fd, flags, &running);
	check_done(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	http_client *c = arg;
	int running = 0;
	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(c);
}

static void sockinfo_free(sockinfo *si)
{
	LIST_REMOVE(si, link);
	if (si->ev)
		event_free(si->ev);
	free(si);
}

static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	http_client *c = userp;
	sockinfo *si = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (si)
			sockinfo_free(si);
		return 0;
	}
	if (!si) {
		si = xzalloc(sizeof(*si));
		LIST_INSERT_HEAD(&c->socks, si, link);
		curl_multi_assign(c->multi, s, si);
	} else if (si->ev) {
		event_free(si->ev);
	}
	short kind = (short)((what & CURL_POLL_IN ? EV_READ : 0) |
	                     (what & CURL_POLL_OUT ? EV_WRITE : 0) | EV_PERSIST);
	si->ev = event_new(c->base, s, kind, on_socket_event, c);
	if (!si->ev || event_add(si->ev, NULL) < 0)
		return -1;
	return 0;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
	http_client *c = userp;
	if (timeout_ms < 0) {
		evtimer_del(c->timer);
		return 0;
	}
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	return evtimer_add(c->timer, &tv) < 0 ? -1 : 0;
}

http_client *http_client_new(struct event_base *base, err **e)
{
	CURLcode g = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (g != CURLE_OK) {
		err_set(e, 0, "http: libcurl initialisation failed: %s", curl_easy_strerror(g));
		return NULL;
	}
	http_client *c = xzalloc(sizeof(*c));
	c->base = base;
	LIST_INIT(&c->calls);
	LIST_INIT(&c->socks);
	c->multi = curl_multi_init();
	c->timer = evtimer_new(base, on_timer, c);
	if (!c->multi || !c->timer) {
		err_set(e, 0, "http: libcurl multi handle or timer could not be created");
		return http_client_free(c);
	}
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	/* No HTTP/2 multiplexing: two calls never share a connection. */
	curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
	return c;
}

static void call_free(http_call *call);

http_client *http_client_free(http_client *c)
{
	if (!c)
		return NULL;
	while (!LIST_EMPTY(&c->calls))
		http_call_cancel(LIST_FIRST(&c->calls));
	if (c->multi)
		curl_multi_cleanup(c->multi);
	while (!LIST_EMPTY(&c->socks))
		sockinfo_free(LIST_FIRST(&c->socks));
	if (c->timer)
		event_free(c->timer);
	free(c);
	curl_global_cleanup();
	return NULL;
}

size_t http_client_active(const http_client *c)
{
	return c->n_calls;
}

struct event_base *http_client_base(const http_client *c)
{
	return c->base;
}

/* ---- per-call callbacks (run inside libcurl: no user code here) ---- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	http_call *call = arg;
	size_t len = size * n;
	if (len > call->max_body - call->resp.body.len) {
		call->too_large = "body";
		return 0; /* CURLE_WRITE_ERROR */
	}
	buf_append(&call->resp.body, p, len);
	return len;
}

static void headers_clear(http_response *r)
{
	for (size_t i = 0; i < r->n_headers; i++) {
		free(r->headers[i].name);
		free(r->headers[i].value);
	}
	free(r->headers);
	r->headers = NULL;
	r->n_headers = 0;
}

static char *trimmed(const char *p, size_t n)
{
	while (n && (*p == ' ' || *p == '\t'))
		p++, n--;
	while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r' || p[n - 1] == '\n'))
		n--;
	return xstrndup(p, n);
}

static void header_add(http_response *r, const char *p, size_t n)
{
	const char *colon = memchr(p, ':', n);
	if (!colon || colon == p)
		return; /* not a field line: ignored */
	r->headers = xreallocarray(r->headers, r->n_headers + 1, sizeof(*r->headers));
	r->headers[r->n_headers].name = xstrndup(p, (size_t)(colon - p));
	r->headers[r->n_headers].value = trimmed(colon + 1, n - (size_t)(colon - p) - 1);
	r->n_headers++;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	http_call *call = arg;
	size_t len = size * n;
	call->header_bytes += len;
	if (call->header_bytes > HTTP_MAX_RESPONSE_HEADER_BYTES) {
		call->too_large = "headers";
		return 0;
	}
	if (len >= 5 && !memcmp(p, "HTTP/", 5)) { /* a new response (after a 1xx): start over */
		headers_clear(&call->resp);
		return len;
	}
	if (len && (p[0] == ' ' || p[0] == '\t'))
		return len; /* obsolete line folding: dropped rather than guessed at */
	if (call->resp.n_headers >= HTTP_MAX_RESPONSE_HEADERS) {
		call->too_large = "headers";
		return 0;
	}
	header_add(&call->resp, p, len);
	return len;
}

/* The vetoes, then a close-on-exec socket. */
static curl_socket_t on_open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	http_call *call = arg;
	char ip[INET6_ADDRSTRLEN + 8];
	http_addr_class cls = http_addr_classify(&a->addr, a->addrlen);
	if (cls != HTTP_ADDR_PUBLIC && !call->allow_private) {
		http_addr_format(&a->addr, a->addrlen, ip, sizeof(ip));
		snprintf(call->veto_why, sizeof(call->veto_why), "%s is %s", ip,
		         http_addr_class_name(cls));
		call->resp.addresses_vetoed++;
		return CURL_SOCKET_BAD;
	}
	char why[128] = "";
	if (call->veto_fn &&
	    call->veto_fn(&a->addr, a->addrlen, why, sizeof(why), call->veto_arg)) {
		http_addr_format(&a->addr, a->addrlen, ip, sizeof(ip));
		snprintf(call->veto_why, sizeof(call->veto_why), "%s: %s", ip,
		         why[0] ? why : "refused");
		call->resp.addresses_vetoed++;
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* ---- validating a request ---- */

static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"};

static bool is_tchar(unsigned char ch)
{
	return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static int check_header(const char *h, size_t i, err **e)
{
	size_t n = 0;
	while (h[n] && h[n] != ':') {
		if (!is_tchar((unsigned char)h[n]))
			return err_set(
			    e, 0, "http: request header %zu: the name is not an HTTP token", i + 1);
		n++;
	}
	if (!n || h[n] != ':')
		return err_set(e, 0, "http: request header %zu is not \"Name: value\"", i + 1);
	if (strpbrk(h + n + 1, "\r\n"))
		return err_set(e, 0, "http: request header %zu (%.*s): CR or LF in the value",
		               i + 1, (int)n, h);
	return 0;
}

static int check_scheme(const char *url, bool allow_http, err **e)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	if (!u)
		abort();
	CURLUcode rc = curl_url_set(u, CURLUPART_URL, url, 0);
	if (rc == CURLUE_OK)
		rc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
	int r = 0;
	if (rc != CURLUE_OK)
		r = err_set(e, 0, "http: invalid URL: %s", curl_url_strerror(rc));
	else if (strcmp(scheme, "https") != 0 && !(allow_http && !strcmp(scheme, "http")))
		r = err_set(e, 0, "http: URL scheme \"%s\" is not allowed (https only)", scheme);
	else if ((rc = curl_url_get(u, CURLUPART_HOST, &host, 0)) != CURLUE_OK)
		r = err_set(e, 0, "http: invalid URL: %s", curl_url_strerror(rc));
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return r;
}

static int check_request(const http_request *rq, err **e)
{
	if (!rq->url)
		return err_set(e, 0, "http: no URL");
	if (strlen(rq->url) > HTTP_MAX_URL_BYTES)
		return err_set(e, 0, "http: URL longer than %d bytes", HTTP_MAX_URL_BYTES);
	if (check_scheme(rq->url, rq->allow_http, e) < 0)
		return -1;
	const char *m = rq->method ? rq->method : "GET";
	size_t i = 0;
	while (i < ARRAY_SIZE(methods) && strcmp(m, methods[i]) != 0)
		i++;
	if (i == ARRAY_SIZE(methods))
		return err_set(e, 0, "http: method \"%.16s\" is not supported", m);
	if (rq->body_len && (!strcmp(m, "GET") || !strcmp(m, "HEAD")))
		return err_set(e, 0, "http: a %s request has no body", m);
	for (i = 0; rq->headers && rq->headers[i]; i++) {
		if (i == HTTP_MAX_REQUEST_HEADERS)
			return err_set(e, 0, "http: more than %d request headers",
			               HTTP_MAX_REQUEST_HEADERS);
		if (check_header(rq->headers[i], i, e) < 0)
			return -1;
	}
	return 0;
}

/* ---- building the easy handle ---- */

#define SETOPT(easy, opt, val, failed)                                                             \
	do {                                                                                       \
		if (curl_easy_setopt(easy, opt, val) != CURLE_OK && !(failed))                     \
			(failed) = #opt;                                                           \
	} while (0)

static int setup_security(http_call *call, const http_request *rq, err **e)
{
	CURL *h = call->easy;
	const char *failed = NULL;
	const char *protocols = rq->allow_http ? "http,https" : "https";
	SETOPT(h, CURLOPT_PROTOCOLS_STR, protocols, failed);
	SETOPT(h, CURLOPT_REDIR_PROTOCOLS_STR, protocols, failed);
	SETOPT(h, CURLOPT_FOLLOWLOCATION, 0L, failed);
	SETOPT(h, CURLOPT_PROXY, "", failed);
	SETOPT(h, CURLOPT_FRESH_CONNECT, 1L, failed);
	SETOPT(h, CURLOPT_FORBID_REUSE, 1L, failed);
	SETOPT(h, CURLOPT_SSL_SESSIONID_CACHE, 0L, failed);
	SETOPT(h, CURLOPT_SSL_VERIFYPEER, 1L, failed);
	SETOPT(h, CURLOPT_SSL_VERIFYHOST, 2L, failed);
	if (rq->ca_file)
		SETOPT(h, CURLOPT_CAINFO, rq->ca_file, failed);
	SETOPT(h, CURLOPT_OPENSOCKETFUNCTION, on_open_socket, failed);
	SETOPT(h, CURLOPT_OPENSOCKETDATA, call, failed);
	SETOPT(h, CURLOPT_NOSIGNAL, 1L, failed);
	/* Without it, removing a handle (cancel, timeout) while its name is still being resolved
	 * joins the resolver thread: the loop would block until getaddrinfo() returns. With it
	 * the thread is detached and frees its own data when it ends (7.87+). */
	SETOPT(h, CURLOPT_QUICK_EXIT, 1L, failed);
	int64_t ct =
	    rq->connect_timeout_ms > 0 ? rq->connect_timeout_ms : HTTP_DEFAULT_CONNECT_TIMEOUT_MS;
	int64_t tt = rq->timeout_ms > 0 ? rq->timeout_ms : HTTP_DEFAULT_TIMEOUT_MS;
	SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, (long)ct, failed);
	SETOPT(h, CURLOPT_TIMEOUT_MS, (long)tt, failed);
	SETOPT(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)call->max_body, failed);
	if (failed)
		return err_set(e, 0, "http: libcurl rejected %s", failed);
	return 0;
}

static int setup_request(http_call *call, const http_request *rq, err **e)
{
	CURL *h = call->easy;
	const char *failed = NULL, *m = rq->method ? rq->method : "GET";
	SETOPT(h, CURLOPT_URL, rq->url, failed);
	SETOPT(h, CURLOPT_PRIVATE, call, failed);
	SETOPT(h, CURLOPT_ERRORBUFFER, call->errbuf, failed);
	SETOPT(h, CURLOPT_WRITEFUNCTION, on_body, failed);
	SETOPT(h, CURLOPT_WRITEDATA, call, failed);
	SETOPT(h, CURLOPT_HEADERFUNCTION, on_header, failed);
	SETOPT(h, CURLOPT_HEADERDATA, call, failed);
	SETOPT(h, CURLOPT_USERAGENT, "aispd/" AISP_VERSION, failed);
	if (!strcmp(m, "HEAD")) {
		SETOPT(h, CURLOPT_NOBODY, 1L, failed);
	} else if (strcmp(m, "GET") != 0) {
		if (strcmp(m, "POST") != 0)
			SETOPT(h, CURLOPT_CUSTOMREQUEST, m, failed);
		if (!strcmp(m, "POST") || rq->body_len) {
			SETOPT(h, CURLOPT_POST, 1L, failed);
			SETOPT(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len, failed);
			SETOPT(h, CURLOPT_COPYPOSTFIELDS, rq->body_len ? rq->body : "", failed);
		}
	}
	/* "Expect:" turns off 100-continue: a body is sent at once, never after a wait. */
	call->headers = curl_slist_append(NULL, "Expect:");
	for (size_t i = 0; call->headers && rq->headers && rq->headers[i]; i++)
		call->headers = curl_slist_append(call->headers, rq->headers[i]);
	if (!call->headers)
		abort();
	SETOPT(h, CURLOPT_HTTPHEADER, call->headers, failed);
	if (failed)
		return err_set(e, 0, "http: libcurl rejected %s", failed);
	return 0;
}

/* ---- the life of a call ---- */

static void call_unlink(http_call *call)
{
	LIST_REMOVE(call, link);
	call->c->n_calls--;
}

static void call_free(http_call *call)
{
	if (call->easy)
		curl_easy_cleanup(call->easy);
	curl_slist_free_all(call->headers);
	headers_clear(&call->resp);
	buf_deinit(&call->resp.body);
	free(call->label);
	free(call);
}

http_call *http_client_submit(http_client *c, const http_request *rq, http_done_fn fn, void *arg,
                              err **e)
{
	if (check_request(rq, e) < 0)
		return NULL;
	http_call *call = xzalloc(sizeof(*call));
	call->c = c;
	call->fn = fn;
	call->arg = arg;
	call->max_body =
	    rq->max_response_bytes ? rq->max_response_bytes : HTTP_DEFAULT_MAX_RESPONSE_BYTES;
	call->allow_private = rq->allow_private;
	call->veto_fn = rq->veto_fn;
	call->veto_arg = rq->veto_arg;
	call->resp.retry_after_s = -1;
	_cleanup_free_ char *where = http_url_for_message(rq->url);
	call->label = xasprintf("%s %s", rq->method ? rq->method : "GET", where);
	call->easy = curl_easy_init();
	if (!call->easy) {
		err_set(e, 0, "http: %s: libcurl could not create a handle", call->label);
		call_free(call);
		return NULL;
	}
	if (setup_security(call, rq, e) < 0 || setup_request(call, rq, e) < 0) {
		err_prefix(e, "%s", call->label);
		call_free(call);
		return NULL;
	}
	CURLMcode mc = curl_multi_add_handle(c->multi, call->easy);
	if (mc != CURLM_OK) {
		err_set(e, 0, "http: %s: %s", call->label, curl_multi_strerror(mc));
		call_free(call);
		return NULL;
	}
	LIST_INSERT_HEAD(&c->calls, call, link);
	c->n_calls++;
	return call;
}

void http_call_cancel(http_call *call)
{
	if (!call || call->in_fn)
		return;
	curl_multi_remove_handle(call->c->multi, call->easy);
	call_unlink(call);
	call_free(call);
}

static http_outcome outcome_kind(CURLcode rc)
{
	switch (rc) {
	case CURLE_OK:
		return HTTP_OK;
	case CURLE_OPERATION_TIMEDOUT:
		return HTTP_E_TIMEOUT;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
		return HTTP_E_CONNECT;
	case CURLE_FILESIZE_EXCEEDED:
		return HTTP_E_TOO_LARGE;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
		return HTTP_E_TLS;
	default:
		return HTTP_E_TRANSFER;
	}
}

/* The outcome of a finished transfer, and its message in *e unless HTTP_OK. */
static http_outcome outcome_of(http_call *call, CURLcode rc, err **e)
{
	http_outcome o = outcome_kind(rc);
	if (o == HTTP_OK)
		return o;
	if (call->too_large || o == HTTP_E_TOO_LARGE) {
		bool hdr = call->too_large && !strcmp(call->too_large, "headers");
		if (hdr)
			err_set(
			    e, 0, "http: %s: response headers above the limit (%d bytes, %d lines)",
			    call->label, HTTP_MAX_RESPONSE_HEADER_BYTES, HTTP_MAX_RESPONSE_HEADERS);
		else
			err_set(e, 0, "http: %s: response body above the %zu-byte limit",
			        call->label, call->max_body);
		return HTTP_E_TOO_LARGE;
	}
	if (call->resp.addresses_vetoed && !call->resp.status) {
		err_set(e, 0, "http: %s: refused to connect (SSRF defence): %s", call->label,
		        call->veto_why);
		return HTTP_E_VETOED;
	}
	err_set(e, 0, "http: %s: %s", call->label,
	        call->errbuf[0] ? call->errbuf : curl_easy_strerror(rc));
	return o;
}

static void finish(http_call *call, CURLcode rc)
{
	http_response *r = &call->resp;
	curl_multi_remove_handle(call->c->multi, call->easy);
	call_unlink(call);
	curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &r->status);
	if (http_response_header(r, "Retry-After")) {
		curl_off_t ra = 0;
		curl_easy_getinfo(call->easy, CURLINFO_RETRY_AFTER, &ra);
		r->retry_after_s = ra > 0 ? (int64_t)ra : 0; /* 7.88: a past date is negative */
	}
	err *e = NULL;
	r->outcome = outcome_of(call, rc, &e);
	call->in_fn = true;
	call->fn(r, e, call->arg);
	err_free(e);
	call_free(call);
}

static void check_done(http_client *c)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(c->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		CURL *easy = m->easy_handle; /* m is invalid once the handle is removed */
		CURLcode rc = m->data.result;
		http_call *call = NULL;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&call);
		if (call)
			finish(call, rc);
	}
}

const char *http_response_header(const http_response *r, const char *name)
{
	for (size_t i = 0; i < r->n_headers; i++)
		if (!strcasecmp(r->headers[i].name, name))
			return r->headers[i].value;
	return NULL;
}

char *http_url_for_message(const char *url)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
	if (!u)
		abort();
	char *out = NULL;
	if (url && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK) {
		curl_url_get(u, CURLUPART_PORT, &port, 0); /* only when the URL names one */
		out = xasprintf("%s://%s%s%s%s", scheme, host, port ? ":" : "", port ? port : "",
		                path);
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_url_cleanup(u);
	if (!out)
		return xstrdup("(invalid URL)");
	if (strlen(out) > 200)
		strcpy(out + 197, "...");
	return out;
}
