/* Outbound HTTP(S) for aispd: libcurl's multi interface driven by the libevent loop.
 *
 * One http_client per loop; each request is an http_call that ends in exactly one call of its
 * completion function, from the loop (never from inside http_client_submit()), unless it is
 * cancelled first. Nothing here blocks: DNS runs in libcurl's resolver threads, sockets are
 * watched with libevent events, libcurl's timer is an evtimer.
 *
 * Production defaults, all on unless a request turns them off explicitly:
 *   - https only (CURLOPT_PROTOCOLS_STR and CURLOPT_REDIR_PROTOCOLS_STR "https"); a request
 *     must set allow_http to use http://. allow_http exists for tests against loopback
 *     servers; a node's production configuration never sets it.
 *   - SSRF veto at the socket: after DNS resolution, every address libcurl is about to connect
 *     to goes through http_addr_classify() (CURLOPT_OPENSOCKETFUNCTION); anything but a public
 *     address is refused, so rebinding and spellings such as http://2130706433/ or
 *     http://[::ffff:127.0.0.1]/ fail too. allow_private turns the veto off, for tests against
 *     loopback servers only. A request may add a veto of its own (veto_fn).
 *   - no proxy from the environment (CURLOPT_PROXY ""), no redirects followed (a 3xx is
 *     returned to the caller like any other status), no connection or TLS session reused
 *     (CURLOPT_FRESH_CONNECT, CURLOPT_FORBID_REUSE, no HTTP/2 multiplexing on the multi handle),
 *     TLS peer and host verified (the system store, or ca_file).
 *   - bounded: connect and total timeouts, the response body capped in the write callback
 *     (libcurl 7.88's MAXFILESIZE cannot cap a body of unknown size; it is set too, so a
 *     declared oversized body fails before it is read), response headers capped.
 *
 * Request headers are validated (RFC 9110 token names, no CR, LF or NUL in values) and messages
 * never quote a header value, a URL's user-info or its query string, so a credential carried in
 * a header cannot reach an error message. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/buf.h"
#include "common/err.h"

struct event_base;

typedef struct http_client http_client;
typedef struct http_call http_call;

#define HTTP_DEFAULT_CONNECT_TIMEOUT_MS 10000
#define HTTP_DEFAULT_TIMEOUT_MS         60000
#define HTTP_DEFAULT_MAX_RESPONSE_BYTES (1024 * 1024)
#define HTTP_MAX_RESPONSE_HEADER_BYTES  (64 * 1024) /* all header lines of the response */
#define HTTP_MAX_RESPONSE_HEADERS       128
#define HTTP_MAX_REQUEST_HEADERS        64
#define HTTP_MAX_URL_BYTES              8192

/* What an address is, for the SSRF veto. IPv4-mapped (::ffff:0:0/96), IPv4-compatible
 * (::/96), NAT64 (64:ff9b::/96) and 6to4 (2002::/16) IPv6 addresses are classified by the IPv4
 * address they embed. Everything but HTTP_ADDR_PUBLIC is refused by the default veto. */
typedef enum http_addr_class {
	HTTP_ADDR_PUBLIC = 0,
	HTTP_ADDR_LOOPBACK,     /* 127.0.0.0/8, ::1 */
	HTTP_ADDR_PRIVATE,      /* 10/8, 172.16/12, 192.168/16 (RFC 1918) */
	HTTP_ADDR_LINK_LOCAL,   /* 169.254/16 (cloud metadata lives here), fe80::/10 */
	HTTP_ADDR_SHARED,       /* 100.64/10, carrier-grade NAT (RFC 6598) */
	HTTP_ADDR_THIS_NETWORK, /* 0.0.0.0/8, :: */
	HTTP_ADDR_MULTICAST,    /* 224/4, ff00::/8 */
	HTTP_ADDR_BROADCAST,    /* 255.255.255.255 */
	HTTP_ADDR_UNIQUE_LOCAL, /* fc00::/7, and the deprecated site-local fec0::/10 */
	HTTP_ADDR_RESERVED,     /* documentation, benchmarking, IETF, 240/4, Teredo, discard, ... */
	HTTP_ADDR_UNKNOWN,      /* not AF_INET / AF_INET6, or a truncated sockaddr */
} http_addr_class;

http_addr_class http_addr_classify(const struct sockaddr *sa, socklen_t len);
/* "loopback", "private (RFC 1918)", ... Static. */
const char *http_addr_class_name(http_addr_class c);
/* The address as text into out ("127.0.0.1", "::ffff:127.0.0.1"); "?" when unknown. */
void http_addr_format(const struct sockaddr *sa, socklen_t len, char *out, size_t n);

/* An extra veto, called from inside libcurl for every address it is about to connect to (after
 * the default veto). Return true to refuse the address and write a short reason into why
 * (NUL-terminated, at most why_len bytes). It must not call any http_client function. */
typedef bool (*http_veto_fn)(const struct sockaddr *sa, socklen_t len, char *why, size_t why_len,
                             void *arg);

typedef struct http_request {
	const char *method;         /* "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"; NULL: GET */
	const char *url;            /* absolute http(s) URL, at most HTTP_MAX_URL_BYTES */
	const char *const *headers; /* "Name: value" lines, NULL-terminated; NULL: none */
	const void *body;           /* copied at submit; NULL with body_len 0: no body */
	size_t body_len;
	int64_t connect_timeout_ms; /* 0: HTTP_DEFAULT_CONNECT_TIMEOUT_MS */
	int64_t timeout_ms;         /* the whole transfer; 0: HTTP_DEFAULT_TIMEOUT_MS */
	size_t max_response_bytes;  /* body cap; 0: HTTP_DEFAULT_MAX_RESPONSE_BYTES */
	const char *ca_file;        /* PEM bundle of trusted CAs; NULL: the system store */
	bool allow_http;            /* TESTS ONLY: also allow http:// (default: https only) */
	bool allow_private;         /* TESTS ONLY: no default SSRF veto (loopback servers) */
	http_veto_fn veto_fn;       /* optional extra veto; runs even when allow_private is set */
	void *veto_arg;
} http_request;

/* How a call ended. HTTP_OK means a complete response arrived, whatever its status code. */
typedef enum http_outcome {
	HTTP_OK = 0,
	HTTP_E_TIMEOUT,   /* connect or total timeout */
	HTTP_E_CONNECT,   /* DNS failure, refused, unreachable */
	HTTP_E_VETOED,    /* every address was refused by a veto: nothing was sent */
	HTTP_E_TOO_LARGE, /* response body or headers above the caps */
	HTTP_E_TLS,       /* handshake or certificate verification failed */
	HTTP_E_TRANSFER,  /* anything else: connection reset, bad framing, ... */
} http_outcome;

typedef struct http_header {
	char *name;  /* as received */
	char *value; /* leading and trailing white space removed */
} http_header;

typedef struct http_response {
	http_outcome outcome;
	long status;          /* of the final response; 0 when none arrived */
	http_header *headers; /* of the final response (not of a 100 Continue) */
	size_t n_headers;
	buf body;              /* at most max_response_bytes, NUL-terminated */
	int64_t retry_after_s; /* Retry-After (seconds or HTTP date, via libcurl), -1 if absent */
	int addresses_vetoed;  /* addresses the vetoes refused */
} http_response;

/* Called once per call, from the loop. e is NULL when a response arrived (r->outcome HTTP_OK,
 * any status), else it says precisely what failed ("http: POST https://host/path: ...").
 * r and e are borrowed for the call; fn may take r->body with buf_steal(). The call is freed
 * right after fn returns: fn must not cancel it (doing so is a no-op), but may submit or cancel
 * other calls. fn must not free the client. */
typedef void (*http_done_fn)(http_response *r, const err *e, void *arg);

/* A client on base. Returns NULL only on a libcurl initialisation failure, with *e. Free with
 * http_client_free(), which cancels every call still in flight (their fn is not called). */
http_client *http_client_new(struct event_base *base, err **e);
http_client *http_client_free(http_client *c);
/* Number of calls in flight. */
size_t http_client_active(const http_client *c);
/* The loop the client runs on. Borrowed. */
struct event_base *http_client_base(const http_client *c);

/* Starts a request. Returns the call (owned by the client; valid until fn returns or
 * http_call_cancel()), or NULL with *e when the request itself is bad (URL, scheme, method,
 * header); then fn is never called. Everything in rq is copied. */
http_call *http_client_submit(http_client *c, const http_request *rq, http_done_fn fn, void *arg,
                              err **e);
/* Stops a call in flight and frees it; fn is not called. NULL is fine. */
void http_call_cancel(http_call *call);

/* The value of the first response header called name (case-insensitive), or NULL. Borrowed. */
const char *http_response_header(const http_response *r, const char *name);

/* The URL fit for a message: scheme://host[:port]/path, without user-info, query or fragment,
 * at most 200 bytes (then "..."). Owned by the caller. A URL that does not parse gives
 * "(invalid URL)". */
char *http_url_for_message(const char *url);
