/* Task documents (PROTOCOL.md, "Task"): strict parsing and validation with client-facing
 * messages, and the inverse serialisation used by `aisp submit`. */
#include "proto/proto.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/xalloc.h"
#include "proto/internal.h"
#include "proto/json.h"

static const char *const task_fields[] = {
    "v",     "id",        "lang",        "mode",         "code",
    "stdin", "stdin_b64", "args",        "env",          "files",
    "image", "runtime",   "limits",      "reply_stream", "nondeterministic",
    "steps", "input",     "live_output", "services",
};
#define LIMIT_WIRE_(f, w, u, d, mn, m, c) w,
static const char *const limits_fields[] = {PROTO_LIMITS(LIMIT_WIRE_)};
#undef LIMIT_WIRE_
static const char *const file_fields[] = {"path", "content_b64"};

/* Rejects the first key of obj that is not in allowed; prefix names the enclosing field. */
static int check_unknown(yajl_val obj, const char *const *allowed, size_t n, const char *prefix,
                         err **e)
{
	for (size_t i = 0; i < obj->u.object.len; i++) {
		const char *k = obj->u.object.keys[i];
		size_t j = 0;
		while (j < n && strcmp(k, allowed[j]) != 0)
			j++;
		/* The task's own fields of sealed and signed tasks: proto/sealed.c. */
		if (j == n &&
		    !(!*prefix && (proto_task_ext_field(k) || proto_task_skill_field(k)))) {
			_cleanup_free_ char *full = xasprintf("%s%s", prefix, k);
			_cleanup_free_ char *q = proto_quote(full, strlen(full));
			return err_set(e, 0, "unknown field %s", q);
		}
	}
	return 0;
}

/* A string field: *out is NULL when absent (and -1 "missing field" when required). */
static int get_string(yajl_val obj, const char *key, const char *wire, bool required,
                      const char **out, err **e)
{
	yajl_val v = proto_json_get(obj, key);
	*out = NULL;
	if (!v) {
		if (required)
			return err_set(e, 0, "missing field \"%s\"", wire);
		return 0;
	}
	if (!YAJL_IS_STRING(v))
		return err_set(e, 0, "field \"%s\" must be a string", wire);
	*out = v->u.string;
	return 0;
}

static bool name_chars(const char *s, const char *extra, size_t max)
{
	size_t n = strlen(s);
	if (n < 1 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      strchr(extra, c)))
			return false;
	}
	return true;
}

static bool is_hex64(const char *s)
{
	return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

/* Image references are store names (a file name in the store: no '/') or manifest digests. */
static bool image_valid(const char *s)
{
	if (strncmp(s, "sha256:", 7) == 0)
		return is_hex64(s + 7);
	return name_chars(s, "._:-", PROTO_NAME_MAX) && s[0] != '.' && s[0] != '-' && s[0] != ':';
}

bool proto_env_name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > PROTO_ENV_NAME_MAX || (s[0] >= '0' && s[0] <= '9'))
		return false;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

static int parse_limits(yajl_val obj, proto_limits *l, err **e)
{
	if (!YAJL_IS_OBJECT(obj))
		return err_set(e, 0, "field \"limits\" must be an object");
	if (check_unknown(obj, limits_fields, ARRAY_SIZE(limits_fields), "limits.", e) < 0)
		return -1;
	for (size_t i = 0; i < PROTO_LIMIT_COUNT; i++) {
		const proto_limit_field *f = &proto_limit_fields[i];
		yajl_val v = proto_json_get(obj, f->wire);
		if (!v)
			continue;
		/* The number's own text: a value beyond int64 is "too large", not "not an
		 * integer", and 1e0 or 1.0 is not an integer. */
		const char *text = YAJL_IS_NUMBER(v) ? v->u.number.r : "";
		if (proto_limit_parse(f, text, proto_limit_at(l, f), e) < 0)
			return -1;
	}
	return 0;
}

static int parse_stdin(yajl_val root, proto_task *t, err **e)
{
	const char *text, *b64;
	if (get_string(root, "stdin", "stdin", false, &text, e) < 0 ||
	    get_string(root, "stdin_b64", "stdin_b64", false, &b64, e) < 0)
		return -1;
	if (text && b64)
		return err_set(e, 0, "fields \"stdin\" and \"stdin_b64\" are mutually exclusive");
	if (text) {
		t->stdin_len = strlen(text);
		if (t->stdin_len > PROTO_STDIN_MAX)
			return err_set(e, 0,
			               "field \"stdin\" is %zu bytes, above the %u-byte limit",
			               t->stdin_len, PROTO_STDIN_MAX);
		t->stdin_data = xmemdup(text, t->stdin_len + 1);
	} else if (b64) {
		size_t n = strlen(b64);
		if (proto_b64_decoded_max(n) > PROTO_STDIN_MAX + 3)
			return err_set(e, 0,
			               "field \"stdin_b64\" decodes to more than the %u-byte limit",
			               PROTO_STDIN_MAX);
		if (proto_b64_decode(b64, n, &t->stdin_data, &t->stdin_len) < 0)
			return err_set(e, 0, "field \"stdin_b64\" is not valid base64");
		if (t->stdin_len > PROTO_STDIN_MAX)
			return err_set(e, 0,
			               "field \"stdin_b64\" decodes to %zu bytes, above the "
			               "%u-byte limit",
			               t->stdin_len, PROTO_STDIN_MAX);
	}
	return 0;
}

static int parse_args(yajl_val root, proto_task *t, err **e)
{
	yajl_val v = proto_json_get(root, "args");
	if (!v)
		return 0;
	if (t->mode == PROTO_MODE_SCRIPT) {
		if (!YAJL_IS_ARRAY(v))
			return err_set(e, 0, "script mode args must be an array of strings");
		size_t n = v->u.array.len;
		if (n > PROTO_ARGV_MAX)
			return err_set(e, 0, "field \"args\" has %zu entries, above the %d limit",
			               n, PROTO_ARGV_MAX);
		for (size_t i = 0; i < n; i++)
			if (!YAJL_IS_STRING(v->u.array.values[i]))
				return err_set(e, 0,
				               "script mode args must be an array of strings "
				               "(args[%zu] is not a string)",
				               i);
		if (n == 0)
			return 0; /* [] and absent are the same task */
		t->argv = xcalloc(n + 1, sizeof(char *));
		for (size_t i = 0; i < n; i++)
			t->argv[i] = xstrdup(v->u.array.values[i]->u.string);
		t->argc = n;
	} else if (YAJL_IS_NULL(v)) {
		return 0; /* null and absent are the same call */
	}
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	proto_json_gen_value(g, v);
	buf b = BUF_INIT;
	proto_json_gen_take_valid(g, &b);
	if (b.len > PROTO_ARGS_MAX) {
		size_t n = b.len;
		buf_deinit(&b);
		return err_set(e, 0, "field \"args\" is %zu bytes as JSON, above the %u-byte limit",
		               n, PROTO_ARGS_MAX);
	}
	t->args_json = buf_steal(&b, NULL);
	return 0;
}

static int cmp_env(const void *a, const void *b)
{
	return strcmp(((const proto_env *)a)->name, ((const proto_env *)b)->name);
}

static int parse_env(yajl_val root, proto_task *t, err **e)
{
	yajl_val v = proto_json_get(root, "env");
	if (!v)
		return 0;
	if (!YAJL_IS_OBJECT(v))
		return err_set(e, 0, "field \"env\" must be an object of strings");
	size_t n = v->u.object.len;
	if (n > PROTO_ENV_MAX)
		return err_set(e, 0, "field \"env\" has %zu entries, above the %d limit", n,
		               PROTO_ENV_MAX);
	t->env = xcalloc(n ? n : 1, sizeof(proto_env));
	for (size_t i = 0; i < n; i++) {
		const char *name = v->u.object.keys[i];
		yajl_val val = v->u.object.values[i];
		_cleanup_free_ char *q = proto_quote(name, strlen(name));
		if (!proto_env_name_valid(name))
			return err_set(e, 0, "env name %s must match [A-Za-z_][A-Za-z0-9_]{0,%d}",
			               q, PROTO_ENV_NAME_MAX - 1);
		if (proto_env_reserved(name))
			return err_set(e, 0, "env name %s is reserved", q);
		if (!YAJL_IS_STRING(val))
			return err_set(e, 0, "env %s must be a string", q);
		size_t len = strlen(val->u.string);
		if (len > PROTO_ENV_VALUE_MAX)
			return err_set(e, 0, "env %s is %zu bytes, above the %d-byte limit", q, len,
			               PROTO_ENV_VALUE_MAX);
		t->env[i].name = xstrdup(name);
		t->env[i].value = xstrdup(val->u.string);
		t->n_env = i + 1;
	}
	qsort(t->env, t->n_env, sizeof(proto_env), cmp_env);
	return 0;
}

static int cmp_file(const void *a, const void *b)
{
	return strcmp(((const proto_file *)a)->path, ((const proto_file *)b)->path);
}

static const proto_file *find_file(const proto_file *f, size_t n, const char *path)
{
	proto_file key = {.path = (char *)path};
	return bsearch(&key, f, n, sizeof(proto_file), cmp_file);
}

static int parse_file(yajl_val v, size_t i, proto_file *f, size_t *total, err **e)
{
	if (!YAJL_IS_OBJECT(v))
		return err_set(e, 0, "files[%zu] must be an object", i);
	_cleanup_free_ char *prefix = xasprintf("files[%zu].", i);
	if (check_unknown(v, file_fields, ARRAY_SIZE(file_fields), prefix, e) < 0)
		return -1;
	_cleanup_free_ char *wpath = xasprintf("files[%zu].path", i);
	_cleanup_free_ char *wcontent = xasprintf("files[%zu].content_b64", i);
	const char *path, *content;
	if (get_string(v, "path", wpath, true, &path, e) < 0 ||
	    get_string(v, "content_b64", wcontent, true, &content, e) < 0)
		return -1;
	err *why = NULL;
	if (proto_path_valid(path, &why) < 0) {
		_cleanup_free_ char *q = proto_quote(path, strlen(path));
		err_set(e, 0, "%s %s is not a valid relative path: %s", wpath, q, err_msg(why));
		err_free(why);
		return -1;
	}
	size_t n = strlen(content);
	if (proto_b64_decoded_max(n) > PROTO_FILES_TOTAL_MAX - *total + 3)
		return err_set(e, 0, "input files total more than the %u-byte limit",
		               PROTO_FILES_TOTAL_MAX);
	if (proto_b64_decode(content, n, &f->data, &f->len) < 0)
		return err_set(e, 0, "%s is not valid base64", wcontent);
	f->path = xstrdup(path);
	*total += f->len;
	if (*total > PROTO_FILES_TOTAL_MAX)
		return err_set(e, 0, "input files total more than the %u-byte limit",
		               PROTO_FILES_TOTAL_MAX);
	return 0;
}

static int parse_files(yajl_val root, proto_task *t, err **e)
{
	yajl_val v = proto_json_get(root, "files");
	if (!v)
		return 0;
	if (!YAJL_IS_ARRAY(v))
		return err_set(e, 0, "field \"files\" must be an array");
	size_t n = v->u.array.len;
	if (n > PROTO_FILES_MAX)
		return err_set(e, 0, "field \"files\" has %zu entries, above the %d limit", n,
		               PROTO_FILES_MAX);
	t->files = xcalloc(n ? n : 1, sizeof(proto_file));
	size_t total = 0;
	for (size_t i = 0; i < n; i++) {
		t->n_files = i + 1;
		if (parse_file(v->u.array.values[i], i, &t->files[i], &total, e) < 0)
			return -1;
	}
	qsort(t->files, n, sizeof(proto_file), cmp_file);
	for (size_t i = 0; i < n; i++) {
		const char *p = t->files[i].path;
		_cleanup_free_ char *q = proto_quote(p, strlen(p));
		if (i > 0 && strcmp(t->files[i - 1].path, p) == 0)
			return err_set(e, 0, "duplicate file path %s", q);
		/* "a" and "a/b" cannot both be files. */
		_cleanup_free_ char *dir = xstrdup(p);
		for (char *s = strrchr(dir, '/'); s; s = strrchr(dir, '/')) {
			*s = 0;
			if (find_file(t->files, n, dir)) {
				_cleanup_free_ char *qd = proto_quote(dir, strlen(dir));
				return err_set(e, 0, "file path %s is also the directory of %s", qd,
				               q);
			}
		}
	}
	return 0;
}

static int parse_names(yajl_val root, proto_task *t, err **e)
{
	const char *image, *runtime, *reply;
	if (get_string(root, "image", "image", false, &image, e) < 0 ||
	    get_string(root, "runtime", "runtime", false, &runtime, e) < 0 ||
	    get_string(root, "reply_stream", "reply_stream", false, &reply, e) < 0)
		return -1;
	if (image && !image_valid(image))
		return err_set(e, 0,
		               "field \"image\" must be an image name "
		               "([A-Za-z0-9][A-Za-z0-9._:-]{0,127}) or sha256:<64 lower-case hex>");
	if (runtime && !name_chars(runtime, "._-", PROTO_NAME_MAX))
		return err_set(e, 0, "field \"runtime\" must match [A-Za-z0-9._-]{1,128}");
	if (reply && !proto_reply_stream_valid(reply))
		return err_set(e, 0,
		               "field \"reply_stream\" must be \"" PROTO_KEY_REPLY_PREFIX
		               "\" followed by [A-Za-z0-9:._-]{1,%zu}",
		               PROTO_NAME_MAX - strlen(PROTO_KEY_REPLY_PREFIX));
	t->image = image ? xstrdup(image) : NULL;
	t->runtime = runtime ? xstrdup(runtime) : NULL;
	t->reply_stream = reply ? xstrdup(reply) : NULL;
	yajl_val nd = proto_json_get(root, "nondeterministic");
	if (nd && !YAJL_IS_TRUE(nd) && !YAJL_IS_FALSE(nd))
		return err_set(e, 0, "field \"nondeterministic\" must be true or false");
	t->nondeterministic = YAJL_IS_TRUE(nd);
	yajl_val lo = proto_json_get(root, "live_output");
	if (lo && !YAJL_IS_TRUE(lo) && !YAJL_IS_FALSE(lo))
		return err_set(e, 0, "field \"live_output\" must be true or false");
	t->live_output = YAJL_IS_TRUE(lo);
	if (t->live_output && !reply)
		return err_set(e, 0,
		               "field \"live_output\" needs a \"reply_stream\": the live events go "
		               "there");
	return 0;
}

static int parse_id(yajl_val root, proto_task *t, err **e)
{
	yajl_val v = proto_json_get(root, "v");
	int64_t version = 0;
	if (v && !(YAJL_IS_NUMBER(v) && proto_number_scaled(v->u.number.r, 0, &version) == 0 &&
	           version == 1)) /* by value, as JSON Schema's const: 1, 1.0 and 1e0 */
		return err_set(e, 0, "field \"v\" must be 1 (the only protocol version)");
	const char *id;
	if (get_string(root, "id", "id", true, &id, e) < 0)
		return -1;
	if (!proto_id_valid(id))
		return err_set(e, 0, "field \"id\" must match [A-Za-z0-9._-]{1,64}");
	if (!strncmp(id, PROTO_ID_RESERVED_PREFIX, strlen(PROTO_ID_RESERVED_PREFIX)))
		return err_set(e, 0,
		               "field \"id\" may not start with \"" PROTO_ID_RESERVED_PREFIX
		               "\" (the ids of rejections of unreadable entries)");
	t->id = xstrdup(id);
	return 0;
}

/* A skill task: function mode, no code of its own (the node sets the skill's loader). */
static int skill_code(yajl_val root, proto_task *t, const char *mode, err **e)
{
	if (mode && strcmp(mode, "function"))
		return err_set(e, 0,
		               "field \"mode\" of a skill task must be function (the node calls "
		               "the skill's entrypoint with args)");
	t->mode = PROTO_MODE_FUNCTION;
	if (proto_json_get(root, "code") || proto_json_get(root, "code_age"))
		return err_set(e, 0,
		               "a task with \"skill\" has no \"code\": the node calls the skill's "
		               "entrypoint");
	if (t->lang_given && t->lang == PROTO_LANG_SHELL)
		return err_set(e, 0, "a skill is python or javascript, not shell");
	return 0;
}

static int parse_code(yajl_val root, proto_task *t, err **e)
{
	const char *lang, *mode, *code;
	if (proto_json_get(root, "input") || proto_json_get(root, "input_age"))
		return err_set(e, 0,
		               "field \"%s\" belongs to a chain task (with \"steps\"); a plain "
		               "task reads \"stdin\"",
		               proto_json_get(root, "input") ? "input" : "input_age");
	/* A skill task (execute_skill) calls the skill's entrypoint: its lang is the skill's. */
	bool skill = proto_json_get(root, "skill") != NULL;
	if (get_string(root, "lang", "lang", !skill, &lang, e) < 0)
		return -1;
	t->lang_given = lang != NULL;
	if (lang && proto_lang_parse(lang, &t->lang) < 0)
		return err_set(e, 0, "field \"lang\" must be one of python, javascript, shell");
	if (get_string(root, "mode", "mode", false, &mode, e) < 0)
		return -1;
	if (skill)
		return skill_code(root, t, mode, e);
	if (!mode || strcmp(mode, "script") == 0)
		t->mode = PROTO_MODE_SCRIPT;
	else if (strcmp(mode, "function") == 0)
		t->mode = PROTO_MODE_FUNCTION;
	else
		return err_set(e, 0, "field \"mode\" must be one of script, function");
	if (t->mode == PROTO_MODE_FUNCTION && t->lang == PROTO_LANG_SHELL)
		return err_set(e, 0, "function mode is not supported for shell");
	/* Sealed code ("code_age", proto/sealed.c) stands for "code": t->code stays NULL until
	 * attest_sealed_open() decrypts it. */
	bool sealed = proto_json_get(root, "code_age") != NULL;
	if (get_string(root, "code", "code", !sealed, &code, e) < 0)
		return -1;
	t->code_len = code ? strlen(code) : 0;
	if (t->code_len > PROTO_CODE_MAX)
		return err_set(e, 0, "field \"code\" is %zu bytes, above the %u-byte limit",
		               t->code_len, PROTO_CODE_MAX);
	t->code = code ? xmemdup(code, t->code_len + 1) : NULL;
	return 0;
}

/* A plain task: the program and what it reads. */
static int parse_program(yajl_val root, proto_task *t, err **e)
{
	if (parse_code(root, t, e) < 0 || parse_stdin(root, t, e) < 0 ||
	    parse_args(root, t, e) < 0 || parse_env(root, t, e) < 0 || parse_files(root, t, e) < 0)
		return -1;
	return 0;
}

static int task_from_tree(yajl_val root, proto_task *t, err **e)
{
	if (!YAJL_IS_OBJECT(root))
		return err_set(e, 0, "task must be a JSON object");
	if (check_unknown(root, task_fields, ARRAY_SIZE(task_fields), "", e) < 0 ||
	    parse_id(root, t, e) < 0)
		return -1;
	bool chain = proto_json_get(root, "steps") || proto_json_get(root, "steps_age");
	if ((chain ? proto_chain_parse(root, t, e) : parse_program(root, t, e)) < 0 ||
	    parse_names(root, t, e) < 0 || proto_task_ext_parse(root, t, e) < 0 ||
	    proto_task_skill_parse(root, t, e) < 0 || proto_services_parse(root, t, e) < 0)
		return -1;
	yajl_val limits = proto_json_get(root, "limits");
	if (limits && parse_limits(limits, &t->limits, e) < 0)
		return -1;
	return 0;
}

static size_t count_key(yajl_val obj, const char *key)
{
	size_t n = 0;
	for (size_t i = 0; YAJL_IS_OBJECT(obj) && i < obj->u.object.len; i++)
		n += strcmp(obj->u.object.keys[i], key) == 0;
	return n;
}

/* The two fields that say where a result goes, read before anything else is checked, so that a
 * rejection reaches the client's own key and reply stream. A duplicated key is unreadable. */
static void read_head(yajl_val root, proto_task_head *head)
{
	const char *id = count_key(root, "id") == 1 ? proto_json_get_str(root, "id") : NULL;
	const char *reply =
	    count_key(root, "reply_stream") == 1 ? proto_json_get_str(root, "reply_stream") : NULL;
	if (id && proto_id_valid(id) &&
	    strncmp(id, PROTO_ID_RESERVED_PREFIX, strlen(PROTO_ID_RESERVED_PREFIX)))
		head->id = xstrdup(id);
	if (reply && proto_reply_stream_valid(reply))
		head->reply_stream = xstrdup(reply);
}

void proto_task_head_deinit(proto_task_head *h)
{
	free(h->id);
	free(h->reply_stream);
	h->id = h->reply_stream = NULL;
}

int proto_task_parse(const char *json, size_t len, proto_task *t, proto_task_head *head, err **e)
{
	proto_task_head none = {0};
	head = head ? head : &none;
	proto_task_init(t);
	*head = (proto_task_head){0};
	if (len > PROTO_TASK_MAX_BYTES)
		return err_set(e, 0, "task is %zu bytes, above the %u-byte limit", len,
		               PROTO_TASK_MAX_BYTES);
	_cleanup_yajl_val_ yajl_val root = NULL;
	int rc = proto_json_parse_ex(json, len, &root, true, e);
	rc = proto_task_parse_tree(root, rc, t, head, e);
	proto_task_head_deinit(&none);
	return rc;
}

int proto_task_parse_tree(yajl_val root, int rc, proto_task *t, proto_task_head *head, err **e)
{
	if (rc == -1)
		return err_prefix(e, "task is not valid JSON");
	if (root)
		read_head(root, head);
	if (rc == 0 && task_from_tree(root, t, e) < 0)
		rc = -1;
	if (rc < 0)
		proto_task_deinit(t);
	return rc < 0 ? -1 : 0;
}

/* ---- serialisation ---- */

static void gen_limits(proto_gen *g, const proto_limits *l)
{
	bool any = false;
	for (size_t i = 0; i < PROTO_LIMIT_COUNT; i++)
		any |= proto_limit_get(l, &proto_limit_fields[i]) > 0;
	if (!any)
		return;
	proto_json_gen_str(g, "limits");
	proto_json_gen_open(g, true);
	for (size_t i = 0; i < PROTO_LIMIT_COUNT; i++) {
		const proto_limit_field *f = &proto_limit_fields[i];
		int64_t v = proto_limit_get(l, f);
		if (v <= 0)
			continue;
		proto_json_gen_str(g, f->wire);
		if (f->unit == 0) {
			_cleanup_free_ char *s = proto_milli_str(v);
			proto_json_gen_number(g, s);
		} else {
			/* Byte counts that are not whole MiB round up: never below what was set. */
			proto_json_gen_int(g, (v + f->unit - 1) / f->unit);
		}
	}
	proto_json_gen_close(g, true);
}

static void gen_args(proto_gen *g, const proto_task *t)
{
	if (t->args_json) {
		proto_json_gen_str(g, "args");
		if (proto_json_gen_json(g, t->args_json, strlen(t->args_json), NULL) < 0)
			proto_json_gen_null(g);
	} else if (t->argc > 0) {
		proto_json_gen_str(g, "args");
		proto_json_gen_open(g, false);
		for (size_t i = 0; i < t->argc; i++)
			proto_json_gen_str(g, t->argv[i]);
		proto_json_gen_close(g, false);
	}
}

static void gen_stdin(proto_gen *g, const proto_task *t)
{
	if (t->stdin_len == 0)
		return;
	if (proto_utf8_valid(t->stdin_data, t->stdin_len) &&
	    !memchr(t->stdin_data, 0, t->stdin_len)) {
		proto_json_gen_str(g, "stdin");
		proto_json_gen_strn(g, (const char *)t->stdin_data, t->stdin_len);
	} else {
		_cleanup_free_ char *b = proto_b64_encode(t->stdin_data, t->stdin_len);
		proto_json_gen_kstr(g, "stdin_b64", b);
	}
}

static void gen_env(proto_gen *g, const proto_task *t)
{
	if (t->n_env == 0)
		return;
	proto_json_gen_str(g, "env");
	proto_json_gen_open(g, true);
	for (size_t i = 0; i < t->n_env; i++)
		proto_json_gen_kstr(g, t->env[i].name, t->env[i].value);
	proto_json_gen_close(g, true);
}

static void gen_files_array(proto_gen *g, const proto_task *t)
{
	proto_json_gen_open(g, false);
	for (size_t i = 0; i < t->n_files; i++) {
		_cleanup_free_ char *b = proto_b64_encode(t->files[i].data, t->files[i].len);
		proto_json_gen_open(g, true);
		proto_json_gen_kstr(g, "path", t->files[i].path);
		proto_json_gen_kstr(g, "content_b64", b);
		proto_json_gen_close(g, true);
	}
	proto_json_gen_close(g, false);
}

static void gen_files(proto_gen *g, const proto_task *t)
{
	if (t->n_files == 0)
		return;
	proto_json_gen_str(g, "files");
	gen_files_array(g, t);
}

void proto_task_files_json(const proto_task *t, buf *out)
{
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	gen_files_array(g, t);
	proto_json_gen_take_valid(g, out);
}

static void gen_program(proto_gen *g, const proto_task *t)
{
	if (!t->skill || t->lang_given)
		proto_json_gen_kstr(g, "lang",
		                    proto_lang_name(t->lang) ? proto_lang_name(t->lang) : "");
	proto_json_gen_kstr(g, "mode", proto_mode_name(t->mode) ? proto_mode_name(t->mode) : "");
	/* A sealed part is written as its ciphertext (proto_task_ext_gen), never in the clear;
	 * a skill task's code is the node's (its loader). */
	if (!t->skill && !proto_task_part_sealed(t, PROTO_SEALED_CODE)) {
		proto_json_gen_str(g, "code");
		proto_json_gen_strn(g, t->code ? t->code : "", t->code_len);
	}
	if (!proto_task_part_sealed(t, PROTO_SEALED_STDIN))
		gen_stdin(g, t);
	if (!proto_task_part_sealed(t, PROTO_SEALED_ARGS))
		gen_args(g, t);
	gen_env(g, t);
	if (!proto_task_part_sealed(t, PROTO_SEALED_FILES))
		gen_files(g, t);
}

void proto_task_to_json(const proto_task *t, buf *out)
{
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	proto_json_gen_open(g, true);
	proto_json_gen_kint(g, "v", 1);
	proto_json_gen_kstr(g, "id", t->id ? t->id : "");
	if (proto_task_is_chain(t))
		proto_chain_gen(g, t);
	else
		gen_program(g, t);
	const struct {
		const char *k, *v;
	} names[] = {
	    {"image", t->image}, {"runtime", t->runtime}, {"reply_stream", t->reply_stream}};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (names[i].v)
			proto_json_gen_kstr(g, names[i].k, names[i].v);
	gen_limits(g, &t->limits);
	if (t->nondeterministic)
		proto_json_gen_kbool(g, "nondeterministic", true);
	if (t->live_output)
		proto_json_gen_kbool(g, "live_output", true);
	if (t->n_services)
		proto_json_gen_kstrs(g, "services", (const char *const *)t->services);
	proto_task_ext_gen(g, t);
	proto_task_skill_gen(g, t);
	proto_json_gen_close(g, true);
	proto_json_gen_take_valid(g, out);
}

/* ---- sealed parts (proto/PROTOCOL.md, "Sealed and signed tasks") ---- */

/* Runs one of the field parsers above on a decrypted JSON value, as the value of key in an
 * object of its own (so the value cannot add fields of its own). */
static int open_json(proto_task *t, const char *key, const uint8_t *plain, size_t n,
                     int (*parse)(yajl_val, proto_task *, err **), err **e)
{
	_cleanup_yajl_val_ yajl_val v = NULL;
	if (proto_json_parse((const char *)plain, n, &v, e) < 0)
		return err_prefix(e, "not JSON");
	const char *keys[] = {key};
	yajl_val values[] = {v};
	struct yajl_val_s root = {.type = yajl_t_object};
	root.u.object.keys = keys;
	root.u.object.values = values;
	root.u.object.len = 1;
	return parse(&root, t, e);
}

int proto_task_open_part(proto_task *t, proto_sealed_part p, const uint8_t *plain, size_t n,
                         err **e)
{
	switch (p) {
	case PROTO_SEALED_CODE:
		if (n > PROTO_CODE_MAX)
			return err_set(e, 0, "%zu bytes, above the %u-byte limit of \"code\"", n,
			               PROTO_CODE_MAX);
		if (memchr(plain, 0, n) || !proto_utf8_valid(plain, n))
			return err_set(e, 0, "code must be UTF-8 text without NUL bytes");
		free(t->code);
		t->code = xmemdup(plain, n + 1);
		t->code[n] = '\0';
		t->code_len = n;
		return 0;
	case PROTO_SEALED_STDIN:
		if (n > PROTO_STDIN_MAX)
			return err_set(e, 0, "%zu bytes, above the %u-byte limit of stdin", n,
			               PROTO_STDIN_MAX);
		free(t->stdin_data);
		t->stdin_data = xmemdup(n ? plain : (const uint8_t *)"", n + 1);
		t->stdin_data[n] = 0;
		t->stdin_len = n;
		return 0;
	case PROTO_SEALED_ARGS:
		return open_json(t, "args", plain, n, parse_args, e);
	case PROTO_SEALED_FILES:
		return open_json(t, "files", plain, n, parse_files, e);
	case PROTO_SEALED_STEPS:
		return open_json(t, "steps", plain, n, proto_chain_open_steps, e);
	case PROTO_SEALED_INPUT:
		return open_json(t, "input", plain, n, proto_chain_open_input, e);
	default:
		return err_set(e, 0, "no such sealed part");
	}
}
