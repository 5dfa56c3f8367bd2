/* The credential proxy (issue 21; proto/PROTOCOL.md, "The credential proxy"): a program's
 * proxy_fetch() reaches aispd as a PROXY_REQUEST frame (sandbox/agent/frame.h); aispd checks
 * it against the task's services and the node's [proxy.NAME] sections, injects the service's
 * credential from the secret store (daemon/secrets.h) and makes the request with the node's
 * outbound HTTP client (daemon/http-client.h: libcurl multi on the loop, https only, the SSRF
 * veto at the socket, no redirects, capped bodies, no connection reuse), then answers the
 * program. Each call that left the node is an entry of the task's hash-chained audit trail
 * (attest/proxy.c), which goes into the result and whose head the node signs.
 *
 * Config (aispd.conf; deploy/aispd.conf.example):
 *   [proxy]
 *   max_calls = 64                  calls of one task, all services together (1..256)
 *   [proxy.NAME]                    one service, NAME as tasks name it ([a-z][a-z0-9_-]{0,63})
 *   hosts = api.example.com         host or host:port, exact (no wildcards); port 443 if absent
 *   methods = GET, POST             default GET
 *   paths = /v1/                    allowed path prefixes; default "/"
 *   secret = EXAMPLE_TOKEN          <secrets dir>/node/EXAMPLE_TOKEN; absent: no credential
 *   header = Authorization: Bearer {secret}   the header the credential goes in (the default)
 *   connect_timeout_ms = 5000, timeout_ms = 30000, max_response_bytes = 1048576 (<= 8 MiB)
 *   max_calls = 16                  calls of one task to this service
 *   ca_file = /path/ca.pem          trust these CAs instead of the system store
 *   allow_private_addresses = false TESTS ONLY: lets this service reach loopback and private
 *                                   addresses (a loopback test server); never in production
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "daemon/secrets.h"
#include "proto/proto.h"
#include "sandbox/sandbox.h"

struct event_base;

#define PROXY_SERVICES_MAX            64
#define PROXY_HOSTS_MAX               32
#define PROXY_TASK_CALLS_MAX          256 /* [proxy] max_calls at most (PROTO_PROXY_CALLS_MAX) */
#define PROXY_TASK_CALLS_DEFAULT      64
#define PROXY_HEADER_TEMPLATE_DEFAULT "Authorization: Bearer {secret}"

typedef struct proxy_service {
	char *name;
	char **hosts, **methods, **paths; /* NULL-terminated */
	size_t n_hosts, n_methods, n_paths;
	char *secret; /* a node-wide secret's name, or NULL */
	char *header; /* "Name: ...{secret}..." */
	int64_t connect_timeout_ms, timeout_ms, max_response_bytes, max_calls;
	char *ca_file;
	bool allow_private; /* TESTS ONLY */
} proxy_service;

typedef struct proxy_config {
	proxy_service *services;
	size_t n_services;
	int64_t max_calls;
} proxy_config;

void proxy_config_defaults(proxy_config *c);
void proxy_config_deinit(proxy_config *c);
/* Sets one key: service NULL for [proxy], else [proxy.SERVICE]. Returns 0, or -1 with a
 * message naming the section and key (the caller adds file:line). */
int proxy_config_set(proxy_config *c, const char *service, const char *key, const char *value,
                     err **e);
/* The whole: every service has hosts, its header template has {secret} when it has a secret
 * (and no secret without one). Returns 0 or -1 with *e. */
int proxy_config_validate(const proxy_config *c, err **e);
const proxy_service *proxy_config_find(const proxy_config *c, const char *name);

typedef struct proxy proxy;

/* The proxy on base for c (borrowed; outlives it), with the secret store of sc when a service
 * has a secret. Returns 0 with *out (NULL when c has no service), or -1 with *e. */
int proxy_new(proxy **out, struct event_base *base, const proxy_config *c, const secrets_config *sc,
              err **e);
proxy *proxy_free(proxy *p);
/* NULL when this node serves every service t names (p may be NULL: none), else why not, for
 * the task's rejection (caller frees). */
char *proxy_check_task(const proxy *p, const proto_task *t);

/* One task's use of the proxy: its budget, its call in flight and its audit trail. */
typedef struct proxy_session proxy_session;
/* Called for each call: c is the entry (refused NULL), or refused says why the node did not
 * send it (c NULL). Borrowed for the call. For the task's log. */
typedef void (*proxy_log_fn)(void *arg, const proto_proxy_call *c, const char *refused);

proxy_session *proxy_session_new(proxy *p, const proto_task *t, proxy_log_fn log, void *arg);
/* Serves sb's PROXY_REQUESTs (sandbox_on_proxy) until proxy_session_end(). */
void proxy_session_attach(proxy_session *s, sandbox *sb);
/* Stops, while sb is still valid: a call in flight is cancelled (the program's run is over; it
 * stays in the trail, status 0), sb is detached. Returns the trail for the result (caller
 * owns; NULL the second time). s stays valid for proxy_session_free(). */
proto_proxy_audit *proxy_session_end(proxy_session *s);
/* Frees s without touching the sandbox (a call in flight is cancelled). Returns NULL. */
proxy_session *proxy_session_free(proxy_session *s);
