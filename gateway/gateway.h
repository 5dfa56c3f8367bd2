/* aisp-gateway's process-wide state and the pieces that share it: HTTP routing and replies
 * (http.c), the connection layer under evhttp (conn.c), execution through Redis (exec.c),
 * the registry, catalogue and task lookups (catalog.c), dry runs (simulate.c), the call log
 * (calllog.c) over an asynchronous PostgreSQL connection (pg.c). Only gateway/ sees it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/json.h"

#include "attest/attest.h"
#include "common/buf.h"
#include "common/err.h"
#include "daemon/metrics.h"
#include "daemon/redis.h"
#include "gateway/core.h"
#include "proto/proto.h"

struct event_base;
struct event;
struct evhttp;
struct evhttp_request;
struct evhttp_bound_socket;
struct evbuffer;

typedef struct gw gw;
typedef struct gw_conns gw_conns;
typedef struct gw_waiter gw_waiter;
typedef struct gw_calllog gw_calllog;

/* The most bytes of a request path a call record keeps (its "endpoint"). */
#define GW_RECORD_PATH_MAX 128

/* Routes, for metrics and the call record. */
typedef enum gw_route {
	GW_ROUTE_EXEC = 0,
	GW_ROUTE_SIMULATE,
	GW_ROUTE_TOOLS,
	GW_ROUTE_TASK,
	GW_ROUTE_NODES,
	GW_ROUTE_HEALTH,
	GW_ROUTE_HEALTHZ,
	GW_ROUTE_METRICS,
	GW_ROUTE_OTHER,
	GW_ROUTE__COUNT,
} gw_route;

/* Why a call made no call record (aisp_gateway_calls_unlogged_total{reason}). */
typedef enum gw_unlogged {
	GW_UNLOGGED_NO_ROUTE = 0,    /* 404, 405: no endpoint */
	GW_UNLOGGED_UNAUTHENTICATED, /* 401: no key, or not a key */
	GW_UNLOGGED_NO_POSTGRES,     /* postgres = "": no call log */
	GW_UNLOGGED__COUNT,
} gw_unlogged;

typedef struct gw_metrics {
	uint64_t requests[GW_ROUTE__COUNT][5]; /* by status class 1xx..5xx */
	uint64_t decisions[GW_VERDICT__COUNT];
	uint64_t submitted;
	uint64_t results[PROTO_STATUS__COUNT];
	uint64_t waits_timed_out;
	uint64_t results_refused; /* results that did not verify (result.c) */
	uint64_t reply_entries;   /* entries read from the reply stream */
	uint64_t events_forwarded;
	uint64_t conns_refused, conns_timed_out, error_pages;
	uint64_t calls_logged, calls_dropped, calls_unlogged[GW_UNLOGGED__COUNT];
	uint64_t pg_rows, pg_batches, pg_errors;
	metrics_hist latency;
} gw_metrics;

/* One HTTP call, from its arrival to its reply; then its record goes to the call log. */
typedef struct gw_call {
	gw *g;
	struct evhttp_request *req;
	char call_id[33];
	int64_t start_us, ts_ms;
	gw_route route;
	char *path;
	const gw_key *key;
	char *agent_id, *tool, *task_id, *node, *status, *proof_hash;
	bool dry_run;
	gw_decision decision;
	bool decided;
	int http_status;
	int64_t cost_micros;
	bool streaming;
} gw_call;

struct gw {
	const gw_config *cfg;
	gw_keys keys;
	gw_bucket *buckets; /* one per key, same order */
	struct event_base *base;
	rconn *rc; /* commands */
	rconn *rd; /* the blocking XREAD of this gateway's reply stream only */
	attest_key *key;
	char *pubkey_pem;
	char *reply_stream;
	struct evhttp *http;
	struct evhttp_bound_socket *listener;
	gw_conns *conns;

	gw_waiter **waiters; /* hash table by task id */
	size_t n_waiters;
	char last_reply_id[64];
	bool reading;
	size_t verifying; /* results of the last XREAD still being verified */

	gw_calllog *log;
	gw_metrics m;
	struct event *ev_term, *ev_int, *ev_flush;
	bool stopping;
};

/* ---- http.c ---- */
/* A call for a request that has arrived (the router's constructor). */
gw_call *gw_call_begin(gw *g, struct evhttp_request *req, gw_route route, const char *path);
int gw_http_start(gw *g, err **e);
void gw_http_stop(gw *g);
/* Stops accepting connections; open ones are served until gw_http_stop(). */
void gw_http_close_listener(gw *g);
/* Replies (each finishes the call: metrics, call record, free). */
void gw_send(gw_call *c, int status, const char *ctype, const char *body, size_t len);
void gw_send_json(gw_call *c, int status, const buf *body);
/* problem+json; extra: NULL-terminated key/value pairs added to the document (or NULL). */
void gw_send_problem(gw_call *c, int status, const char *slug, const char *detail,
                     const char *const *extra);
/* An application/x-ndjson response: begin, lines (one JSON document each), end. */
void gw_stream_begin(gw_call *c);
void gw_stream_line(gw_call *c, const buf *line);
void gw_stream_end(gw_call *c);
/* The key of a call: 0, or -1 after a 401/429 reply (the call is then finished). */
int gw_authenticate(gw_call *c);
/* Records the IAM decision in the call (counted once). */
void gw_call_decide(gw_call *c, const gw_decision *d);
/* Replies with the decision's problem (401/402/403/429). */
void gw_send_denied(gw_call *c);
/* The request body (NUL-terminated copy), after checking Content-Type: application/json.
 * NULL after a 415 reply. */
char *gw_read_json_body(gw_call *c, size_t *len);
bool gw_accepts_ndjson(const gw_call *c);

/* ---- conn.c ---- */
gw_conns *gw_conns_new(gw *g);
gw_conns *gw_conns_free(gw_conns *cs);
size_t gw_conns_open(const gw_conns *cs);
/* The request's connection no longer waits for a request (no header deadline while the
 * gateway works on it); the deadline is armed again when the reply is complete. */
void gw_conn_request_begin(gw_conns *cs, struct evhttp_request *req);
/* Sends as evhttp_send_reply*, marking the bytes as the gateway's own (conn.c rewrites
 * evhttp's own HTML error pages and nothing else). */
void gw_conn_send_reply(gw_conns *cs, struct evhttp_request *req, int code, const char *reason,
                        struct evbuffer *body);
void gw_conn_reply_start(gw_conns *cs, struct evhttp_request *req, int code, const char *reason);
void gw_conn_reply_chunk(gw_conns *cs, struct evhttp_request *req, struct evbuffer *body);
void gw_conn_reply_end(gw_conns *cs, struct evhttp_request *req);

/* ---- exec.c ---- */
/* The start of exec and simulate: the key, the body, its translation into r; the call's
 * record gets the agent, tool, task id and dry run. Returns 0, or -1 after a reply. */
int gw_exec_begin(gw_call *c, bool dry_default, gw_exec_req *r);
/* POST /v1/exec and /exec/tool (dry_default: dryRun when the body does not say). */
void gw_exec(gw_call *c, bool dry_default);
/* Starts reading the reply stream (when rd is ready). */
void gw_replies_read(gw *g);
/* rd (re)connected: every waiter looks for its result key (nothing is lost). */
void gw_waiters_poll_all(gw *g);
void gw_waiters_free_all(gw *g);
bool gw_waiting_for(const gw *g, const char *task_id);
/* The response body for a result document (exec, tasks/{id}): the seed's fields, the
 * result, its envelope and proofHash. */
int gw_result_body(gw_call *c, const char *result, size_t len, const proto_limits *limits, buf *out,
                   err **e);

/* ---- result.c ---- */
typedef enum gw_result_state {
	GW_RESULT_OK = 0,    /* the task's result, signed by its node */
	GW_RESULT_BAD,       /* not that: forged, another task's, unsigned, malformed */
	GW_RESULT_UNCHECKED, /* the node's key could not be read from Redis */
} gw_result_state;
/* st, and why when not OK (borrowed for the call); json and len are the result's copy
 * (borrowed for the call; NULL for one too large to be copied). */
typedef void (*gw_verified_fn)(gw *g, gw_result_state st, const char *why, const char *json,
                               size_t len, void *arg);
/* Checks that json (len bytes) is the result of task task_id signed by the node it names
 * (result.c says how), and when task is given (borrowed until cb) that it is this task's
 * (input_digest). json is copied. cb is called exactly once: at once when json itself is
 * refused, otherwise from the loop after the key is read. */
void gw_result_verify(gw *g, const char *task_id, const proto_task *task, const char *json,
                      size_t len, gw_verified_fn cb, void *arg);

/* ---- simulate.c ---- */
/* POST /v1/exec/simulate and /exec/simulate, and exec with dryRun (req already parsed). */
void gw_simulate(gw_call *c);
void gw_simulate_req(gw_call *c, gw_exec_req *r);

/* ---- catalog.c ---- */
typedef struct gw_node_info {
	char *id;
	char **fields; /* HGETALL: name, value, name, value, ... */
	size_t n_fields;
} gw_node_info;
/* The live registry: SMEMBERS aisp:nodes, then HGETALL of each (expired hashes dropped). cb
 * gets the nodes (borrowed for the call) or ok = false when Redis failed. */
typedef void (*gw_registry_fn)(gw *g, bool ok, const gw_node_info *nodes, size_t n, void *arg);
void gw_registry_fetch(gw *g, gw_registry_fn cb, void *arg);
const char *gw_node_field(const gw_node_info *n, const char *name);
/* The node's limits from its registry fields <prefix><field> ("max_", "default_"; internal
 * units), over out. False when the node publishes none. */
bool gw_node_limits(const gw_node_info *n, const char *prefix, proto_limits *out);
/* The forms of image on the live nodes (gw_images_add_node over each node's registry). */
void gw_images_of(const char *image, const gw_node_info *nodes, size_t n, gw_images *out);
/* True when the comma-separated list csv has name. */
bool gw_csv_has(const char *csv, const char *name);
/* Emits limits as the task's "limits" object (wire units; unset fields left out). */
void gw_gen_limits(proto_gen *g, const proto_limits *l);
void gw_tools(gw_call *c);
void gw_nodes(gw_call *c);
void gw_task_get(gw_call *c, const char *id);

/* ---- calllog.c ---- */
gw_calllog *gw_calllog_new(gw *g);
gw_calllog *gw_calllog_free(gw_calllog *l);
/* True when calls are logged (PostgreSQL is configured): only then is there an outbox. */
bool gw_calllog_enabled(const gw_calllog *l);
/* Queues one call record (JSON) for the outbox; never blocks. Nothing when not enabled. */
void gw_calllog_record(gw_calllog *l, const buf *record);
void gw_calllog_redis_ready(gw_calllog *l);
bool gw_calllog_pg_connected(const gw_calllog *l);
size_t gw_calllog_backlog(const gw_calllog *l);
/* No outbox write in flight. */
bool gw_calllog_idle(const gw_calllog *l);
/* The SQL that creates secureexec_calls and its indexes. */
const char *gw_calllog_schema(void);

/* "k": "v" (any bytes, as text) or "k": null when v is NULL; for maps. */
void gw_gen_kstr_or_null(proto_gen *g, const char *k, const char *v);
/* A string value, or null when v is NULL. */
void gw_gen_str_or_null(proto_gen *g, const char *v);
/* Sends the generator's document as application/json (finishes the call). */
void gw_send_gen(gw_call *c, int status, proto_gen *g);

/* Base64 (standard, padded). Caller frees. */
char *gw_b64(const void *p, size_t n);
