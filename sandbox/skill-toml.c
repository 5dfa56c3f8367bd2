/* A strict parser of a documented subset of TOML 1.0, for skill manifests (skill.toml).
 *
 * Why not a library: Debian bookworm packages no C TOML library (tomlc99 and toml++ are not
 * in it), vendoring one brings a second full parser of untrusted bytes to audit, and shelling
 * out to Python's tomllib would put an interpreter on the path of every `skill add`. A
 * manifest needs little: tables, and keys holding strings, integers, booleans and arrays of
 * strings. This file parses exactly that and refuses everything else by name ("inline tables
 * are not supported"), so a manifest it accepts means the same to every TOML reader; the
 * subset is specified in proto/SKILLS.md and fuzzed (tests/fuzz/fuzz-skill-toml.c).
 *
 * Refused outright: invalid UTF-8, NUL and control bytes other than tab (a lone CR
 * included), a byte order mark. Refused as unsupported: quoted and dotted keys, arrays of
 * tables, dotted table names, multi-line strings, floats, dates and times, hexadecimal, octal
 * and binary integers, inline tables, arrays of anything but strings. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/xalloc.h"
#include "proto/proto.h"
#include "sandbox/skill-internal.h"

#define ITEMS_MAX  256
#define TABLES_MAX 64

typedef struct cur {
	const char *file;
	const char *p, *end;
	int line;
	err **e;
	const char *table, *key; /* while a value is parsed: named in its errors */
} cur;

static int fail(cur *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(cur *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	if (c->key)
		return err_set(c->e, 0, "%s:%d: %s%s%s: %s", c->file, c->line, c->table,
		               *c->table ? "." : "", c->key, msg);
	return err_set(c->e, 0, "%s:%d: %s", c->file, c->line, msg);
}

static bool at_end(const cur *c)
{
	return c->p >= c->end;
}

static int peek(const cur *c)
{
	return at_end(c) ? -1 : (unsigned char)*c->p;
}

static bool at_eol(const cur *c)
{
	return at_end(c) || *c->p == '\n' ||
	       (*c->p == '\r' && c->p + 1 < c->end && c->p[1] == '\n');
}

static void skip_ws(cur *c)
{
	while (!at_end(c) && (*c->p == ' ' || *c->p == '\t'))
		c->p++;
}

static void skip_comment(cur *c)
{
	if (peek(c) == '#')
		while (!at_eol(c))
			c->p++;
}

static void eat_eol(cur *c)
{
	if (at_end(c))
		return;
	c->p += *c->p == '\r' ? 2 : 1;
	c->line++;
}

/* Whitespace, comments and newlines (inside arrays). */
static void skip_blank(cur *c)
{
	for (;;) {
		skip_ws(c);
		skip_comment(c);
		if (at_end(c) || !at_eol(c))
			return;
		eat_eol(c);
	}
}

/* The whole text: valid UTF-8, no control bytes but tab, LF and CR-LF, no BOM. */
static int check_bytes(cur *c)
{
	const uint8_t *p = (const uint8_t *)c->p, *end = (const uint8_t *)c->end;
	if (end - p >= 3 && p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf)
		return fail(c, "a byte order mark is not allowed");
	int line = 1;
	for (const uint8_t *q = p; q < end;) {
		size_t n = proto_utf8_seq(q, (size_t)(end - q));
		if (n == 0)
			return c->line = line, fail(c, "invalid UTF-8");
		bool cr_lf = q[0] == '\r' && q + 1 < end && q[1] == '\n';
		if (n == 1 && (q[0] < 0x20 || q[0] == 0x7f) && q[0] != '\t' && q[0] != '\n' &&
		    !cr_lf)
			return c->line = line, fail(c, "control character 0x%02x", q[0]);
		line += q[0] == '\n';
		q += n;
	}
	return 0;
}

static bool bare_key_char(int ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       ch == '_' || ch == '-';
}

/* A bare key (owned), or NULL after failing with what was found instead. */
static char *parse_key(cur *c, const char *what)
{
	if (peek(c) == '"' || peek(c) == '\'')
		return fail(c, "quoted %s are not supported", what), NULL;
	const char *start = c->p;
	while (!at_end(c) && bare_key_char(*c->p))
		c->p++;
	if (c->p == start)
		return fail(c, "expected a %s name", what[0] == 'k' ? "key" : "table"), NULL;
	const char *after = c->p;
	skip_ws(c);
	if (peek(c) == '.')
		return fail(c, "dotted %s are not supported", what), NULL;
	return xstrndup(start, (size_t)(after - start));
}

static void put_utf8(buf *b, uint32_t cp)
{
	uint8_t u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (uint8_t)cp, n = 1;
	} else if (cp < 0x800) {
		u[0] = (uint8_t)(0xc0 | cp >> 6), u[1] = (uint8_t)(0x80 | (cp & 0x3f)), n = 2;
	} else if (cp < 0x10000) {
		u[0] = (uint8_t)(0xe0 | cp >> 12), u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (uint8_t)(0x80 | (cp & 0x3f)), n = 3;
	} else {
		u[0] = (uint8_t)(0xf0 | cp >> 18), u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f)), u[3] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 4;
	}
	buf_append(b, u, n);
}

static int hex_val(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* \uXXXX or \UXXXXXXXX, c->p after the 'u' or 'U'. */
static int parse_unicode(cur *c, int digits, buf *b)
{
	uint32_t cp = 0;
	for (int i = 0; i < digits; i++) {
		int v = hex_val(peek(c));
		if (v < 0)
			return fail(c, "\\%c needs %d hex digits", digits == 4 ? 'u' : 'U', digits);
		cp = cp << 4 | (uint32_t)v;
		c->p++;
	}
	if (cp == 0)
		return fail(c, "\\u0000 is not allowed");
	if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return fail(c, "\\%c%0*X is not a Unicode scalar value", digits == 4 ? 'u' : 'U',
		            digits, cp);
	put_utf8(b, cp);
	return 0;
}

static int parse_escape(cur *c, buf *b)
{
	static const char from[] = "btnfr\"\\", to[] = "\b\t\n\f\r\"\\";
	int ch = peek(c);
	if (ch < 0 || at_eol(c))
		return fail(c, "unterminated string");
	c->p++;
	if (ch == 'u' || ch == 'U')
		return parse_unicode(c, ch == 'u' ? 4 : 8, b);
	const char *at = ch ? strchr(from, ch) : NULL;
	if (!at)
		return fail(c, "invalid escape \\%c in a string", ch);
	buf_append(b, &to[at - from], 1);
	return 0;
}

/* A basic ("...") or literal ('...') string on one line, into *out (owned). */
static int parse_string(cur *c, char **out)
{
	char q = *c->p;
	if (c->end - c->p >= 3 && c->p[1] == q && c->p[2] == q)
		return fail(c, "multi-line strings are not supported");
	c->p++;
	buf b = BUF_INIT;
	for (;;) {
		if (at_eol(c)) {
			buf_deinit(&b);
			return fail(c, "unterminated string");
		}
		char ch = *c->p++;
		if (ch == q)
			break;
		if (ch == '\\' && q == '"') {
			if (parse_escape(c, &b) < 0) {
				buf_deinit(&b);
				return -1;
			}
			continue;
		}
		buf_append(&b, &ch, 1);
	}
	*out = buf_steal(&b, NULL);
	return 0;
}

/* An integer token: [+-]?(0|[1-9](_?[0-9])*), within int64. */
static bool parse_integer(const char *s, size_t n, int64_t *out)
{
	size_t i = s[0] == '+' || s[0] == '-';
	bool neg = s[0] == '-';
	if (i >= n || (s[i] == '0' && n - i > 1))
		return false;
	uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (bool prev_digit = false; i < n; i++) {
		if (s[i] == '_' && prev_digit && i + 1 < n) {
			prev_digit = false;
			continue;
		}
		if (s[i] < '0' || s[i] > '9')
			return false;
		uint64_t d = (uint64_t)(s[i] - '0');
		if (v > (lim - d) / 10)
			return false;
		v = v * 10 + d;
		prev_digit = true;
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return true;
}

static bool token_char(int ch)
{
	return bare_key_char(ch) || ch == '+' || ch == '.' || ch == ':';
}

/* true, false, or an integer; names the unsupported kinds. */
static int parse_scalar(cur *c, skill_toml_item *it)
{
	const char *s = c->p;
	while (!at_end(c) && token_char(*c->p))
		c->p++;
	size_t n = (size_t)(c->p - s);
	if ((n == 4 && !memcmp(s, "true", 4)) || (n == 5 && !memcmp(s, "false", 5))) {
		it->type = SKILL_TOML_BOOLEAN;
		it->boolean = n == 4;
		return 0;
	}
	if (n > 0 && parse_integer(s, n, &it->integer)) {
		it->type = SKILL_TOML_INTEGER;
		return 0;
	}
	c->p = s;
	if (n > 1 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o' || s[1] == 'b'))
		return fail(c, "hexadecimal, octal and binary integers are not supported");
	bool digits = n > 0 && ((s[0] >= '0' && s[0] <= '9') || s[0] == '+' || s[0] == '-');
	if (digits && (memchr(s, '.', n) || memchr(s, 'e', n) || memchr(s, 'E', n) ||
	               memchr(s, ':', n) || memchr(s + 1, '-', n - 1)))
		return fail(c, "floats, dates and times are not supported");
	if (n >= 3 && (!memcmp(s + n - 3, "inf", 3) || !memcmp(s + n - 3, "nan", 3)))
		return fail(c, "floats are not supported");
	if (digits)
		return fail(c, "invalid integer");
	return fail(c, "expected a value (a string, an integer, true, false or an array of "
	               "strings)");
}

static int parse_array(cur *c, skill_toml_item *it)
{
	int open_line = c->line;
	c->p++;
	it->type = SKILL_TOML_STRINGS;
	for (;;) {
		skip_blank(c);
		if (at_end(c))
			return c->line = open_line, fail(c, "unterminated array");
		if (*c->p == ']')
			break;
		if (*c->p != '"' && *c->p != '\'')
			return fail(c, "arrays may hold only strings");
		if (it->n_strs == SKILL_TOML_ARRAY_MAX)
			return fail(c, "more than %d elements in an array", SKILL_TOML_ARRAY_MAX);
		char *s;
		if (parse_string(c, &s) < 0)
			return -1;
		it->strs = xreallocarray(it->strs, it->n_strs + 1, sizeof(*it->strs));
		it->strs[it->n_strs++] = s;
		skip_blank(c);
		if (peek(c) == ',') {
			c->p++;
			continue;
		}
		if (peek(c) != ']')
			return at_end(c) ? (c->line = open_line, fail(c, "unterminated array"))
			                 : fail(c, "expected , or ] in an array");
	}
	c->p++;
	return 0;
}

static int parse_value(cur *c, skill_toml_item *it)
{
	switch (peek(c)) {
	case '"':
	case '\'':
		it->type = SKILL_TOML_STRING;
		return parse_string(c, &it->str);
	case '[':
		return parse_array(c, it);
	case '{':
		return fail(c, "inline tables are not supported");
	default:
		if (at_eol(c))
			return fail(c, "expected a value after =");
		return parse_scalar(c, it);
	}
}

static void item_deinit(skill_toml_item *it)
{
	free(it->table);
	free(it->key);
	free(it->str);
	for (size_t i = 0; i < it->n_strs; i++)
		free(it->strs[i]);
	free(it->strs);
}

void skill_toml_deinit(skill_toml_doc *d)
{
	for (size_t i = 0; i < d->n_items; i++)
		item_deinit(&d->items[i]);
	free(d->items);
	for (size_t i = 0; i < d->n_tables; i++)
		free(d->tables[i].name);
	free(d->tables);
	memset(d, 0, sizeof(*d));
}

const skill_toml_item *skill_toml_find(const skill_toml_doc *d, const char *table, const char *key)
{
	for (size_t i = 0; i < d->n_items; i++)
		if (!strcmp(d->items[i].table, table) && !strcmp(d->items[i].key, key))
			return &d->items[i];
	return NULL;
}

/* [name] */
static int parse_header(cur *c, skill_toml_doc *d, const char **table)
{
	c->p++;
	if (peek(c) == '[')
		return fail(c, "arrays of tables ([[...]]) are not supported");
	skip_ws(c);
	_cleanup_free_ char *name = parse_key(c, "table names");
	if (!name)
		return -1;
	if (peek(c) != ']')
		return fail(c, "expected ] after the table name");
	c->p++;
	for (size_t i = 0; i < d->n_tables; i++)
		if (!strcmp(d->tables[i].name, name))
			return fail(c, "table [%s] defined twice (first at line %d)", name,
			            d->tables[i].line);
	const skill_toml_item *clash = skill_toml_find(d, "", name);
	if (clash)
		return fail(c, "table [%s] clashes with the key %s at line %d", name, name,
		            clash->line);
	if (d->n_tables == TABLES_MAX)
		return fail(c, "more than %d tables", TABLES_MAX);
	d->tables = xreallocarray(d->tables, d->n_tables + 1, sizeof(*d->tables));
	d->tables[d->n_tables++] =
	    (skill_toml_table){.name = steal_pointer(&name), .line = c->line};
	*table = d->tables[d->n_tables - 1].name;
	return 0;
}

/* key = value */
static int parse_keyval(cur *c, skill_toml_doc *d, const char *table)
{
	skill_toml_item it = {.line = c->line};
	it.key = parse_key(c, "keys");
	if (!it.key)
		return -1;
	const skill_toml_item *dup = skill_toml_find(d, table, it.key);
	int r = 0;
	if (dup)
		r = fail(c, "%s%s%s%s defined twice (first at line %d)", *table ? "[" : "", table,
		         *table ? "] " : "", it.key, dup->line);
	else if (d->n_items == ITEMS_MAX)
		r = fail(c, "more than %d keys", ITEMS_MAX);
	else if (skip_ws(c), peek(c) != '=')
		r = fail(c, "expected = after the key %s", it.key);
	if (r == 0) {
		c->p++;
		skip_ws(c);
		c->table = table;
		c->key = it.key;
		r = parse_value(c, &it);
		c->key = NULL;
	}
	if (r < 0) {
		item_deinit(&it);
		return -1;
	}
	it.table = xstrdup(table);
	d->items = xreallocarray(d->items, d->n_items + 1, sizeof(*d->items));
	d->items[d->n_items++] = it;
	return 0;
}

static int parse_line(cur *c, skill_toml_doc *d, const char **table)
{
	skip_ws(c);
	const char *what = NULL;
	if (peek(c) == '[') {
		what = "table header";
		if (parse_header(c, d, table) < 0)
			return -1;
	} else if (peek(c) != '#' && !at_eol(c)) {
		what = "value";
		if (parse_keyval(c, d, *table) < 0)
			return -1;
	}
	skip_ws(c);
	skip_comment(c);
	if (!at_eol(c))
		return fail(c, "unexpected text after the %s", what);
	eat_eol(c);
	return 0;
}

int skill_toml_parse(const char *file, const char *text, size_t len, skill_toml_doc *d, err **e)
{
	memset(d, 0, sizeof(*d));
	cur c = {.file = file, .p = text, .end = text + len, .line = 1, .e = e};
	if (check_bytes(&c) < 0)
		return -1;
	const char *table = "";
	while (!at_end(&c)) {
		if (parse_line(&c, d, &table) < 0) {
			skill_toml_deinit(d);
			return -1;
		}
	}
	return 0;
}
