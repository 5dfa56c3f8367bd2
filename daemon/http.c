/* aispd's HTTP endpoints on evhttp (loopback by default): /metrics in the Prometheus text
 * format and /healthz (200 "ok" only when Redis is connected, the chain state saves, the node
 * is not draining, and the pool can create sandboxes or has warm ones; 503 with the reason
 * otherwise). */
#include "daemon/node.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"

static void reply(struct evhttp_request *req, int code, const char *reason, const char *ctype,
                  const char *body, size_t len)
{
	struct evbuffer *b = evbuffer_new();
	evbuffer_add(b, body, len);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
	evhttp_send_reply(req, code, reason, b);
	evbuffer_free(b);
}

/* Host CPU by runtime and sandbox phase (sandbox_ctx_cpu): what tasks cost besides their runs. */
static void sandbox_cpu_metrics(const node *n, buf *b)
{
	if (!n->sbx)
		return;
	buf_append_str(b, "# HELP aisp_sandbox_cpu_seconds_total Host CPU spent on sandboxes, by "
	                  "runtime and phase (create, idle, run, teardown).\n"
	                  "# TYPE aisp_sandbox_cpu_seconds_total counter\n");
	for (size_t i = 0; i < n->n_rts; i++) {
		uint64_t ns[SANDBOX_CPU_PHASES];
		sandbox_ctx_cpu(n->sbx, n->rts[i], ns);
		for (int ph = 0; ph < SANDBOX_CPU_PHASES; ph++)
			buf_appendf(b,
			            "aisp_sandbox_cpu_seconds_total{runtime=\"%s\",phase=\"%s\"} "
			            "%.6f\n",
			            sandbox_runtime_name(n->rts[i]), sandbox_cpu_phase_name(ph),
			            (double)ns[ph] / 1e9);
	}
}

static void on_metrics(struct evhttp_request *req, void *arg)
{
	node *n = arg;
	buf b = BUF_INIT;
	metrics_render(&n->m, &b);
	pool_metrics(n->pool, &b);
	sandbox_cpu_metrics(n, &b);
	buf_appendf(&b,
	            "# HELP aisp_redis_reconnects_total Redis reconnections (both connections).\n"
	            "# TYPE aisp_redis_reconnects_total counter\n"
	            "aisp_redis_reconnects_total %llu\n",
	            (unsigned long long)(rconn_reconnects(n->rc) + rconn_reconnects(n->rd)));
	buf_appendf(&b,
	            "# HELP aisp_redis_connected 1 when both Redis connections are ready.\n"
	            "# TYPE aisp_redis_connected gauge\naisp_redis_connected %d\n",
	            rconn_ready(n->rc) && rconn_ready(n->rd));
	buf_appendf(&b,
	            "# HELP aisp_slots Task slots of this node.\n# TYPE aisp_slots gauge\n"
	            "aisp_slots %lld\n"
	            "# HELP aisp_busy_slots Tasks in flight.\n# TYPE aisp_busy_slots gauge\n"
	            "aisp_busy_slots %zu\n",
	            (long long)n->cfg->slots, n->n_tasks);
	reply(req, 200, "OK", "text/plain; version=0.0.4", buf_str(&b), b.len);
	buf_deinit(&b);
}

static void on_healthz(struct evhttp_request *req, void *arg)
{
	node *n = arg;
	_cleanup_free_ char *why = NULL;
	node_update_health(n);
	pool_stats s;
	pool_get_stats(n->pool, &s);
	if (!rconn_ready(n->rc) || !rconn_ready(n->rd))
		why = xasprintf("redis %s not connected: %s\n", n->cfg->redis_address,
		                rconn_last_error(rconn_ready(n->rc) ? n->rd : n->rc));
	else if (n->chain_error)
		why = xasprintf("the chain state cannot be saved (%s): taking no tasks\n",
		                n->chain_error);
	else if (n->cons.draining)
		why = xstrdup("draining\n");
	else if (n->creation_failing && s.warm == 0)
		why = xasprintf(
		    "the pool's last sandbox creation failed (%s) and no sandbox is warm\n",
		    pool_last_error(n->pool) ? pool_last_error(n->pool) : "no reason kept");
	if (why)
		reply(req, 503, "Service Unavailable", "text/plain", why, strlen(why));
	else
		reply(req, 200, "OK", "text/plain", "ok\n", 3);
}

static void on_other(struct evhttp_request *req, void *arg)
{
	static const char msg[] = "not found: try /metrics or /healthz\n";
	reply(req, 404, "Not Found", "text/plain", msg, sizeof(msg) - 1);
}

int http_start(node *n, err **e)
{
	const char *listen = n->cfg->http_listen;
	if (!listen || !listen[0])
		return 0;
	_cleanup_free_ char *host = NULL, *path = NULL;
	int port;
	if (addr_split(listen, &host, &port, &path, e) < 0)
		return err_prefix(e, "http listen");
	n->http = evhttp_new(n->base);
	evhttp_set_allowed_methods(n->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	if (evhttp_bind_socket(n->http, host, (uint16_t)port) < 0)
		return err_set(e, errno, "[http] listen %s: cannot bind", listen);
	evhttp_set_cb(n->http, "/metrics", on_metrics, n);
	evhttp_set_cb(n->http, "/healthz", on_healthz, n);
	evhttp_set_gencb(n->http, on_other, n);
	return 0;
}

void http_stop(node *n)
{
	if (n->http)
		evhttp_free(n->http);
	n->http = NULL;
}
