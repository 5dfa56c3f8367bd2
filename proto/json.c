/* JSON over yajl: a strict bounded parser that builds yajl_val trees
 * (see json.h for the rules) and small typed getters; the generator is json-gen.c. */
#include "proto/json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "common/xalloc.h"
#include "proto/internal.h"
#include "proto/proto.h"

/* ---- parsing: a tree builder on yajl's callback parser ---- */

typedef struct builder {
	yajl_val root;
	yajl_val stack[PROTO_JSON_MAX_DEPTH];
	int depth;
	char *key;   /* pending object key */
	char *soft;  /* the first duplicate key, U+0000 or too deep nesting; parsing goes on */
	size_t skip; /* containers open beyond PROTO_JSON_MAX_DEPTH (not built) */
} builder;

/* Adds v (owned) to the current container, or makes it the root. */
static int builder_add(builder *b, yajl_val v)
{
	if (b->skip) {
		yajl_tree_free(v);
		return 1;
	}
	if (b->depth == 0) {
		b->root = v;
		return 1;
	}
	yajl_val top = b->stack[b->depth - 1];
	if (top->type == yajl_t_array) {
		size_t n = top->u.array.len;
		top->u.array.values = xreallocarray(top->u.array.values, n + 1, sizeof(yajl_val));
		top->u.array.values[n] = v;
		top->u.array.len = n + 1;
		return 1;
	}
	size_t n = top->u.object.len;
	top->u.object.keys = xreallocarray(top->u.object.keys, n + 1, sizeof(char *));
	top->u.object.values = xreallocarray(top->u.object.values, n + 1, sizeof(yajl_val));
	top->u.object.keys[n] = b->key ? b->key : xstrdup("");
	top->u.object.values[n] = v;
	top->u.object.len = n + 1;
	b->key = NULL;
	return 1;
}

static yajl_val builder_new(yajl_type t)
{
	yajl_val v = xzalloc(sizeof(*v));
	v->type = t;
	return v;
}

static int cb_null(void *ctx)
{
	return builder_add(ctx, builder_new(yajl_t_null));
}

static int cb_bool(void *ctx, int val)
{
	return builder_add(ctx, builder_new(val ? yajl_t_true : yajl_t_false));
}

static bool number_is_integer(const char *s)
{
	return strpbrk(s, ".eE") == NULL;
}

static int cb_number(void *ctx, const char *s, size_t len)
{
	yajl_val v = builder_new(yajl_t_number);
	v->u.number.r = xstrndup(s, len);
	char *end = NULL;
	if (number_is_integer(v->u.number.r)) {
		errno = 0;
		long long i = strtoll(v->u.number.r, &end, 10);
		if (errno == 0 && end && *end == 0) {
			v->u.number.i = i;
			v->u.number.flags |= YAJL_NUMBER_INT_VALID;
		}
	}
	errno = 0;
	end = NULL;
	double d = strtod(v->u.number.r, &end);
	if (errno == 0 && end && *end == 0) {
		v->u.number.d = d;
		v->u.number.flags |= YAJL_NUMBER_DOUBLE_VALID;
	}
	return builder_add(ctx, v);
}

static int cb_string(void *ctx, const unsigned char *s, size_t len)
{
	builder *b = ctx;
	if (memchr(s, 0, len) && !b->soft)
		b->soft = xstrdup("string contains U+0000 (\\u0000)");
	yajl_val v = builder_new(yajl_t_string);
	v->u.string = xstrndup((const char *)s, len);
	return builder_add(b, v);
}

static int builder_open(builder *b, yajl_type t)
{
	if (b->skip || b->depth >= PROTO_JSON_MAX_DEPTH) {
		/* Too deep: not built, but parsed on, so the rest of the document (a task's id)
		 * can still be read. */
		if (!b->soft)
			b->soft =
			    xasprintf("JSON nesting deeper than %d levels", PROTO_JSON_MAX_DEPTH);
		b->skip++;
		return 1;
	}
	yajl_val v = builder_new(t);
	builder_add(b, v);
	b->stack[b->depth++] = v;
	return 1;
}

static int cb_start_map(void *ctx)
{
	return builder_open(ctx, yajl_t_object);
}

static int cb_map_key(void *ctx, const unsigned char *s, size_t len)
{
	builder *b = ctx;
	if (b->skip)
		return 1;
	if (memchr(s, 0, len) && !b->soft)
		b->soft = xstrdup("object key contains U+0000 (\\u0000)");
	free(b->key);
	b->key = xstrndup((const char *)s, len);
	return 1;
}

static int cmp_str_ptr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cb_end_map(void *ctx)
{
	builder *b = ctx;
	if (b->skip) {
		b->skip--;
		return 1;
	}
	yajl_val obj = b->stack[--b->depth];
	size_t n = obj->u.object.len;
	if (n < 2)
		return 1;
	/* Sorted copy: O(n log n) even for objects with a million keys. */
	_cleanup_free_ const char **keys = xmemdup(obj->u.object.keys, n * sizeof(char *));
	qsort(keys, n, sizeof(char *), cmp_str_ptr);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(keys[i - 1], keys[i]) == 0) {
			if (!b->soft) {
				_cleanup_free_ char *q = proto_quote(keys[i], strlen(keys[i]));
				b->soft = xasprintf("duplicate key %s", q);
			}
			return 1;
		}
	}
	return 1;
}

static int cb_start_array(void *ctx)
{
	return builder_open(ctx, yajl_t_array);
}

static int cb_end_array(void *ctx)
{
	builder *b = ctx;
	if (b->skip)
		b->skip--;
	else
		b->depth--;
	return 1;
}

static const yajl_callbacks builder_callbacks = {
    .yajl_null = cb_null,
    .yajl_boolean = cb_bool,
    .yajl_number = cb_number,
    .yajl_string = cb_string,
    .yajl_start_map = cb_start_map,
    .yajl_map_key = cb_map_key,
    .yajl_end_map = cb_end_map,
    .yajl_start_array = cb_start_array,
    .yajl_end_array = cb_end_array,
};

static void yajl_handle_freep(yajl_handle *h)
{
	if (*h)
		yajl_free(*h);
}

/* yajl's own message, first line, trailing whitespace trimmed. */
static char *yajl_message(yajl_handle h)
{
	unsigned char *m = yajl_get_error(h, 0, NULL, 0);
	char *s = xstrdup(m ? (const char *)m : "parse error");
	if (m)
		yajl_free_error(h, m);
	s[strcspn(s, "\n")] = 0;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '.'))
		s[--n] = 0;
	return s;
}

static int hex4(const char *p, size_t n)
{
	int v = 0;
	for (size_t i = 0; i < 4; i++) {
		if (i >= n)
			return -1;
		char c = p[i];
		int d = c >= '0' && c <= '9'   ? c - '0'
		        : c >= 'a' && c <= 'f' ? c - 'a' + 10
		        : c >= 'A' && c <= 'F' ? c - 'A' + 10
		                               : -1;
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/* What yajl lets through but the protocol does not (PROTOCOL.md, "Strings"): bytes that are
 * not strict UTF-8 (overlong forms, encoded surrogates, code points above U+10FFFF), and
 * \u escapes of a surrogate that is not half of a pair (yajl turns those into '?'). Escapes
 * can only stand in strings, and JSON's structure is ASCII, so one pass over the whole text
 * is exact. Returns NULL, or a message (caller frees). */
static char *text_check(const char *text, size_t len)
{
	const uint8_t *p = (const uint8_t *)text;
	for (size_t i = 0; i < len;) {
		size_t l = proto_utf8_seq(p + i, len - i);
		if (!l)
			return xasprintf(
			    "string is not valid UTF-8 at byte %zu (an overlong form, a "
			    "surrogate, a code point above U+10FFFF or a broken sequence)",
			    i);
		i += l;
	}
	for (size_t i = 0; i + 1 < len; i++) {
		if (text[i] != '\\')
			continue;
		if (text[i + 1] != 'u') {
			i++; /* an escaped character, e.g. \\ */
			continue;
		}
		int u = hex4(text + i + 2, len - i - 2);
		if (u >= 0xd800 && u <= 0xdbff && len - i >= 12 && text[i + 6] == '\\' &&
		    text[i + 7] == 'u') {
			int lo = hex4(text + i + 8, len - i - 8);
			if (lo >= 0xdc00 && lo <= 0xdfff) {
				i += 11;
				continue;
			}
		}
		if (u >= 0xd800 && u <= 0xdfff)
			return xasprintf("string has a lone surrogate escape \\u%04x at byte %zu",
			                 u, i);
		i += 5;
	}
	return NULL;
}

/* An upper bound of the values (and keys) a text holds: its ',', ':', '[' and '{' outside
 * strings, plus one. A tree costs tens of bytes per value, so this is counted before any is
 * built. */
static size_t count_values(const char *text, size_t len)
{
	size_t n = 1;
	bool in_string = false;
	for (size_t i = 0; i < len; i++) {
		char c = text[i];
		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
		} else if (c == '"') {
			in_string = true;
		} else if (c == ',' || c == ':' || c == '[' || c == '{') {
			n++;
		}
	}
	return n;
}

int proto_json_parse_ex(const char *text, size_t len, yajl_val *out, bool keep_soft, err **e)
{
	*out = NULL;
	if (len > PROTO_TASK_MAX_BYTES) {
		err_set(e, 0, "JSON text is %zu bytes, above the %u-byte limit", len,
		        PROTO_TASK_MAX_BYTES);
		return -2;
	}
	if (count_values(text, len) > PROTO_JSON_MAX_VALUES) {
		err_set(e, 0, "JSON text has more than %u values and keys", PROTO_JSON_MAX_VALUES);
		return -2;
	}
	builder b = {.soft = text_check(text, len)};
	__attribute__((cleanup(yajl_handle_freep))) yajl_handle h =
	    yajl_alloc(&builder_callbacks, NULL, &b);
	if (!h)
		abort();
	yajl_status st = yajl_parse(h, (const unsigned char *)text, len);
	if (st == yajl_status_ok)
		st = yajl_complete_parse(h);
	free(b.key);
	if (st == yajl_status_ok && b.root) {
		if (!b.soft) {
			*out = b.root;
			return 0;
		}
		err_set(e, 0, "%s", b.soft);
		free(b.soft);
		if (keep_soft)
			*out = b.root;
		else
			yajl_tree_free(b.root);
		return -2;
	}
	free(b.soft);
	yajl_tree_free(b.root);
	_cleanup_free_ char *msg = yajl_message(h);
	err_set(e, 0, "%s", msg);
	return -1;
}

int proto_json_parse(const char *text, size_t len, yajl_val *out, err **e)
{
	return proto_json_parse_ex(text, len, out, false, e);
}

/* ---- getters ---- */

yajl_val proto_json_get(yajl_val obj, const char *key)
{
	if (!obj || obj->type != yajl_t_object)
		return NULL;
	for (size_t i = 0; i < obj->u.object.len; i++)
		if (strcmp(obj->u.object.keys[i], key) == 0)
			return obj->u.object.values[i];
	return NULL;
}

const char *proto_json_get_str(yajl_val obj, const char *key)
{
	yajl_val v = proto_json_get(obj, key);
	return YAJL_IS_STRING(v) ? v->u.string : NULL;
}

int proto_json_get_int(yajl_val obj, const char *key, int64_t *out)
{
	yajl_val v = proto_json_get(obj, key);
	if (!YAJL_IS_INTEGER(v))
		return -1;
	*out = v->u.number.i;
	return 0;
}

int proto_json_get_bool(yajl_val obj, const char *key, bool *out)
{
	yajl_val v = proto_json_get(obj, key);
	if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v))
		return -1;
	*out = YAJL_IS_TRUE(v);
	return 0;
}
