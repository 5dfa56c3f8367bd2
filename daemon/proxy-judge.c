/* The credential proxy's policy (daemon/proxy.h): what a program's PROXY_REQUEST may ask of a
 * service, judged before anything leaves the node. Each refusal is one precise sentence for
 * the program, which never quotes a header value, a query string or a credential. */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/cleanup.h"
#include "common/xalloc.h"
#include "daemon/proxy-internal.h"

/* "a, b, c" of a NULL-terminated list. Caller frees. */
char *proxy_join(char *const *v)
{
	buf b = BUF_INIT;
	for (size_t i = 0; v && v[i]; i++) {
		if (i)
			buf_append_str(&b, ", ");
		buf_append_str(&b, v[i]);
	}
	char *s = xstrdup(buf_str(&b));
	buf_deinit(&b);
	return s;
}

static bool in_list(char *const *v, const char *s)
{
	for (size_t i = 0; v && v[i]; i++)
		if (!strcmp(v[i], s))
			return true;
	return false;
}

/* host (lower-case, as libcurl gives it) and port against the service's hosts. */
static bool host_allowed(const proxy_service *s, const char *host, long port)
{
	for (size_t i = 0; i < s->n_hosts; i++) {
		const char *h = s->hosts[i];
		const char *colon = strrchr(h, ':');
		bool has_port = colon && (h[0] != '[' || colon > strchr(h, ']'));
		size_t hn = has_port ? (size_t)(colon - h) : strlen(h);
		long want = has_port ? strtol(colon + 1, NULL, 10) : 443;
		if (strlen(host) == hn && !strncmp(h, host, hn) && port == want)
			return true;
	}
	return false;
}

/* Dot segments, backslashes and encoded separators or dots: a path whose meaning a server
 * could read differently from its prefix. */
static bool path_tricky(const char *p)
{
	static const char *const bad[] = {"/./", "/../", "\\", "%2e", "%2f", "%5c", "%00"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (strcasestr(p, bad[i]))
			return true;
	size_t n = strlen(p);
	return (n >= 2 && !strcmp(p + n - 2, "/.")) || (n >= 3 && !strcmp(p + n - 3, "/.."));
}

static bool path_allowed(const proxy_service *s, const char *path)
{
	for (size_t i = 0; i < s->n_paths; i++) {
		const char *pre = s->paths[i];
		size_t n = strlen(pre);
		if (!strncmp(path, pre, n) &&
		    (pre[n - 1] == '/' || path[n] == '\0' || path[n] == '/'))
			return true;
	}
	return false;
}

void proxy_target_deinit(proxy_target *t)
{
	free(t->host);
	free(t->path);
	memset(t, 0, sizeof(*t));
}

/* Fills t from the URL; NULL, or why the URL is refused. */
static char *judge_url(const proxy_service *s, const char *url, proxy_target *t)
{
	_cleanup_(curl_url_cleanupp) CURLU *u = curl_url();
	char *scheme = NULL, *user = NULL, *host = NULL, *port = NULL, *path = NULL;
	char *why = NULL;
	if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME | CURLU_PATH_AS_IS) !=
	        CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		why = xstrdup("the URL does not parse (an absolute https URL is needed)");
	else if (strcasecmp(scheme, "https"))
		why = xasprintf("only https URLs are allowed (the URL's scheme is %.16s)", scheme);
	else if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK)
		why = xstrdup("a URL with user-info is refused");
	else if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
	         curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
		why = xstrdup("the URL does not parse");
	if (!why) {
		for (char *p = host; *p; p++)
			*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
		t->port = strtol(port, NULL, 10);
		t->host = t->port == 443 ? xstrdup(host) : xasprintf("%s:%ld", host, t->port);
		t->path = xstrdup(path);
		if (!host_allowed(s, host, t->port))
			why = xasprintf("host %.200s is not one of service %s's hosts", t->host,
			                s->name);
		else if (path_tricky(path))
			why = xstrdup("the path has dot segments, backslashes or encoded "
			              "separators: refused");
		else if (!path_allowed(s, path))
			why = xasprintf("path %.200s is outside the prefixes of service %s", path,
			                s->name);
	}
	curl_free(scheme), curl_free(user), curl_free(host), curl_free(port), curl_free(path);
	return why;
}

static bool header_forbidden(const proxy_service *s, const char *name, size_t n)
{
	static const char *const set_by_node[] = {"host",
	                                          "authorization",
	                                          "cookie",
	                                          "content-length",
	                                          "transfer-encoding",
	                                          "connection",
	                                          "te",
	                                          "upgrade",
	                                          "keep-alive",
	                                          "trailer",
	                                          "expect"};
	for (size_t i = 0; i < sizeof(set_by_node) / sizeof(set_by_node[0]); i++)
		if (strlen(set_by_node[i]) == n && !strncasecmp(name, set_by_node[i], n))
			return true;
	size_t tn = strcspn(s->header, ":");
	return (n >= 6 && !strncasecmp(name, "proxy-", 6)) ||
	       (tn == n && !strncasecmp(name, s->header, n));
}

/* One "Name: value" of the program's; NULL or why it is refused. */
static char *judge_header(const proxy_service *s, size_t i, const sandbox_frame_bytes *h)
{
	const char *p = (const char *)h->p;
	const char *colon = memchr(p, ':', h->n);
	size_t n = colon ? (size_t)(colon - p) : 0;
	for (size_t k = 0; k < n; k++)
		if (!strchr("!#$%&'*+-.^_`|~", p[k]) &&
		    !((p[k] >= '0' && p[k] <= '9') || ((p[k] | 32) >= 'a' && (p[k] | 32) <= 'z')))
			n = 0;
	if (!n)
		return xasprintf("request header %zu is not \"Name: value\" with a token name", i);
	for (size_t k = n + 1; k < h->n; k++)
		if (p[k] == '\r' || p[k] == '\n' || p[k] == '\0')
			return xasprintf("request header %.*s: its value holds CR, LF or NUL "
			                 "(header injection): refused",
			                 (int)(n > 64 ? 64 : n), p);
	if (header_forbidden(s, p, n))
		return xasprintf("request header %.*s is set by the node, not by the program",
		                 (int)(n > 64 ? 64 : n), p);
	return NULL;
}

char *proxy_judge(const proxy_service *s, const char *method, const char *url,
                  const sandbox_proxy_request *rq, proxy_target *t)
{
	if (!in_list(s->methods, method)) {
		_cleanup_free_ char *l = proxy_join(s->methods);
		return xasprintf("method %s is not allowed for service %s (allowed: %s)", method,
		                 s->name, l);
	}
	char *why = judge_url(s, url, t);
	for (size_t i = 0; !why && i < rq->n_headers; i++)
		why = judge_header(s, i, &rq->headers[i]);
	return why;
}
