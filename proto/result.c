/* Result documents (PROTOCOL.md, "Result"): serialisation by the node and parsing by clients
 * (aisp wait / verify). Output bytes travel as text when they are valid UTF-8 without NUL,
 * otherwise as base64, so that parsing gives back exactly the bytes that were produced. */
#include "proto/proto.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/xalloc.h"
#include "proto/internal.h"
#include "proto/json.h"

/* "stdout": "text" or "stdout_b64": "base64" */
static void gen_bytes(proto_gen *g, const char *key, const buf *b)
{
	const uint8_t *p = b->data ? b->data : (const uint8_t *)"";
	if (proto_bytes_are_text(p, b->len)) {
		proto_json_gen_str(g, key);
		proto_json_gen_strn(g, (const char *)p, b->len);
		return;
	}
	_cleanup_free_ char *k = xasprintf("%s_b64", key);
	_cleanup_free_ char *enc = proto_b64_encode(p, b->len);
	proto_json_gen_str(g, k);
	proto_json_gen_str(g, enc);
}

static void gen_kv_str(proto_gen *g, const char *k, const char *v)
{
	if (!v)
		return;
	proto_json_gen_str(g, k);
	proto_json_gen_text(g, v, strlen(v));
}

/* Embeds JSON text as a value; text that does not parse is left out (the producer's bug; the
 * document stays valid). */
static void gen_kv_json(proto_gen *g, const char *k, const char *text)
{
	if (!text)
		return;
	_cleanup_yajl_val_ yajl_val v = NULL;
	if (proto_json_parse(text, strlen(text), &v, NULL) < 0)
		return;
	proto_json_gen_str(g, k);
	proto_json_gen_value(g, v);
}

static void gen_files(proto_gen *g, const proto_output *o)
{
	proto_json_gen_str(g, "files");
	proto_json_gen_open(g, false);
	for (size_t i = 0; i < o->n_files; i++) {
		const proto_file *f = &o->files[i];
		_cleanup_free_ char *enc = proto_b64_encode(f->data, f->len);
		proto_json_gen_open(g, true);
		gen_kv_str(g, "path", f->path);
		gen_kv_str(g, "content_b64", enc);
		proto_json_gen_kint(g, "size", (int64_t)f->len);
		proto_json_gen_close(g, true);
	}
	proto_json_gen_close(g, false);
}

void proto_result_to_json(const proto_result *r, buf *out)
{
	const proto_output *o = &r->output;
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	proto_json_gen_open(g, true);
	proto_json_gen_kint(g, "v", 1);
	gen_kv_str(g, "id", r->id ? r->id : "");
	gen_kv_str(g, "status",
	           proto_status_name(o->status) ? proto_status_name(o->status) : "internal");
	proto_json_gen_str(g, "exit_code");
	if (o->exit_code >= 0)
		proto_json_gen_int(g, o->exit_code);
	else
		proto_json_gen_null(g);
	proto_json_gen_str(g, "signal");
	if (o->signal > 0)
		proto_json_gen_int(g, o->signal);
	else
		proto_json_gen_null(g);
	gen_bytes(g, "stdout", &o->out);
	gen_bytes(g, "stderr", &o->err);
	proto_json_gen_kbool(g, "stdout_truncated", o->stdout_truncated);
	proto_json_gen_kbool(g, "stderr_truncated", o->stderr_truncated);
	gen_files(g, o);
	proto_json_gen_kbool(g, "files_truncated", o->files_truncated);
	gen_kv_json(g, "return_value", o->return_value);
	gen_kv_str(g, "error", o->error);
	proto_output_skill_gen(g, o);
	proto_chain_run_gen(g, o->chain);
	proto_json_gen_str(g, "usage");
	proto_json_gen_open(g, true);
	proto_json_gen_kint(g, "wall_ms", r->usage.wall_ms);
	proto_json_gen_kint(g, "cpu_ms", r->usage.cpu_ms);
	proto_json_gen_kint(g, "memory_peak_bytes", r->usage.memory_peak_bytes);
	proto_json_gen_close(g, true);
	proto_cost_gen(g, r->cost);
	proto_proxy_audit_gen(g, r->proxy);
	gen_kv_str(g, "node", r->node_id);
	gen_kv_str(g, "runtime", r->runtime);
	gen_kv_str(g, "image_digest", r->image_digest);
	proto_json_gen_kint(g, "received_at_ms", r->received_ms);
	proto_json_gen_kint(g, "started_at_ms", r->started_ms);
	proto_json_gen_kint(g, "finished_at_ms", r->finished_ms);
	proto_json_gen_kint(g, "attempts", r->attempts);
	gen_kv_str(g, "execution_digest", r->execution_digest);
	gen_kv_json(g, "attestation", r->attestation);
	gen_kv_str(g, "sealed", r->sealed); /* proto/PROTOCOL.md */
	proto_json_gen_close(g, true);
	proto_json_gen_take_valid(g, out);
}

/* ---- parsing ---- */

static int opt_str(yajl_val root, const char *k, char **out, err **e)
{
	yajl_val v = proto_json_get(root, k);
	if (!v || YAJL_IS_NULL(v))
		return 0;
	if (!YAJL_IS_STRING(v))
		return err_set(e, 0, "result field \"%s\" must be a string", k);
	*out = xstrdup(v->u.string);
	return 0;
}

static int opt_int(yajl_val root, const char *k, int64_t min, int64_t max, int64_t *out, err **e)
{
	yajl_val v = proto_json_get(root, k);
	if (!v || YAJL_IS_NULL(v))
		return 0;
	if (!YAJL_IS_INTEGER(v) || v->u.number.i < min || v->u.number.i > max)
		return err_set(
		    e, 0, "result field \"%s\" must be an integer in [%" PRId64 ", %" PRId64 "]", k,
		    min, max);
	*out = v->u.number.i;
	return 0;
}

static int opt_bool(yajl_val root, const char *k, bool *out, err **e)
{
	yajl_val v = proto_json_get(root, k);
	if (!v)
		return 0;
	if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v))
		return err_set(e, 0, "result field \"%s\" must be true or false", k);
	*out = YAJL_IS_TRUE(v);
	return 0;
}

static int opt_json(yajl_val root, const char *k, char **out)
{
	yajl_val v = proto_json_get(root, k);
	if (!v)
		return 0;
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	proto_json_gen_value(g, v);
	buf b = BUF_INIT;
	proto_json_gen_take_valid(g, &b);
	*out = buf_steal(&b, NULL);
	return 0;
}

static int get_bytes(yajl_val root, const char *key, buf *out, err **e)
{
	_cleanup_free_ char *k64 = xasprintf("%s_b64", key);
	yajl_val text = proto_json_get(root, key), b64 = proto_json_get(root, k64);
	if (text && b64)
		return err_set(e, 0, "result has both \"%s\" and \"%s\"", key, k64);
	if (text) {
		if (!YAJL_IS_STRING(text))
			return err_set(e, 0, "result field \"%s\" must be a string", key);
		buf_append_str(out, text->u.string);
	} else if (b64) {
		uint8_t *d = NULL;
		size_t n = 0;
		if (!YAJL_IS_STRING(b64) ||
		    proto_b64_decode(b64->u.string, strlen(b64->u.string), &d, &n) < 0)
			return err_set(e, 0, "result field \"%s\" is not valid base64", k64);
		buf_append(out, d, n);
		free(d);
	}
	return 0;
}

static int parse_out_file(yajl_val v, size_t i, proto_file *f, err **e)
{
	const char *path = proto_json_get_str(v, "path");
	const char *content = proto_json_get_str(v, "content_b64");
	int64_t size = -1;
	if (!path || !content)
		return err_set(e, 0, "result files[%zu] needs \"path\" and \"content_b64\"", i);
	err *why = NULL;
	if (proto_path_valid(path, &why) < 0) {
		err_set(e, 0, "result files[%zu].path is not a valid relative path: %s", i,
		        err_msg(why));
		err_free(why);
		return -1;
	}
	if (proto_b64_decode(content, strlen(content), &f->data, &f->len) < 0)
		return err_set(e, 0, "result files[%zu].content_b64 is not valid base64", i);
	f->path = xstrdup(path);
	if (proto_json_get(v, "size") &&
	    (proto_json_get_int(v, "size", &size) < 0 || (uint64_t)size != f->len))
		return err_set(e, 0, "result files[%zu].size does not match its content", i);
	return 0;
}

static int parse_out_files(yajl_val root, proto_output *o, err **e)
{
	yajl_val v = proto_json_get(root, "files");
	if (!v || YAJL_IS_NULL(v))
		return 0;
	if (!YAJL_IS_ARRAY(v))
		return err_set(e, 0, "result field \"files\" must be an array");
	if (v->u.array.len > PROTO_OUT_FILES_MAX)
		return err_set(e, 0, "result has %zu files, above the %d limit", v->u.array.len,
		               PROTO_OUT_FILES_MAX);
	o->files = xcalloc(v->u.array.len + 1, sizeof(proto_file));
	for (size_t i = 0; i < v->u.array.len; i++) {
		o->n_files = i + 1;
		if (!YAJL_IS_OBJECT(v->u.array.values[i]))
			return err_set(e, 0, "result files[%zu] must be an object", i);
		if (parse_out_file(v->u.array.values[i], i, &o->files[i], e) < 0)
			return -1;
	}
	return 0;
}

static int parse_output(yajl_val root, proto_output *o, err **e)
{
	const char *status = proto_json_get_str(root, "status");
	if (!status || proto_status_parse(status, &o->status) < 0)
		return err_set(e, 0, "result field \"status\" is missing or unknown");
	int64_t exit_code = -1, sig = 0;
	if (opt_int(root, "exit_code", 0, 255, &exit_code, e) < 0 ||
	    opt_int(root, "signal", 1, 64, &sig, e) < 0)
		return -1;
	o->exit_code = (int)exit_code;
	o->signal = (int)sig;
	if (get_bytes(root, "stdout", &o->out, e) < 0 ||
	    get_bytes(root, "stderr", &o->err, e) < 0 ||
	    opt_bool(root, "stdout_truncated", &o->stdout_truncated, e) < 0 ||
	    opt_bool(root, "stderr_truncated", &o->stderr_truncated, e) < 0 ||
	    opt_bool(root, "files_truncated", &o->files_truncated, e) < 0 ||
	    parse_out_files(root, o, e) < 0 || opt_str(root, "error", &o->error, e) < 0 ||
	    proto_chain_run_parse(root, o, e) < 0 || proto_output_skill_parse(root, o, e) < 0)
		return -1;
	return opt_json(root, "return_value", &o->return_value);
}

static int result_from_tree(yajl_val root, proto_result *r, err **e)
{
	if (!YAJL_IS_OBJECT(root))
		return err_set(e, 0, "result must be a JSON object");
	yajl_val v = proto_json_get(root, "v");
	if (v && !(YAJL_IS_INTEGER(v) && v->u.number.i == 1))
		return err_set(e, 0, "result field \"v\" must be 1");
	if (opt_str(root, "id", &r->id, e) < 0)
		return -1;
	if (!r->id)
		return err_set(e, 0, "result field \"id\" is missing");
	if (parse_output(root, &r->output, e) < 0)
		return -1;
	yajl_val usage = proto_json_get(root, "usage");
	if (usage && !YAJL_IS_OBJECT(usage))
		return err_set(e, 0, "result field \"usage\" must be an object");
	int64_t attempts = 0;
	if (opt_int(usage, "wall_ms", 0, INT64_MAX, &r->usage.wall_ms, e) < 0 ||
	    opt_int(usage, "cpu_ms", 0, INT64_MAX, &r->usage.cpu_ms, e) < 0 ||
	    opt_int(usage, "memory_peak_bytes", 0, INT64_MAX, &r->usage.memory_peak_bytes, e) < 0 ||
	    opt_str(root, "node", &r->node_id, e) < 0 ||
	    opt_str(root, "runtime", &r->runtime, e) < 0 ||
	    opt_str(root, "image_digest", &r->image_digest, e) < 0 ||
	    opt_int(root, "received_at_ms", 0, INT64_MAX, &r->received_ms, e) < 0 ||
	    opt_int(root, "started_at_ms", 0, INT64_MAX, &r->started_ms, e) < 0 ||
	    opt_int(root, "finished_at_ms", 0, INT64_MAX, &r->finished_ms, e) < 0 ||
	    opt_int(root, "attempts", 0, 1000000, &attempts, e) < 0 ||
	    opt_str(root, "execution_digest", &r->execution_digest, e) < 0 ||
	    opt_str(root, "sealed", &r->sealed, e) < 0 || proto_cost_parse(root, &r->cost, e) < 0 ||
	    proto_proxy_audit_parse(root, &r->proxy, e) < 0)
		return -1;
	r->attempts = (int)attempts;
	yajl_val att = proto_json_get(root, "attestation");
	if (att && !YAJL_IS_NULL(att) && !YAJL_IS_OBJECT(att))
		return err_set(e, 0, "result field \"attestation\" must be an object");
	if (att && YAJL_IS_OBJECT(att))
		opt_json(root, "attestation", &r->attestation);
	return 0;
}

int proto_result_parse(const char *json, size_t len, proto_result *r, err **e)
{
	proto_result_init(r);
	_cleanup_yajl_val_ yajl_val root = NULL;
	int rc = proto_json_parse(json, len, &root, e);
	if (rc == -1)
		return err_prefix(e, "result is not valid JSON");
	if (rc < 0)
		return err_prefix(e, "result");
	if (result_from_tree(root, r, e) < 0) {
		proto_result_deinit(r);
		return -1;
	}
	return 0;
}

/* For chain-result.c: a script step's stdout and stderr travel as a result's do. */
void proto_result_gen_bytes(proto_gen *g, const char *key, const buf *b)
{
	gen_bytes(g, key, b);
}

int proto_result_get_bytes(yajl_val obj, const char *key, buf *out, err **e)
{
	return get_bytes(obj, key, out, e);
}
