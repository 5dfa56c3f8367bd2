/* Chain tasks (proto/CHAINS.md): the values that flow between steps, the "steps" and "input"
 * fields of a task (strict validation, a precise message for every bad step, and the inverse
 * serialisation), and the lifecycle of the chain's run records and costs. */
#include "proto/proto.h"

#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/xalloc.h"
#include "proto/internal.h"
#include "proto/json.h"

static const char *const step_type_names[PROTO_STEP__COUNT] = {"llm", "script"};
static const char *const llm_fields[] = {"type", "model", "system_prompt", "temperature",
                                         "max_tokens"};
static const char *const script_fields[] = {"type", "lang", "code", "timeout_ms"};
/* Plain-task fields a chain may not have, and why. */
static const struct {
	const char *field, *why;
} not_in_chain[] = {
    {"code", "each script step carries its own code"},
    {"lang", "each script step names its own lang"},
    {"mode", "a script step returns its output"},
    {"stdin", "the chain's input is \"input\""},
    {"stdin_b64", "the chain's input is \"input\""},
    {"args", "the chain's input is \"input\""},
    {"env", "steps see the sandbox's fixed environment only"},
    {"files", "steps take no input files"},
    {"code_age", "each script step carries its own code (seal the steps as \"steps_age\")"},
    {"stdin_age", "the chain's input is \"input\" (sealed: \"input_age\")"},
    {"args_age", "the chain's input is \"input\" (sealed: \"input_age\")"},
    {"files_age", "steps take no input files"},
};

const char *proto_step_type_name(proto_step_type t)
{
	return (unsigned)t < PROTO_STEP__COUNT ? step_type_names[t] : NULL;
}

/* ---- values ---- */

void proto_value_deinit(proto_value *v)
{
	free(v->text);
	*v = (proto_value){0};
}

void proto_value_copy(proto_value *dst, const proto_value *src)
{
	dst->json = src->json;
	dst->len = src->len;
	dst->text = src->text ? xmemdup(src->text, src->len + 1) : NULL;
}

int proto_value_from_string(const char *s, size_t n, proto_value *out, err **e)
{
	if (memchr(s, 0, n) || !proto_utf8_valid((const uint8_t *)s, n))
		return err_set(e, 0, "the string is not valid UTF-8 without NUL");
	out->json = false;
	out->text = xmemdup(s, n + 1);
	out->text[n] = '\0';
	out->len = n;
	return 0;
}

/* From a parsed tree (strings are UTF-8 without NUL: the strict parser saw to that). */
void proto_value_from_tree(yajl_val v, proto_value *out)
{
	if (YAJL_IS_STRING(v)) {
		out->json = false;
		out->len = strlen(v->u.string);
		out->text = xmemdup(v->u.string, out->len + 1);
		return;
	}
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	proto_json_gen_value(g, v);
	buf b = BUF_INIT;
	proto_json_gen_take_valid(g, &b);
	out->json = true;
	out->text = buf_steal(&b, &out->len);
}

int proto_value_from_json(const char *text, size_t len, proto_value *out, err **e)
{
	_cleanup_yajl_val_ yajl_val v = NULL;
	if (proto_json_parse(text, len, &v, e) < 0)
		return err_prefix(e, "not JSON");
	proto_value_from_tree(v, out);
	return 0;
}

const char *proto_value_input_text(const proto_value *v, size_t *len)
{
	*len = v->text ? v->len : 0;
	return v->text ? v->text : "";
}

/* Emits the value as it sits in a document. */
void proto_value_gen(proto_gen *g, const proto_value *v)
{
	if (!v->json)
		proto_json_gen_strn(g, v->text ? v->text : "", v->text ? v->len : 0);
	else if (proto_json_gen_json(g, v->text, v->len, NULL) < 0)
		proto_json_gen_null(g); /* not from proto_value_from_*: a producer's bug */
}

char *proto_value_json(const proto_value *v, size_t *len)
{
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	proto_value_gen(g, v);
	buf b = BUF_INIT;
	proto_json_gen_take_valid(g, &b);
	return buf_steal(&b, len);
}

/* ---- steps: parsing ---- */

bool proto_task_has_step(const proto_task *t, proto_step_type type)
{
	for (size_t i = 0; t && i < t->n_steps; i++)
		if (t->steps[i].type == type)
			return true;
	return false;
}

int proto_chain_next_lang(const proto_task *t, size_t i)
{
	for (; i < t->n_steps; i++)
		if (t->steps[i].type == PROTO_STEP_SCRIPT)
			return (int)t->steps[i].lang;
	return -1;
}

/* The step's fields against its type's list: the first unknown one is named with the list. */
static int check_step_fields(yajl_val s, size_t i, const char *kind, const char *const *ok,
                             size_t n, err **e)
{
	for (size_t k = 0; k < s->u.object.len; k++) {
		const char *key = s->u.object.keys[k];
		size_t j = 0;
		while (j < n && strcmp(key, ok[j]))
			j++;
		if (j < n)
			continue;
		_cleanup_free_ char *q = proto_quote(key, strlen(key));
		buf l = BUF_INIT;
		for (j = 0; j < n; j++)
			buf_appendf(&l, "%s%s", j ? ", " : "", ok[j]);
		err_set(e, 0, "steps[%zu]: unknown field %s (%s step takes %s)", i, q, kind,
		        buf_str(&l));
		buf_deinit(&l);
		return -1;
	}
	return 0;
}

/* A string member of step i: NULL when absent; -1 when not a string. */
static int step_str(yajl_val s, size_t i, const char *key, const char **out, err **e)
{
	yajl_val v = proto_json_get(s, key);
	*out = NULL;
	if (v && !YAJL_IS_STRING(v))
		return err_set(e, 0, "steps[%zu].%s must be a string", i, key);
	*out = v ? v->u.string : NULL;
	return 0;
}

/* An integer member of step i in [min, max]; absent: *out untouched. */
static int step_int(yajl_val s, size_t i, const char *key, int64_t min, int64_t max, int64_t *out,
                    const char *unit, err **e)
{
	yajl_val v = proto_json_get(s, key);
	if (!v)
		return 0;
	if (!YAJL_IS_INTEGER(v) || v->u.number.i < min || v->u.number.i > max)
		return err_set(e, 0, "steps[%zu].%s must be an integer in [%lld, %lld]%s", i, key,
		               (long long)min, (long long)max, unit);
	*out = v->u.number.i;
	return 0;
}

static int parse_temperature(yajl_val s, size_t i, proto_step *st, err **e)
{
	yajl_val v = proto_json_get(s, "temperature");
	st->temperature_milli = PROTO_TEMPERATURE_UNSET;
	if (!v)
		return 0;
	int64_t m;
	if (!YAJL_IS_NUMBER(v) || proto_decimal_parse(v->u.number.r, 3, &m) < 0 ||
	    m > PROTO_TEMPERATURE_MAX_MILLI) {
		_cleanup_free_ char *got =
		    YAJL_IS_NUMBER(v) ? xstrdup(v->u.number.r) : xstrdup("not a number");
		return err_set(e, 0,
		               "steps[%zu].temperature must be a number in [0, 2] with at most 3 "
		               "decimals (got %.40s)",
		               i, got);
	}
	st->temperature_milli = (int)m;
	return 0;
}

static bool model_valid(const char *m)
{
	size_t n = strlen(m);
	if (n < 1 || n > PROTO_MODEL_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (m[i] <= 0x20 || m[i] >= 0x7f || m[i] == '"' || m[i] == '\\')
			return false;
	return true;
}

static int parse_llm(yajl_val s, size_t i, proto_step *st, err **e)
{
	const char *model, *sp;
	if (check_step_fields(s, i, "an llm", llm_fields, ARRAY_SIZE(llm_fields), e) < 0 ||
	    step_str(s, i, "model", &model, e) < 0 || step_str(s, i, "system_prompt", &sp, e) < 0)
		return -1;
	if (!model)
		return err_set(e, 0, "steps[%zu]: an llm step needs \"model\"", i);
	if (!model_valid(model))
		return err_set(e, 0,
		               "steps[%zu].model must be 1..%d printable ASCII characters without "
		               "spaces, quotes or backslashes",
		               i, PROTO_MODEL_MAX);
	if (sp && strlen(sp) > PROTO_SYSTEM_PROMPT_MAX)
		return err_set(e, 0,
		               "steps[%zu].system_prompt is %zu bytes, above the %u-byte limit", i,
		               strlen(sp), PROTO_SYSTEM_PROMPT_MAX);
	if (parse_temperature(s, i, st, e) < 0 ||
	    step_int(s, i, "max_tokens", 1, PROTO_MAX_TOKENS_MAX, &st->max_tokens, "", e) < 0)
		return -1;
	st->model = xstrdup(model);
	st->system_prompt = sp && *sp ? xstrdup(sp) : NULL;
	return 0;
}

static int parse_script(yajl_val s, size_t i, proto_step *st, err **e)
{
	const char *lang, *code;
	if (check_step_fields(s, i, "a script", script_fields, ARRAY_SIZE(script_fields), e) < 0 ||
	    step_str(s, i, "lang", &lang, e) < 0 || step_str(s, i, "code", &code, e) < 0)
		return -1;
	st->lang = PROTO_LANG_JAVASCRIPT;
	if (lang && (proto_lang_parse(lang, &st->lang) < 0 || st->lang == PROTO_LANG_SHELL)) {
		_cleanup_free_ char *q = proto_quote(lang, strlen(lang));
		return err_set(
		    e, 0, "steps[%zu].lang must be \"python\" or \"javascript\" (got %s)", i, q);
	}
	if (!code)
		return err_set(e, 0, "steps[%zu]: a script step needs \"code\"", i);
	st->code_len = strlen(code);
	if (!st->code_len)
		return err_set(e, 0, "steps[%zu].code is empty", i);
	if (st->code_len > PROTO_CODE_MAX)
		return err_set(e, 0, "steps[%zu].code is %zu bytes, above the %u-byte limit", i,
		               st->code_len, PROTO_CODE_MAX);
	st->timeout_ms = PROTO_STEP_TIMEOUT_MS_DEFAULT;
	if (step_int(s, i, "timeout_ms", 1, PROTO_STEP_TIMEOUT_MS_MAX, &st->timeout_ms,
	             " (milliseconds)", e) < 0)
		return -1;
	st->code = xmemdup(code, st->code_len + 1);
	return 0;
}

static int parse_step(yajl_val s, size_t i, proto_step *st, err **e)
{
	if (!YAJL_IS_OBJECT(s))
		return err_set(e, 0, "steps[%zu] must be an object", i);
	const char *type;
	if (step_str(s, i, "type", &type, e) < 0)
		return -1;
	if (!type)
		return err_set(e, 0, "steps[%zu]: missing field \"type\" (\"llm\" or \"script\")",
		               i);
	if (!strcmp(type, "llm")) {
		st->type = PROTO_STEP_LLM;
		return parse_llm(s, i, st, e);
	}
	if (!strcmp(type, "script")) {
		st->type = PROTO_STEP_SCRIPT;
		return parse_script(s, i, st, e);
	}
	_cleanup_free_ char *q = proto_quote(type, strlen(type));
	return err_set(e, 0, "steps[%zu].type must be \"llm\" or \"script\" (got %s)", i, q);
}

static int parse_steps(yajl_val v, proto_task *t, err **e)
{
	if (!YAJL_IS_ARRAY(v))
		return err_set(e, 0, "field \"steps\" must be an array of steps");
	size_t n = v->u.array.len;
	if (n == 0)
		return err_set(e, 0, "field \"steps\" must have at least one step");
	if (n > PROTO_STEPS_MAX)
		return err_set(e, 0, "field \"steps\" has %zu steps, above the limit of %d", n,
		               PROTO_STEPS_MAX);
	t->steps = xcalloc(n, sizeof(*t->steps));
	for (size_t i = 0; i < n; i++) {
		t->n_steps = i + 1;
		if (parse_step(v->u.array.values[i], i, &t->steps[i], e) < 0)
			return -1;
	}
	return 0;
}

static int parse_input(yajl_val root, proto_task *t, err **e)
{
	yajl_val v = proto_json_get(root, "input");
	t->input = xzalloc(sizeof(*t->input));
	if (!v) {
		t->input->text = xstrdup(""); /* no input: the empty string */
		return 0;
	}
	proto_value_from_tree(v, t->input);
	size_t n = 0;
	char *text = proto_value_json(t->input, &n);
	explicit_bzero(text, n); /* a sealed input's plaintext */
	free(text);
	if (n > PROTO_CHAIN_INPUT_MAX)
		return err_set(e, 0,
		               "field \"input\" is %zu bytes as JSON, above the %u-byte limit", n,
		               PROTO_CHAIN_INPUT_MAX);
	return 0;
}

/* The chain's pool language: its first script step's (python when it has none). */
static void set_lang(proto_task *t)
{
	t->lang = PROTO_LANG_PYTHON;
	for (size_t i = t->n_steps; i-- > 0;)
		if (t->steps[i].type == PROTO_STEP_SCRIPT)
			t->lang = t->steps[i].lang;
	t->mode = PROTO_MODE_SCRIPT;
}

bool proto_task_is_chain(const proto_task *t)
{
	return t->n_steps || proto_task_part_sealed(t, PROTO_SEALED_STEPS);
}

/* Sealed steps ("steps_age") and a sealed input ("input_age") stand for "steps" and "input":
 * they are parsed when attest_sealed_open() decrypts them (proto_chain_open_steps, _input). */
int proto_chain_parse(yajl_val root, proto_task *t, err **e)
{
	for (size_t i = 0; i < ARRAY_SIZE(not_in_chain); i++)
		if (proto_json_get(root, not_in_chain[i].field))
			return err_set(e, 0,
			               "field \"%s\" is not allowed in a chain task (with "
			               "\"steps\"): %s",
			               not_in_chain[i].field, not_in_chain[i].why);
	yajl_val steps = proto_json_get(root, "steps");
	if (steps && proto_json_get(root, "steps_age"))
		return err_set(e, 0, "fields \"steps\" and \"steps_age\" are mutually exclusive");
	if (steps && parse_steps(steps, t, e) < 0)
		return -1;
	if (!proto_json_get(root, "input_age") && parse_input(root, t, e) < 0)
		return -1;
	set_lang(t);
	return 0;
}

int proto_chain_open_steps(yajl_val root, proto_task *t, err **e)
{
	if (t->n_steps)
		return err_set(e, 0, "the task has steps already");
	if (parse_steps(proto_json_get(root, "steps"), t, e) < 0)
		return -1;
	set_lang(t);
	return 0;
}

int proto_chain_open_input(yajl_val root, proto_task *t, err **e)
{
	if (t->input)
		return err_set(e, 0, "the task has an input already");
	return parse_input(root, t, e);
}

/* ---- steps: serialisation ---- */

static void gen_step(proto_gen *g, const proto_step *s)
{
	proto_json_gen_open(g, true);
	proto_json_gen_kstr(g, "type", proto_step_type_name(s->type));
	if (s->type == PROTO_STEP_LLM) {
		proto_json_gen_kstr(g, "model", s->model);
		if (s->system_prompt)
			proto_json_gen_kstr(g, "system_prompt", s->system_prompt);
		if (s->temperature_milli != PROTO_TEMPERATURE_UNSET) {
			_cleanup_free_ char *m = proto_milli_str(s->temperature_milli);
			proto_json_gen_str(g, "temperature");
			proto_json_gen_number(g, m);
		}
		if (s->max_tokens)
			proto_json_gen_kint(g, "max_tokens", s->max_tokens);
	} else {
		proto_json_gen_kstr(g, "lang", proto_lang_name(s->lang));
		proto_json_gen_str(g, "code");
		proto_json_gen_strn(g, s->code, s->code_len);
		proto_json_gen_kint(g, "timeout_ms", s->timeout_ms);
	}
	proto_json_gen_close(g, true);
}

void proto_chain_steps_gen(proto_gen *g, const proto_task *t)
{
	proto_json_gen_open(g, false);
	for (size_t i = 0; i < t->n_steps; i++)
		gen_step(g, &t->steps[i]);
	proto_json_gen_close(g, false);
}

char *proto_chain_steps_json(const proto_task *t, size_t *len)
{
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	proto_chain_steps_gen(g, t);
	buf b = BUF_INIT;
	proto_json_gen_take_valid(g, &b);
	return buf_steal(&b, len);
}

/* A sealed part is written as its ciphertext (proto_task_ext_gen), never in the clear. */
void proto_chain_gen(proto_gen *g, const proto_task *t)
{
	if (!proto_task_part_sealed(t, PROTO_SEALED_STEPS)) {
		proto_json_gen_str(g, "steps");
		proto_chain_steps_gen(g, t);
	}
	if (!proto_task_part_sealed(t, PROTO_SEALED_INPUT) && t->input &&
	    (t->input->json || t->input->len)) {
		proto_json_gen_str(g, "input");
		proto_value_gen(g, t->input);
	}
}

void proto_steps_free(proto_step *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(s[i].model);
		free(s[i].system_prompt);
		free(s[i].code);
	}
	free(s);
}

/* ---- runs and costs ---- */

void proto_step_run_init(proto_step_run *s)
{
	memset(s, 0, sizeof(*s));
	s->exit_code = -1;
	buf_init(&s->out);
	buf_init(&s->err);
}

void proto_step_run_deinit(proto_step_run *s)
{
	free(s->error);
	proto_value_deinit(&s->output);
	free(s->model);
	free(s->request_digest);
	free(s->response_digest);
	buf_deinit(&s->out);
	buf_deinit(&s->err);
	proto_step_run_init(s);
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

void proto_step_run_copy(proto_step_run *dst, const proto_step_run *src)
{
	*dst = *src;
	dst->error = dup_or_null(src->error);
	proto_value_copy(&dst->output, &src->output);
	dst->model = dup_or_null(src->model);
	dst->request_digest = dup_or_null(src->request_digest);
	dst->response_digest = dup_or_null(src->response_digest);
	buf_init(&dst->out);
	buf_init(&dst->err);
	buf_append(&dst->out, src->out.data ? src->out.data : (const uint8_t *)"", src->out.len);
	buf_append(&dst->err, src->err.data ? src->err.data : (const uint8_t *)"", src->err.len);
}

proto_chain_run *proto_chain_run_new(void)
{
	proto_chain_run *c = xzalloc(sizeof(*c));
	c->failed_step = -1;
	return c;
}

proto_step_run *proto_chain_run_add(proto_chain_run *c, proto_step_type type)
{
	c->steps = xreallocarray(c->steps, c->n_steps + 1, sizeof(*c->steps));
	proto_step_run *s = &c->steps[c->n_steps++];
	proto_step_run_init(s);
	s->type = type;
	return s;
}

const proto_value *proto_chain_run_output(const proto_chain_run *c)
{
	if (!c || !c->n_steps || c->failed_step >= 0)
		return NULL;
	const proto_step_run *last = &c->steps[c->n_steps - 1];
	return last->status == PROTO_STATUS_OK && last->output.text ? &last->output : NULL;
}

proto_chain_run *proto_chain_run_free(proto_chain_run *c)
{
	if (!c)
		return NULL;
	for (size_t i = 0; i < c->n_steps; i++)
		proto_step_run_deinit(&c->steps[i]);
	free(c->steps);
	free(c);
	return NULL;
}

static const char *const cost_kind_names[] = {"llm", "script", "task"};
static const char *const cost_source_names[] = {"none", "provider", "price_table", "usage"};

const char *proto_cost_kind_name(proto_cost_kind k)
{
	return (unsigned)k < ARRAY_SIZE(cost_kind_names) ? cost_kind_names[k] : NULL;
}

const char *proto_cost_source_name(proto_cost_source s)
{
	return (unsigned)s < ARRAY_SIZE(cost_source_names) ? cost_source_names[s] : NULL;
}

proto_cost *proto_cost_new(void)
{
	return xzalloc(sizeof(proto_cost));
}

proto_cost_item *proto_cost_add(proto_cost *c, proto_cost_kind kind)
{
	c->items = xreallocarray(c->items, c->n_items + 1, sizeof(*c->items));
	proto_cost_item *it = &c->items[c->n_items++];
	memset(it, 0, sizeof(*it));
	it->step = -1;
	it->kind = kind;
	return it;
}

proto_cost *proto_cost_free(proto_cost *c)
{
	if (!c)
		return NULL;
	for (size_t i = 0; i < c->n_items; i++)
		free(c->items[i].model);
	free(c->items);
	free(c);
	return NULL;
}
