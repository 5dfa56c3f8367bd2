/* Execution through the Redis protocol: a call's task is validated (proto_task_parse, so the
 * gateway says what the node would say), checked against the key's policy, added to
 * aisp:tasks with this gateway's reply stream, and the call waits for its result. Results come
 * from the reply stream (XREAD BLOCK on a connection of its own, from the last id seen, so a
 * reconnect loses nothing) and, as a fallback, from GET aisp:result:<id> every poll_ms and
 * whenever the reply connection comes back; from either, a result counts only once it
 * verifies (result.c): a forged one is logged and ignored, and the call waits on. Event
 * entries on the reply stream (`event started|output`, issue 16) are forwarded to NDJSON
 * clients as they come. */
#include "gateway/gateway.h"

#include <event2/event.h>
#include <event2/http.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "proto/json.h"

#define WAITER_BUCKETS 4096
/* Entries per XREAD. A result may be ~11 MB (output files are 8 MiB before base64) and one up
 * to PROTO_TASK_MAX_BYTES is looked at, so a read of nodes' results holds at most 4 x 16 MiB,
 * and the next is sent only when the batch's results are verified. hiredis holds a whole
 * reply: an entry someone wrote larger (bounded only by Redis's proto-max-bulk-len) is held
 * once, as Redis sends it, and refused without being copied or parsed. */
#define XREAD_COUNT  "4"
#define GW_EVENT_MAX (64 * 1024) /* bytes of one event entry's fields */

struct gw_waiter {
	gw *g;
	gw_call *c;
	char *task_id;
	proto_task task;     /* as submitted: a result must be its result (input_digest) */
	proto_limits limits; /* resolved by the policy, for the cost */
	int64_t deadline_ms;
	struct event *timer;
	int ops; /* Redis requests in flight that point at this waiter */
	bool done;
	bool stream;
	gw_waiter *next;
};

static size_t bucket_of(const char *id)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)id; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h % WAITER_BUCKETS;
}

static void waiter_link(gw *g, gw_waiter *w)
{
	if (!g->waiters)
		g->waiters = xcalloc(WAITER_BUCKETS, sizeof(*g->waiters));
	size_t b = bucket_of(w->task_id);
	w->next = g->waiters[b];
	g->waiters[b] = w;
	g->n_waiters++;
}

static void waiter_unlink(gw *g, gw_waiter *w)
{
	for (gw_waiter **p = &g->waiters[bucket_of(w->task_id)]; *p; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			g->n_waiters--;
			return;
		}
}

static void waiter_release(gw_waiter *w)
{
	if (!w->done || w->ops > 0)
		return;
	event_free(w->timer);
	free(w->task_id);
	proto_task_deinit(&w->task);
	free(w);
}

/* The waiter is answered: off the table now, freed when no request points at it. */
static gw_call *waiter_finish(gw_waiter *w)
{
	gw_call *c = w->c;
	w->done = true;
	w->c = NULL;
	waiter_unlink(w->g, w);
	evtimer_del(w->timer);
	waiter_release(w);
	return c;
}

bool gw_waiting_for(const gw *g, const char *task_id)
{
	for (gw_waiter *w = g->waiters ? g->waiters[bucket_of(task_id)] : NULL; w; w = w->next)
		if (!strcmp(w->task_id, task_id))
			return true;
	return false;
}

/* ---- the response to a result ---- */

static const char *seed_status(proto_status s)
{
	switch (s) {
	case PROTO_STATUS_OK:
		return "completed";
	case PROTO_STATUS_TIMEOUT:
	case PROTO_STATUS_OOM:
	case PROTO_STATUS_OUTPUT_LIMIT:
	case PROTO_STATUS_ERROR:
		return "failed";
	case PROTO_STATUS_REJECTED:
		return "rejected";
	default:
		return "error";
	}
}

/* proofHash: "sha256:" + hex SHA-256 of the envelope as compact JSON, exactly the bytes of the
 * "attestation" value in aisp:result:<id> (gateway/openapi.yaml, ProofHash). */
static void proof_hash(yajl_val result, const char *text, size_t len, char out[72], const char **of)
{
	yajl_val env = proto_json_get(result, "attestation");
	if (!YAJL_IS_OBJECT(env)) {
		attest_sha256_str(text, len, out);
		*of = "result";
		return;
	}
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	proto_json_gen_value(g, env);
	buf b = BUF_INIT;
	proto_json_gen_take_valid(g, &b);
	attest_sha256_str(b.data, b.len, out);
	buf_deinit(&b);
	*of = "attestation";
}

static void gen_copy(proto_gen *g, yajl_val r, const char *from, const char *to)
{
	yajl_val v = proto_json_get(r, from);
	if (!v)
		return;
	proto_json_gen_str(g, to);
	proto_json_gen_value(g, v);
}

static void gen_result_obj(proto_gen *g, yajl_val r, const char *status)
{
	proto_json_gen_str(g, "result");
	proto_json_gen_open(g, true);
	proto_json_gen_str(g, "output");
	yajl_val out = proto_json_get(r, "stdout");
	if (out)
		proto_json_gen_value(g, out);
	else
		proto_json_gen_null(g);
	gen_copy(g, r, "stdout_b64", "outputB64");
	gen_copy(g, r, "stderr", "stderr");
	gen_copy(g, r, "stderr_b64", "stderrB64");
	gen_copy(g, r, "exit_code", "exitCode");
	gen_copy(g, r, "signal", "signal");
	proto_json_gen_kbool(g, "simulated", false);
	proto_json_gen_kstr(g, "status", status);
	gen_copy(g, r, "error", "error");
	gen_copy(g, r, "return_value", "returnValue");
	gen_copy(g, r, "files", "files");
	gen_copy(g, r, "usage", "usage");
	proto_json_gen_close(g, true);
}

static void gen_head(proto_gen *g, gw_call *c, const char *status)
{
	char ts[32];
	gw_iso8601(now_wall_ms(), ts);
	proto_json_gen_kstr(g, "schemaVersion", GW_SCHEMA_VERSION);
	proto_json_gen_kstr(g, "jobId", c->task_id);
	proto_json_gen_kstr(g, "callId", c->call_id);
	if (c->tool)
		proto_json_gen_kstr(g, "tool", c->tool);
	proto_json_gen_kbool(g, "dryRun", false);
	proto_json_gen_kstr(g, "status", status);
	proto_json_gen_kbool(g, "iamApproved", c->decided && c->decision.verdict == GW_ALLOW);
	if (c->decided)
		proto_json_gen_kstr(g, "iamDecision", gw_verdict_name(c->decision.verdict));
	proto_json_gen_kint(g, "latencyMs", (now_mono_us() - c->start_us) / 1000);
	proto_json_gen_kstr(g, "timestamp", ts);
}

int gw_result_body(gw_call *c, const char *result, size_t len, const proto_limits *limits, buf *out,
                   err **e)
{
	_cleanup_yajl_val_ yajl_val r = NULL;
	proto_status st;
	const char *s = NULL;
	if (proto_json_parse(result, len, &r, e) < 0 || !YAJL_IS_OBJECT(r) ||
	    !(s = proto_json_get_str(r, "status")) || proto_status_parse(s, &st) < 0)
		return err_set(e, 0, "the result of %s is not a result document", c->task_id);
	char ph[72];
	const char *of;
	proof_hash(r, result, len, ph, &of);
	int64_t cpu = 0, wall = 0;
	proto_json_get_int(proto_json_get(r, "usage"), "cpu_ms", &cpu);
	proto_json_get_int(proto_json_get(r, "usage"), "wall_ms", &wall);
	proto_limits none = {0};
	c->cost_micros = gw_cost_actual(c->g->cfg, limits ? limits : &none, cpu, wall);
	free(c->status);
	c->status = xstrdup(s);
	free(c->proof_hash);
	c->proof_hash = xstrdup(ph);
	const char *node = proto_json_get_str(r, "node");
	free(c->node);
	c->node = node ? xstrdup(node) : NULL;
	c->g->m.results[st]++;

	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	proto_json_gen_open(g, true);
	gen_head(g, c, seed_status(st));
	gen_result_obj(g, r, s);
	proto_json_gen_kstr(g, "proofHash", ph);
	proto_json_gen_kstr(g, "proofOf", of);
	if (node)
		proto_json_gen_kstr(g, "node", node);
	proto_json_gen_str(g, "cost");
	proto_json_gen_open(g, true);
	proto_json_gen_kstr(g, "currency", c->g->cfg->currency);
	proto_json_gen_kint(g, "amountMicros", c->cost_micros);
	proto_json_gen_close(g, true);
	gen_copy(g, r, "attestation", "attestation");
	proto_json_gen_str(g, "taskResult");
	proto_json_gen_value(g, r);
	proto_json_gen_close(g, true);
	return proto_json_gen_take(g, out, e);
}

/* ---- answering a waiter ---- */

/* One NDJSON line: {"event": ..., then (head) "jobId" and "timestamp", then the members of
 * rest (a JSON object; NULL: none). A rest that has its own jobId and timestamp (a result or
 * pending body) is given with head false, so that no key appears twice. */
static void event_line(gw_call *c, const char *event, bool head, const buf *rest, buf *line)
{
	char ts[32];
	gw_iso8601(now_wall_ms(), ts);
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	proto_json_gen_open(g, true);
	proto_json_gen_kstr(g, "event", event);
	if (head) {
		proto_json_gen_kstr(g, "jobId", c->task_id);
		proto_json_gen_kstr(g, "timestamp", ts);
	}
	proto_json_gen_close(g, true);
	proto_json_gen_take_valid(g, line);
	if (rest && rest->len > 2) { /* splice the members in */
		line->len--;
		buf_append_str(line, ",");
		buf_append(line, rest->data + 1, rest->len - 1);
	}
}

/* Ends a call with a problem: a problem+json reply, or for a stream already under way an
 * "error" event with the same members, then the end of the stream. */
static void abort_call(gw_call *c, int status, const char *slug, const char *detail)
{
	if (!c->streaming) {
		gw_send_problem(c, status, slug, detail, NULL);
		return;
	}
	buf body = BUF_INIT, line = BUF_INIT;
	gw_problem_render(&body, status, slug, detail, c->path, NULL);
	event_line(c, "error", true, &body, &line);
	gw_stream_line(c, &line);
	gw_stream_end(c);
	buf_deinit(&body);
	buf_deinit(&line);
}

static void complete(gw_waiter *w, const char *json, size_t len)
{
	proto_limits limits = w->limits;
	bool stream = w->stream;
	gw_call *c = waiter_finish(w);
	buf body = BUF_INIT;
	_cleanup_err_ err *e = NULL;
	if (gw_result_body(c, json, len, &limits, &body, &e) < 0) {
		log_warn("task %s: %s", c->task_id, err_msg(e));
		buf_deinit(&body);
		abort_call(c, 502, "bad-result", err_msg(e));
		return;
	}
	if (stream) {
		buf line = BUF_INIT;
		event_line(c, "result", false, &body, &line);
		gw_stream_line(c, &line);
		buf_deinit(&line);
		gw_stream_end(c);
	} else {
		gw_send_json(c, 200, &body);
	}
	buf_deinit(&body);
}

/* No result within wait_ms: 202 with where to look. */
static void pending(gw_waiter *w)
{
	bool stream = w->stream;
	gw_call *c = waiter_finish(w);
	c->g->m.waits_timed_out++;
	c->status = xstrdup("pending");
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	_cleanup_free_ char *url = xasprintf("/v1/tasks/%s", c->task_id);
	proto_json_gen_open(g, true);
	gen_head(g, c, "pending");
	proto_json_gen_kstr(g, "statusUrl", url);
	proto_json_gen_close(g, true);
	buf body = BUF_INIT;
	proto_json_gen_take_valid(g, &body);
	if (stream) {
		buf line = BUF_INIT;
		event_line(c, "pending", false, &body, &line);
		gw_stream_line(c, &line);
		buf_deinit(&line);
		gw_stream_end(c);
	} else {
		evhttp_add_header(evhttp_request_get_output_headers(c->req), "Location", url);
		gw_send_json(c, 202, &body);
	}
	buf_deinit(&body);
}

static void arm(gw_waiter *w)
{
	int64_t left = w->deadline_ms - now_mono_ms();
	int64_t ms = left < w->g->cfg->poll_ms ? (left > 0 ? left : 0) : w->g->cfg->poll_ms;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(w->timer, &tv);
}

/* No result yet, or one that was refused: 202 past the deadline, else a look again later. */
static void wait_on(gw_waiter *w)
{
	if (now_mono_ms() >= w->deadline_ms)
		pending(w);
	else if (!evtimer_pending(w->timer, NULL))
		arm(w);
}

/* A result that did not verify (where: the key or stream it was in) is logged and ignored. */
static void result_refused(gw *g, const char *where, const char *task_id, gw_result_state st,
                           const char *why)
{
	if (st == GW_RESULT_BAD)
		g->m.results_refused++;
	log_warn("task %s: the result in %s is %s: %s", task_id, where,
	         st == GW_RESULT_BAD ? "refused" : "not checked yet", why);
}

static void on_get_verified(gw *g, gw_result_state st, const char *why, const char *json,
                            size_t len, void *arg)
{
	gw_waiter *w = arg;
	w->ops--;
	if (w->done) {
		waiter_release(w);
		return;
	}
	if (st == GW_RESULT_OK) {
		complete(w, json, len);
		return;
	}
	_cleanup_free_ char *key = xasprintf(PROTO_KEY_RESULT_PREFIX "%s", w->task_id);
	result_refused(g, key, w->task_id, st, why);
	wait_on(w);
}

static void on_get(rconn *rc, redisReply *r, void *arg)
{
	gw_waiter *w = arg;
	w->ops--;
	if (w->done) {
		waiter_release(w);
		return;
	}
	if (r && r->type == REDIS_REPLY_STRING) {
		w->ops++; /* it verifies too: anyone may have set it */
		gw_result_verify(w->g, w->task_id, &w->task, r->str, r->len, on_get_verified, w);
	} else {
		wait_on(w);
	}
}

static void poll_result(gw_waiter *w)
{
	_cleanup_free_ char *key = xasprintf(PROTO_KEY_RESULT_PREFIX "%s", w->task_id);
	w->ops++;
	rconn_cmd(w->g->rc, on_get, w, "GET", key, NULL);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	poll_result(arg);
}

void gw_waiters_poll_all(gw *g)
{
	for (size_t b = 0; g->waiters && b < WAITER_BUCKETS; b++)
		for (gw_waiter *w = g->waiters[b]; w; w = w->next)
			if (w->ops == 0)
				poll_result(w);
}

void gw_waiters_free_all(gw *g)
{
	for (size_t b = 0; g->waiters && b < WAITER_BUCKETS; b++)
		while (g->waiters[b]) {
			gw_waiter *w = g->waiters[b];
			gw_call *c = waiter_finish(w);
			abort_call(c, 503, "shutting-down", "the gateway is shutting down");
		}
	free(g->waiters);
	g->waiters = NULL;
}

/* ---- the reply stream ---- */

static const char *entry_field(const redisReply *f, const char *name, size_t *len)
{
	for (size_t i = 0; f && f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2)
		if (f->element[i]->type == REDIS_REPLY_STRING &&
		    !strcmp(f->element[i]->str, name) &&
		    f->element[i + 1]->type == REDIS_REPLY_STRING) {
			if (len)
				*len = f->element[i + 1]->len;
			return f->element[i + 1]->str;
		}
	return NULL;
}

/* An event entry (anything but a result that carries "event"): its fields, as strings. */
static void forward_event(gw *g, const char *id, const char *event, const redisReply *f)
{
	buf rest = BUF_INIT, line = BUF_INIT;
	_cleanup_json_gen_ proto_gen *j = proto_json_gen_new();
	proto_json_gen_open(j, true);
	for (size_t i = 0; i + 1 < f->elements; i += 2) {
		const redisReply *k = f->element[i], *v = f->element[i + 1];
		if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
		    !strcmp(k->str, "event") || !strcmp(k->str, "id") || !strcmp(k->str, "jobId") ||
		    !strcmp(k->str, "timestamp"))
			continue;
		proto_json_gen_text(j, k->str, k->len);
		proto_json_gen_text(j, v->str, v->len);
	}
	proto_json_gen_close(j, true);
	proto_json_gen_take_valid(j, &rest);
	for (gw_waiter *w = g->waiters ? g->waiters[bucket_of(id)] : NULL; w; w = w->next) {
		if (strcmp(w->task_id, id) || !w->stream || w->done)
			continue;
		buf_reset(&line);
		event_line(w->c, event, true, &rest, &line);
		gw_stream_line(w->c, &line);
		g->m.events_forwarded++;
	}
	buf_deinit(&rest);
	buf_deinit(&line);
}

/* The verdict on a reply-stream result for one waiter. Once the whole batch is verified, the
 * next XREAD. */
static void on_stream_verified(gw *g, gw_result_state st, const char *why, const char *json,
                               size_t len, void *arg)
{
	gw_waiter *w = arg;
	w->ops--;
	g->verifying--;
	if (w->done)
		waiter_release(w);
	else if (st == GW_RESULT_OK)
		complete(w, json, len);
	else
		result_refused(g, g->reply_stream, w->task_id, st, why);
	if (g->verifying == 0)
		gw_replies_read(g);
}

static size_t fields_size(const redisReply *f)
{
	size_t n = 0;
	for (size_t i = 0; f->type == REDIS_REPLY_ARRAY && i < f->elements; i++)
		n += f->element[i]->type == REDIS_REPLY_STRING ? f->element[i]->len : 0;
	return n;
}

/* One entry of the reply stream. Only an entry for a call waiting here is looked at (a late
 * result is in aisp:result:<id> for GET /v1/tasks/{id}); a result is verified first (result.c:
 * anyone who can write the stream could have added it), an event above GW_EVENT_MAX bytes is
 * dropped. */
static void handle_entry(gw *g, const redisReply *fields)
{
	size_t rlen = 0;
	const char *id = entry_field(fields, "id", NULL);
	const char *result = entry_field(fields, "result", &rlen);
	const char *event = entry_field(fields, "event", NULL);
	if (!id || !proto_id_valid(id) || !gw_waiting_for(g, id))
		return;
	if (!result) {
		if (event && proto_id_valid(event) && strlen(event) <= 32 &&
		    fields_size(fields) <= GW_EVENT_MAX)
			forward_event(g, id, event, fields);
		return;
	}
	/* verified against each waiter's own task: two calls may have given the same id */
	for (gw_waiter *w = g->waiters[bucket_of(id)]; w; w = w->next) {
		if (strcmp(w->task_id, id) || w->done)
			continue;
		w->ops++;
		g->verifying++;
		/* a refusal may be reported at once; it never unlinks or frees w */
		gw_result_verify(g, id, &w->task, result, rlen, on_stream_verified, w);
	}
}

static void on_reread_later(evutil_socket_t fd, short what, void *arg)
{
	gw *g = arg;
	g->reading = false;
	gw_replies_read(g);
}

/* Every entry of one XREAD reply; g->reading stays set meanwhile, so that a verification
 * answered at once cannot start the next XREAD in the middle of the batch. */
static void handle_batch(gw *g, const redisReply *r)
{
	for (size_t s = 0; r->type == REDIS_REPLY_ARRAY && s < r->elements; s++) {
		const redisReply *st = r->element[s];
		if (st->type != REDIS_REPLY_ARRAY || st->elements != 2)
			continue;
		const redisReply *entries = st->element[1];
		for (size_t i = 0; entries->type == REDIS_REPLY_ARRAY && i < entries->elements;
		     i++) {
			const redisReply *e = entries->element[i];
			if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
			    e->element[0]->type != REDIS_REPLY_STRING)
				continue;
			snprintf(g->last_reply_id, sizeof(g->last_reply_id), "%s",
			         e->element[0]->str);
			g->m.reply_entries++;
			handle_entry(g, e->element[1]);
		}
	}
}

static void on_replies(rconn *rc, redisReply *r, void *arg)
{
	gw *g = arg;
	if (!r) {
		g->reading = false;
		return; /* the connection is being re-made; on_ready reads again */
	}
	if (r->type == REDIS_REPLY_ERROR) { /* e.g. WRONGTYPE: try again in a second, not at once */
		static const struct timeval second = {1, 0};
		log_warn("XREAD %s: %s (the GET fallback still serves waiting calls)",
		         g->reply_stream, r->str);
		event_base_once(g->base, -1, EV_TIMEOUT, on_reread_later, g, &second);
		return;
	}
	handle_batch(g, r);
	g->reading = false;
	gw_replies_read(g);
}

void gw_replies_read(gw *g)
{
	if (g->reading || g->verifying || g->stopping || !rconn_ready(g->rd))
		return;
	g->reading = true;
	if (!g->last_reply_id[0])
		strcpy(g->last_reply_id, "0-0"); /* a fresh start reads what is there: no gap */
	_cleanup_free_ char *block = xasprintf("%lld", (long long)g->cfg->block_ms);
	const char *argv[] = {"XREAD", "COUNT",   XREAD_COUNT,     "BLOCK",
	                      block,   "STREAMS", g->reply_stream, g->last_reply_id};
	size_t lens[ARRAY_SIZE(argv)];
	for (size_t i = 0; i < ARRAY_SIZE(argv); i++)
		lens[i] = strlen(argv[i]);
	rconn_cmdv(g->rd, on_replies, g, g->cfg->block_ms, (int)ARRAY_SIZE(argv), argv, lens);
}

/* ---- submitting ---- */

static void on_xadd(rconn *rc, redisReply *r, void *arg)
{
	gw_waiter *w = arg;
	w->ops--;
	if (w->done) {
		waiter_release(w);
		return;
	}
	if (!r || r->type == REDIS_REPLY_ERROR) {
		_cleanup_free_ char *d =
		    xasprintf("could not add the task to %s: %s", PROTO_KEY_TASKS,
		              r ? r->str : rconn_last_error(w->g->rc));
		gw_call *c = waiter_finish(w);
		gw_send_problem(c, 503, "redis-unavailable", d, NULL);
		return;
	}
	w->g->m.submitted++;
	if (w->stream) {
		buf line = BUF_INIT;
		gw_stream_begin(w->c);
		event_line(w->c, "queued", true, NULL, &line);
		gw_stream_line(w->c, &line);
		buf_deinit(&line);
	}
	if (!evtimer_pending(w->timer, NULL))
		arm(w);
}

static void submit(gw_call *c, proto_task *t)
{
	gw *g = c->g;
	gw_waiter *w = xzalloc(sizeof(*w));
	w->g = g;
	w->c = c;
	w->task_id = xstrdup(t->id);
	w->limits = t->limits;
	w->task = *t; /* moved: the caller's t is left empty */
	proto_task_init(t);
	w->stream = gw_accepts_ndjson(c);
	/* An NDJSON caller sees the node's live events (started, output) before the result. */
	w->task.live_output = w->stream && w->task.reply_stream;
	w->deadline_ms = now_mono_ms() + g->cfg->wait_ms;
	w->timer = evtimer_new(g->base, on_timer, w);
	waiter_link(g, w); /* before the XADD: the reply cannot come before it */
	buf json = BUF_INIT;
	proto_task_to_json(&w->task, &json);
	const char *argv[] = {"XADD", PROTO_KEY_TASKS, "*", "task", buf_str(&json)};
	size_t lens[] = {4, strlen(PROTO_KEY_TASKS), 1, 4, json.len};
	w->ops++;
	rconn_cmdv(g->rc, on_xadd, w, 0, 5, argv, lens);
	buf_deinit(&json);
}

static void unsupported_skill(gw_call *c, const gw_exec_req *r)
{
	gw_decision d = {0};
	gw_policy_check(c->key, r->tool, r->skill, NULL, NULL, &d);
	gw_call_decide(c, &d);
	gw_decision_deinit(&d);
	if (c->decision.verdict != GW_ALLOW) {
		gw_send_denied(c);
		return;
	}
	_cleanup_free_ char *detail = xasprintf(
	    "tool \"%s\" is a skill: skills are not in the node protocol yet (proto/PROTOCOL.md "
	    "has no skill field); use tool run_code with a language and code",
	    r->skill);
	gw_send_problem(c, 422, "unsupported-tool", detail, NULL);
}

/* The IAM verdict on a parsed task, payment included (im: its image's forms on the live
 * nodes, or NULL). Returns true when it may run. */
static bool allowed(gw_call *c, const gw_exec_req *r, proto_task *t, const gw_images *im)
{
	gw_decision d = {0};
	gw_policy_check(c->key, r->tool, NULL, t, im, &d);
	if (d.verdict == GW_ALLOW && c->key->requires_payment) {
		d.verdict = GW_DENY_PAYMENT;
		d.detail = xasprintf("key %s requires payment for execution: settle through the "
		                     "payment layer in front of this gateway (simulation is free)",
		                     c->key->id);
	}
	gw_call_decide(c, &d);
	gw_decision_deinit(&d);
	if (c->decision.verdict == GW_ALLOW)
		return true;
	if (c->decision.verdict == GW_DENY_PAYMENT) {
		_cleanup_free_ char *amount =
		    xasprintf("%lld", (long long)gw_cost_max(c->g->cfg, &t->limits));
		const char *extra[] = {"decision", "payment_required", "amountMicros",
		                       amount,     "currency",         c->g->cfg->currency,
		                       NULL};
		c->status = xstrdup("denied");
		gw_send_problem(c, 402, "payment-required", c->decision.detail, extra);
		return false;
	}
	gw_send_denied(c);
	return false;
}

int gw_exec_begin(gw_call *c, bool dry_default, gw_exec_req *r)
{
	if (gw_authenticate(c) < 0)
		return -1;
	size_t len = 0;
	_cleanup_free_ char *body = gw_read_json_body(c, &len);
	if (!body)
		return -1;
	_cleanup_err_ err *e = NULL;
	if (gw_exec_req_parse(body, len, c->g->cfg->id, dry_default, r, &e) < 0) {
		gw_send_problem(c, 400, "invalid-request", err_msg(e), NULL);
		return -1;
	}
	c->agent_id = r->agent_id ? xstrdup(r->agent_id) : NULL;
	c->tool = xstrdup(r->tool);
	c->task_id = xstrdup(r->task_id);
	c->dry_run = r->dry_run;
	return 0;
}

/* An execution between its parse and its IAM decision (which may wait for the registry). */
typedef struct exec_ctx {
	gw_call *c;
	gw_exec_req r;
	proto_task t;
} exec_ctx;

static void exec_ctx_free(exec_ctx *x)
{
	proto_task_deinit(&x->t);
	gw_exec_req_deinit(&x->r);
	free(x);
}

static void exec_decide(exec_ctx *x, const gw_images *im)
{
	if (allowed(x->c, &x->r, &x->t, im))
		submit(x->c, &x->t);
	exec_ctx_free(x);
}

static void on_exec_registry(gw *g, bool ok, const gw_node_info *nodes, size_t n, void *arg)
{
	exec_ctx *x = arg;
	gw_images im = GW_IMAGES_INIT;
	gw_images_of(x->t.image, ok ? nodes : NULL, ok ? n : 0, &im);
	exec_decide(x, ok ? &im : NULL);
	gw_images_deinit(&im);
}

void gw_exec(gw_call *c, bool dry_default)
{
	exec_ctx *x = xzalloc(sizeof(*x));
	x->c = c;
	proto_task_init(&x->t);
	_cleanup_err_ err *e = NULL;
	if (gw_exec_begin(c, dry_default, &x->r) < 0) {
		/* nothing to do: replied */
	} else if (x->r.dry_run) {
		gw_simulate_req(c, &x->r);
	} else if (x->r.skill) {
		unsupported_skill(c, &x->r);
	} else if (proto_task_parse(x->r.task_json, strlen(x->r.task_json), &x->t, NULL, &e) < 0) {
		_cleanup_free_ char *d = xasprintf("invalid task: %s", err_msg(e));
		gw_send_problem(c, 400, "invalid-task", d, NULL);
	} else if (gw_policy_needs_images(c->key, &x->t)) { /* the image's forms: the registry */
		gw_registry_fetch(c->g, on_exec_registry, x);
		return;
	} else {
		exec_decide(x, NULL);
		return;
	}
	exec_ctx_free(x);
}
