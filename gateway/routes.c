/* The route table (the v1 API and the seed's SecureExecAPI paths as aliases), the server's
 * limits, and the endpoints that need no key: /health, /healthz, /metrics. */
#include "gateway/gateway.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "proto/json.h"

static const char *const route_names[GW_ROUTE__COUNT] = {
    "exec", "simulate", "tools", "task", "nodes", "health", "healthz", "metrics", "other"};

#define LISTEN_BACKLOG 1024

typedef enum handler_id {
	H_EXEC,
	H_EXEC_SEED, /* /exec/tool: dryRun defaults to true, as in the seed */
	H_SIMULATE,
	H_TOOLS,
	H_TASK,
	H_NODES,
	H_HEALTH,
	H_HEALTHZ,
	H_METRICS,
} handler_id;

static const struct route {
	const char *path; /* exact, or a prefix ending in '/' for H_TASK */
	enum evhttp_cmd_type method;
	handler_id h;
	gw_route route;
} routes[] = {
    {"/v1/exec", EVHTTP_REQ_POST, H_EXEC, GW_ROUTE_EXEC},
    {"/exec/tool", EVHTTP_REQ_POST, H_EXEC_SEED, GW_ROUTE_EXEC},
    {"/v1/exec/simulate", EVHTTP_REQ_POST, H_SIMULATE, GW_ROUTE_SIMULATE},
    {"/exec/simulate", EVHTTP_REQ_POST, H_SIMULATE, GW_ROUTE_SIMULATE},
    {"/v1/tools", EVHTTP_REQ_GET, H_TOOLS, GW_ROUTE_TOOLS},
    {"/exec/tools", EVHTTP_REQ_GET, H_TOOLS, GW_ROUTE_TOOLS},
    {"/v1/tasks/", EVHTTP_REQ_GET, H_TASK, GW_ROUTE_TASK},
    {"/v1/nodes", EVHTTP_REQ_GET, H_NODES, GW_ROUTE_NODES},
    {"/health", EVHTTP_REQ_GET, H_HEALTH, GW_ROUTE_HEALTH},
    {"/v1/health", EVHTTP_REQ_GET, H_HEALTH, GW_ROUTE_HEALTH},
    {"/healthz", EVHTTP_REQ_GET, H_HEALTHZ, GW_ROUTE_HEALTHZ},
    {"/metrics", EVHTTP_REQ_GET, H_METRICS, GW_ROUTE_METRICS},
};

static bool path_matches(const struct route *r, const char *path)
{
	if (r->h == H_TASK)
		return !strncmp(path, r->path, strlen(r->path)) && path[strlen(r->path)];
	return !strcmp(path, r->path);
}

static const char *method_name(enum evhttp_cmd_type m)
{
	return m == EVHTTP_REQ_GET ? "GET" : "POST";
}

static void on_health(gw_call *c)
{
	gw *g = c->g;
	bool up = rconn_ready(g->rc) && rconn_ready(g->rd);
	char ts[32];
	gw_iso8601(now_wall_ms(), ts);
	_cleanup_json_gen_ proto_gen *j = proto_json_gen_new();
	proto_json_gen_open(j, true);
	proto_json_gen_kstr(j, "status", up ? "ok" : "unavailable");
	proto_json_gen_kstr(j, "service", "aisp-gateway");
	proto_json_gen_kstr(j, "version", GW_SCHEMA_VERSION);
	proto_json_gen_kstr(j, "gatewayVersion", AISP_VERSION);
	proto_json_gen_kstr(j, "gatewayId", g->cfg->id);
	proto_json_gen_kbool(j, "redis", up);
	proto_json_gen_kstr(j, "postgres",
	                    !g->cfg->postgres[0]              ? "disabled"
	                    : gw_calllog_pg_connected(g->log) ? "connected"
	                                                      : "disconnected");
	proto_json_gen_kstr(j, "keyId", attest_key_id(g->key));
	proto_json_gen_kstr(j, "publicKey", g->pubkey_pem);
	proto_json_gen_kstr(j, "timestamp", ts);
	proto_json_gen_kstr(j, "schemaVersion", GW_SCHEMA_VERSION);
	proto_json_gen_close(j, true);
	gw_send_gen(c, up ? 200 : 503, j);
}

static void on_healthz(gw_call *c)
{
	gw *g = c->g;
	if (!rconn_ready(g->rc) || !rconn_ready(g->rd)) {
		_cleanup_free_ char *why =
		    xasprintf("redis %s not connected: %s\n", g->cfg->redis_address,
		              rconn_last_error(rconn_ready(g->rc) ? g->rd : g->rc));
		gw_send(c, 503, "text/plain", why, strlen(why));
		return;
	}
	gw_send(c, 200, "text/plain", "ok\n", 3);
}

static void counter(buf *b, const char *name, const char *help, uint64_t v)
{
	buf_appendf(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
	            (unsigned long long)v);
}

static void gauge(buf *b, const char *name, const char *help, double v)
{
	buf_appendf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %g\n", name, help, name, name, v);
}

static void labelled_families(const gw *g, buf *b)
{
	static const char *const classes[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
	buf_append_str(b, "# HELP aisp_gateway_requests_total HTTP requests by route and status "
	                  "class.\n# TYPE aisp_gateway_requests_total counter\n");
	for (int r = 0; r < GW_ROUTE__COUNT; r++)
		for (int k = 0; k < 5; k++)
			if (g->m.requests[r][k])
				buf_appendf(
				    b,
				    "aisp_gateway_requests_total{route=\"%s\",code=\"%s\"} %llu\n",
				    route_names[r], classes[k],
				    (unsigned long long)g->m.requests[r][k]);
	buf_append_str(b, "# HELP aisp_gateway_iam_decisions_total IAM decisions by outcome.\n"
	                  "# TYPE aisp_gateway_iam_decisions_total counter\n");
	for (int v = 0; v < GW_VERDICT__COUNT; v++)
		buf_appendf(b, "aisp_gateway_iam_decisions_total{decision=\"%s\"} %llu\n",
		            gw_verdict_name((gw_verdict)v), (unsigned long long)g->m.decisions[v]);
	static const char *const unlogged[GW_UNLOGGED__COUNT] = {"no_route", "unauthenticated",
	                                                         "no_postgres"};
	buf_append_str(b,
	               "# HELP aisp_gateway_calls_unlogged_total Calls that made no call record, "
	               "by why.\n# TYPE aisp_gateway_calls_unlogged_total counter\n");
	for (int u = 0; u < GW_UNLOGGED__COUNT; u++)
		buf_appendf(b, "aisp_gateway_calls_unlogged_total{reason=\"%s\"} %llu\n",
		            unlogged[u], (unsigned long long)g->m.calls_unlogged[u]);
	buf_append_str(b, "# HELP aisp_gateway_results_total Results received, by status.\n"
	                  "# TYPE aisp_gateway_results_total counter\n");
	for (int s = 0; s < PROTO_STATUS__COUNT; s++)
		buf_appendf(b, "aisp_gateway_results_total{status=\"%s\"} %llu\n",
		            proto_status_name((proto_status)s),
		            (unsigned long long)g->m.results[s]);
}

static void on_metrics(gw_call *c)
{
	const gw *g = c->g;
	const gw_metrics *m = &g->m;
	buf b = BUF_INIT;
	labelled_families(g, &b);
	counter(&b, "aisp_gateway_tasks_submitted_total", "Tasks added to aisp:tasks.",
	        m->submitted);
	counter(&b, "aisp_gateway_waits_timed_out_total",
	        "Calls answered 202 pending: no result within wait_ms.", m->waits_timed_out);
	counter(&b, "aisp_gateway_results_refused_total",
	        "Results that did not verify (forged, another task's, not signed by their node's "
	        "key): ignored.",
	        m->results_refused);
	counter(&b, "aisp_gateway_reply_entries_total", "Entries read from the reply stream.",
	        m->reply_entries);
	counter(&b, "aisp_gateway_events_forwarded_total",
	        "Reply-stream events forwarded to NDJSON clients.", m->events_forwarded);
	counter(&b, "aisp_gateway_connections_refused_total",
	        "Connections refused at max_connections.", m->conns_refused);
	counter(&b, "aisp_gateway_connections_timed_out_total",
	        "Connections closed at request_timeout_s (slow clients).", m->conns_timed_out);
	counter(&b, "aisp_gateway_error_pages_rewritten_total",
	        "evhttp error pages replaced by problem+json.", m->error_pages);
	counter(&b, "aisp_gateway_calls_logged_total", "Call records added to the outbox.",
	        m->calls_logged);
	counter(&b, "aisp_gateway_calls_dropped_total",
	        "Call records dropped: the in-memory backlog was full, or trimmed from the outbox "
	        "(outbox_max) before PostgreSQL had them.",
	        m->calls_dropped);
	counter(&b, "aisp_gateway_pg_rows_total", "Call records inserted into PostgreSQL.",
	        m->pg_rows);
	counter(&b, "aisp_gateway_pg_batches_total", "Batches committed to PostgreSQL.",
	        m->pg_batches);
	counter(&b, "aisp_gateway_pg_errors_total", "PostgreSQL connection or query failures.",
	        m->pg_errors);
	counter(&b, "aisp_gateway_redis_reconnects_total", "Redis reconnections.",
	        rconn_reconnects(g->rc) + rconn_reconnects(g->rd));
	gauge(&b, "aisp_gateway_redis_connected", "1 when both Redis connections are ready.",
	      rconn_ready(g->rc) && rconn_ready(g->rd));
	gauge(&b, "aisp_gateway_pg_connected", "1 when the call log writer is connected.",
	      gw_calllog_pg_connected(g->log));
	gauge(&b, "aisp_gateway_calls_backlog", "Call records waiting for Redis, in memory.",
	      (double)gw_calllog_backlog(g->log));
	gauge(&b, "aisp_gateway_connections", "Open HTTP connections.",
	      (double)gw_conns_open(g->conns));
	gauge(&b, "aisp_gateway_waiters", "Calls waiting for a result.", (double)g->n_waiters);
	metrics_hist_render(&m->latency, "aisp_gateway_request_seconds",
	                    "Time from a request's arrival to its reply.", &b);
	gw_send(c, 200, "text/plain; version=0.0.4", buf_str(&b), b.len);
	buf_deinit(&b);
}

static void dispatch(gw_call *c, handler_id h, const char *path)
{
	switch (h) {
	case H_EXEC:
		gw_exec(c, false);
		break;
	case H_EXEC_SEED:
		gw_exec(c, true);
		break;
	case H_SIMULATE:
		gw_simulate(c);
		break;
	case H_TOOLS:
		gw_tools(c);
		break;
	case H_TASK:
		gw_task_get(c, path + strlen("/v1/tasks/"));
		break;
	case H_NODES:
		gw_nodes(c);
		break;
	case H_HEALTH:
		on_health(c);
		break;
	case H_HEALTHZ:
		on_healthz(c);
		break;
	case H_METRICS:
		on_metrics(c);
		break;
	}
}

static void on_request(struct evhttp_request *req, void *arg)
{
	gw *g = arg;
	gw_conn_request_begin(g->conns, req);
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
	const char *path = u ? evhttp_uri_get_path(u) : NULL;
	if (!path || !path[0])
		path = "/";
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	const struct route *found = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
		if (!path_matches(&routes[i], path))
			continue;
		found = &routes[i];
		if (routes[i].method == m) {
			dispatch(gw_call_begin(g, req, routes[i].route, path), routes[i].h, path);
			return;
		}
	}
	gw_call *c = gw_call_begin(g, req, GW_ROUTE_OTHER, path);
	if (found) {
		_cleanup_free_ char *d =
		    xasprintf("%s takes %s only", found->path, method_name(found->method));
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
		                  method_name(found->method));
		gw_send_problem(c, 405, "method-not-allowed", d, NULL);
		return;
	}
	_cleanup_free_ char *d = xasprintf("no such endpoint: %.200s (see /v1/exec, "
	                                   "/v1/exec/simulate, /v1/tools, /v1/tasks/{id}, "
	                                   "/v1/nodes, /health)",
	                                   path);
	gw_send_problem(c, 404, "not-found", d, NULL);
}

/* The listening socket, with a backlog of LISTEN_BACKLOG: evhttp's default (128) drops SYNs
 * when a few hundred clients connect at once, and each drop costs the client a 1 s retry. */
static int listen_on(gw *g, err **e)
{
	const char *addr = g->cfg->listen;
	struct sockaddr_storage ss;
	int sl = sizeof(ss);
	if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sl) < 0)
		return err_set(e, 0, "listen %s: expected an IP address and a port", addr);
	struct evconnlistener *l = evconnlistener_new_bind(
	    g->base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    LISTEN_BACKLOG, (struct sockaddr *)&ss, sl);
	if (!l)
		return err_set(e, errno, "listen %s: cannot bind", addr);
	g->listener = evhttp_bind_listener(g->http, l);
	if (!g->listener) {
		evconnlistener_free(l);
		return err_set(e, 0, "listen %s: evhttp_bind_listener failed", addr);
	}
	return 0;
}

int gw_http_start(gw *g, err **e)
{
	const gw_config *cfg = g->cfg;
	g->http = evhttp_new(g->base);
	evhttp_set_max_body_size(g->http, cfg->max_body_bytes);
	evhttp_set_max_headers_size(g->http, cfg->max_headers_bytes);
	evhttp_set_timeout(g->http, (int)cfg->idle_timeout_s);
	/* every method reaches on_request, which answers 405 itself (evhttp's would be HTML) */
	evhttp_set_allowed_methods(g->http, 0xffff);
	evhttp_set_default_content_type(g->http, "application/json");
	g->conns = gw_conns_new(g);
	if (listen_on(g, e) < 0)
		return -1;
	evhttp_set_gencb(g->http, on_request, g);
	return 0;
}

void gw_http_close_listener(gw *g)
{
	if (g->http && g->listener)
		evhttp_del_accept_socket(g->http, g->listener);
	g->listener = NULL;
}

void gw_http_stop(gw *g)
{
	g->listener = NULL;
	if (g->http)
		evhttp_free(g->http);
	g->http = NULL;
	g->conns = gw_conns_free(g->conns);
}
