/* Unit tests for proto/: task validation messages (table-driven), task and result round
 * trips, limits, paths, base64, the strict JSON parser, and the examples in PROTOCOL.md. */
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
#include "proto/internal.h"
#include "proto/json.h"
#include "proto/proto.h"

#define MIB (1024 * 1024)

/* ---- bad tasks ---- */

typedef struct bad_case {
	const char *json;
	const char *msg;    /* expected substring of the error */
	const char *id_out; /* expected id copy, or NULL */
} bad_case;

#define HEAD "\"id\":\"t1\",\"lang\":\"python\",\"code\":\"print(1)\""

static const bad_case bad_cases[] = {
    {"not json", "task is not valid JSON: ", NULL},
    {"{\"id\":\"t1\",", "task is not valid JSON: parse error: premature EOF", NULL},
    {"[1,2]", "task must be a JSON object", NULL},
    {"{\"id\":\"t1\",\"lang\":\"python\"}", "missing field \"code\"", "t1"},
    {"{\"lang\":\"python\",\"code\":\"\"}", "missing field \"id\"", NULL},
    {"{\"id\":\"t1\",\"lang\":\"ruby\",\"code\":\"\"}",
     "field \"lang\" must be one of python, javascript, shell", "t1"},
    {"{\"id\":\"a b\",\"lang\":\"python\",\"code\":\"\"}",
     "field \"id\" must match [A-Za-z0-9._-]{1,64}", NULL},
    {"{\"id\":\"t1\",\"lang\":\"python\",\"code\":5}", "field \"code\" must be a string", "t1"},
    {"{" HEAD ",\"files\":[{\"path\":\"a\",\"content_b64\":\"\"},{\"path\":\"b\",\"content_b64\""
     ":\"\"},{\"path\":\"../x\",\"content_b64\":\"\"}]}",
     "files[2].path \"../x\" is not a valid relative path: component \"..\"", "t1"},
    {"{" HEAD ",\"files\":[{\"path\":\"a\",\"content_b64\":\"abc\"}]}",
     "files[0].content_b64 is not valid base64", "t1"},
    {"{" HEAD ",\"code\":\"x\"}", "duplicate key \"code\"", "t1"},
    {"{\"id\":\"t1\",\"id\":\"t2\",\"lang\":\"python\",\"code\":\"\"}", "duplicate key \"id\"",
     NULL},
    {"{" HEAD ",\"cod\":\"x\"}", "unknown field \"cod\"", "t1"},
    {"{" HEAD ",\"limits\":{\"memory_mb\":0}}",
     "field \"limits.memory_mb\" must be a positive integer", "t1"},
    {"{" HEAD ",\"limits\":{\"memory_mb\":1.5}}",
     "field \"limits.memory_mb\" must be a positive integer", "t1"},
    {"{" HEAD ",\"limits\":{\"cpu\":1}}", "unknown field \"limits.cpu\"", "t1"},
    {"{" HEAD ",\"limits\":{\"cpus\":0.0005}}",
     "field \"limits.cpus\" must be a positive number with at most 3 decimals", "t1"},
    /* a CFS quota below the kernel's 1 ms minimum: no sandbox could ever start with it */
    {"{" HEAD ",\"limits\":{\"cpus\":0.009}}", "field \"limits.cpus\" must be at least 0.01", "t1"},
    {"{" HEAD ",\"limits\":{\"timeout_s\":-1}}",
     "field \"limits.timeout_s\" must be a positive number", "t1"},
    {"{" HEAD ",\"limits\":{\"timeout_s\":1e-4}}",
     "field \"limits.timeout_s\" must be a positive number with at most 3 decimals", "t1"},
    {"{" HEAD ",\"limits\":{\"memory_mb\":99999999999999999999999}}",
     "field \"limits.memory_mb\" is too large", "t1"},
    {"{" HEAD ",\"limits\":{\"memory_mb\":9007199254740993}}",
     "field \"limits.memory_mb\" is too large", "t1"},
    {"{" HEAD ",\"limits\":{\"timeout_s\":1e30}}", "field \"limits.timeout_s\" is too large", "t1"},
    {"{" HEAD ",\"limits\":{\"timeout_s\":123456789012345678901234.5}}",
     "field \"limits.timeout_s\" is too large", "t1"},
    {"{" HEAD ",\"limits\":{\"pids\":\"5\"}}", "field \"limits.pids\" must be a positive integer",
     "t1"},
    {"{" HEAD ",\"limits\":[]}", "field \"limits\" must be an object", "t1"},
    {"{" HEAD ",\"env\":{\"PATH\":\"/x\"}}", "env name \"PATH\" is reserved", "t1"},
    {"{" HEAD ",\"env\":{\"LD_PRELOAD\":\"/x\"}}", "env name \"LD_PRELOAD\" is reserved", "t1"},
    {"{" HEAD ",\"env\":{\"AISP_X\":\"1\"}}", "env name \"AISP_X\" is reserved", "t1"},
    {"{" HEAD ",\"env\":{\"1X\":\"1\"}}", "env name \"1X\" must match", "t1"},
    {"{" HEAD ",\"env\":{\"X\":1}}", "env \"X\" must be a string", "t1"},
    {"{\"id\":\"t1\",\"lang\":\"shell\",\"mode\":\"function\",\"code\":\"\"}",
     "function mode is not supported for shell", "t1"},
    {"{" HEAD ",\"args\":\"x\"}", "script mode args must be an array of strings", "t1"},
    {"{" HEAD ",\"args\":[\"a\",1]}", "script mode args must be an array of strings", "t1"},
    {"{" HEAD ",\"mode\":\"fn\"}", "field \"mode\" must be one of script, function", "t1"},
    {"{" HEAD ",\"stdin\":\"a\",\"stdin_b64\":\"YQ==\"}",
     "fields \"stdin\" and \"stdin_b64\" are mutually exclusive", "t1"},
    {"{" HEAD ",\"stdin_b64\":\"YQ=\"}", "field \"stdin_b64\" is not valid base64", "t1"},
    {"{\"v\":2," HEAD "}", "field \"v\" must be 1", "t1"},
    {"{" HEAD ",\"image\":\"../etc\"}", "field \"image\" must be an image name", "t1"},
    {"{" HEAD ",\"image\":\"sha256:abc\"}", "field \"image\" must be an image name", "t1"},
    {"{" HEAD ",\"runtime\":\"run sc\"}", "field \"runtime\" must match", "t1"},
    {"{" HEAD ",\"reply_stream\":\"a b\"}",
     "field \"reply_stream\" must be \"aisp:reply:\" followed by [A-Za-z0-9:._-]{1,117}", "t1"},
    {"{" HEAD ",\"reply_stream\":\"aisp:tasks\"}", "field \"reply_stream\" must be", "t1"},
    {"{" HEAD ",\"reply_stream\":\"aisp:result:other\"}", "field \"reply_stream\" must be", "t1"},
    {"{" HEAD ",\"reply_stream\":\"aisp:reply:\"}", "field \"reply_stream\" must be", "t1"},
    /* strict UTF-8 (the id is still read, so the rejection reaches the client) */
    {"{" HEAD ",\"stdin\":\"\xc0\xaf\"}", "not valid UTF-8 at byte", "t1"},
    {"{" HEAD ",\"stdin\":\"\xed\xa0\x80\"}", "not valid UTF-8 at byte", "t1"},
    {"{" HEAD ",\"stdin\":\"\xf4\x90\x80\x80\"}", "not valid UTF-8 at byte", "t1"},
    {"{\"id\":\"t1\",\"lang\":\"python\",\"code\":\"\xe0\x80\xaf\"}", "not valid UTF-8", "t1"},
    {"{" HEAD ",\"stdin\":\"\\ud800\"}", "lone surrogate escape \\ud800", "t1"},
    {"{" HEAD ",\"stdin\":\"\\udc00x\"}", "lone surrogate escape \\udc00", "t1"},
    {"{" HEAD ",\"stdin\":\"\\ud800\\u0041\"}", "lone surrogate escape \\ud800", "t1"},
    {"{" HEAD ",\"code2\":\"\\ud83d\"}", "lone surrogate escape", "t1"},
    {"{" HEAD ",\"nondeterministic\":\"yes\"}", "field \"nondeterministic\" must be true or false",
     "t1"},
    {"{" HEAD ",\"files\":[{\"path\":\"a\",\"content_b64\":\"\"},{\"path\":\"a\",\"content_b64\""
     ":\"\"}]}",
     "duplicate file path \"a\"", "t1"},
    {"{" HEAD ",\"files\":[{\"path\":\"a/b\",\"content_b64\":\"\"},{\"path\":\"a\",\"content_b64\""
     ":\"\"}]}",
     "file path \"a\" is also the directory of \"a/b\"", "t1"},
    {"{" HEAD ",\"files\":[{\"path\":\"a\",\"content_b64\":\"\",\"mode\":1}]}",
     "unknown field \"files[0].mode\"", "t1"},
    {"{" HEAD ",\"files\":[{\"content_b64\":\"\"}]}", "missing field \"files[0].path\"", "t1"},
    {"{" HEAD ",\"files\":[{\"path\":\"/etc/x\",\"content_b64\":\"\"}]}",
     "files[0].path \"/etc/x\" is not a valid relative path: absolute path", "t1"},
    {"{" HEAD ",\"files\":{}}", "field \"files\" must be an array", "t1"},
    {"{" HEAD ",\"stdin\":\"a\\u0000b\"}", "string contains U+0000", "t1"},
    {"{" HEAD ",\"stdin\":\"\xff\"}", "task is not valid JSON", NULL},
    {"{" HEAD "} /* c */", "task is not valid JSON", NULL},
    {"{" HEAD "} {}", "task is not valid JSON", NULL},
    {"{" HEAD ",\"unknown\\\"q\":1}", "unknown field \"unknown\\\"q\"", "t1"},
};

static void test_bad_tasks(void **state)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const bad_case *c = &bad_cases[i];
		proto_task t;
		proto_task_head head = {(char *)"sentinel", NULL};
		err *e = NULL;
		int rc = proto_task_parse(c->json, strlen(c->json), &t, &head, &e);
		char *id = head.id;
		if (rc != -1 || !e || !strstr(err_msg(e), c->msg))
			fail_msg("case %zu (%s): rc %d, message \"%s\", want \"%s\"", i, c->json,
			         rc, err_msg(e), c->msg);
		if (c->id_out) {
			if (!id || strcmp(id, c->id_out) != 0)
				fail_msg("case %zu: id_out %s, want %s", i, id ? id : "NULL",
				         c->id_out);
		} else if (id) {
			fail_msg("case %zu: id_out %s, want NULL", i, id);
		}
		proto_task_head_deinit(&head);
		err_free(e);
		/* The task is left empty on failure. */
		assert_null(t.id);
		assert_null(t.code);
	}
}

/* Numbers are read by value: any JSON spelling of an integer is an integer (as for JSON
 * Schema), and a valid surrogate pair escape is one code point. */
static void test_limit_numbers(void **state)
{
	proto_task t;
	err *e = NULL;
	const char *json = "{" HEAD ",\"stdin\":\"\\ud83d\\ude00\",\"limits\":{\"memory_mb\":1e3,"
	                   "\"pids\":64.0,\"cpus\":5e-1,\"timeout_s\":100e-2,\"nofile\":1E+2}}";
	if (proto_task_parse(json, strlen(json), &t, NULL, &e) < 0)
		fail_msg("%s", err_msg(e));
	assert_int_equal(t.limits.memory_bytes, 1000LL * MIB);
	assert_int_equal(t.limits.pids, 64);
	assert_int_equal(t.limits.cpus_milli, 500);
	assert_int_equal(t.limits.timeout_ms, 1000);
	assert_int_equal(t.limits.nofile, 100);
	assert_int_equal(t.stdin_len, 4);
	assert_memory_equal(t.stdin_data, "\xf0\x9f\x98\x80", 4);
	proto_task_deinit(&t);
	/* "v" by value too; zeros ending a fraction change nothing, however many */
	buf big = BUF_INIT;
	buf_append_str(&big, "{\"v\":1.0," HEAD ",\"limits\":{\"pids\":1.");
	for (int i = 0; i < 200; i++)
		buf_append_str(&big, "0");
	buf_append_str(&big, ",\"cpus\":0.05}}");
	if (proto_task_parse(buf_str(&big), big.len, &t, NULL, &e) < 0)
		fail_msg("%s", err_msg(e));
	assert_int_equal(t.limits.pids, 1);
	assert_int_equal(t.limits.cpus_milli, 50);
	proto_task_deinit(&t);
	buf_deinit(&big);
}

/* The id and the reply stream are read first: a rejection reaches both. */
static void test_head_of_bad_tasks(void **state)
{
	const char *json = "{\"id\":\"j7\",\"lang\":\"cobol\",\"code\":\"x\","
	                   "\"reply_stream\":\"aisp:reply:c1\"}";
	proto_task t;
	proto_task_head head = {0};
	err *e = NULL;
	assert_int_equal(proto_task_parse(json, strlen(json), &t, &head, &e), -1);
	assert_string_equal(head.id, "j7");
	assert_string_equal(head.reply_stream, "aisp:reply:c1");
	proto_task_head_deinit(&head);
	err_free(e);
	e = NULL;
	/* a reply stream outside its key space is not read */
	json = "{\"id\":\"j8\",\"lang\":\"python\",\"code\":\"x\",\"reply_stream\":\"aisp:tasks\"}";
	assert_int_equal(proto_task_parse(json, strlen(json), &t, &head, &e), -1);
	assert_string_equal(head.id, "j8");
	assert_null(head.reply_stream);
	proto_task_head_deinit(&head);
	err_free(e);
	e = NULL;
	/* a duplicated reply_stream key is unreadable, the id still is */
	json =
	    "{\"id\":\"j9\",\"lang\":\"python\",\"code\":\"x\",\"reply_stream\":\"aisp:reply:a\","
	    "\"reply_stream\":\"aisp:reply:b\"}";
	assert_int_equal(proto_task_parse(json, strlen(json), &t, &head, &e), -1);
	assert_string_equal(head.id, "j9");
	assert_null(head.reply_stream);
	proto_task_head_deinit(&head);
	err_free(e);
}

/* A task built from parts: one field with a generated large or deep value. */
static char *task_with(const char *field_json)
{
	return xasprintf("{" HEAD ",%s}", field_json);
}

static void expect_bad(const char *json, size_t len, const char *msg, const char *want_id)
{
	proto_task t;
	proto_task_head head = {0};
	err *e = NULL;
	assert_int_equal(proto_task_parse(json, len, &t, &head, &e), -1);
	char *id = head.id;
	if (!strstr(err_msg(e), msg))
		fail_msg("message \"%s\", want \"%s\"", err_msg(e), msg);
	if (want_id)
		assert_string_equal(id, want_id);
	else
		assert_null(id);
	proto_task_head_deinit(&head);
	err_free(e);
}

static void test_bad_sizes(void **state)
{
	/* code of 2000000 bytes */
	buf b = BUF_INIT;
	buf_append_str(&b, "{\"id\":\"big\",\"lang\":\"python\",\"code\":\"");
	for (int i = 0; i < 2000000; i++)
		buf_append(&b, "x", 1);
	buf_append_str(&b, "\"}");
	expect_bad(buf_str(&b), b.len,
	           "field \"code\" is 2000000 bytes, above the 1048576-byte limit", "big");
	buf_deinit(&b);

	/* the whole entry above PROTO_TASK_MAX_BYTES, rejected before parsing */
	size_t n = PROTO_TASK_MAX_BYTES + 1;
	char *huge = xmalloc(n);
	memset(huge, ' ', n);
	expect_bad(huge, n, "task is 16777217 bytes, above the 16777216-byte limit", NULL);
	free(huge);

	/* 257 args */
	buf_append_str(&b, "\"args\":[");
	for (int i = 0; i < 257; i++)
		buf_append_str(&b, i ? ",\"a\"" : "\"a\"");
	buf_append_str(&b, "]");
	_cleanup_free_ char *j = task_with(buf_str(&b));
	expect_bad(j, strlen(j), "field \"args\" has 257 entries, above the 256 limit", "t1");
	buf_deinit(&b);

	/* nesting: 33 levels in function args */
	buf_append_str(&b, "\"mode\":\"function\",\"args\":");
	for (int i = 0; i < 32; i++)
		buf_append_str(&b, "[");
	for (int i = 0; i < 32; i++)
		buf_append_str(&b, "]");
	_cleanup_free_ char *deep = task_with(buf_str(&b));
	expect_bad(deep, strlen(deep), "JSON nesting deeper than 32 levels", "t1");
	buf_deinit(&b);

	/* 65 env entries */
	buf_append_str(&b, "\"env\":{");
	for (int i = 0; i < 65; i++)
		buf_appendf(&b, "%s\"E%d\":\"v\"", i ? "," : "", i);
	buf_append_str(&b, "}");
	_cleanup_free_ char *env = task_with(buf_str(&b));
	expect_bad(env, strlen(env), "field \"env\" has 65 entries, above the 64 limit", "t1");
	buf_deinit(&b);

	/* an env value of 4097 bytes */
	buf_append_str(&b, "\"env\":{\"BIG\":\"");
	for (int i = 0; i < 4097; i++)
		buf_append(&b, "v", 1);
	buf_append_str(&b, "\"}");
	_cleanup_free_ char *ev = task_with(buf_str(&b));
	expect_bad(ev, strlen(ev), "env \"BIG\" is 4097 bytes, above the 4096-byte limit", "t1");
	buf_deinit(&b);

	/* function args above 64 KiB as JSON */
	buf_append_str(&b, "\"mode\":\"function\",\"args\":\"");
	for (int i = 0; i < 70000; i++)
		buf_append(&b, "a", 1);
	buf_append_str(&b, "\"");
	_cleanup_free_ char *fa = task_with(buf_str(&b));
	expect_bad(fa, strlen(fa),
	           "field \"args\" is 70002 bytes as JSON, above the 65536-byte limit", "t1");
	buf_deinit(&b);
}

/* ---- good tasks ---- */

static void assert_task_equal(const proto_task *a, const proto_task *b)
{
	assert_string_equal(a->id, b->id);
	assert_int_equal(a->lang, b->lang);
	assert_int_equal(a->mode, b->mode);
	assert_int_equal(a->code_len, b->code_len);
	assert_memory_equal(a->code, b->code, a->code_len);
	assert_int_equal(a->stdin_len, b->stdin_len);
	if (a->stdin_len)
		assert_memory_equal(a->stdin_data, b->stdin_data, a->stdin_len);
	if (a->args_json || b->args_json)
		assert_string_equal(a->args_json, b->args_json);
	assert_int_equal(a->argc, b->argc);
	for (size_t i = 0; i < a->argc; i++)
		assert_string_equal(a->argv[i], b->argv[i]);
	assert_int_equal(a->n_env, b->n_env);
	for (size_t i = 0; i < a->n_env; i++) {
		assert_string_equal(a->env[i].name, b->env[i].name);
		assert_string_equal(a->env[i].value, b->env[i].value);
	}
	assert_int_equal(a->n_files, b->n_files);
	for (size_t i = 0; i < a->n_files; i++) {
		assert_string_equal(a->files[i].path, b->files[i].path);
		assert_int_equal(a->files[i].len, b->files[i].len);
		if (a->files[i].len)
			assert_memory_equal(a->files[i].data, b->files[i].data, a->files[i].len);
	}
	assert_true((a->image == NULL) == (b->image == NULL));
	if (a->image)
		assert_string_equal(a->image, b->image);
	assert_true((a->runtime == NULL) == (b->runtime == NULL));
	if (a->runtime)
		assert_string_equal(a->runtime, b->runtime);
	assert_true((a->reply_stream == NULL) == (b->reply_stream == NULL));
	if (a->reply_stream)
		assert_string_equal(a->reply_stream, b->reply_stream);
	assert_memory_equal(&a->limits, &b->limits, sizeof(a->limits));
	assert_int_equal(a->nondeterministic, b->nondeterministic);
}

/* Parses json, serialises, parses again: both tasks equal, and serialising is a fixed point. */
static void round_trip(const char *json, proto_task *t)
{
	err *e = NULL;
	if (proto_task_parse(json, strlen(json), t, NULL, &e) < 0)
		fail_msg("parse %s: %s", json, err_msg(e));
	buf a = BUF_INIT, b = BUF_INIT;
	proto_task_to_json(t, &a);
	proto_task t2;
	if (proto_task_parse(buf_str(&a), a.len, &t2, NULL, &e) < 0)
		fail_msg("re-parse %s: %s", buf_str(&a), err_msg(e));
	assert_task_equal(t, &t2);
	proto_task_to_json(&t2, &b);
	assert_string_equal(buf_str(&a), buf_str(&b));
	proto_task_deinit(&t2);
	buf_deinit(&a);
	buf_deinit(&b);
}

static void test_task_minimal(void **state)
{
	proto_task t;
	round_trip("{\"id\":\"a\",\"lang\":\"shell\",\"code\":\"echo hi\"}", &t);
	assert_string_equal(t.id, "a");
	assert_int_equal(t.lang, PROTO_LANG_SHELL);
	assert_int_equal(t.mode, PROTO_MODE_SCRIPT);
	assert_string_equal(t.code, "echo hi");
	assert_null(t.args_json);
	assert_int_equal(t.argc, 0);
	assert_null(t.image);
	assert_int_equal(t.limits.memory_bytes, 0);
	assert_false(t.nondeterministic);
	proto_task_deinit(&t);
}

static void test_task_full_script(void **state)
{
	proto_task t;
	round_trip(
	    "{ \"v\" : 1, \"id\":\"job-1.x_Y\", \"lang\":\"python\", \"mode\":\"script\","
	    "\"code\":\"import sys\\nprint(sys.argv)\", \"stdin\":\"h\\u00e9llo\\n\","
	    "\"args\":[ \"a\" ,  \"b c\" ], \"env\":{\"ZED\":\"1\",\"ALPHA\":\"x=y\"},"
	    "\"files\":[{\"path\":\"data/z.bin\",\"content_b64\":\"AAEC/w==\"},"
	    "{\"path\":\"a.txt\",\"content_b64\":\"aGk=\"}],"
	    "\"image\":\"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\","
	    "\"runtime\":\"runc\",\"limits\":{\"cpus\":1.5,\"memory_mb\":256,\"timeout_s\":2.25,"
	    "\"pids\":64,\"nofile\":128,\"fsize_mb\":8,\"workspace_mb\":16,\"stdout_bytes\":1000,"
	    "\"stderr_bytes\":2000},\"reply_stream\":\"aisp:reply:job-1\","
	    "\"nondeterministic\":true}",
	    &t);
	assert_int_equal(t.stdin_len, 7);
	assert_memory_equal(t.stdin_data, "h\xc3\xa9llo\n", 7);
	assert_string_equal(t.args_json, "[\"a\",\"b c\"]");
	assert_int_equal(t.argc, 2);
	assert_string_equal(t.argv[1], "b c");
	assert_null(t.argv[2]);
	assert_int_equal(t.n_env, 2);
	assert_string_equal(t.env[0].name, "ALPHA"); /* sorted */
	assert_string_equal(t.env[0].value, "x=y");
	assert_string_equal(t.files[0].path, "a.txt"); /* sorted */
	assert_int_equal(t.files[1].len, 4);
	assert_memory_equal(t.files[1].data, "\x00\x01\x02\xff", 4);
	assert_int_equal(t.limits.cpus_milli, 1500);
	assert_int_equal(t.limits.memory_bytes, 256 * MIB);
	assert_int_equal(t.limits.timeout_ms, 2250);
	assert_int_equal(t.limits.pids, 64);
	assert_int_equal(t.limits.fsize_bytes, 8 * MIB);
	assert_int_equal(t.limits.workspace_bytes, 16 * MIB);
	assert_int_equal(t.limits.stderr_bytes, 2000);
	assert_string_equal(t.reply_stream, "aisp:reply:job-1");
	assert_true(t.nondeterministic);
	proto_task_deinit(&t);
}

static void test_task_function_and_binary(void **state)
{
	proto_task t;
	round_trip("{\"id\":\"f\",\"lang\":\"javascript\",\"mode\":\"function\",\"code\":\"x\","
	           "\"args\": { \"n\" : [1, 2.50, -3e2], \"s\": null },\"stdin_b64\":\"/wBh\","
	           "\"limits\":{\"cpus\":0.5000,\"timeout_s\":10}}",
	           &t);
	assert_int_equal(t.mode, PROTO_MODE_FUNCTION);
	/* whitespace normalised, key order and number text kept */
	assert_string_equal(t.args_json, "{\"n\":[1,2.50,-3e2],\"s\":null}");
	assert_int_equal(t.argc, 0);
	assert_int_equal(t.stdin_len, 3);
	assert_memory_equal(t.stdin_data, "\xff\x00\x61", 3);
	assert_int_equal(t.limits.cpus_milli, 500);
	assert_int_equal(t.limits.timeout_ms, 10000);
	proto_task_deinit(&t);

	/* args null in function mode is the same as absent */
	round_trip("{\"id\":\"g\",\"lang\":\"python\",\"mode\":\"function\",\"code\":\"x\","
	           "\"args\":null,\"image\":\"python-3.11\"}",
	           &t);
	assert_null(t.args_json);
	assert_string_equal(t.image, "python-3.11");
	proto_task_deinit(&t);

	/* a function called with a plain string */
	round_trip("{\"id\":\"h\",\"lang\":\"python\",\"mode\":\"function\",\"code\":\"x\","
	           "\"args\":\"\\u2603\"}",
	           &t);
	assert_string_equal(t.args_json, "\"\xe2\x98\x83\"");
	proto_task_deinit(&t);
}

static void test_task_to_json_stdin_form(void **state)
{
	proto_task t;
	proto_task_init(&t);
	t.id = xstrdup("s");
	t.lang = PROTO_LANG_PYTHON;
	t.code = xstrdup("pass");
	t.code_len = 4;
	t.stdin_data = xmemdup("ok\n", 4);
	t.stdin_len = 3;
	buf b = BUF_INIT;
	proto_task_to_json(&t, &b);
	assert_non_null(strstr(buf_str(&b), "\"stdin\":\"ok\\n\""));
	buf_reset(&b);
	t.stdin_data[1] = 0xc3; /* not UTF-8 */
	proto_task_to_json(&t, &b);
	assert_non_null(strstr(buf_str(&b), "\"stdin_b64\":\"b8MK\""));
	proto_task_deinit(&t);
	buf_deinit(&b);
}

/* ---- results ---- */

static const char *const envelope =
    "{\"payloadType\":\"application/vnd.in-toto+json\",\"payload\":\"eyJhIjoxfQ==\","
    "\"signatures\":[{\"keyid\":\"ed25519:abc\",\"sig\":\"c2ln\"}]}";

static void fill_result(proto_result *r)
{
	proto_result_init(r);
	r->id = xstrdup("r1");
	r->output.status = PROTO_STATUS_OK;
	r->output.exit_code = 3;
	for (int i = 0; i < 256; i++) {
		uint8_t c = (uint8_t)i;
		buf_append(&r->output.out, &c, 1);
	}
	buf_append_str(&r->output.err, "warn: \xe2\x98\x83 \"q\"\n");
	r->output.stdout_truncated = true;
	r->output.files = xcalloc(2, sizeof(proto_file));
	r->output.files[0].path = xstrdup("out/a.bin");
	r->output.files[0].data = xmemdup("\x00\xff", 2);
	r->output.files[0].len = 2;
	r->output.files[1].path = xstrdup("out/empty");
	r->output.files[1].data = xmemdup("", 1);
	r->output.n_files = 2;
	r->output.files_truncated = true;
	r->output.return_value = xstrdup("{\"a\": [1, 2.50, \"x\"], \"b\": null}");
	r->usage = (proto_usage){.wall_ms = 12, .cpu_ms = 7, .memory_peak_bytes = 1 << 20};
	r->node_id = xstrdup("node-1");
	r->runtime = xstrdup("runsc");
	r->image_digest = xstrdup("sha256:00ff");
	r->received_ms = 1700000000000;
	r->started_ms = 1700000000005;
	r->finished_ms = 1700000000017;
	r->attempts = 2;
	r->execution_digest = xstrdup("sha256:abcd");
	r->attestation = xstrdup(envelope);
}

static void test_result_round_trip(void **state)
{
	proto_result r, p;
	fill_result(&r);
	buf j = BUF_INIT, j2 = BUF_INIT;
	proto_result_to_json(&r, &j);
	/* binary stdout travels as base64, text stderr as text, the envelope as an object */
	assert_non_null(strstr(buf_str(&j), "\"stdout_b64\":\"AAECAwQF"));
	assert_null(strstr(buf_str(&j), "\"stdout\":"));
	assert_non_null(strstr(buf_str(&j), "\"stderr\":\"warn: \xe2\x98\x83 \\\"q\\\"\\n\""));
	assert_non_null(strstr(buf_str(&j), "\"attestation\":{\"payloadType\""));
	assert_non_null(strstr(buf_str(&j), "\"return_value\":{\"a\":[1,2.50,\"x\"],\"b\":null}"));
	assert_non_null(strstr(buf_str(&j), "\"signal\":null"));

	err *e = NULL;
	if (proto_result_parse(buf_str(&j), j.len, &p, &e) < 0)
		fail_msg("parse: %s", err_msg(e));
	assert_string_equal(p.id, "r1");
	assert_int_equal(p.output.status, PROTO_STATUS_OK);
	assert_int_equal(p.output.exit_code, 3);
	assert_int_equal(p.output.signal, 0);
	assert_int_equal(p.output.out.len, 256);
	assert_memory_equal(p.output.out.data, r.output.out.data, 256);
	assert_int_equal(p.output.err.len, r.output.err.len);
	assert_memory_equal(p.output.err.data, r.output.err.data, r.output.err.len);
	assert_true(p.output.stdout_truncated);
	assert_false(p.output.stderr_truncated);
	assert_int_equal(p.output.n_files, 2);
	assert_string_equal(p.output.files[0].path, "out/a.bin");
	assert_int_equal(p.output.files[0].len, 2);
	assert_memory_equal(p.output.files[0].data, "\x00\xff", 2);
	assert_int_equal(p.output.files[1].len, 0);
	assert_true(p.output.files_truncated);
	assert_string_equal(p.output.return_value, "{\"a\":[1,2.50,\"x\"],\"b\":null}");
	assert_null(p.output.error);
	assert_int_equal(p.usage.cpu_ms, 7);
	assert_int_equal(p.usage.memory_peak_bytes, 1 << 20);
	assert_string_equal(p.node_id, "node-1");
	assert_string_equal(p.runtime, "runsc");
	assert_string_equal(p.image_digest, "sha256:00ff");
	assert_int_equal(p.received_ms, 1700000000000);
	assert_int_equal(p.finished_ms, 1700000000017);
	assert_int_equal(p.attempts, 2);
	assert_string_equal(p.execution_digest, "sha256:abcd");
	assert_string_equal(p.attestation, envelope);

	proto_result_to_json(&p, &j2);
	assert_string_equal(buf_str(&j), buf_str(&j2));
	proto_result_deinit(&p);
	proto_result_deinit(&r);
	buf_deinit(&j);
	buf_deinit(&j2);
}

static void test_result_rejected_and_signal(void **state)
{
	proto_result r, p;
	proto_result_init(&r);
	r.id = xstrdup("entry-1700000000000-0");
	r.output.status = PROTO_STATUS_REJECTED;
	r.output.error = xstrdup("task is not valid JSON: lexical error");
	buf j = BUF_INIT;
	proto_result_to_json(&r, &j);
	assert_non_null(strstr(buf_str(&j), "\"status\":\"rejected\",\"exit_code\":null"));
	assert_non_null(strstr(buf_str(&j), "\"stdout\":\"\""));
	assert_null(strstr(buf_str(&j), "attestation"));
	assert_null(strstr(buf_str(&j), "return_value"));
	err *e = NULL;
	assert_int_equal(proto_result_parse(buf_str(&j), j.len, &p, &e), 0);
	assert_int_equal(p.output.status, PROTO_STATUS_REJECTED);
	assert_int_equal(p.output.exit_code, -1);
	assert_string_equal(p.output.error, "task is not valid JSON: lexical error");
	assert_null(p.attestation);
	assert_null(p.image_digest);
	assert_null(p.output.return_value);
	proto_result_deinit(&p);
	buf_reset(&j);

	/* an error message quoting bytes that are not UTF-8 still makes a parseable result */
	free(r.output.error);
	r.output.error = xstrdup("main raised: bad \xff byte");
	proto_result_to_json(&r, &j);
	assert_int_equal(proto_result_parse(buf_str(&j), j.len, &p, &e), 0);
	assert_string_equal(p.output.error, "main raised: bad \xef\xbf\xbd byte");
	proto_result_deinit(&p);
	proto_result_deinit(&r);
	buf_deinit(&j);

	/* signalled; stdout with a NUL byte is valid UTF-8 but still goes as base64 */
	const char *doc = "{\"v\":1,\"id\":\"k\",\"status\":\"ok\",\"exit_code\":null,\"signal\":9,"
	                  "\"stdout_b64\":\"YQBi\",\"return_value\":null}";
	assert_int_equal(proto_result_parse(doc, strlen(doc), &p, &e), 0);
	assert_int_equal(p.output.signal, 9);
	assert_int_equal(p.output.exit_code, -1);
	assert_int_equal(p.output.out.len, 3);
	assert_memory_equal(p.output.out.data, "a\0b", 3);
	assert_string_equal(p.output.return_value, "null");
	proto_result_to_json(&p, &j);
	assert_non_null(strstr(buf_str(&j), "\"stdout_b64\":\"YQBi\""));
	assert_non_null(strstr(buf_str(&j), "\"return_value\":null"));
	proto_result_deinit(&p);
	buf_deinit(&j);

	static const struct {
		const char *doc, *msg;
	} bad[] = {
	    {"{\"id\":\"k\",\"status\":\"fine\"}", "\"status\" is missing or unknown"},
	    {"{\"status\":\"ok\"}", "\"id\" is missing"},
	    {"{\"id\":\"k\",\"status\":\"ok\",\"stdout_b64\":\"*\"}", "not valid base64"},
	    {"{\"id\":\"k\",\"status\":\"ok\",\"stdout\":\"\",\"stdout_b64\":\"\"}", "both"},
	    {"{\"id\":\"k\",\"status\":\"ok\",\"files\":[{\"path\":\"a\",\"content_b64\":\"YQ==\","
	     "\"size\":2}]}",
	     "size does not match"},
	    {"{\"id\":\"k\",\"status\":\"ok\",\"attestation\":\"x\"}", "must be an object"},
	    {"{\"id\":\"k\",\"status\":\"ok\",\"id\":\"j\"}", "duplicate key \"id\""},
	    {"{\"id\":", "result is not valid JSON"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(proto_result_parse(bad[i].doc, strlen(bad[i].doc), &p, &e), -1);
		if (!strstr(err_msg(e), bad[i].msg))
			fail_msg("result case %zu: \"%s\", want \"%s\"", i, err_msg(e), bad[i].msg);
		err_free(e);
		e = NULL;
	}
}

/* ---- limits ---- */

static void test_limits_resolve(void **state)
{
	const proto_limits defaults = {.cpus_milli = 1000,
	                               .memory_bytes = 512LL * MIB,
	                               .timeout_ms = 30000,
	                               .pids = 128,
	                               .nofile = 256,
	                               .fsize_bytes = 64LL * MIB,
	                               .workspace_bytes = 64LL * MIB,
	                               .stdout_bytes = MIB,
	                               .stderr_bytes = MIB};
	const proto_limits maxima = {.cpus_milli = 4000,
	                             .memory_bytes = 4096LL * MIB,
	                             .timeout_ms = 600000,
	                             .pids = 1024,
	                             .nofile = 4096,
	                             .fsize_bytes = 1024LL * MIB,
	                             .workspace_bytes = 1024LL * MIB,
	                             .stdout_bytes = 16 * MIB,
	                             .stderr_bytes = 16 * MIB};
	proto_limits l = {.memory_bytes = 1024LL * MIB, .cpus_milli = 2500};
	err *e = NULL;
	assert_int_equal(proto_limits_resolve(&l, &defaults, &maxima, &e), 0);
	assert_int_equal(l.memory_bytes, 1024LL * MIB);
	assert_int_equal(l.cpus_milli, 2500);
	assert_int_equal(l.timeout_ms, 30000);
	assert_int_equal(l.pids, 128);
	assert_int_equal(l.stderr_bytes, MIB);

	static const struct {
		proto_limits l;
		const char *msg;
	} bad[] = {
	    {{.memory_bytes = 8192LL * MIB},
	     "limits.memory_mb 8192 is above the node maximum 4096"},
	    {{.cpus_milli = 8000}, "limits.cpus 8 is above the node maximum 4"},
	    {{.cpus_milli = 4001}, "limits.cpus 4.001 is above the node maximum 4"},
	    {{.timeout_ms = 900500}, "limits.timeout_s 900.5 is above the node maximum 600"},
	    {{.pids = 5000}, "limits.pids 5000 is above the node maximum 1024"},
	    {{.stdout_bytes = 16 * MIB + 1},
	     "limits.stdout_bytes 16777217 is above the node maximum 16777216"},
	    {{.workspace_bytes = 2048LL * MIB},
	     "limits.workspace_mb 2048 is above the node maximum 1024"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		proto_limits x = bad[i].l;
		assert_int_equal(proto_limits_resolve(&x, &defaults, &maxima, &e), -1);
		assert_string_equal(err_msg(e), bad[i].msg);
	}
	err_free(e);

	/* a maximum of 0 means "no maximum" */
	proto_limits none = {0};
	l = (proto_limits){.pids = 99999};
	assert_int_equal(proto_limits_resolve(&l, &defaults, &none, NULL), 0);
	assert_int_equal(l.pids, 99999);
}

/* ---- paths, names, base64, JSON ---- */

static void test_paths(void **state)
{
	static const struct {
		const char *path, *why; /* why NULL: valid */
	} cases[] = {
	    {"a", NULL},
	    {"dir/sub/file.txt", NULL},
	    {"..a/b..", NULL},
	    {".hidden", NULL},
	    {"caf\xc3\xa9", NULL},
	    {"", "empty path"},
	    {"/abs", "absolute path"},
	    {"..", "component \"..\""},
	    {"a/../b", "component \"..\""},
	    {"./a", "component \".\""},
	    {"a/.", "component \".\""},
	    {"a//b", "empty component"},
	    {"a/", "empty component"},
	    {"a\nb", "control character 0x0a"},
	    {"a\x7f", "control character 0x7f"},
	    {"\xff", "not valid UTF-8"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err *e = NULL;
		int rc = proto_path_valid(cases[i].path, &e);
		if (cases[i].why == NULL) {
			if (rc != 0)
				fail_msg("path %zu rejected: %s", i, err_msg(e));
		} else {
			assert_int_equal(rc, -1);
			assert_string_equal(err_msg(e), cases[i].why);
		}
		err_free(e);
	}
	char longp[300];
	memset(longp, 'a', sizeof(longp));
	longp[255] = 0;
	assert_int_equal(proto_path_valid(longp, NULL), 0);
	longp[255] = 'a';
	longp[256] = 0;
	assert_int_equal(proto_path_valid(longp, NULL), -1);

	assert_true(proto_id_valid("a.B_c-9"));
	assert_false(proto_id_valid(""));
	assert_false(proto_id_valid("a/b"));
	assert_false(proto_id_valid(NULL));
	memset(longp, 'x', 65);
	longp[65] = 0;
	assert_false(proto_id_valid(longp));
	longp[64] = 0;
	assert_true(proto_id_valid(longp));

	assert_true(proto_env_reserved("TZ"));
	assert_true(proto_env_reserved("HOSTNAME"));
	assert_true(proto_env_reserved("LD_LIBRARY_PATH"));
	assert_true(proto_env_reserved("AISP_TASK"));
	assert_false(proto_env_reserved("PATHX"));
	assert_false(proto_env_reserved("MY_VAR"));
}

static void test_enums(void **state)
{
	proto_status s;
	proto_lang l;
	for (int i = 0; i < PROTO_STATUS__COUNT; i++) {
		assert_int_equal(proto_status_parse(proto_status_name((proto_status)i), &s), 0);
		assert_int_equal(s, i);
	}
	assert_string_equal(proto_status_name(PROTO_STATUS_OUTPUT_LIMIT), "output_limit");
	assert_string_equal(proto_status_name(PROTO_STATUS_SANDBOX_ERROR), "sandbox_error");
	assert_null(proto_status_name(PROTO_STATUS__COUNT));
	assert_int_equal(proto_lang_parse("javascript", &l), 0);
	assert_int_equal(l, PROTO_LANG_JAVASCRIPT);
	assert_int_equal(proto_lang_parse("js", &l), -1);
	assert_string_equal(proto_mode_name(PROTO_MODE_FUNCTION), "function");
	assert_null(proto_lang_name(PROTO_LANG__COUNT));
}

static void test_base64(void **state)
{
	static const struct {
		const char *in;
		const char *out; /* NULL: invalid */
		size_t len;
	} cases[] = {
	    {"", "", 0},
	    {"Zg==", "f", 1},
	    {"Zm8=", "fo", 2},
	    {"Zm9v", "foo", 3},
	    {"AA==", "\0", 1},
	    {"/w==", "\xff", 1},
	    {"+/+/", "\xfb\xff\xbf", 3},
	    {"Zg=", NULL, 0},
	    {"Zg", NULL, 0},
	    {"Zh==", NULL, 0}, /* unused bits set */
	    {"Zm9=", NULL, 0},
	    {"Z===", NULL, 0},
	    {"====", NULL, 0},
	    {"Zm9v\n", NULL, 0},
	    {" Zm9", NULL, 0},
	    {"Zm=v", NULL, 0},
	    {"Zg==Zg==", NULL, 0},
	    {"Zm9-", NULL, 0},
	    {"Zm9_", NULL, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t *d = NULL;
		size_t n = 0;
		int rc = proto_b64_decode(cases[i].in, strlen(cases[i].in), &d, &n);
		if (!cases[i].out) {
			if (rc != -1)
				fail_msg("base64 \"%s\" accepted", cases[i].in);
			continue;
		}
		assert_int_equal(rc, 0);
		assert_int_equal(n, cases[i].len);
		assert_memory_equal(d, cases[i].out, n);
		free(d);
	}
	/* every length 0..64, every byte value: encode then decode is the identity */
	uint8_t src[64];
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i * 37 + 11);
	for (size_t len = 0; len <= sizeof(src); len++) {
		_cleanup_free_ char *enc = proto_b64_encode(src, len);
		assert_int_equal(strlen(enc), (len + 2) / 3 * 4);
		uint8_t *d = NULL;
		size_t n = 0;
		assert_int_equal(proto_b64_decode(enc, strlen(enc), &d, &n), 0);
		assert_int_equal(n, len);
		if (len)
			assert_memory_equal(d, src, len);
		free(d);
	}
}

static void test_json(void **state)
{
	err *e = NULL;
	_cleanup_yajl_val_ yajl_val v = NULL;
	const char *doc = "{\"a\":{\"x\":1,\"y\":[true,false,null]},\"n\":-12.50,\"s\":\"\\u00e9\","
	                  "\"big\":123456789012345678901}";
	assert_int_equal(proto_json_parse(doc, strlen(doc), &v, &e), 0);
	int64_t i = 0;
	bool b = false;
	assert_int_equal(proto_json_get_int(proto_json_get(v, "a"), "x", &i), 0);
	assert_int_equal(i, 1);
	assert_int_equal(proto_json_get_int(v, "n", &i), -1);
	assert_int_equal(proto_json_get_int(v, "big", &i), -1); /* out of int64 range */
	assert_string_equal(proto_json_get_str(v, "s"), "\xc3\xa9");
	assert_null(proto_json_get_str(v, "n"));
	assert_null(proto_json_get(v, "missing"));
	assert_null(proto_json_get(proto_json_get(v, "s"), "x"));
	assert_int_equal(proto_json_get_bool(v, "s", &b), -1);
	/* regenerated compact, numbers as written */
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	proto_json_gen_value(g, v);
	buf out = BUF_INIT;
	assert_int_equal(proto_json_gen_take(g, &out, NULL), 0);
	assert_string_equal(buf_str(&out), "{\"a\":{\"x\":1,\"y\":[true,false,null]},\"n\":-12.50,"
	                                   "\"s\":\"\xc3\xa9\",\"big\":123456789012345678901}");
	/* the generator escapes control characters and quotes, not '/' */
	buf_reset(&out);
	proto_json_gen_strn(g, "a\0/\"\x01", 5);
	assert_int_equal(proto_json_gen_take(g, &out, NULL), 0);
	assert_string_equal(buf_str(&out), "\"a\\u0000/\\\"\\u0001\"");
	/* text that is not UTF-8 (or has NUL) is repaired with U+FFFD, valid text kept as is */
	buf_reset(&out);
	proto_json_gen_text(g, "ok\xc3\xa9\xff\0\xe2\x82", 8);
	assert_int_equal(proto_json_gen_take(g, &out, NULL), 0);
	assert_string_equal(buf_str(&out),
	                    "\"ok\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
	/* the strict policy: a string that is not UTF-8 fails the document, nothing is handed
	 * out, the message says why, and the generator is usable again afterwards */
	buf_reset(&out);
	assert_null(e);
	proto_json_gen_open(g, true);
	proto_json_gen_kstr(g, "k", "bad \xff byte");
	proto_json_gen_kint(g, "n", 1);
	proto_json_gen_close(g, true);
	assert_int_equal(proto_json_gen_take(g, &out, &e), -1);
	assert_int_equal(out.len, 0);
	assert_non_null(strstr(err_msg(e), "not valid UTF-8"));
	/* a container left open fails too */
	proto_json_gen_open(g, false);
	proto_json_gen_int(g, 1);
	assert_int_equal(proto_json_gen_take(g, &out, &e), -1);
	assert_non_null(strstr(err_msg(e), "1 container left open"));
	proto_json_gen_open(g, false);
	proto_json_gen_close(g, false);
	assert_int_equal(proto_json_gen_take(g, &out, NULL), 0);
	assert_string_equal(buf_str(&out), "[]");
	/* a value after the document's end, and a non-finite number */
	buf_reset(&out);
	proto_json_gen_int(g, 1);
	proto_json_gen_int(g, 2);
	assert_int_equal(proto_json_gen_take(g, &out, &e), -1);
	proto_json_gen_double(g, 1.0 / 0.0);
	assert_int_equal(proto_json_gen_take(g, &out, &e), -1);
	assert_non_null(strstr(err_msg(e), "not finite"));
	err_free(e);
	e = NULL;
	buf_deinit(&out);

	static const struct {
		const char *doc;
		int rc;
		const char *msg;
	} bad[] = {
	    {"{\"a\":1,\"b\":{\"c\":1,\"c\":2}}", -2, "duplicate key \"c\""},
	    {"[{\"k\":1},{\"k\":2,\"k\":3}]", -2, "duplicate key \"k\""},
	    {"\"a\\u0000\"", -2, "U+0000"},
	    {"", -1, "premature EOF"},
	    {"[1,]", -1, "parse error"},
	    {"{a:1}", -1, "lexical error"},
	    {"// c\n1", -1, "error"},
	    {"1 2", -1, "error"},

	};
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		yajl_val w = NULL;
		int rc = proto_json_parse(bad[k].doc, strlen(bad[k].doc), &w, &e);
		if (rc != bad[k].rc || !strstr(err_msg(e), bad[k].msg))
			fail_msg("json case %zu: rc %d \"%s\"", k, rc, err_msg(e));
		assert_null(w);
	}
	/* 32 levels parse, 33 do not */
	char deep[80];
	memset(deep, '[', 32);
	memset(deep + 32, ']', 32);
	deep[64] = 0;
	yajl_val w = NULL;
	assert_int_equal(proto_json_parse(deep, 64, &w, &e), 0);
	yajl_tree_free(w);
	memset(deep, '[', 33);
	memset(deep + 33, ']', 33);
	assert_int_equal(proto_json_parse(deep, 66, &w, &e), -2);
	assert_string_equal(err_msg(e), "JSON nesting deeper than 32 levels");
	err_free(e);
}

/* ---- PROTOCOL.md examples ---- */

/* Returns the JSON block that follows the marker line "<!-- example:NAME -->". */
static char *protocol_example(const char *doc, const char *name)
{
	_cleanup_free_ char *marker = xasprintf("<!-- example:%s -->", name);
	const char *p = strstr(doc, marker);
	if (!p)
		return NULL;
	p = strstr(p, "```json\n");
	if (!p)
		return NULL;
	p += 8;
	const char *end = strstr(p, "\n```");
	return end ? xstrndup(p, (size_t)(end - p)) : NULL;
}

static void test_protocol_examples(void **state)
{
	const char *root = getenv("AISP_SOURCE_ROOT");
	_cleanup_free_ char *path = xasprintf("%s/proto/PROTOCOL.md", root ? root : ".");
	_cleanup_fclose_ FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("cannot open %s", path);
	buf doc = BUF_INIT;
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&doc, chunk, n);

	_cleanup_free_ char *task = protocol_example(buf_str(&doc), "task");
	assert_non_null(task);
	proto_task t;
	err *e = NULL;
	if (proto_task_parse(task, strlen(task), &t, NULL, &e) < 0)
		fail_msg("PROTOCOL.md task example: %s", err_msg(e));
	assert_string_equal(t.id, "job-42");
	proto_task_deinit(&t);

	_cleanup_free_ char *fn = protocol_example(buf_str(&doc), "task-function");
	assert_non_null(fn);
	if (proto_task_parse(fn, strlen(fn), &t, NULL, &e) < 0)
		fail_msg("PROTOCOL.md function example: %s", err_msg(e));
	assert_int_equal(t.mode, PROTO_MODE_FUNCTION);
	proto_task_deinit(&t);

	const char *results[] = {"result", "result-rejected"};
	for (size_t i = 0; i < 2; i++) {
		_cleanup_free_ char *r = protocol_example(buf_str(&doc), results[i]);
		assert_non_null(r);
		proto_result res;
		if (proto_result_parse(r, strlen(r), &res, &e) < 0)
			fail_msg("PROTOCOL.md %s example: %s", results[i], err_msg(e));
		proto_result_deinit(&res);
	}
	buf_deinit(&doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bad_tasks),
	    cmocka_unit_test(test_limit_numbers),
	    cmocka_unit_test(test_head_of_bad_tasks),
	    cmocka_unit_test(test_bad_sizes),
	    cmocka_unit_test(test_task_minimal),
	    cmocka_unit_test(test_task_full_script),
	    cmocka_unit_test(test_task_function_and_binary),
	    cmocka_unit_test(test_task_to_json_stdin_form),
	    cmocka_unit_test(test_result_round_trip),
	    cmocka_unit_test(test_result_rejected_and_signal),
	    cmocka_unit_test(test_limits_resolve),
	    cmocka_unit_test(test_paths),
	    cmocka_unit_test(test_enums),
	    cmocka_unit_test(test_base64),
	    cmocka_unit_test(test_json),
	    cmocka_unit_test(test_protocol_examples),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
