/* A skill's manifest (skill.toml): the TOML subset of skill-toml.c checked against the
 * manifest's schema (proto/SKILLS.md, "The manifest"). Every error names the file, the line and
 * the key; unknown tables and keys are errors, so a typo never passes as a default. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/xalloc.h"
#include "sandbox/sandbox.h"
#include "sandbox/skill-internal.h"

#define VERSION_MAX 64
#define SERVICE_MAX 64
#define FUNC_MAX    64

static const char *const py_keywords[] = {
    "False", "None",     "True",  "and",    "as",   "assert", "async",  "await",    "break",
    "class", "continue", "def",   "del",    "elif", "else",   "except", "finally",  "for",
    "from",  "global",   "if",    "import", "in",   "is",     "lambda", "nonlocal", "not",
    "or",    "pass",     "raise", "return", "try",  "while",  "with",   "yield",
};

static bool is_keyword(const char *s, size_t n)
{
	for (size_t i = 0; i < ARRAY_SIZE(py_keywords); i++)
		if (strlen(py_keywords[i]) == n && !memcmp(py_keywords[i], s, n))
			return true;
	return false;
}

static bool lower_or_digit(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool sandbox_skill_name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n < 1 || n > SANDBOX_SKILL_NAME_MAX || !(name[0] >= 'a' && name[0] <= 'z'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!lower_or_digit(name[i]) && name[i] != '_')
			return false;
	return !is_keyword(name, n);
}

/* A Python identifier in ASCII: [A-Za-z_][A-Za-z0-9_]*, not a keyword. */
static bool py_ident(const char *s, size_t n)
{
	if (n < 1 || n > FUNC_MAX || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!lower_or_digit(s[i]) && !(s[i] >= 'A' && s[i] <= 'Z') && s[i] != '_')
			return false;
	return !is_keyword(s, n);
}

/* 0 or [1-9][0-9]*: a semver numeric part. */
static bool semver_num(const char *s, size_t n)
{
	if (n < 1 || (s[0] == '0' && n > 1))
		return false;
	return strspn(s, "0123456789") >= n;
}

/* Dot-separated identifiers of [0-9A-Za-z-]; numeric ones without leading zeros when strict. */
static bool semver_idents(const char *s, size_t n, bool numeric_strict)
{
	static const char ok[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-";
	for (size_t i = 0; i <= n;) {
		size_t j = i;
		while (j < n && s[j] != '.')
			j++;
		size_t len = j - i;
		if (len == 0 || strspn(s + i, ok) < len)
			return false;
		bool numeric = strspn(s + i, "0123456789") >= len;
		if (numeric && numeric_strict && !semver_num(s + i, len))
			return false;
		i = j + 1;
	}
	return true;
}

/* Semantic Versioning 2.0.0: MAJOR.MINOR.PATCH[-pre][+build]. */
static bool version_valid(const char *v)
{
	size_t n = strlen(v);
	if (n > VERSION_MAX)
		return false;
	size_t core = strcspn(v, "-+");
	const char *p = v;
	for (int part = 0; part < 3; part++) {
		size_t len = strcspn(p, ".-+");
		if (!semver_num(p, len))
			return false;
		p += len;
		if (part < 2 && *p++ != '.')
			return false;
	}
	if (p != v + core)
		return false;
	size_t pre_end = core + strcspn(v + core, "+");
	if (v[core] == '-' && !semver_idents(v + core + 1, pre_end - core - 1, true))
		return false;
	if (v[pre_end] == '+' && !semver_idents(v + pre_end + 1, n - pre_end - 1, false))
		return false;
	return true;
}

static bool service_valid(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > SERVICE_MAX || !lower_or_digit(s[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!lower_or_digit(s[i]) && !strchr("_.-", s[i]))
			return false;
	return true;
}

typedef struct ctx {
	const char *file;
	sandbox_skill_manifest *m;
	err **e;
} ctx;

static int fail(ctx *c, const skill_toml_item *it, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(ctx *c, const skill_toml_item *it, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	return err_set(c->e, 0, "%s:%d: %s%s%s: %s", c->file, it->line, it->table,
	               *it->table ? "." : "", it->key, msg);
}

/* Every string value of the manifest appears in messages only through this: printable, cut. */
static char *shown(const char *s)
{
	buf b = BUF_INIT;
	buf_append_str(&b, "\"");
	for (size_t i = 0; s[i] && i < 64; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == '"' || s[i] == '\\')
			buf_appendf(&b, "\\x%02x", (unsigned char)s[i]);
		else
			buf_append(&b, &s[i], 1);
	buf_append_str(&b, strlen(s) > 64 ? "\"..." : "\"");
	return buf_steal(&b, NULL);
}

/* A string checked by valid() (NULL: any string), copied into *dst. rule says what it must be. */
static int set_string(ctx *c, const skill_toml_item *it, bool (*valid)(const char *),
                      const char *rule, char **dst)
{
	if (it->type != SKILL_TOML_STRING)
		return fail(c, it, "must be a string");
	if (valid && !valid(it->str)) {
		_cleanup_free_ char *q = shown(it->str);
		return fail(c, it, "%s is not %s", q, rule);
	}
	*dst = xstrdup(it->str);
	return 0;
}

/* A string that must be one of two words; *out gets 0 for the first, 1 for the second. */
static int set_choice(ctx *c, const skill_toml_item *it, const char *a, const char *b, int *out)
{
	if (it->type != SKILL_TOML_STRING)
		return fail(c, it, "must be a string");
	if (strcmp(it->str, a) && strcmp(it->str, b)) {
		_cleanup_free_ char *q = shown(it->str);
		return fail(c, it, "must be \"%s\" or \"%s\", not %s", a, b, q);
	}
	*out = strcmp(it->str, a) != 0;
	return 0;
}

static int set_name(ctx *c, const skill_toml_item *it)
{
	return set_string(c, it, sandbox_skill_name_valid,
	                  "a skill name ([a-z][a-z0-9_]{0,63}, not a Python keyword)", &c->m->name);
}

static int set_version(ctx *c, const skill_toml_item *it)
{
	return set_string(c, it, version_valid,
	                  "a semantic version (MAJOR.MINOR.PATCH, e.g. \"1.2.0\")", &c->m->version);
}

static int set_language(ctx *c, const skill_toml_item *it)
{
	int js = 0;
	if (set_choice(c, it, "python", "javascript", &js) < 0)
		return -1;
	c->m->lang = js ? PROTO_LANG_JAVASCRIPT : PROTO_LANG_PYTHON;
	return 0;
}

static int set_mode(ctx *c, const skill_toml_item *it)
{
	int sealed = 0;
	if (set_choice(c, it, "source", "sealed", &sealed) < 0)
		return -1;
	c->m->mode = sealed ? SANDBOX_SKILL_SEALED : SANDBOX_SKILL_SOURCE;
	return 0;
}

static int set_description(ctx *c, const skill_toml_item *it)
{
	if (it->type == SKILL_TOML_STRING && strlen(it->str) > SANDBOX_SKILL_DESC_MAX)
		return fail(c, it, "%zu bytes, over the cap of %d", strlen(it->str),
		            SANDBOX_SKILL_DESC_MAX);
	return set_string(c, it, NULL, NULL, &c->m->description);
}

/* The entrypoint is kept as written ("code/leads/sync.py:main"); checked once the language is
 * known (check_entrypoint). */
static int set_entrypoint(ctx *c, const skill_toml_item *it)
{
	return set_string(c, it, NULL, NULL, &c->m->entry_path);
}

/* A list of unique names, each checked by valid(). */
static int set_names(ctx *c, const skill_toml_item *it, size_t max, bool (*valid)(const char *),
                     const char *rule, char ***out, size_t *n_out)
{
	if (it->type != SKILL_TOML_STRINGS)
		return fail(c, it, "must be an array of strings");
	if (it->n_strs > max)
		return fail(c, it, "%zu entries, over the cap of %zu", it->n_strs, max);
	for (size_t i = 0; i < it->n_strs; i++) {
		_cleanup_free_ char *q = shown(it->strs[i]);
		if (!valid(it->strs[i]))
			return fail(c, it, "%s is not %s", q, rule);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(it->strs[i], it->strs[j]))
				return fail(c, it, "%s is listed twice", q);
	}
	*out = xcalloc(it->n_strs + 1, sizeof(**out));
	for (size_t i = 0; i < it->n_strs; i++)
		(*out)[i] = xstrdup(it->strs[i]);
	*n_out = it->n_strs;
	return 0;
}

static bool secret_name_valid(const char *s)
{
	return proto_env_name_valid(s) && !proto_env_reserved(s);
}

static int set_secrets(ctx *c, const skill_toml_item *it)
{
	return set_names(c, it, SANDBOX_SKILL_SECRETS_MAX, secret_name_valid,
	                 "an environment variable name the node lets a skill receive "
	                 "([A-Za-z_][A-Za-z0-9_]*, not PATH, HOME, AISP_*, LD_* ...)",
	                 &c->m->secrets, &c->m->n_secrets);
}

static int set_services(ctx *c, const skill_toml_item *it)
{
	return set_names(c, it, SANDBOX_SKILL_SERVICES_MAX, service_valid,
	                 "a service name ([a-z0-9][a-z0-9_.-]{0,63})", &c->m->services,
	                 &c->m->n_services);
}

typedef struct field {
	const char *table, *key;
	int (*set)(ctx *c, const skill_toml_item *it);
	bool required;
} field;

static const field fields[] = {
    {"", "name", set_name, true},
    {"", "version", set_version, true},
    {"", "language", set_language, true},
    {"", "entrypoint", set_entrypoint, true},
    {"", "description", set_description, false},
    {"", "mode", set_mode, false},
    {"permissions", "secrets", set_secrets, false},
    {"permissions", "services", set_services, false},
};

/* The entrypoint's path below code/, as components: dirs and a file with the language's
 * extension; Python components must be identifiers (they become a module name). */
static int check_entry_path(ctx *c, const skill_toml_item *it, const char *path)
{
	sandbox_skill_manifest *m = c->m;
	bool py = m->lang == PROTO_LANG_PYTHON;
	const char *ext = strrchr(path, '.');
	bool ext_ok =
	    ext && (py ? !strcmp(ext, ".py") : !strcmp(ext, ".js") || !strcmp(ext, ".cjs"));
	if (strncmp(path, "code/", 5) != 0 || !skill_path_valid(path) || !ext_ok || ext[-1] == '/')
		return fail(c, it, "expected \"code/PATH%s:FUNCTION\" (a file below code/)",
		            py ? ".py" : ".js");
	for (const char *p = path + 5; py && p < ext;) {
		size_t len = strcspn(p, "/");
		if (p + len > ext)
			len = (size_t)(ext - p);
		if (!py_ident(p, len))
			return fail(c, it,
			            "\"%.*s\" is not a Python identifier, so the module cannot be "
			            "imported",
			            (int)len, p);
		p += len + 1;
	}
	return 0;
}

static int check_entrypoint(ctx *c, const skill_toml_item *it)
{
	sandbox_skill_manifest *m = c->m;
	char *colon = strchr(m->entry_path, ':');
	const char *func = colon ? colon + 1 : "main";
	if (colon)
		*colon = '\0';
	if (!py_ident(func, strlen(func)))
		return fail(c, it, "\"%.64s\" is not a function name ([A-Za-z_][A-Za-z0-9_]*)",
		            func);
	m->entry_func = xstrdup(func);
	return check_entry_path(c, it, m->entry_path);
}

static int apply(ctx *c, const skill_toml_doc *d)
{
	for (size_t i = 0; i < d->n_tables; i++)
		if (strcmp(d->tables[i].name, "permissions"))
			return err_set(c->e, 0,
			               "%s:%d: unknown table [%s] (a manifest has [permissions])",
			               c->file, d->tables[i].line, d->tables[i].name);
	const skill_toml_item *entry = NULL;
	for (size_t i = 0; i < d->n_items; i++) {
		const skill_toml_item *it = &d->items[i];
		const field *f = NULL;
		for (size_t j = 0; j < ARRAY_SIZE(fields) && !f; j++)
			if (!strcmp(fields[j].table, it->table) && !strcmp(fields[j].key, it->key))
				f = &fields[j];
		if (!f)
			return fail(c, it, "unknown key");
		if (f->set(c, it) < 0)
			return -1;
		if (f->set == set_entrypoint)
			entry = it;
	}
	for (size_t j = 0; j < ARRAY_SIZE(fields); j++)
		if (fields[j].required && !skill_toml_find(d, fields[j].table, fields[j].key))
			return err_set(c->e, 0,
			               "%s: %s: missing (a manifest sets name, version, "
			               "language and entrypoint)",
			               c->file, fields[j].key);
	return check_entrypoint(c, entry);
}

int sandbox_skill_manifest_parse(const char *file, const char *text, size_t len,
                                 sandbox_skill_manifest *m, err **e)
{
	memset(m, 0, sizeof(*m));
	if (len > SANDBOX_SKILL_MANIFEST_MAX)
		return err_set(e, 0, "%s: %zu bytes, over the cap of %u", file, len,
		               SANDBOX_SKILL_MANIFEST_MAX);
	skill_toml_doc d;
	if (skill_toml_parse(file, text, len, &d, e) < 0)
		return -1;
	ctx c = {.file = file, .m = m, .e = e};
	int r = apply(&c, &d);
	skill_toml_deinit(&d);
	if (r < 0)
		sandbox_skill_manifest_deinit(m);
	return r;
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void sandbox_skill_manifest_deinit(sandbox_skill_manifest *m)
{
	if (!m)
		return;
	free(m->name);
	free(m->version);
	free(m->description);
	free(m->entry_path);
	free(m->entry_func);
	strv_free(m->secrets, m->n_secrets);
	strv_free(m->services, m->n_services);
	memset(m, 0, sizeof(*m));
}

char *sandbox_skill_entry_module(const sandbox_skill_manifest *m)
{
	const char *rest = m->entry_path + strlen("code/");
	if (m->lang == PROTO_LANG_JAVASCRIPT)
		return xasprintf("skills/%s/%s", m->name, rest);
	_cleanup_free_ char *mod = xstrndup(rest, strlen(rest) - strlen(".py"));
	for (char *p = mod; *p; p++)
		if (*p == '/')
			*p = '.';
	return xasprintf("skills.%s.%s", m->name, mod);
}
