/* Dry runs (POST /v1/exec/simulate, /exec/simulate, and exec with "dryRun": true): the
 * task's validation (proto_task_parse), the IAM decision, the limits and runtime each live
 * node would resolve (from the registry's max_* / default_* / default_runtime fields when
 * a node publishes them, PROTOCOL.md's defaults otherwise), which node could serve it, and
 * the cost estimate. No sandbox is started and nothing is added to aisp:tasks. The simulation
 * is signed by the gateway's Ed25519 key as a DSSE envelope whose payload is the simulation
 * document (gateway/openapi.yaml, Simulation). */
#include "gateway/gateway.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "proto/json.h"

#define SIM_PAYLOAD_TYPE "application/vnd.aisp.simulation+json"
#define MIB              (1024LL * 1024)

/* PROTOCOL.md, "Limits": aispd's built-in defaults, which are also its maxima. */
static const proto_limits protocol_limits = {
    .cpus_milli = 4000,
    .memory_bytes = 4096 * MIB,
    .timeout_ms = 600000,
    .pids = 256,
    .nofile = 1024,
    .fsize_bytes = 64 * MIB,
    .workspace_bytes = 256 * MIB,
    .stdout_bytes = MIB,
    .stderr_bytes = MIB,
};

typedef struct sim {
	gw_call *c;
	bool valid;
	char *error;
	proto_task t;
	char *task_json; /* normal form, when valid */
} sim;

/* The node's limits from its registry fields <prefix><field> (internal units: PROTOCOL.md, "The
 * node registry"), over out. False when the node publishes none of them. */
bool gw_node_limits(const gw_node_info *n, const char *prefix, proto_limits *out)
{
	bool any = false;
	for (size_t i = 0; i < PROTO_LIMIT_COUNT; i++) {
		const proto_limit_field *f = &proto_limit_fields[i];
		_cleanup_free_ char *k = xasprintf("%s%s", prefix, f->field);
		const char *v = gw_node_field(n, k);
		int64_t x;
		if (v && parse_i64(v, 1, INT64_MAX, &x) == 0) {
			*proto_limit_at(out, f) = x;
			any = true;
		}
	}
	return any;
}

#define REASONS_MAX 8

typedef struct node_view {
	bool can;
	char *reasons[REASONS_MAX + 1]; /* NULL-terminated */
	size_t n_reasons;
	proto_limits resolved;
	const char *runtime;
	bool published; /* limits_max came from the node */
} node_view;

static void reason(node_view *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reason(node_view *v, const char *fmt, ...)
{
	v->can = false;
	if (v->n_reasons >= REASONS_MAX)
		return;
	va_list ap;
	va_start(ap, fmt);
	v->reasons[v->n_reasons++] = xvasprintf(fmt, ap);
	va_end(ap);
}

static void view_deinit(node_view *v)
{
	for (size_t i = 0; i < v->n_reasons; i++)
		free(v->reasons[i]);
}

static void view_node(const sim *s, const gw_node_info *n, node_view *v)
{
	const proto_task *t = &s->t;
	proto_limits max = protocol_limits, def = protocol_limits;
	v->can = true;
	v->published = gw_node_limits(n, "max_", &max);
	if (!gw_node_limits(n, "default_", &def))
		def = max;
	const char *dr = gw_node_field(n, "draining");
	if (dr && !strcmp(dr, "1"))
		reason(v, "draining");
	const char *rts = gw_node_field(n, "runtimes");
	v->runtime = t->runtime ? t->runtime : gw_node_field(n, "default_runtime");
	if (t->runtime && !gw_csv_has(rts, t->runtime))
		reason(v, "runtime %s is not offered (this node has %s)", t->runtime,
		       rts ? rts : "none");
	const char *imgs = gw_node_field(n, "images");
	if (t->image && !gw_csv_has(imgs, t->image) &&
	    !gw_csv_has(gw_node_field(n, "image_digests"), t->image))
		reason(v, "image %s is not in this node's store (it has %s)", t->image,
		       imgs ? imgs : "none");
	v->resolved = t->limits;
	_cleanup_err_ err *e = NULL;
	if (proto_limits_resolve(&v->resolved, &def, &max, &e) < 0)
		reason(v, "%s", err_msg(e));
}

typedef struct resolved {
	const char *node; /* the first node that can serve, or NULL */
	proto_limits limits;
	const char *runtime;
	const char *source;
} resolved;

static void gen_node_view(proto_gen *g, const gw_node_info *n, const node_view *v)
{
	int64_t slots = 0, busy = 0;
	parse_i64(gw_node_field(n, "slots") ?: "0", 0, INT64_MAX, &slots);
	parse_i64(gw_node_field(n, "busy") ?: "0", 0, INT64_MAX, &busy);
	proto_json_gen_open(g, true);
	proto_json_gen_str(g, "id");
	proto_json_gen_text(g, n->id, strlen(n->id));
	proto_json_gen_kbool(g, "canServe", v->can);
	/* the reasons quote registry fields, which any writer of a node's hash sets */
	proto_json_gen_str(g, "reasons");
	proto_json_gen_open(g, false);
	for (char *const *r = v->reasons; *r; r++)
		proto_json_gen_text(g, *r, strlen(*r));
	proto_json_gen_close(g, false);
	proto_json_gen_kint(g, "freeSlots", slots > busy ? slots - busy : 0);
	proto_json_gen_kstr(g, "limitsSource", v->published ? "node" : "protocol-default");
	proto_json_gen_close(g, true);
}

static void gen_nodes(const sim *s, proto_gen *g, const gw_node_info *nodes, size_t n,
                      resolved *res)
{
	proto_json_gen_str(g, "nodes");
	proto_json_gen_open(g, false);
	for (size_t i = 0; s->valid && i < n; i++) {
		node_view v = {0};
		view_node(s, &nodes[i], &v);
		gen_node_view(g, &nodes[i], &v);
		if (v.can && !res->node) {
			res->node = nodes[i].id;
			res->limits = v.resolved;
			res->runtime = v.runtime;
			res->source = v.published ? "node" : "protocol-default";
		}
		view_deinit(&v);
	}
	proto_json_gen_close(g, false);
	gw_gen_kstr_or_null(g, "node", res->node);
	proto_json_gen_kbool(g, "servable", res->node != NULL);
}

static void gen_resolved(proto_gen *g, const sim *s, resolved *res)
{
	if (!res->node) { /* nobody can serve it: what PROTOCOL.md's defaults would give */
		res->limits = s->t.limits;
		proto_limits_resolve(&res->limits, &protocol_limits, &protocol_limits, NULL);
		res->runtime = s->t.runtime;
		res->source = "protocol-default";
	}
	proto_json_gen_str(g, "resolved");
	proto_json_gen_open(g, true);
	gw_gen_kstr_or_null(g, "runtime", res->runtime);
	proto_json_gen_str(g, "image");
	if (s->valid && s->t.image)
		proto_json_gen_str(g, s->t.image);
	else
		proto_json_gen_null(g);
	proto_json_gen_str(g, "limits");
	gw_gen_limits(g, &res->limits);
	proto_json_gen_kstr(g, "limitsSource", res->source);
	proto_json_gen_close(g, true);
}

static void gen_validation(proto_gen *g, const sim *s)
{
	proto_json_gen_str(g, "validation");
	proto_json_gen_open(g, true);
	proto_json_gen_kbool(g, "valid", s->valid);
	gw_gen_kstr_or_null(g, "error", s->error);
	proto_json_gen_close(g, true);
	if (s->valid) {
		proto_json_gen_str(g, "task");
		proto_json_gen_json(g, s->task_json, strlen(s->task_json), NULL);
	}
}

/* The signed document: everything but latencyMs, the envelope and proofHash. Returns 0, or -1
 * with *e when it cannot be generated. */
static int simulation(const sim *s, const gw_node_info *nodes, size_t n, bool reg_ok, buf *out,
                      err **e)
{
	gw_call *c = s->c;
	char ts[32];
	gw_iso8601(now_wall_ms(), ts);
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	proto_json_gen_open(g, true);
	proto_json_gen_kstr(g, "schemaVersion", GW_SCHEMA_VERSION);
	proto_json_gen_kstr(g, "jobId", c->task_id);
	proto_json_gen_kstr(g, "callId", c->call_id);
	proto_json_gen_kstr(g, "tool", c->tool);
	proto_json_gen_kbool(g, "dryRun", true);
	proto_json_gen_kstr(g, "status", "simulated");
	proto_json_gen_str(g, "result");
	proto_json_gen_open(g, true);
	proto_json_gen_str(g, "output");
	proto_json_gen_null(g);
	proto_json_gen_str(g, "exitCode");
	proto_json_gen_null(g);
	proto_json_gen_kbool(g, "simulated", true);
	proto_json_gen_close(g, true);
	proto_json_gen_kbool(g, "iamApproved", c->decision.verdict == GW_ALLOW);
	proto_json_gen_kstr(g, "iamDecision", gw_verdict_name(c->decision.verdict));
	gw_gen_kstr_or_null(g, "iamDetail", c->decision.detail);
	gen_validation(g, s);
	resolved res = {0};
	gen_nodes(s, g, reg_ok ? nodes : NULL, reg_ok ? n : 0, &res);
	proto_json_gen_kbool(g, "registryRead", reg_ok);
	gen_resolved(g, s, &res);
	c->cost_micros = gw_cost_max(c->g->cfg, &res.limits);
	proto_json_gen_str(g, "cost");
	proto_json_gen_open(g, true);
	proto_json_gen_kstr(g, "currency", c->g->cfg->currency);
	proto_json_gen_kint(g, "maxMicros", c->cost_micros);
	proto_json_gen_close(g, true);
	proto_json_gen_kstr(g, "gatewayId", c->g->cfg->id);
	proto_json_gen_kstr(g, "timestamp", ts);
	proto_json_gen_close(g, true);
	return proto_json_gen_take(g, out, e);
}

/* DSSE: payloadType, payload (base64 of the document), one Ed25519 signature over the PAE. */
static int sign(gw *g, const buf *doc, buf *envelope, err **e)
{
	buf pae = BUF_INIT;
	attest_pae(SIM_PAYLOAD_TYPE, doc->data, doc->len, &pae);
	uint8_t sig[ATTEST_SIG_LEN];
	int rc = attest_key_sign(g->key, pae.data, pae.len, sig, e);
	buf_deinit(&pae);
	if (rc < 0)
		return -1;
	_cleanup_free_ char *p64 = gw_b64(doc->data, doc->len);
	_cleanup_free_ char *s64 = gw_b64(sig, sizeof(sig));
	_cleanup_json_gen_ proto_gen *j = proto_json_gen_new();
	proto_json_gen_open(j, true);
	proto_json_gen_kstr(j, "payloadType", SIM_PAYLOAD_TYPE);
	proto_json_gen_kstr(j, "payload", p64);
	proto_json_gen_str(j, "signatures");
	proto_json_gen_open(j, false);
	proto_json_gen_open(j, true);
	proto_json_gen_kstr(j, "keyid", attest_key_id(g->key));
	proto_json_gen_kstr(j, "sig", s64);
	proto_json_gen_close(j, true);
	proto_json_gen_close(j, false);
	proto_json_gen_close(j, true);
	return proto_json_gen_take(j, envelope, e);
}

static void sim_free(sim *s)
{
	free(s->error);
	free(s->task_json);
	proto_task_deinit(&s->t);
	free(s);
}

/* The IAM decision of a dry run: what an execution would get, payment included. The task's
 * image is judged by its forms on the live nodes (im; NULL: not read). */
static void sim_decide(sim *s, const char *skill, const gw_images *im)
{
	gw_call *c = s->c;
	gw_decision d = {0};
	gw_policy_check(c->key, c->tool, skill, s->valid ? &s->t : NULL, im, &d);
	if (d.verdict == GW_ALLOW && c->key->requires_payment)
		d.verdict = GW_DENY_PAYMENT,
		d.detail = xasprintf("key %s requires payment for execution (simulation is free)",
		                     c->key->id);
	gw_call_decide(c, &d);
	gw_decision_deinit(&d);
}

static void on_registry(gw *g, bool ok, const gw_node_info *nodes, size_t n, void *arg)
{
	sim *s = arg;
	gw_call *c = s->c;
	if (s->valid) {
		gw_images im = GW_IMAGES_INIT;
		gw_images_of(s->t.image, ok ? nodes : NULL, ok ? n : 0, &im);
		sim_decide(s, NULL, ok ? &im : NULL);
		gw_images_deinit(&im);
		buf tj = BUF_INIT; /* after the policy: the key's maxima are the task's limits */
		proto_task_to_json(&s->t, &tj);
		s->task_json = buf_steal(&tj, NULL);
	}
	buf doc = BUF_INIT, env = BUF_INIT;
	_cleanup_err_ err *e = NULL;
	if (simulation(s, nodes, n, ok, &doc, &e) < 0) {
		log_error("call %s: the simulation: %s", c->call_id, err_msg(e));
		gw_send_problem(c, 500, "internal", "the simulation could not be generated", NULL);
	} else if (sign(g, &doc, &env, &e) < 0) {
		gw_send_problem(c, 503, "signing-failed", err_msg(e), NULL);
	} else {
		char ph[ATTEST_DIGEST_LEN];
		attest_sha256_str(env.data, env.len, ph);
		c->proof_hash = xstrdup(ph);
		c->status = xstrdup("simulated");
		/* the response: the document's members, then latency, envelope and proofHash */
		doc.len--;
		buf_appendf(&doc, ",\"latencyMs\":%lld,\"attestation\":",
		            (long long)((now_mono_us() - c->start_us) / 1000));
		buf_append(&doc, env.data, env.len);
		buf_appendf(&doc, ",\"proofHash\":\"%s\"}", ph);
		gw_send_json(c, 200, &doc);
	}
	buf_deinit(&doc);
	buf_deinit(&env);
	sim_free(s);
}

void gw_simulate_req(gw_call *c, gw_exec_req *r)
{
	sim *s = xzalloc(sizeof(*s));
	s->c = c;
	proto_task_init(&s->t);
	c->dry_run = true;
	_cleanup_err_ err *e = NULL;
	if (r->skill) {
		s->error = xasprintf("tool \"%s\" is a skill: skills are not in the node protocol "
		                     "yet; use tool run_code",
		                     r->skill);
		sim_decide(s, r->skill, NULL);
	} else if (proto_task_parse(r->task_json, strlen(r->task_json), &s->t, NULL, &e) < 0) {
		s->error = xasprintf("invalid task: %s", err_msg(e));
		sim_decide(s, NULL, NULL);
	} else {
		s->valid = true; /* decided with the registry: the image's forms (on_registry) */
	}
	gw_registry_fetch(c->g, on_registry, s);
}

void gw_simulate(gw_call *c)
{
	gw_exec_req r;
	if (gw_exec_begin(c, true, &r) < 0)
		return;
	gw_simulate_req(c, &r);
	gw_exec_req_deinit(&r);
}
