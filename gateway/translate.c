/* Request bodies as protocol tasks, and costs (core.h). A body is either a task exactly as on
 * aisp:tasks (proto/PROTOCOL.md, "Task") or the seed's SecureExecAPI form; both become one
 * task JSON with a unique id and the gateway's reply stream. Validation of the task itself is
 * proto_task_parse()'s, so the gateway and the node give the same messages. */
#include "gateway/core.h"

#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "proto/json.h"

void gw_exec_req_deinit(gw_exec_req *r)
{
	free(r->task_json);
	free(r->task_id);
	free(r->tool);
	free(r->skill);
	free(r->agent_id);
	memset(r, 0, sizeof(*r));
}

char *gw_task_id_new(const char *gateway_id)
{
	uint8_t r[16];
	if (RAND_bytes(r, sizeof(r)) != 1)
		abort();
	char hex[33];
	hex_encode(r, sizeof(r), hex);
	return xasprintf("gw-%s-%s", gateway_id, hex);
}

bool gw_skill_name_valid(const char *name)
{
	size_t n = strlen(name);
	return n >= 1 && n <= 64 && strchr("abcdefghijklmnopqrstuvwxyz0123456789", name[0]) &&
	       strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

static char *reply_stream(const char *gateway_id)
{
	return xasprintf(GW_REPLY_PREFIX "%s", gateway_id);
}

/* The protocol form: the caller's object, key order and values kept, with the id added when
 * missing and the reply stream appended. */
static int task_form(yajl_val root, const char *gw_id, gw_exec_req *r, err **e)
{
	if (proto_json_get(root, "reply_stream"))
		return err_set(e, 0,
		               "field \"reply_stream\" is set by the gateway (it reads the "
		               "result for you): leave it out");
	const char *id = proto_json_get_str(root, "id");
	r->task_id = id ? xstrdup(id) : gw_task_id_new(gw_id);
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	_cleanup_free_ char *rs = reply_stream(gw_id);
	proto_json_gen_open(g, true);
	if (!proto_json_get(root, "id"))
		proto_json_gen_kstr(g, "id", r->task_id);
	for (size_t i = 0; i < root->u.object.len; i++) {
		proto_json_gen_str(g, root->u.object.keys[i]);
		proto_json_gen_value(g, root->u.object.values[i]);
	}
	proto_json_gen_kstr(g, "reply_stream", rs);
	proto_json_gen_close(g, true);
	if (!(r->task_json = proto_json_gen_steal(g, NULL, e)))
		return -1;
	r->tool = xstrdup("run_code");
	return 0;
}

/* tool.args of run_code: the task's fields, "language" for "lang". */
static const char *const run_code_fields[] = {
    "language", "code",  "mode",    "stdin",  "stdin_b64",        "args", "env",
    "files",    "image", "runtime", "limits", "nondeterministic", NULL};

static bool is_run_code_field(const char *k)
{
	for (size_t i = 0; run_code_fields[i]; i++)
		if (!strcmp(k, run_code_fields[i]))
			return true;
	return false;
}

/* limits, with tool.timeout_s folded in. */
static int gen_limits(proto_gen *g, yajl_val limits, yajl_val timeout, err **e)
{
	if (limits && !YAJL_IS_OBJECT(limits))
		return err_set(e, 0, "field \"tool.args.limits\" must be an object");
	if (timeout && proto_json_get(limits, "timeout_s"))
		return err_set(e, 0,
		               "\"tool.timeout_s\" and \"tool.args.limits.timeout_s\" are "
		               "both set: keep one");
	if (timeout && !YAJL_IS_NUMBER(timeout))
		return err_set(e, 0, "field \"tool.timeout_s\" must be a number");
	if (!limits && !timeout)
		return 0;
	proto_json_gen_str(g, "limits");
	proto_json_gen_open(g, true);
	for (size_t i = 0; limits && i < limits->u.object.len; i++) {
		proto_json_gen_str(g, limits->u.object.keys[i]);
		proto_json_gen_value(g, limits->u.object.values[i]);
	}
	if (timeout) {
		proto_json_gen_str(g, "timeout_s");
		proto_json_gen_value(g, timeout);
	}
	proto_json_gen_close(g, true);
	return 0;
}

static int run_code_task(yajl_val args, yajl_val timeout, const char *gw_id, gw_exec_req *r,
                         err **e)
{
	if (!args)
		return err_set(e, 0,
		               "tool run_code needs \"tool.args\" with \"language\" and "
		               "\"code\"");
	if (!YAJL_IS_OBJECT(args))
		return err_set(e, 0, "field \"tool.args\" must be an object");
	for (size_t i = 0; i < args->u.object.len; i++)
		if (!is_run_code_field(args->u.object.keys[i]))
			return err_set(e, 0, "unknown field \"tool.args.%s\"",
			               args->u.object.keys[i]);
	yajl_val lang = proto_json_get(args, "language");
	if (!lang)
		return err_set(e, 0, "missing field \"tool.args.language\"");
	r->task_id = gw_task_id_new(gw_id);
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	_cleanup_free_ char *rs = reply_stream(gw_id);
	proto_json_gen_open(g, true);
	proto_json_gen_kint(g, "v", 1);
	proto_json_gen_kstr(g, "id", r->task_id);
	proto_json_gen_str(g, "lang");
	proto_json_gen_value(g, lang);
	for (size_t i = 0; i < args->u.object.len; i++) {
		const char *k = args->u.object.keys[i];
		if (!strcmp(k, "language") || !strcmp(k, "limits"))
			continue;
		proto_json_gen_str(g, k);
		proto_json_gen_value(g, args->u.object.values[i]);
	}
	if (gen_limits(g, proto_json_get(args, "limits"), timeout, e) < 0)
		return -1;
	proto_json_gen_kstr(g, "reply_stream", rs);
	proto_json_gen_close(g, true);
	if (!(r->task_json = proto_json_gen_steal(g, NULL, e)))
		return -1;
	return 0;
}

static int seed_tool(yajl_val tool, const char *gw_id, gw_exec_req *r, err **e)
{
	if (!YAJL_IS_OBJECT(tool))
		return err_set(e, 0, "field \"tool\" must be an object");
	for (size_t i = 0; i < tool->u.object.len; i++) {
		const char *k = tool->u.object.keys[i];
		if (strcmp(k, "name") && strcmp(k, "args") && strcmp(k, "timeout_s"))
			return err_set(e, 0, "unknown field \"tool.%s\"", k);
	}
	yajl_val name = proto_json_get(tool, "name");
	if (!name)
		return err_set(e, 0, "missing field \"tool.name\"");
	if (!YAJL_IS_STRING(name))
		return err_set(e, 0, "field \"tool.name\" must be a string");
	const char *n = name->u.string;
	r->tool = xstrdup(n);
	if (!strcmp(n, "run_code"))
		return run_code_task(proto_json_get(tool, "args"),
		                     proto_json_get(tool, "timeout_s"), gw_id, r, e);
	if (!gw_skill_name_valid(n))
		return err_set(e, 0,
		               "field \"tool.name\": \"%.64s\" is neither run_code nor a skill "
		               "name ([a-z0-9][a-z0-9_-]{0,63})",
		               n);
	r->skill = xstrdup(n);
	r->task_id = gw_task_id_new(gw_id);
	return 0;
}

static int seed_form(yajl_val root, const char *gw_id, gw_exec_req *r, err **e)
{
	for (size_t i = 0; i < root->u.object.len; i++) {
		const char *k = root->u.object.keys[i];
		if (strcmp(k, "agentId") && strcmp(k, "tool") && strcmp(k, "dryRun") &&
		    strcmp(k, "context"))
			return err_set(e, 0,
			               "unknown field \"%s\" (expected agentId, tool, dryRun, "
			               "context)",
			               k);
	}
	yajl_val agent = proto_json_get(root, "agentId");
	if (agent && !YAJL_IS_STRING(agent))
		return err_set(e, 0, "field \"agentId\" must be a string");
	if (agent && (strlen(agent->u.string) > 128 || !agent->u.string[0]))
		return err_set(e, 0, "field \"agentId\" must be 1 to 128 bytes");
	yajl_val dry = proto_json_get(root, "dryRun");
	if (dry && !YAJL_IS_TRUE(dry) && !YAJL_IS_FALSE(dry))
		return err_set(e, 0, "field \"dryRun\" must be true or false");
	if (dry)
		r->dry_run = YAJL_IS_TRUE(dry);
	if (agent)
		r->agent_id = xstrdup(agent->u.string);
	r->form = GW_FORM_SEED;
	return seed_tool(proto_json_get(root, "tool"), gw_id, r, e);
}

int gw_exec_req_parse(const char *body, size_t len, const char *gateway_id, bool dry_default,
                      gw_exec_req *r, err **e)
{
	memset(r, 0, sizeof(*r));
	r->dry_run = dry_default;
	_cleanup_yajl_val_ yajl_val root = NULL;
	_cleanup_err_ err *je = NULL;
	int rc = proto_json_parse(body, len, &root, &je);
	if (rc == -1)
		return err_set(e, 0, "body is not valid JSON: %s", err_msg(je));
	if (rc < 0)
		return err_set(e, 0, "body: %s", err_msg(je));
	if (!YAJL_IS_OBJECT(root))
		return err_set(e, 0, "body must be a JSON object");
	rc = proto_json_get(root, "tool") ? seed_form(root, gateway_id, r, e)
	                                  : task_form(root, gateway_id, r, e);
	if (rc < 0)
		gw_exec_req_deinit(r);
	return rc;
}

/* ---- cost ---- */

static int64_t micros(double v)
{
	if (v <= 0)
		return 0;
	if (v > 9e18)
		return INT64_MAX;
	int64_t i = (int64_t)v;
	return (double)i < v ? i + 1 : i; /* rounded up */
}

int64_t gw_cost_max(const gw_config *c, const proto_limits *l)
{
	double secs = (double)l->timeout_ms / 1000.0;
	double cpus = (double)l->cpus_milli / 1000.0;
	double gib = (double)l->memory_bytes / (1024.0 * 1024 * 1024);
	return micros((double)c->per_call_micros + cpus * secs * (double)c->per_cpu_second_micros +
	              gib * secs * (double)c->per_gib_second_micros);
}

int64_t gw_cost_actual(const gw_config *c, const proto_limits *l, int64_t cpu_ms, int64_t wall_ms)
{
	double gib = (double)l->memory_bytes / (1024.0 * 1024 * 1024);
	return micros((double)c->per_call_micros +
	              (double)cpu_ms / 1000.0 * (double)c->per_cpu_second_micros +
	              gib * (double)wall_ms / 1000.0 * (double)c->per_gib_second_micros);
}
