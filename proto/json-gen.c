/* The house JSON generator: one policy for every module (json.h, "Generation"). Every emitter
 * records yajl's first failure and proto_json_gen_take() reports it, so generation code stays
 * linear and a document with a bad string or an unbalanced container never leaves. */
#include "proto/json.h"

#include <yajl/yajl_gen.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "proto/internal.h"

struct proto_gen {
	yajl_gen y;
	yajl_gen_status st; /* the first failure, or yajl_gen_status_ok */
	int depth;          /* containers open */
};

proto_gen *proto_json_gen_new(void)
{
	proto_gen *g = xcalloc(1, sizeof(*g));
	g->y = yajl_gen_alloc(NULL);
	if (!g->y)
		abort();
	yajl_gen_config(g->y, yajl_gen_beautify, 0);
	yajl_gen_config(g->y, yajl_gen_validate_utf8, 1);
	yajl_gen_config(g->y, yajl_gen_escape_solidus, 0);
	g->st = yajl_gen_status_ok;
	return g;
}

void proto_json_gen_free(proto_gen *g)
{
	if (!g)
		return;
	yajl_gen_free(g->y);
	free(g);
}

static void check(proto_gen *g, yajl_gen_status st)
{
	if (g->st == yajl_gen_status_ok)
		g->st = st;
}

void proto_json_gen_strn(proto_gen *g, const char *s, size_t n)
{
	check(g, yajl_gen_string(g->y, (const unsigned char *)(s ? s : ""), s ? n : 0));
}

void proto_json_gen_str(proto_gen *g, const char *s)
{
	proto_json_gen_strn(g, s, s ? strlen(s) : 0);
}

/* Valid UTF-8 without NUL is emitted as is; otherwise a copy with U+FFFD in place of each
 * byte that does not start a valid sequence. */
void proto_json_gen_text(proto_gen *g, const char *s, size_t n)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0;
	while (i < n) {
		size_t l = proto_utf8_seq(p + i, n - i);
		if (l && p[i])
			i += l;
		else
			break;
	}
	if (i == n) {
		proto_json_gen_strn(g, s, n);
		return;
	}
	buf b = BUF_INIT;
	for (i = 0; i < n;) {
		size_t l = proto_utf8_seq(p + i, n - i);
		if (l && p[i]) {
			buf_append(&b, p + i, l);
			i += l;
		} else {
			buf_append(&b, "\xef\xbf\xbd", 3);
			i++;
		}
	}
	proto_json_gen_strn(g, (const char *)b.data, b.len);
	buf_deinit(&b);
}

void proto_json_gen_int(proto_gen *g, int64_t v)
{
	check(g, yajl_gen_integer(g->y, (long long)v));
}

void proto_json_gen_double(proto_gen *g, double v)
{
	check(g, yajl_gen_double(g->y, v));
}

void proto_json_gen_bool(proto_gen *g, bool v)
{
	check(g, yajl_gen_bool(g->y, v));
}

void proto_json_gen_null(proto_gen *g)
{
	check(g, yajl_gen_null(g->y));
}

void proto_json_gen_number(proto_gen *g, const char *text)
{
	check(g, yajl_gen_number(g->y, text, strlen(text)));
}

void proto_json_gen_open(proto_gen *g, bool map)
{
	check(g, map ? yajl_gen_map_open(g->y) : yajl_gen_array_open(g->y));
	g->depth++;
}

void proto_json_gen_close(proto_gen *g, bool map)
{
	check(g, map ? yajl_gen_map_close(g->y) : yajl_gen_array_close(g->y));
	g->depth--;
}

void proto_json_gen_kstr(proto_gen *g, const char *k, const char *v)
{
	proto_json_gen_str(g, k);
	proto_json_gen_str(g, v);
}

void proto_json_gen_kstr_or_null(proto_gen *g, const char *k, const char *v)
{
	proto_json_gen_str(g, k);
	if (v)
		proto_json_gen_str(g, v);
	else
		proto_json_gen_null(g);
}

void proto_json_gen_kint(proto_gen *g, const char *k, int64_t v)
{
	proto_json_gen_str(g, k);
	proto_json_gen_int(g, v);
}

void proto_json_gen_kbool(proto_gen *g, const char *k, bool v)
{
	proto_json_gen_str(g, k);
	proto_json_gen_bool(g, v);
}

void proto_json_gen_kstrs(proto_gen *g, const char *k, const char *const *v)
{
	proto_json_gen_str(g, k);
	proto_json_gen_open(g, false);
	for (; v && *v; v++)
		proto_json_gen_str(g, *v);
	proto_json_gen_close(g, false);
}

void proto_json_gen_value(proto_gen *g, yajl_val v)
{
	if (!v) {
		proto_json_gen_null(g);
		return;
	}
	switch (v->type) {
	case yajl_t_string:
		proto_json_gen_str(g, v->u.string);
		break;
	case yajl_t_number:
		proto_json_gen_number(g, v->u.number.r);
		break;
	case yajl_t_object:
		proto_json_gen_open(g, true);
		for (size_t i = 0; i < v->u.object.len; i++) {
			proto_json_gen_str(g, v->u.object.keys[i]);
			proto_json_gen_value(g, v->u.object.values[i]);
		}
		proto_json_gen_close(g, true);
		break;
	case yajl_t_array:
		proto_json_gen_open(g, false);
		for (size_t i = 0; i < v->u.array.len; i++)
			proto_json_gen_value(g, v->u.array.values[i]);
		proto_json_gen_close(g, false);
		break;
	case yajl_t_true:
	case yajl_t_false:
		proto_json_gen_bool(g, v->type == yajl_t_true);
		break;
	default:
		proto_json_gen_null(g);
		break;
	}
}

int proto_json_gen_json(proto_gen *g, const char *text, size_t len, err **e)
{
	_cleanup_yajl_val_ yajl_val v = NULL;
	if (proto_json_parse(text, len, &v, e) < 0)
		return -1;
	proto_json_gen_value(g, v);
	return 0;
}

static const char *status_text(yajl_gen_status st)
{
	switch (st) {
	case yajl_gen_invalid_string:
		return "a string is not valid UTF-8";
	case yajl_gen_keys_must_be_strings:
		return "an object key is not a string";
	case yajl_max_depth_exceeded:
		return "nesting too deep";
	case yajl_gen_in_error_state:
	case yajl_gen_generation_complete:
		return "a value after the document's end";
	case yajl_gen_invalid_number:
		return "a number is not finite";
	default:
		return "the generator failed";
	}
}

int proto_json_gen_take(proto_gen *g, buf *out, err **e)
{
	yajl_gen_status st = g->st;
	int depth = g->depth;
	const unsigned char *p = NULL;
	size_t n = 0;
	if (st == yajl_gen_status_ok && depth == 0)
		yajl_gen_get_buf(g->y, &p, &n);
	if (n) {
		buf_append(out, p, n);
		explicit_bzero((void *)p, n);
	}
	yajl_gen_clear(g->y);
	yajl_gen_reset(g->y, NULL);
	g->st = yajl_gen_status_ok;
	g->depth = 0;
	if (st != yajl_gen_status_ok)
		return err_set(e, 0, "generating JSON: %s (yajl status %d)", status_text(st),
		               (int)st);
	if (depth)
		return err_set(e, 0, "generating JSON: %d container%s left open", depth,
		               depth == 1 ? "" : "s");
	return 0;
}

char *proto_json_gen_steal(proto_gen *g, size_t *len, err **e)
{
	buf b = BUF_INIT;
	if (proto_json_gen_take(g, &b, e) < 0) {
		buf_deinit(&b);
		return NULL;
	}
	return buf_steal(&b, len);
}

void proto_json_gen_take_valid(proto_gen *g, buf *out)
{
	err *e = NULL;
	if (proto_json_gen_take(g, out, &e) == 0)
		return;
	fprintf(stderr, "bug: %s in a document built from valid text\n", err_msg(e));
	abort();
}
