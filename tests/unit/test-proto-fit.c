/* Unit tests for the producer's side of the result caps (proto/fit.c, proto/caps.h): a return
 * value comes back exactly or is refused with the reason, and an output fitted by
 * proto_output_fit() always makes a result that proto_result_parse() reads back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/cleanup.h"
#include "common/err.h"
#include "common/xalloc.h"
#include "proto/json.h"
#include "proto/proto.h"

#define MIB (1024 * 1024)

static void check_return(const char *text, const char *want_msg)
{
	err *e = NULL;
	int r = proto_return_check(text, strlen(text), &e);
	if (!want_msg) {
		assert_int_equal(r, 0);
		assert_null(e);
		return;
	}
	assert_int_equal(r, -1);
	assert_non_null(e);
	if (!strstr(err_msg(e), want_msg))
		fail_msg("%s: got \"%s\", want \"%s\"", text, err_msg(e), want_msg);
	err_free(e);
}

static char *nested(int depth)
{
	buf b = BUF_INIT;
	for (int i = 0; i < depth; i++)
		buf_append_str(&b, "[");
	buf_append_str(&b, "1");
	for (int i = 0; i < depth; i++)
		buf_append_str(&b, "]");
	return buf_steal(&b, NULL);
}

/* The return values of issue 14 item 5: each comes back exactly or is an error with why. */
static void test_return_values(void **state)
{
	check_return("{\"a\":[1,2,{\"b\":null}]}", NULL);
	check_return("\"caf\xc3\xa9 \\ud83d\\ude00\"", NULL);
	check_return("{\"1\":1,\"1\":2}", "duplicate key \"1\"");
	check_return("\"a\\u0000b\"", "U+0000");
	check_return("not json{", "return value is not JSON");
	check_return("1 2", "return value is not JSON");
	_cleanup_free_ char *ok = nested(PROTO_RETURN_DEPTH_MAX);
	check_return(ok, NULL);
	_cleanup_free_ char *deep = nested(PROTO_RETURN_DEPTH_MAX + 1);
	check_return(deep, "nests 32 levels deep, above the limit of 31");
	_cleanup_free_ char *deeper = nested(40);
	check_return(deeper, "nesting deeper than 32");
	char big[PROTO_RETURN_MAX + 8];
	memset(big, ' ', sizeof(big) - 1);
	big[0] = '1';
	big[sizeof(big) - 1] = 0;
	check_return(big, "above the 4096-byte limit");
}

/* The JSON length of a stream is exactly what proto_result_to_json() writes for it. */
static void test_bytes_json_len(void **state)
{
	static const struct {
		const char *p;
		size_t n;
	} cases[] = {
	    {"", 0},         {"plain", 5},       {"\"\\\n\t\r\b\f", 7},
	    {"\x01\x1f", 2}, {"caf\xc3\xa9", 5}, {"a\0b", 3},
	    {"\xff\xfe", 2}, {"/slash/", 7},     {"\x7f", 1},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		proto_result r;
		proto_result_init(&r);
		r.id = xstrdup("x");
		buf_append(&r.output.out, cases[i].p, cases[i].n);
		buf doc = BUF_INIT;
		proto_result_to_json(&r, &doc);
		/* the value starts after "stdout": or "stdout_b64": */
		const char *v = strstr(buf_str(&doc), "\"stdout");
		v = strchr(v, ':') + 1;
		const char *end = strstr(v, ",\"stderr");
		assert_int_equal(proto_bytes_json_len((const uint8_t *)cases[i].p, cases[i].n),
		                 (size_t)(end - v));
		buf_deinit(&doc);
		proto_result_deinit(&r);
	}
}

static void add_file(proto_output *o, const char *path, size_t len, uint8_t fill)
{
	o->files = xreallocarray(o->files, o->n_files + 1, sizeof(*o->files));
	proto_file *f = &o->files[o->n_files++];
	f->path = xstrdup(path);
	f->len = len;
	f->data = xmalloc(len ? len : 1);
	memset(f->data, fill, len);
}

/* Serialises o in a result and parses it back, as `aisp wait` would. */
static void round_trip(const proto_output *o, proto_output *back)
{
	proto_result r;
	proto_result_init(&r);
	r.id = xstrdup("fit");
	r.output = *o;
	buf doc = BUF_INIT;
	proto_result_to_json(&r, &doc);
	assert_true(doc.len <= PROTO_DOC_MAX_BYTES - 2 * MIB);
	proto_result p;
	err *e = NULL;
	if (proto_result_parse((const char *)doc.data, doc.len, &p, &e) < 0)
		fail_msg("the fitted result does not parse: %s", err_msg(e));
	*back = p.output;
	proto_output_init(&p.output);
	proto_result_deinit(&p);
	buf_deinit(&doc);
	proto_output_init(&r.output);
	proto_result_deinit(&r);
}

/* Issue 14 item 6: 1 MiB of control bytes on each stream plus 8 MiB of files made a 23.5 MB
 * result, which the project's own parser refused; paths over 255 bytes likewise. */
static void test_fit_oversized(void **state)
{
	proto_output o;
	proto_output_init(&o);
	o.status = PROTO_STATUS_OK;
	uint8_t *ctl = xmalloc(MIB);
	memset(ctl, 0x01, MIB);
	buf_append(&o.out, ctl, MIB);
	buf_append(&o.err, ctl, MIB);
	free(ctl);
	char longpath[300];
	memset(longpath, 'p', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = 0;
	add_file(&o, longpath, 10, 'x');
	for (int i = 0; i < 8; i++) {
		char name[16];
		snprintf(name, sizeof(name), "f%d", i);
		add_file(&o, name, MIB - 64, 'y');
	}
	size_t before = proto_bytes_json_len(o.out.data, o.out.len) * 2;
	assert_true(before > 12 * MIB); /* 6 MiB each once escaped */
	proto_output_fit(&o);
	assert_true(o.files_truncated);
	assert_int_equal(o.stdout_truncated || o.stderr_truncated, false);
	assert_int_equal(o.status, PROTO_STATUS_OK);
	for (size_t i = 0; i < o.n_files; i++)
		assert_true(strlen(o.files[i].path) <= PROTO_FILE_PATH_MAX);
	proto_output back;
	round_trip(&o, &back);
	assert_int_equal(back.n_files, o.n_files);
	assert_true(back.out.len == MIB && back.err.len == MIB);
	proto_output_deinit(&back);
	proto_output_deinit(&o);
}

/* Streams that alone exceed what a result carries are cut at a character, with their flags,
 * and the status says output_limit. */
static void test_fit_streams(void **state)
{
	proto_output o;
	proto_output_init(&o);
	o.status = PROTO_STATUS_OK;
	uint8_t *ctl = xmalloc(5 * MIB);
	memset(ctl, '\n', 5 * MIB);
	buf_append(&o.out, ctl, 5 * MIB); /* 10 MiB escaped */
	for (size_t i = 0; i < 2 * MIB; i++)
		buf_append(&o.err, "\xc3\xa9", 2); /* 4 MiB of text, all "é" */
	buf_append(&o.err, "\x05", 1);
	free(ctl);
	assert_true(proto_output_fit(&o));
	assert_true(o.stdout_truncated);
	assert_int_equal(o.status, PROTO_STATUS_OUTPUT_LIMIT);
	assert_non_null(o.error);
	assert_true(proto_bytes_json_len(o.out.data, o.out.len) +
	                proto_bytes_json_len(o.err.data, o.err.len) <=
	            PROTO_RESULT_OUTPUT_MAX);
	proto_output back;
	round_trip(&o, &back);
	assert_int_equal(back.out.len, o.out.len);
	assert_int_equal(back.err.len, o.err.len);
	assert_false(o.stderr_truncated); /* stderr needs less than half: it stays whole */
	assert_int_equal(o.err.len, 4 * MIB + 1);
	assert_memory_equal(back.err.data, o.err.data, o.err.len);
	proto_output_deinit(&back);
	proto_output_deinit(&o);

	/* binary stdout is cut where its base64 fits */
	proto_output_init(&o);
	uint8_t *bin = xmalloc(14 * MIB);
	memset(bin, 0, 14 * MIB);
	buf_append(&o.out, bin, 14 * MIB);
	free(bin);
	assert_true(proto_output_fit(&o));
	assert_true(o.stdout_truncated && !o.stderr_truncated);
	assert_true(proto_bytes_json_len(o.out.data, o.out.len) + 2 <= PROTO_RESULT_OUTPUT_MAX);
	assert_true(o.out.len > 8 * MIB);
	proto_output_deinit(&o);
}

/* What fits is left alone. */
static void test_fit_nothing(void **state)
{
	proto_output o;
	proto_output_init(&o);
	buf_append_str(&o.out, "hello\n");
	add_file(&o, "a/b.txt", 3, 'z');
	assert_false(proto_output_fit(&o));
	assert_false(o.files_truncated || o.stdout_truncated || o.stderr_truncated);
	assert_int_equal(o.n_files, 1);
	proto_output_deinit(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_return_values), cmocka_unit_test(test_bytes_json_len),
	    cmocka_unit_test(test_fit_oversized), cmocka_unit_test(test_fit_streams),
	    cmocka_unit_test(test_fit_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
