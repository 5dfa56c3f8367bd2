/* What the network offers and what a caller may use: the live node registry (aisp:nodes and
 * each aisp:node:<id> hash, read asynchronously), GET /v1/nodes, GET /v1/tools (the caller's
 * allowed and blocked tools, languages, runtimes, images, skills) and GET /v1/tasks/{id}. */
#include "gateway/gateway.h"

#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "proto/json.h"

#define REGISTRY_MAX 256

typedef struct reg_fetch {
	gw *g;
	gw_registry_fn cb;
	void *arg;
	gw_node_info *nodes;
	size_t n, pending;
} reg_fetch;

typedef struct reg_slot {
	reg_fetch *f;
	size_t i;
} reg_slot;

const char *gw_node_field(const gw_node_info *n, const char *name)
{
	for (size_t i = 0; i + 1 < n->n_fields; i += 2)
		if (!strcmp(n->fields[i], name))
			return n->fields[i + 1];
	return NULL;
}

static void fetch_done(reg_fetch *f, bool ok)
{
	size_t live = 0;
	for (size_t i = 0; i < f->n; i++) /* an id whose hash expired is not a live node */
		if (f->nodes[i].n_fields)
			f->nodes[live++] = f->nodes[i];
		else
			free(f->nodes[i].id);
	f->cb(f->g, ok, f->nodes, live, f->arg);
	for (size_t i = 0; i < live; i++) {
		free(f->nodes[i].id);
		for (size_t j = 0; j < f->nodes[i].n_fields; j++)
			free(f->nodes[i].fields[j]);
		free(f->nodes[i].fields);
	}
	free(f->nodes);
	free(f);
}

static void on_hash(rconn *rc, redisReply *r, void *arg)
{
	reg_slot *s = arg;
	reg_fetch *f = s->f;
	gw_node_info *n = &f->nodes[s->i];
	free(s);
	for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		if (r->element[i]->type != REDIS_REPLY_STRING)
			continue;
		n->fields = xreallocarray(n->fields, n->n_fields + 1, sizeof(*n->fields));
		n->fields[n->n_fields++] = xstrndup(r->element[i]->str, r->element[i]->len);
	}
	if (n->n_fields % 2)
		free(n->fields[--n->n_fields]);
	if (--f->pending == 0)
		fetch_done(f, true);
}

static void on_members(rconn *rc, redisReply *r, void *arg)
{
	reg_fetch *f = arg;
	if (!r || r->type != REDIS_REPLY_ARRAY) {
		fetch_done(f, false);
		return;
	}
	f->n = r->elements < REGISTRY_MAX ? r->elements : REGISTRY_MAX;
	f->nodes = xcalloc(f->n + 1, sizeof(*f->nodes));
	f->pending = f->n;
	if (!f->n) {
		fetch_done(f, true);
		return;
	}
	for (size_t i = 0; i < f->n; i++) {
		f->nodes[i].id =
		    xstrndup(r->element[i]->str ? r->element[i]->str : "", PROTO_NAME_MAX);
		_cleanup_free_ char *key = xasprintf(PROTO_KEY_NODE_PREFIX "%s", f->nodes[i].id);
		reg_slot *s = xzalloc(sizeof(*s));
		s->f = f;
		s->i = i;
		rconn_cmd(f->g->rc, on_hash, s, "HGETALL", key, NULL);
	}
}

void gw_registry_fetch(gw *g, gw_registry_fn cb, void *arg)
{
	reg_fetch *f = xzalloc(sizeof(*f));
	f->g = g;
	f->cb = cb;
	f->arg = arg;
	rconn_cmd(g->rc, on_members, f, "SMEMBERS", PROTO_KEY_NODES, NULL);
}

/* ---- shared emitters ---- */

void gw_gen_limits(proto_gen *g, const proto_limits *l)
{
	proto_json_gen_open(g, true);
	for (size_t i = 0; i < PROTO_LIMIT_COUNT; i++) {
		const proto_limit_field *f = &proto_limit_fields[i];
		int64_t v = proto_limit_get(l, f);
		if (!v)
			continue;
		proto_json_gen_str(g, f->wire);
		if (f->unit) {
			proto_json_gen_int(g, (v + f->unit - 1) / f->unit);
		} else {
			_cleanup_free_ char *s = proto_milli_str(v);
			proto_json_gen_number(g, s);
		}
	}
	proto_json_gen_close(g, true);
}

/* Comma-separated registry values as a JSON array. */
static void gen_csv(proto_gen *g, const char *k, const char *csv)
{
	proto_json_gen_str(g, k);
	proto_json_gen_open(g, false);
	_cleanup_free_ char *copy = xstrdup(csv ? csv : "");
	char *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
		proto_json_gen_text(g, t, strlen(t));
	proto_json_gen_close(g, false);
}

void gw_images_of(const char *image, const gw_node_info *nodes, size_t n, gw_images *out)
{
	for (size_t i = 0; i < n; i++)
		gw_images_add_node(out, image, gw_node_field(&nodes[i], "images"),
		                   gw_node_field(&nodes[i], "image_digests"));
}

bool gw_csv_has(const char *csv, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = csv; p && *p;) {
		const char *end = strchr(p, ',');
		size_t l = end ? (size_t)(end - p) : strlen(p);
		if (l == n && !strncmp(p, name, n))
			return true;
		p = end ? end + 1 : NULL;
	}
	return false;
}

static void gen_json_field(proto_gen *g, const gw_node_info *n, const char *name)
{
	const char *v = gw_node_field(n, name);
	proto_json_gen_str(g, name);
	if (!v || proto_json_gen_json(g, v, strlen(v), NULL) < 0)
		proto_json_gen_null(g);
}

static void gen_node(proto_gen *g, const gw_node_info *n)
{
	static const char *const ints[] = {"slots", "busy", "tasks_done", "started_ms",
	                                   "heartbeat_ms"};
	proto_json_gen_open(g, true);
	proto_json_gen_str(g, "id");
	proto_json_gen_text(g, n->id, strlen(n->id));
	static const char *const strs[] = {"version", "key_id", "pubkey"};
	for (size_t i = 0; i < ARRAY_SIZE(strs); i++) {
		const char *v = gw_node_field(n, strs[i]);
		proto_json_gen_str(g, strs[i]);
		if (v)
			proto_json_gen_text(g, v, strlen(v));
		else
			proto_json_gen_null(g);
	}
	gen_csv(g, "runtimes", gw_node_field(n, "runtimes"));
	gen_csv(g, "images", gw_node_field(n, "images"));
	for (size_t i = 0; i < ARRAY_SIZE(ints); i++) {
		const char *v = gw_node_field(n, ints[i]);
		int64_t x;
		proto_json_gen_str(g, ints[i]);
		if (v && parse_i64(v, INT64_MIN, INT64_MAX, &x) == 0)
			proto_json_gen_int(g, x);
		else
			proto_json_gen_null(g);
	}
	const char *dr = gw_node_field(n, "draining");
	proto_json_gen_kbool(g, "draining", dr && !strcmp(dr, "1"));
	proto_limits max = {0};
	proto_json_gen_str(g, "limits_max");
	if (gw_node_limits(n, "max_", &max))
		gw_gen_limits(g, &max);
	else
		proto_json_gen_null(g);
	gen_json_field(g, n, "pools");
	proto_json_gen_close(g, true);
}

static void on_nodes(gw *g, bool ok, const gw_node_info *nodes, size_t n, void *arg)
{
	gw_call *c = arg;
	if (!ok) {
		gw_send_problem(c, 503, "redis-unavailable", "the node registry could not be read",
		                NULL);
		return;
	}
	_cleanup_json_gen_ proto_gen *j = proto_json_gen_new();
	proto_json_gen_open(j, true);
	proto_json_gen_kstr(j, "schemaVersion", GW_SCHEMA_VERSION);
	proto_json_gen_str(j, "nodes");
	proto_json_gen_open(j, false);
	for (size_t i = 0; i < n; i++)
		gen_node(j, &nodes[i]);
	proto_json_gen_close(j, false);
	proto_json_gen_close(j, true);
	gw_send_gen(c, 200, j);
}

void gw_nodes(gw_call *c)
{
	if (gw_authenticate(c) < 0)
		return;
	gw_registry_fetch(c->g, on_nodes, c);
}

/* ---- GET /v1/tools ---- */

/* {"allowed": [...], "blocked": [...]} for candidates (NULL-terminated) of one kind. */
static void gen_kind(proto_gen *g, const gw_key *k, const char *name, gw_kind kind,
                     const char *const *cands)
{
	const gw_list *block = gw_policy_list(k, kind, true);
	proto_json_gen_str(g, name);
	proto_json_gen_open(g, true);
	proto_json_gen_str(g, "allowed");
	proto_json_gen_open(g, false);
	for (size_t i = 0; cands[i]; i++)
		if (gw_policy_allows(k, kind, cands[i]))
			proto_json_gen_text(g, cands[i], strlen(cands[i]));
	proto_json_gen_close(g, false);
	proto_json_gen_str(g, "blocked");
	proto_json_gen_open(g, false);
	for (size_t i = 0; cands[i]; i++)
		if (!gw_policy_allows(k, kind, cands[i]))
			proto_json_gen_text(g, cands[i], strlen(cands[i]));
	for (size_t i = 0; block->v && block->v[i]; i++) {
		bool listed = false;
		for (size_t j = 0; cands[j] && !listed; j++)
			listed = !strcmp(cands[j], block->v[i]);
		if (!listed)
			proto_json_gen_text(g, block->v[i], strlen(block->v[i]));
	}
	proto_json_gen_close(g, false);
	proto_json_gen_kbool(g, "any", gw_policy_list(k, kind, false)->any);
	proto_json_gen_close(g, true);
}

/* The distinct values of a csv field over the live nodes. */
static char **registry_union(const gw_node_info *nodes, size_t n, const char *field)
{
	size_t m = 0;
	char **v = xcalloc(1, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *copy = xstrdup(gw_node_field(&nodes[i], field) ?: "");
		char *save = NULL;
		for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			bool seen = false;
			for (size_t j = 0; j < m && !seen; j++)
				seen = !strcmp(v[j], t);
			if (seen || m >= 1024)
				continue;
			v = xreallocarray(v, m + 2, sizeof(*v));
			v[m++] = xstrdup(t);
			v[m] = NULL;
		}
	}
	return v;
}

static void strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static void gen_tools(proto_gen *j, const gw_key *k, const gw_node_info *nodes, size_t n)
{
	static const char *const tools[] = {"run_code", NULL};
	static const char *const langs[] = {"python", "javascript", "shell", NULL};
	const gw_list *skills = gw_policy_list(k, GW_KIND_SKILL, false);
	char **rts = registry_union(nodes, n, "runtimes");
	char **imgs = registry_union(nodes, n, "images");
	gen_kind(j, k, "tools", GW_KIND_TOOL, tools);
	gen_kind(j, k, "languages", GW_KIND_LANGUAGE, langs);
	gen_kind(j, k, "runtimes", GW_KIND_RUNTIME, (const char *const *)rts);
	gen_kind(j, k, "images", GW_KIND_IMAGE, (const char *const *)imgs);
	gen_kind(j, k, "skills", GW_KIND_SKILL,
	         (const char *const *)(skills->v ? skills->v : (char *[]){NULL}));
	proto_json_gen_kbool(j, "skillsSupported", false);
	proto_json_gen_str(j, "maxLimits");
	gw_gen_limits(j, &k->max);
	strv_free(rts);
	strv_free(imgs);
}

static void on_tools(gw *g, bool ok, const gw_node_info *nodes, size_t n, void *arg)
{
	gw_call *c = arg;
	const gw_key *k = c->key;
	char ts[32];
	gw_iso8601(now_wall_ms(), ts);
	_cleanup_json_gen_ proto_gen *j = proto_json_gen_new();
	proto_json_gen_open(j, true);
	proto_json_gen_kstr(j, "schemaVersion", GW_SCHEMA_VERSION);
	proto_json_gen_kstr(j, "keyId", k->id);
	/* the seed's shape: the allowed and blocked tool names */
	const char *const allowed[] = {
	    gw_policy_allows(k, GW_KIND_TOOL, "run_code") ? "run_code" : NULL, NULL};
	proto_json_gen_kstrs(j, "allowed", allowed);
	proto_json_gen_kstrs(j, "blocked",
	                     (const char *const *)(gw_policy_list(k, GW_KIND_TOOL, true)->v));
	gen_tools(j, k, ok ? nodes : NULL, ok ? n : 0);
	proto_json_gen_kbool(j, "registryRead", ok);
	proto_json_gen_kbool(j, "requiresPayment", k->requires_payment);
	if (k->trust_level)
		proto_json_gen_kstr(j, "trustLevel", k->trust_level);
	proto_json_gen_kstr(j, "timestamp", ts);
	proto_json_gen_close(j, true);
	gw_send_gen(c, 200, j);
}

void gw_tools(gw_call *c)
{
	if (gw_authenticate(c) < 0)
		return;
	gw_registry_fetch(c->g, on_tools, c);
}

/* ---- GET /v1/tasks/{id} ---- */

static void on_running(rconn *rc, redisReply *r, void *arg)
{
	gw_call *c = arg;
	if (!r || r->type == REDIS_REPLY_ERROR) {
		gw_send_problem(c, 503, "redis-unavailable", "Redis did not answer", NULL);
		return;
	}
	bool running = r->type == REDIS_REPLY_STRING;
	if (!running && !gw_waiting_for(c->g, c->task_id)) {
		_cleanup_free_ char *d = xasprintf("task %s has no result and is not running "
		                                   "(unknown, still queued, or its result "
		                                   "expired)",
		                                   c->task_id);
		gw_send_problem(c, 404, "no-such-task", d, NULL);
		return;
	}
	c->status = xstrdup(running ? "running" : "pending");
	_cleanup_json_gen_ proto_gen *j = proto_json_gen_new();
	proto_json_gen_open(j, true);
	proto_json_gen_kstr(j, "schemaVersion", GW_SCHEMA_VERSION);
	proto_json_gen_kstr(j, "jobId", c->task_id);
	proto_json_gen_kstr(j, "status", c->status);
	if (running)
		proto_json_gen_kstr(j, "node", r->str);
	proto_json_gen_close(j, true);
	gw_send_gen(c, 200, j);
}

static void on_task_verified(gw *g, gw_result_state st, const char *why, const char *json,
                             size_t len, void *arg)
{
	gw_call *c = arg;
	if (st != GW_RESULT_OK) {
		_cleanup_free_ char *d = xasprintf(
		    "the result of task %s (" PROTO_KEY_RESULT_PREFIX "%s) %s: %s", c->task_id,
		    c->task_id, st == GW_RESULT_BAD ? "does not verify" : "could not be verified",
		    why);
		if (st == GW_RESULT_BAD)
			g->m.results_refused++;
		gw_send_problem(c, st == GW_RESULT_BAD ? 502 : 503,
		                st == GW_RESULT_BAD ? "bad-result" : "redis-unavailable", d, NULL);
		return;
	}
	buf b = BUF_INIT;
	_cleanup_err_ err *e = NULL;
	if (gw_result_body(c, json, len, NULL, &b, &e) < 0)
		gw_send_problem(c, 502, "bad-result", err_msg(e), NULL);
	else
		gw_send_json(c, 200, &b);
	buf_deinit(&b);
}

static void on_task_result(rconn *rc, redisReply *r, void *arg)
{
	gw_call *c = arg;
	if (!r || r->type == REDIS_REPLY_ERROR) {
		gw_send_problem(c, 503, "redis-unavailable", "Redis did not answer", NULL);
		return;
	}
	if (r->type != REDIS_REPLY_STRING) {
		_cleanup_free_ char *key = xasprintf("aisp:running:%s", c->task_id);
		rconn_cmd(c->g->rc, on_running, c, "GET", key, NULL);
		return;
	}
	gw_result_verify(c->g, c->task_id, NULL, r->str, r->len, on_task_verified, c);
}

void gw_task_get(gw_call *c, const char *id)
{
	if (gw_authenticate(c) < 0)
		return;
	if (!proto_id_valid(id)) {
		gw_send_problem(c, 400, "invalid-request",
		                "task id must match [A-Za-z0-9._-]{1,64}", NULL);
		return;
	}
	c->task_id = xstrdup(id);
	_cleanup_free_ char *key = xasprintf(PROTO_KEY_RESULT_PREFIX "%s", id);
	rconn_cmd(c->g->rc, on_task_result, c, "GET", key, NULL);
}
