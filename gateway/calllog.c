/* The call log. The record of every call that reached an endpoint with a valid key (http.c
 * says which and why) goes first to a Redis stream, the outbox (XADD <outbox> MAXLEN ~
 * <outbox_max> * call <JSON>), from the loop and after the reply has been handed to evhttp: the
 * response never waits for it. While Redis is away records wait in memory (bounded; dropped
 * ones are counted). Without PostgreSQL (postgres = "") there is no call log and no outbox:
 * nothing would ever read or delete it. A writer in the gateway copies the outbox into PostgreSQL's secureexec_calls:
 * consumer group "pgwriter" (one consumer per gateway id), its own pending entries first (a
 * batch that failed, or a restart), then new ones; each batch is one INSERT ... SELECT FROM
 * jsonb_to_recordset(...) ON CONFLICT (call_id) DO NOTHING (one statement, so one
 * transaction), and its entries are XACKed and XDELed only after PostgreSQL committed. So a
 * PostgreSQL outage loses nothing (the entries stay pending and are retried after the
 * reconnect), and a crash between the commit and the XACK makes no duplicate (the call id is
 * unique). Entries a dead gateway left pending are taken over with XAUTOCLAIM after
 * claim_idle_ms.
 *
 * Why libpq on the loop rather than a thread: the loop already multiplexes Redis and HTTP
 * without blocking; PQconnectStart/PQsendQuery with the socket on libevent (pg.c) add
 * PostgreSQL the same way, with no locking and no second copy of the state. */
#include "gateway/gateway.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "gateway/pg.h"
#include "proto/json.h"

#define BACKLOG_MAX 100000
#define GROUP       "pgwriter"

/* The table, shaped like the seed's secureexec_calls (its columns and indexes) plus the
 * gateway's own columns; created at every connect when missing. */
static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS secureexec_calls ("
    " id BIGSERIAL PRIMARY KEY,"
    " call_id TEXT NOT NULL UNIQUE,"
    " \"timestamp\" TIMESTAMPTZ NOT NULL DEFAULT NOW(),"
    " caller_agent_id TEXT, tool_name TEXT, dry_run BOOLEAN, status TEXT,"
    " iam_approved BOOLEAN, proof_hash TEXT, latency_ms INTEGER, payment_protocol TEXT,"
    " schema_version TEXT DEFAULT 'v1',"
    " key_id TEXT, iam_decision TEXT, iam_detail TEXT, http_status INTEGER, node_id TEXT,"
    " task_id TEXT, cost_micros BIGINT, currency TEXT, endpoint TEXT, gateway_id TEXT,"
    " trust_level TEXT);"
    "CREATE INDEX IF NOT EXISTS idx_secureexec_ts ON secureexec_calls(\"timestamp\");"
    "CREATE INDEX IF NOT EXISTS idx_secureexec_agent ON secureexec_calls(caller_agent_id);"
    "CREATE INDEX IF NOT EXISTS idx_secureexec_tool ON secureexec_calls(tool_name);"
    "CREATE INDEX IF NOT EXISTS idx_secureexec_key ON secureexec_calls(key_id);";

#define COLUMNS                                                                                    \
	"call_id, caller_agent_id, tool_name, dry_run, status, iam_approved, proof_hash, "         \
	"latency_ms, payment_protocol, key_id, iam_decision, iam_detail, http_status, node_id, "   \
	"task_id, cost_micros, currency, endpoint, gateway_id, trust_level"

static const char insert_sql[] =
    "INSERT INTO secureexec_calls (\"timestamp\", schema_version, " COLUMNS ") "
    "SELECT to_timestamp(ts_ms / 1000.0), coalesce(schema_version, 'v1'), " COLUMNS " "
    "FROM jsonb_to_recordset($1::jsonb) AS x(ts_ms bigint, schema_version text, call_id text,"
    " caller_agent_id text, tool_name text, dry_run boolean, status text, iam_approved boolean,"
    " proof_hash text, latency_ms integer, payment_protocol text, key_id text,"
    " iam_decision text, iam_detail text, http_status integer, node_id text, task_id text,"
    " cost_micros bigint, currency text, endpoint text, gateway_id text, trust_level text) "
    "ON CONFLICT (call_id) DO NOTHING";

typedef struct record {
	gw_calllog *l;
	char *json;
	size_t len;
	struct record *next;
} record;

struct gw_calllog {
	gw *g;
	record *backlog, *backlog_tail;
	size_t n_backlog;
	size_t inflight; /* outbox XADDs sent, not answered */
	pgc *pg;
	bool group_ok, busy, read_new;
	char **ids; /* the batch in PostgreSQL's hands */
	size_t n_ids;
	int64_t last_claim_ms;
	struct event *tick;
};

const char *gw_calllog_schema(void)
{
	return schema_sql;
}

/* ---- the outbox ---- */

static void push_backlog(gw_calllog *l, record *r)
{
	if (l->n_backlog >= BACKLOG_MAX) {
		l->g->m.calls_dropped++;
		free(r->json);
		free(r);
		return;
	}
	r->next = NULL;
	if (l->backlog_tail)
		l->backlog_tail->next = r;
	else
		l->backlog = r;
	l->backlog_tail = r;
	l->n_backlog++;
}

static void on_outbox_xadd(rconn *rc, redisReply *reply, void *arg)
{
	record *r = arg;
	gw_calllog *l = r->l;
	l->inflight--;
	if (!reply || reply->type == REDIS_REPLY_ERROR) {
		if (!l->g->stopping) {
			push_backlog(l, r);
			return;
		}
		l->g->m.calls_dropped++;
	} else {
		l->g->m.calls_logged++;
	}
	free(r->json);
	free(r);
}

/* XADD <outbox> MAXLEN ~ <outbox_max> * call <JSON>: while PostgreSQL is away the outbox keeps
 * the newest outbox_max records or so (whole stream nodes are trimmed), never all of Redis. */
static void send_record(gw_calllog *l, record *r)
{
	const gw_config *c = l->g->cfg;
	char max[24];
	snprintf(max, sizeof(max), "%lld", (long long)c->outbox_max);
	const char *argv[] = {"XADD", c->outbox, "MAXLEN", "~", max, "*", "call", r->json};
	size_t lens[ARRAY_SIZE(argv)];
	for (size_t i = 0; i + 1 < ARRAY_SIZE(argv); i++)
		lens[i] = strlen(argv[i]);
	lens[ARRAY_SIZE(argv) - 1] = r->len;
	l->inflight++;
	rconn_cmdv(l->g->rc, on_outbox_xadd, r, 0, (int)ARRAY_SIZE(argv), argv, lens);
}

bool gw_calllog_enabled(const gw_calllog *l)
{
	return l && l->pg;
}

void gw_calllog_record(gw_calllog *l, const buf *rec)
{
	if (!gw_calllog_enabled(l)) /* nothing would ever read or delete it (http.c counts it) */
		return;
	record *r = xzalloc(sizeof(*r));
	r->l = l;
	r->json = xmemdup(rec->data, rec->len + 1);
	r->len = rec->len;
	if (rconn_ready(l->g->rc) && !l->backlog)
		send_record(l, r);
	else
		push_backlog(l, r);
}

void gw_calllog_redis_ready(gw_calllog *l)
{
	while (l->backlog && rconn_ready(l->g->rc)) {
		record *r = l->backlog;
		l->backlog = r->next;
		if (!l->backlog)
			l->backlog_tail = NULL;
		l->n_backlog--;
		send_record(l, r);
	}
}

size_t gw_calllog_backlog(const gw_calllog *l)
{
	return l ? l->n_backlog : 0;
}

bool gw_calllog_idle(const gw_calllog *l)
{
	return !l || l->inflight == 0;
}

bool gw_calllog_pg_connected(const gw_calllog *l)
{
	return l && pgc_connected(l->pg);
}

/* ---- the writer ---- */

static void writer_step(gw_calllog *l);

static void free_ids(gw_calllog *l)
{
	for (size_t i = 0; i < l->n_ids; i++)
		free(l->ids[i]);
	free(l->ids);
	l->ids = NULL;
	l->n_ids = 0;
}

/* XACK or XDEL <outbox> [group] <ids of the batch>. */
static void ids_cmd(gw_calllog *l, const char *cmd, rconn_reply_fn cb)
{
	size_t n = 0, pre = !strcmp(cmd, "XACK") ? 3 : 2;
	const char **argv = xcalloc(pre + l->n_ids, sizeof(*argv));
	size_t *lens = xcalloc(pre + l->n_ids, sizeof(*lens));
	argv[n++] = cmd;
	argv[n++] = l->g->cfg->outbox;
	if (pre == 3)
		argv[n++] = GROUP;
	for (size_t i = 0; i < l->n_ids; i++)
		argv[n++] = l->ids[i];
	for (size_t i = 0; i < n; i++)
		lens[i] = strlen(argv[i]);
	rconn_cmdv(l->g->rc, cb, l, 0, (int)n, argv, lens);
	free(argv);
	free(lens);
}

static void on_deleted(rconn *rc, redisReply *r, void *arg)
{
	gw_calllog *l = arg;
	free_ids(l);
	l->busy = false;
	writer_step(l); /* catch up without waiting for the tick */
}

static void on_acked(rconn *rc, redisReply *r, void *arg)
{
	gw_calllog *l = arg;
	if (!r || r->type == REDIS_REPLY_ERROR) { /* still pending: re-inserted later, no dup */
		free_ids(l);
		l->busy = false;
		return;
	}
	ids_cmd(l, "XDEL", on_deleted);
}

static void on_inserted(pgc *p, bool ok, const char *error, const char *tuples, void *arg)
{
	gw_calllog *l = arg;
	if (!ok) {
		log_warn("call log: insert of %zu records failed (kept in %s, retried): %s",
		         l->n_ids, l->g->cfg->outbox, error);
		l->g->m.pg_errors++;
		free_ids(l);
		l->busy = false;
		return;
	}
	int64_t n = 0;
	parse_i64(tuples ? tuples : "0", 0, INT64_MAX, &n);
	l->g->m.pg_batches++;
	l->g->m.pg_rows += (uint64_t)n;
	ids_cmd(l, "XACK", on_acked);
}

/* The entries of one XREADGROUP reply as a JSON array of records; every id (records that
 * are not JSON objects too: they are acknowledged and dropped, with a warning). */
static size_t batch_of(gw_calllog *l, const redisReply *r, buf *json)
{
	size_t n = 0;
	const redisReply *entries =
	    r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->elements == 2
	        ? r->element[0]->element[1]
	        : NULL;
	buf_append_str(json, "[");
	for (size_t i = 0; entries && i < entries->elements; i++) {
		const redisReply *e = entries->element[i];
		if (e->type != REDIS_REPLY_ARRAY || e->elements != 2)
			continue;
		l->ids = xreallocarray(l->ids, l->n_ids + 1, sizeof(*l->ids));
		l->ids[l->n_ids++] = xstrdup(e->element[0]->str);
		const redisReply *f = e->element[1];
		if (f->type == REDIS_REPLY_NIL) { /* trimmed (outbox_max) while it was pending */
			l->g->m.calls_dropped++;
			continue;
		}
		const redisReply *call = NULL;
		for (size_t j = 0; f->type == REDIS_REPLY_ARRAY && j + 1 < f->elements; j += 2)
			if (!strcmp(f->element[j]->str, "call"))
				call = f->element[j + 1];
		_cleanup_yajl_val_ yajl_val v = NULL;
		if (!call || proto_json_parse(call->str, call->len, &v, NULL) < 0 ||
		    !YAJL_IS_OBJECT(v) || !proto_json_get_str(v, "call_id")) {
			log_warn("call log: entry %s of %s is not a call record: dropped",
			         e->element[0]->str, l->g->cfg->outbox);
			continue;
		}
		buf_appendf(json, "%s%s", n++ ? "," : "", call->str);
	}
	buf_append_str(json, "]");
	return n;
}

static void on_read(rconn *rc, redisReply *r, void *arg)
{
	gw_calllog *l = arg;
	l->busy = false;
	if (!r || r->type == REDIS_REPLY_ERROR) {
		if (rconn_reply_is_error(r, "NOGROUP"))
			l->group_ok = false;
		return;
	}
	buf json = BUF_INIT;
	size_t n = r->type == REDIS_REPLY_ARRAY ? batch_of(l, r, &json) : 0;
	if (!l->n_ids) { /* own pending entries done: read new ones; new ones done: wait */
		buf_deinit(&json);
		l->read_new = !l->read_new;
		if (l->read_new)
			writer_step(l);
		return;
	}
	l->read_new = false;
	l->busy = true;
	if (n == 0) {
		ids_cmd(l, "XACK", on_acked);
	} else {
		const char *params[] = {buf_str(&json)};
		if (pgc_query(l->pg, insert_sql, 1, params, on_inserted, l) < 0) {
			free_ids(l); /* PostgreSQL went away meanwhile: still pending */
			l->busy = false;
		}
	}
	buf_deinit(&json);
}

static void on_group(rconn *rc, redisReply *r, void *arg)
{
	gw_calllog *l = arg;
	l->busy = false;
	if (r && (r->type != REDIS_REPLY_ERROR || rconn_reply_is_error(r, "BUSYGROUP"))) {
		l->group_ok = true;
		writer_step(l);
	}
}

static void writer_step(gw_calllog *l)
{
	gw *g = l->g;
	const gw_config *c = g->cfg;
	if (l->busy || g->stopping || !pgc_ready(l->pg) || !rconn_ready(g->rc))
		return;
	l->busy = true;
	if (!l->group_ok) {
		rconn_cmd(g->rc, on_group, l, "XGROUP", "CREATE", c->outbox, GROUP, "0", "MKSTREAM",
		          NULL);
		return;
	}
	_cleanup_free_ char *count = xasprintf("%lld", (long long)c->batch);
	int64_t now = now_mono_ms();
	if (now - l->last_claim_ms > c->claim_idle_ms / 2) { /* a dead writer's entries */
		_cleanup_free_ char *idle = xasprintf("%lld", (long long)c->claim_idle_ms);
		l->last_claim_ms = now;
		rconn_cmd(g->rc, NULL, NULL, "XAUTOCLAIM", c->outbox, GROUP, c->id, idle, "0-0",
		          "COUNT", count, "JUSTID", NULL);
	}
	rconn_cmd(g->rc, on_read, l, "XREADGROUP", "GROUP", GROUP, c->id, "COUNT", count, "STREAMS",
	          c->outbox, l->read_new ? ">" : "0", NULL);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	writer_step(arg);
}

static void on_pg_ready(pgc *p, void *arg)
{
	gw_calllog *l = arg;
	l->read_new = false; /* after an outage: the failed batch first */
	writer_step(l);
}

gw_calllog *gw_calllog_new(gw *g)
{
	gw_calllog *l = xzalloc(sizeof(*l));
	l->g = g;
	if (!g->cfg->postgres[0])
		return l;
	pgc_opts o = {.conninfo = g->cfg->postgres,
	              .setup_sql = schema_sql,
	              .timeout_ms = g->cfg->pg_timeout_ms,
	              .on_ready = on_pg_ready,
	              .arg = l};
	l->pg = pgc_new(g->base, &o);
	l->tick = event_new(g->base, -1, EV_PERSIST, on_tick, l);
	struct timeval tv = {g->cfg->interval_ms / 1000, (g->cfg->interval_ms % 1000) * 1000};
	event_add(l->tick, &tv);
	return l;
}

gw_calllog *gw_calllog_free(gw_calllog *l)
{
	if (!l)
		return NULL;
	while (l->backlog) {
		record *r = l->backlog;
		l->backlog = r->next;
		free(r->json);
		free(r);
	}
	l->pg = pgc_free(l->pg);
	if (l->tick)
		event_free(l->tick);
	free_ids(l);
	free(l);
	return NULL;
}
