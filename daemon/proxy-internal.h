/* Inside the credential proxy (daemon/proxy*.c): the policy's interface for proxy.c. */
#pragma once

#include <curl/curl.h>

#include "common/cleanup.h"
#include "daemon/proxy.h"

DEFINE_CLEANUP_FUNC(CURLU *, curl_url_cleanup)

/* Where a judged request goes: host ("name" or "name:port" when not 443) and path, without
 * the query; for the audit entry. Owned. */
typedef struct proxy_target {
	char *host, *path;
	long port;
} proxy_target;

void proxy_target_deinit(proxy_target *t);
/* NULL when service s allows the request (its method, URL and the program's headers), else
 * why not (caller frees); t is filled as far as the URL parsed. */
char *proxy_judge(const proxy_service *s, const char *method, const char *url,
                  const sandbox_proxy_request *rq, proxy_target *t);
/* "a, b, c". Caller frees. */
char *proxy_join(char *const *v);
