/* The golden vectors of attest/ (attest/testdata/NN-name/, one hash chain signed with the test
 * key; rewritten with AISP_REGEN_VECTORS=1), and the tamper test of every result field: each
 * property of proto/schemas/result.v1.json has a row in ATTESTATION.md's table of what covers
 * it, and at least one tamper here; changing it must fail the check the table names, or leave
 * verification passing when the table says nothing needs to cover it. A new result field is a
 * schema property, a table row and a tamper row: the test fails until all three exist. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attest/attest.h"
#include "attest/internal.h"
#include "common/buf.h"
#include "common/cleanup.h"
#include "common/err.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "proto/json.h"
#include "proto/proto.h"
#include "tests/unit/attest-fixture.h"

static void read_text(const char *path, buf *b)
{
	_cleanup_err_ err *e = NULL;
	if (read_file_at(AT_FDCWD, path, 16u << 20, b, &e) < 0)
		fail_msg("%s (regenerate with AISP_REGEN_VECTORS=1)", err_msg(e));
}

static char *source_file(const char *rel)
{
	const char *root = getenv("AISP_SOURCE_ROOT");
	return xasprintf("%s/%s", root ? root : ".", rel);
}

/* ---- golden vectors ---- */

static void hexline(buf *out, const char *name, const void *p, size_t n)
{
	char *hex = xmalloc(2 * n + 1);
	hex_encode(p, n, hex);
	buf_appendf(out, "%s %s\n", name, hex);
	free(hex);
}

/* Every intermediate value, one "name value" line each (ATTESTATION.md, "Test vectors"); a
 * value that does not exist (no task, no return value) is empty. */
static void expected_lines(const fx_case *c, const attest_key *k, uint64_t seq, const char *prev,
                           buf *out)
{
	_cleanup_err_ err *e = NULL;
	const proto_result *r = &c->result;
	char d[ATTEST_DIGEST_LEN] = "";
	buf b = BUF_INIT;
	buf_appendf(out, "key_id %s\nsequence %llu\nprevious %s\n", attest_key_id(k),
	            (unsigned long long)seq, prev ? prev : "");
	const char *args = c->has_task && c->task.args_json ? c->task.args_json : "";
	hexline(out, "args_text_hex", args, strlen(args));
	if (c->has_task) {
		attest_input_encoding(&c->task, &b);
		attest_input_digest(&c->task, d);
	}
	hexline(out, "input_encoding_hex", b.data, b.len);
	buf_appendf(out, "input_digest %s\n", d);
	_cleanup_free_ char *rv = attest_return_text(r->output.return_value);
	hexline(out, "return_value_text_hex", rv ? rv : "", rv ? strlen(rv) : 0);
	buf_reset(&b);
	attest_output_encoding(&r->output, &b);
	hexline(out, "output_encoding_hex", b.data, b.len);
	attest_output_digest(&r->output, d);
	buf_appendf(out, "output_digest %s\n", d);
	buf_reset(&b);
	attest_exit_encoding(r->output.status, r->output.exit_code, r->output.signal, &b);
	hexline(out, "exit_encoding_hex", b.data, b.len);
	buf_reset(&b);
	assert_int_equal(attest_environment_encoding(c->env, c->n_env, &b, &e), 0);
	hexline(out, "environment_encoding_hex", b.data, b.len);
	assert_int_equal(attest_environment_digest(c->env, c->n_env, d, &e), 0);
	buf_appendf(out, "environment_digest %s\n", d);
	buf_appendf(out, "execution_digest %s\n", r->execution_digest);
	assert_int_equal(attest_envelope_digest(r->attestation, d, &e), 0);
	buf_appendf(out, "attestation_digest %s\n", d);
	buf_reset(&b);
	size_t len = 0;
	_cleanup_free_ char *stmt = fx_statement(r->attestation, &len);
	attest_pae(ATTEST_PAYLOAD_TYPE, stmt, len, &b);
	hexline(out, "pae_hex", b.data, b.len);
	buf_deinit(&b);
}

static void write_vector(const char *dir, const char *name, const buf *b)
{
	_cleanup_free_ char *path = fx_testdata(dir);
	_cleanup_close_ int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_err_ err *e = NULL;
	if (dfd < 0 || write_file_at(dfd, name, b->data, b->len, 0644, &e) < 0)
		fail_msg("%s/%s: %s", path, name, e ? err_msg(e) : "cannot open");
}

/* The stored vector: the same intermediate values, the same envelope, and it verifies. */
static void check_stored(const fx_case *c, const attest_key *pub, const buf *expected,
                         attest_verifier *chain, fx_checks *chain_checks)
{
	const char *name = c->v->name;
	_cleanup_free_ char *ep = xasprintf("%s/expected.txt", name);
	_cleanup_free_ char *rp = xasprintf("%s/result.json", name);
	_cleanup_free_ char *epath = fx_testdata(ep), *rpath = fx_testdata(rp);
	buf stored = BUF_INIT, doc = BUF_INIT;
	read_text(epath, &stored);
	read_text(rpath, &doc);
	if (strcmp(buf_str(&stored), buf_str(expected)))
		fail_msg("%s/expected.txt differs from what the code computes now", name);
	proto_result pr;
	_cleanup_err_ err *e = NULL;
	if (proto_result_parse(buf_str(&doc), doc.len, &pr, &e) < 0)
		fail_msg("%s/result.json: %s", name, err_msg(e));
	assert_string_equal(pr.attestation, c->result.attestation);
	const proto_task *t = c->has_task ? &c->task : NULL;
	fx_checks checks = {0};
	int ret = attest_verify_result(buf_str(&doc), doc.len, pub, t, fx_record, &checks, &e);
	if (ret != 0)
		fail_msg("%s: %s fails", name, fx_failed(&checks));
	assert_int_equal(fx_verdict(&checks, "input_digest"), t ? ATTEST_PASS : ATTEST_SKIP);
	assert_int_equal(attest_verifier_check(chain, &pr, pub, t, fx_record, chain_checks), 0);
	proto_result_deinit(&pr);
	buf_deinit(&stored);
	buf_deinit(&doc);
}

static void test_golden(void **state)
{
	attest_key *k = fx_test_key();
	bool regen = getenv("AISP_REGEN_VECTORS") && !strcmp(getenv("AISP_REGEN_VECTORS"), "1");
	_cleanup_free_ char *pp = fx_testdata("test-pub.pem");
	attest_key *pub = NULL;
	_cleanup_err_ err *e = NULL;
	assert_int_equal(attest_key_load_public(&pub, pp, &e), 0);
	char *prev = NULL;
	attest_verifier *chain = attest_verifier_new();
	fx_checks chain_checks = {0};
	for (size_t i = 0; i < fx_n_vectors; i++) {
		fx_case c;
		fx_case_init(&c, &fx_vectors[i]);
		char *digest = fx_sign(k, &c, prev, i + 1);
		buf expected = BUF_INIT, doc = BUF_INIT;
		expected_lines(&c, k, i + 1, prev, &expected);
		if (regen) {
			proto_result_to_json(&c.result, &doc);
			buf_append_str(&doc, "\n");
			write_vector(c.v->name, "result.json", &doc);
			write_vector(c.v->name, "expected.txt", &expected);
		}
		check_stored(&c, pub, &expected, chain, &chain_checks);
		buf_deinit(&expected);
		buf_deinit(&doc);
		fx_case_deinit(&c);
		free(prev);
		prev = digest;
	}
	/* The vectors are one node's chain, in directory order. */
	assert_string_equal(fx_failed(&chain_checks), "");
	assert_int_equal(fx_verdict(&chain_checks, "chain"), ATTEST_PASS);
	free(prev);
	attest_verifier_free(chain);
	attest_key_free(pub);
	attest_key_free(k);
}

/* ---- the results shown in PROTOCOL.md ---- */

/* The JSON block after "<!-- example:NAME -->" in text, in canonical form (caller frees). */
static char *doc_example(const char *text, const char *name)
{
	_cleanup_free_ char *marker = xasprintf("<!-- example:%s -->", name);
	const char *p = strstr(text, marker);
	if (!p || !(p = strstr(p, "```json\n")))
		fail_msg("PROTOCOL.md has no example:%s", name);
	p += 8;
	const char *end = strstr(p, "\n```");
	_cleanup_yajl_val_ yajl_val v = NULL;
	_cleanup_err_ err *e = NULL;
	if (!end || proto_json_parse(p, (size_t)(end - p), &v, &e) < 0)
		fail_msg("PROTOCOL.md example:%s is not JSON: %s", name, e ? err_msg(e) : "");
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	proto_json_gen_value(g, v);
	buf b = BUF_INIT;
	proto_json_gen_take_valid(g, &b);
	return buf_steal(&b, NULL);
}

/* The signed example is of the example task shown above it. */
static void check_example_task(const char *md)
{
	_cleanup_free_ char *task = doc_example(md, "task");
	_cleanup_free_ char *tp = fx_testdata("protocol-result/task.json");
	buf stored = BUF_INIT;
	read_text(tp, &stored);
	if (strncmp(task, buf_str(&stored), strlen(task)) || strlen(task) + 1 != stored.len)
		fail_msg(
		    "PROTOCOL.md example:task is not attest/testdata/protocol-result/task.json");
	buf_deinit(&stored);
}

/* proto/PROTOCOL.md's example results are real: signed with the test key, as stored in
 * attest/testdata/protocol-*, and they verify (the first against the example task). */
static void test_protocol_examples(void **state)
{
	static const char *const blocks[] = {"result", "result-rejected"};
	attest_key *k = fx_test_key();
	bool regen = getenv("AISP_REGEN_VECTORS") && !strcmp(getenv("AISP_REGEN_VECTORS"), "1");
	_cleanup_free_ char *md_path = source_file("proto/PROTOCOL.md");
	buf md = BUF_INIT;
	read_text(md_path, &md);
	check_example_task(buf_str(&md));
	char *prev =
	    xstrdup("sha256:5d2bd4e1a6b1e3f4c9a0d7e8f1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e");
	for (size_t i = 0; i < fx_n_examples; i++) {
		fx_case c;
		fx_case_init(&c, &fx_examples[i]);
		char *digest = fx_sign(k, &c, prev, 41 + i);
		buf doc = BUF_INIT, stored = BUF_INIT;
		proto_result_to_json(&c.result, &doc);
		buf_append_str(&doc, "\n");
		if (regen)
			write_vector(c.v->name, "result.json", &doc);
		_cleanup_free_ char *rp = xasprintf("%s/result.json", c.v->name);
		_cleanup_free_ char *rpath = fx_testdata(rp);
		read_text(rpath, &stored);
		if (strcmp(buf_str(&stored), buf_str(&doc)))
			fail_msg("%s/result.json differs from what the code signs now", c.v->name);
		_cleanup_free_ char *shown = doc_example(buf_str(&md), blocks[i]);
		if (strncmp(shown, buf_str(&stored), stored.len - 1) ||
		    strlen(shown) != stored.len - 1)
			fail_msg(
			    "PROTOCOL.md example:%s is not attest/testdata/%s/result.json: paste "
			    "it there (pretty-printed)",
			    blocks[i], c.v->name);
		fx_checks checks = {0};
		_cleanup_err_ err *e = NULL;
		int ret = attest_verify_result(shown, strlen(shown), k, c.has_task ? &c.task : NULL,
		                               fx_record, &checks, &e);
		if (ret != 0)
			fail_msg("PROTOCOL.md example:%s: %s fails", blocks[i], fx_failed(&checks));
		buf_deinit(&doc);
		buf_deinit(&stored);
		fx_case_deinit(&c);
		free(prev);
		prev = digest;
	}
	free(prev);
	buf_deinit(&md);
	attest_key_free(k);
}

/* ---- the fields of a result and what covers them ---- */

/* Property paths of the schema: "usage", "usage.wall_ms", "files[].path", ... */
static void schema_paths(yajl_val schema, const char *prefix, char **out, size_t *n)
{
	yajl_val props = proto_json_get(schema, "properties");
	for (size_t i = 0; props && i < props->u.object.len; i++) {
		_cleanup_free_ char *path = xasprintf("%s%s", prefix, props->u.object.keys[i]);
		yajl_val sub = props->u.object.values[i];
		assert_true(*n < 128);
		out[(*n)++] = xstrdup(path);
		_cleanup_free_ char *dot = xasprintf("%s.", path);
		_cleanup_free_ char *item = xasprintf("%s[].", path);
		schema_paths(sub, dot, out, n);
		schema_paths(proto_json_get(sub, "items"), item, out, n);
	}
}

typedef struct doc_row {
	char *field; /* result field path */
	char *check; /* the check that fails when it changes; NULL: none (unsigned) */
} doc_row;

/* The table after "<!-- result-fields -->" in ATTESTATION.md: | `field` | covered by | check |
 * with the check as `name` or "none". */
static size_t doc_rows(const char *md, doc_row *rows, size_t max)
{
	const char *p = strstr(md, "<!-- result-fields -->");
	assert_non_null(p);
	p = strchr(p, '\n') + 1;
	size_t n = 0;
	for (int line = 0; *p == '|' || line == 0; line++) {
		const char *end = strchr(p, '\n');
		_cleanup_free_ char *l = xstrndup(p, end ? (size_t)(end - p) : strlen(p));
		p = end ? end + 1 : p + strlen(p);
		if (line < 2)
			continue; /* the header and the separator */
		char *cols[4] = {NULL};
		char *save = NULL, *c = strtok_r(l, "|", &save);
		for (int k = 0; c && k < 4; k++, c = strtok_r(NULL, "|", &save))
			cols[k] = c;
		assert_non_null(cols[2]);
		char *f = strchr(cols[0], '`'), *ck = strchr(cols[2], '`');
		assert_non_null(f);
		assert_true(n < max);
		rows[n].field = xstrndup(f + 1, strcspn(f + 1, "`"));
		rows[n].check = ck ? xstrndup(ck + 1, strcspn(ck + 1, "`")) : NULL;
		if (!ck && !strstr(cols[2], "none"))
			fail_msg("row %s: the check column is neither `name` nor none",
			         rows[n].field);
		n++;
	}
	return n;
}

/* ---- tampering with a result document as JSON ---- */

typedef enum op { SET, DEL } op;

typedef struct tamper {
	const char *field;  /* a path as in the table */
	const char *vector; /* the vector whose result is changed */
	op op;
	const char *json; /* SET: the new value */
} tamper;

/* 64 zero bytes: a well-formed signature that is wrong. */
#define ZERO_SIG                                                                                   \
	"\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" \
	"="                                                                                        \
	"=\""
#define OTHER_DIGEST "\"sha256:00000000000000000000000000000000000000000000000000000000000000ff\""

static const tamper tampers[] = {
    {"v", "01-basic", DEL, NULL},
    {"id", "01-basic", SET, "\"golden-2\""},
    {"status", "01-basic", SET, "\"error\""},
    {"exit_code", "01-basic", SET, "1"},
    {"exit_code", "06-binary", SET, "0"},
    {"signal", "01-basic", SET, "9"},
    {"signal", "06-binary", SET, "null"},
    {"stdout", "01-basic", SET, "\"forged\\n\""},
    {"stdout_b64", "06-binary", SET, "\"Zm9yZ2Vk\""},
    {"stderr", "01-basic", SET, "\"\""},
    {"stderr_b64", "06-binary", SET, "\"AA==\""},
    {"stdout_truncated", "01-basic", SET, "true"},
    {"stderr_truncated", "01-basic", SET, "true"},
    {"files", "01-basic", SET, "[]"},
    {"files[].path", "01-basic", SET, "\"other.txt\""},
    {"files[].content_b64", "01-basic", SET, "\"YWxsIGV2aWwK\""}, /* same length, 9 bytes */
    {"files[].size", "01-basic", SET, "10"},
    {"files_truncated", "01-basic", SET, "true"},
    {"return_value", "01-basic", SET, "43"},
    {"return_value", "05-null-return", DEL, NULL},
    {"error", "01-basic", SET, "\"your account is suspended\""},
    {"error", "07-function-error", SET, "\"ValueError: something else\""},
    {"error", "07-function-error", DEL, NULL},
    {"error", "08-rejected", SET, "\"field \\\"code\\\" is required\""},
    {"output", "01-basic", SET, "\"forged\""},
    {"steps", "01-basic", SET, "[]"},
    {"failed_step", "01-basic", SET, "0"},
    {"cost", "01-basic", SET, "{\"unit\":\"micro_usd\",\"total\":0,\"breakdown\":[]}"},
    {"logs_preview", "01-basic", SET, "\"forged\""},
    {"logs", "01-basic", SET, "[{\"level\":\"info\",\"message\":\"forged\",\"seq\":1}]"},
    {"logs_truncated", "01-basic", SET, "true"},
    {"output_blobs", "01-basic", SET, "[" OTHER_DIGEST "]"},
    {"output_blobs_truncated", "01-basic", SET, "true"},
    {"proxy", "01-basic", SET, "{\"services\":[\"x\"],\"calls\":[],\"head\":null,\"refused\":0}"},
    {"usage", "01-basic", DEL, NULL},
    {"usage.wall_ms", "01-basic", SET, "1"},
    {"usage.cpu_ms", "01-basic", SET, "1"},
    {"usage.memory_peak_bytes", "01-basic", SET, "1"},
    {"node", "01-basic", SET, "\"node-b\""},
    {"runtime", "01-basic", SET, "\"runc\""},
    {"image_digest", "01-basic", SET, OTHER_DIGEST},
    {"received_at_ms", "01-basic", SET, "1"},
    {"started_at_ms", "01-basic", SET, "1"},
    {"finished_at_ms", "01-basic", SET, "1"},
    {"attempts", "01-basic", SET, "2"},
    {"execution_digest", "01-basic", SET, OTHER_DIGEST},
    {"execution_digest", "01-basic", DEL, NULL},
    {"attestation", "01-basic", DEL, NULL},
    {"attestation.payloadType", "01-basic", SET, "\"application/json\""},
    {"attestation.payload", "01-basic", SET, "\"e30=\""},
    {"attestation.signatures", "01-basic", SET, "[]"},
    {"attestation.signatures[].keyid", "01-basic", SET, OTHER_DIGEST},
    {"attestation.signatures[].sig", "01-basic", SET, ZERO_SIG},
    {"sealed", "01-basic", SET, "\"YWdl\""},
};

/* The object holding the last segment of path (segments ending in [] step into element 0). */
static yajl_val parent_of(yajl_val root, const char *path, const char **last)
{
	yajl_val cur = root;
	for (;;) {
		size_t n = strcspn(path, ".");
		if (!path[n]) {
			*last = path;
			return cur;
		}
		_cleanup_free_ char *seg = xstrndup(path, n);
		bool arr = n > 2 && !strcmp(seg + n - 2, "[]");
		if (arr)
			seg[n - 2] = '\0';
		cur = proto_json_get(cur, seg);
		if (arr)
			cur =
			    YAJL_IS_ARRAY(cur) && cur->u.array.len ? cur->u.array.values[0] : NULL;
		if (!YAJL_IS_OBJECT(cur))
			fail_msg("no object at %s in %s", seg, path);
		path += n + 1;
	}
}

static void obj_del(yajl_val obj, const char *key)
{
	for (size_t i = 0; i < obj->u.object.len; i++) {
		if (strcmp(obj->u.object.keys[i], key))
			continue;
		free((char *)obj->u.object.keys[i]);
		yajl_tree_free(obj->u.object.values[i]);
		size_t rest = obj->u.object.len - i - 1;
		memmove(&obj->u.object.keys[i], &obj->u.object.keys[i + 1], rest * sizeof(char *));
		memmove(&obj->u.object.values[i], &obj->u.object.values[i + 1],
		        rest * sizeof(yajl_val));
		obj->u.object.len--;
		return;
	}
	fail_msg("no key %s to delete", key);
}

static void obj_set(yajl_val obj, const char *key, yajl_val v)
{
	for (size_t i = 0; i < obj->u.object.len; i++)
		if (!strcmp(obj->u.object.keys[i], key)) {
			yajl_tree_free(obj->u.object.values[i]);
			obj->u.object.values[i] = v;
			return;
		}
	size_t n = obj->u.object.len;
	obj->u.object.keys = xreallocarray(obj->u.object.keys, n + 1, sizeof(char *));
	obj->u.object.values = xreallocarray(obj->u.object.values, n + 1, sizeof(yajl_val));
	obj->u.object.keys[n] = xstrdup(key);
	obj->u.object.values[n] = v;
	obj->u.object.len = n + 1;
}

/* The signed result of a vector, changed as t says, as a document. */
static void tampered_document(const tamper *t, const attest_key *k, fx_case *c, buf *out)
{
	free(fx_sign(k, c, NULL, 1));
	buf doc = BUF_INIT;
	proto_result_to_json(&c->result, &doc);
	_cleanup_yajl_val_ yajl_val root = NULL;
	_cleanup_err_ err *e = NULL;
	assert_int_equal(proto_json_parse(buf_str(&doc), doc.len, &root, &e), 0);
	buf_deinit(&doc);
	const char *last = NULL;
	yajl_val obj = parent_of(root, t->field, &last);
	if (t->op == DEL) {
		obj_del(obj, last);
	} else {
		yajl_val v = NULL;
		if (proto_json_parse(t->json, strlen(t->json), &v, &e) < 0)
			fail_msg("tamper %s: %s", t->field, err_msg(e));
		obj_set(obj, last, v);
	}
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	proto_json_gen_value(g, root);
	proto_json_gen_take_valid(g, out);
}

static const doc_row *row_for(const doc_row *rows, size_t n, const char *field)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(rows[i].field, field))
			return &rows[i];
	return NULL;
}

/* One tamper: the check the table names fails (`result`: the document is refused as not a
 * result), or, for a field nothing needs to cover, verification still passes. */
static void run_tamper(const tamper *t, const doc_row *row, const attest_key *k)
{
	fx_case c;
	fx_case_init(&c, fx_vector_named(t->vector));
	buf doc = BUF_INIT;
	tampered_document(t, k, &c, &doc);
	fx_checks checks = {0};
	_cleanup_err_ err *e = NULL;
	int ret = attest_verify_result(buf_str(&doc), doc.len, k, c.has_task ? &c.task : NULL,
	                               fx_record, &checks, &e);
	const char *how = t->op == DEL ? "removed" : t->json;
	if (!row->check && ret != 0)
		fail_msg("%s (%s) %s: fails %s, but the table says nothing covers it", t->field,
		         t->vector, how, ret < 0 ? "to parse" : fx_failed(&checks));
	else if (row->check && !strcmp(row->check, "result") && ret != -1)
		fail_msg("%s (%s) %s: the document is not refused", t->field, t->vector, how);
	else if (row->check && strcmp(row->check, "result") &&
	         (ret != 1 || fx_verdict(&checks, row->check) != ATTEST_FAIL))
		fail_msg("%s (%s) %s: check %s does not fail (failed: \"%s\", return %d%s%s)",
		         t->field, t->vector, how, row->check, fx_failed(&checks), ret,
		         e ? ": " : "", e ? err_msg(e) : "");
	buf_deinit(&doc);
	fx_case_deinit(&c);
}

static void test_tamper_every_field(void **state)
{
	_cleanup_free_ char *schema_path = source_file("proto/schemas/result.v1.json");
	_cleanup_free_ char *md_path = source_file("attest/ATTESTATION.md");
	buf sb = BUF_INIT, mb = BUF_INIT;
	read_text(schema_path, &sb);
	read_text(md_path, &mb);
	_cleanup_yajl_val_ yajl_val schema = NULL;
	_cleanup_err_ err *e = NULL;
	assert_int_equal(proto_json_parse(buf_str(&sb), sb.len, &schema, &e), 0);
	char *paths[128];
	size_t n_paths = 0;
	schema_paths(schema, "", paths, &n_paths);
	doc_row rows[128];
	size_t n_rows = doc_rows(buf_str(&mb), rows, ARRAY_SIZE(rows));
	for (size_t i = 0; i < n_paths; i++)
		if (!row_for(rows, n_rows, paths[i]))
			fail_msg("result field %s (schema) has no row in ATTESTATION.md", paths[i]);
	attest_key *k = fx_test_key();
	for (size_t i = 0; i < n_rows; i++) {
		bool in_schema = false, tampered = false;
		for (size_t j = 0; j < n_paths; j++)
			in_schema |= !strcmp(paths[j], rows[i].field);
		for (size_t j = 0; j < ARRAY_SIZE(tampers); j++)
			tampered |= !strcmp(tampers[j].field, rows[i].field);
		if (!in_schema)
			fail_msg("ATTESTATION.md row %s is not in the schema", rows[i].field);
		if (!tampered)
			fail_msg("result field %s has no tamper row in this test", rows[i].field);
	}
	for (size_t j = 0; j < ARRAY_SIZE(tampers); j++) {
		const doc_row *row = row_for(rows, n_rows, tampers[j].field);
		if (!row)
			fail_msg("tamper row %s is not in ATTESTATION.md", tampers[j].field);
		run_tamper(&tampers[j], row, k);
	}
	attest_key_free(k);
	for (size_t i = 0; i < n_paths; i++)
		free(paths[i]);
	for (size_t i = 0; i < n_rows; i++) {
		free(rows[i].field);
		free(rows[i].check);
	}
	buf_deinit(&sb);
	buf_deinit(&mb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_golden),
	    cmocka_unit_test(test_protocol_examples),
	    cmocka_unit_test(test_tamper_every_field),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
