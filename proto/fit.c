/* The producer's side of the result caps (proto/caps.h): a return value is checked against
 * what proto_result_parse() accepts, and a program's output is fitted into what a result
 * document may carry, so that every result a node publishes parses with the project's tools.
 * The sizes computed here mirror proto_result_to_json() (result.c): a stream or a path is text
 * escaped the way yajl escapes it when it is valid UTF-8 without NUL, otherwise base64. */
#include "proto/proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/xalloc.h"
#include "proto/internal.h"
#include "proto/json.h"

/* yajl's escaping (yajl_string_encode, solidus not escaped): \" \\ \b \f \n \r \t, \u00XX for
 * the other control bytes, every other byte as is. */
static size_t escaped_len(uint8_t c)
{
	if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t')
		return 2;
	return c < 0x20 ? 6 : 1;
}

static size_t b64_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

size_t proto_bytes_json_len(const uint8_t *p, size_t n)
{
	if (!proto_bytes_are_text(p, n))
		return b64_len(n) + 2;
	size_t len = 2;
	for (size_t i = 0; i < n; i++)
		len += escaped_len(p[i]);
	return len;
}

/* The longest prefix of p[0..n) whose JSON value takes at most budget bytes. */
static size_t fit_prefix(const uint8_t *p, size_t n, size_t budget)
{
	if (budget < 2)
		return 0;
	/* prefixes up to the first byte that is not text (a NUL, a broken sequence) are text */
	size_t text = 0, best = 0, len = 2;
	while (text < n && p[text]) {
		size_t l = proto_utf8_seq(p + text, n - text);
		if (!l)
			break;
		size_t add = 0;
		for (size_t i = 0; i < l; i++)
			add += escaped_len(p[text + i]);
		text += l;
		if (len + add > budget)
			break;
		len += add;
		best = text;
	}
	/* a longer prefix that holds a byte that is not text goes as base64 */
	size_t bin = (budget - 2) / 4 * 3;
	if (bin > n)
		bin = n;
	if (bin > best && !proto_bytes_are_text(p, bin))
		best = bin;
	return best;
}

static size_t digits(size_t v)
{
	size_t d = 1;
	while (v >= 10)
		v /= 10, d++;
	return d;
}

/* {"path":...,"content_b64":...,"size":N} and the comma before it */
static size_t file_json_len(const proto_file *f)
{
	return sizeof("{\"path\":,\"content_b64\":\"\",\"size\":},") - 1 +
	       proto_bytes_json_len((const uint8_t *)f->path, strlen(f->path)) + b64_len(f->len) +
	       digits(f->len);
}

static void drop_files(proto_output *o, size_t keep)
{
	for (size_t i = keep; i < o->n_files; i++) {
		free(o->files[i].path);
		free(o->files[i].data);
	}
	if (keep < o->n_files)
		o->files_truncated = true;
	o->n_files = keep;
}

/* Files with a path the parser refuses, over the count or over the summed size: dropped. */
static void fit_files(proto_output *o)
{
	size_t k = 0;
	uint64_t total = 0;
	for (size_t i = 0; i < o->n_files; i++) {
		proto_file *f = &o->files[i];
		bool keep = k < PROTO_OUT_FILES_MAX && proto_path_valid(f->path, NULL) == 0 &&
		            total + f->len <= PROTO_OUT_FILES_TOTAL;
		if (!keep) {
			free(f->path);
			free(f->data);
			o->files_truncated = true;
			continue;
		}
		total += f->len;
		o->files[k++] = *f;
	}
	o->n_files = k;
}

static size_t stream_len(const buf *b)
{
	return proto_bytes_json_len(b->data ? b->data : (const uint8_t *)"", b->len);
}

/* Cuts b to the longest prefix within budget bytes of JSON; returns true when it cut. */
static bool cut_stream(buf *b, size_t budget)
{
	if (stream_len(b) <= budget)
		return false;
	b->len = fit_prefix(b->data, b->len, budget);
	return true;
}

bool proto_output_fit(proto_output *o)
{
	fit_files(o);
	size_t files = 0;
	for (size_t i = 0; i < o->n_files; i++)
		files += file_json_len(&o->files[i]);
	size_t streams = stream_len(&o->out) + stream_len(&o->err);
	size_t k = o->n_files;
	while (k > 0 && streams + files > PROTO_RESULT_OUTPUT_MAX)
		files -= file_json_len(&o->files[--k]);
	drop_files(o, k);
	if (streams + files <= PROTO_RESULT_OUTPUT_MAX)
		return false;
	/* no file left: stdout and stderr share the budget, neither taking more than half
	 * unless the other needs less */
	size_t half = PROTO_RESULT_OUTPUT_MAX / 2;
	size_t out_need = stream_len(&o->out), err_need = stream_len(&o->err);
	size_t out_budget = err_need < half ? PROTO_RESULT_OUTPUT_MAX - err_need : half;
	size_t err_budget =
	    PROTO_RESULT_OUTPUT_MAX - (out_need < out_budget ? out_need : out_budget);
	if (cut_stream(&o->out, out_budget))
		o->stdout_truncated = true;
	if (cut_stream(&o->err, err_budget))
		o->stderr_truncated = true;
	if (o->status == PROTO_STATUS_OK) {
		o->status = PROTO_STATUS_OUTPUT_LIMIT;
		free(o->error);
		o->error =
		    xasprintf("stdout and stderr do not fit in a result (%u bytes of JSON at "
		              "most): cut",
		              PROTO_RESULT_OUTPUT_MAX);
	}
	return true;
}

static size_t depth_of(yajl_val v)
{
	size_t d = 0;
	if (YAJL_IS_OBJECT(v))
		for (size_t i = 0; i < v->u.object.len; i++) {
			size_t c = depth_of(v->u.object.values[i]);
			d = c > d ? c : d;
		}
	else if (YAJL_IS_ARRAY(v))
		for (size_t i = 0; i < v->u.array.len; i++) {
			size_t c = depth_of(v->u.array.values[i]);
			d = c > d ? c : d;
		}
	else
		return 0;
	return d + 1;
}

int proto_return_check(const char *text, size_t n, err **e)
{
	if (n > PROTO_RETURN_MAX)
		return err_set(e, 0, "return value is %zu bytes of JSON, above the %u-byte limit",
		               n, PROTO_RETURN_MAX);
	_cleanup_yajl_val_ yajl_val v = NULL;
	err *why = NULL;
	int r = proto_json_parse(text, n, &v, &why);
	if (r < 0) {
		err_set(e, 0, "return value %s: %s",
		        r == -1 ? "is not JSON" : "is outside the protocol's bounds", err_msg(why));
		err_free(why);
		return -1;
	}
	size_t d = depth_of(v);
	if (d > PROTO_RETURN_DEPTH_MAX)
		return err_set(e, 0, "return value nests %zu levels deep, above the limit of %d", d,
		               PROTO_RETURN_DEPTH_MAX);
	return 0;
}
