/* Unit tests for sealed tasks (attest/sealed*.c, the sealed fields of proto/; attest/SEALED.md):
 * parsing and opening the age parts, messages that never quote plaintext, the sealed result
 * and its statement, the buyer's verification and every tamper case failing the check that
 * names it, the size bound, and the golden vectors in attest/testdata/sealed/ (regenerated with
 * AISP_REGEN_VECTORS=1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attest/attest.h"
#include "attest/internal.h" /* attest_part_digest */
#include "common/buf.h"
#include "common/cleanup.h"
#include "common/err.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "proto/json.h"
#include "proto/proto.h"

#define CANARY "CANARY-7f3a9c"

static const proto_env fixture_env[] = {
    {(char *)"runtime.name", (char *)"runsc"},
    {(char *)"limits.memory_bytes", (char *)"268435456"},
    {(char *)"cwd", (char *)"/workspace"},
    {(char *)"network", (char *)"none"},
};

typedef struct fx {
	attest_age_identity *node, *buyer, *stranger;
	attest_age_recipient node_r, buyer_r;
	char buyer_text[ATTEST_AGE_RECIPIENT_LEN + 1];
	attest_key *key, *other_key;
} fx;

static fx F;

static int fx_setup(void **state)
{
	assert_int_equal(attest_age_identity_generate(&F.node, NULL), 0);
	assert_int_equal(attest_age_identity_generate(&F.buyer, NULL), 0);
	assert_int_equal(attest_age_identity_generate(&F.stranger, NULL), 0);
	attest_age_identity_recipient(F.node, &F.node_r);
	attest_age_identity_recipient(F.buyer, &F.buyer_r);
	attest_age_recipient_format(&F.buyer_r, F.buyer_text);
	assert_int_equal(attest_key_generate(&F.key, NULL), 0);
	assert_int_equal(attest_key_generate(&F.other_key, NULL), 0);
	return 0;
}

static int fx_teardown(void **state)
{
	attest_age_identity_free(F.node);
	attest_age_identity_free(F.buyer);
	attest_age_identity_free(F.stranger);
	attest_key_free(F.key);
	attest_key_free(F.other_key);
	return 0;
}

/* base64 of the age file of text for r. */
static char *seal_b64(const char *text, const attest_age_recipient *r)
{
	uint8_t *c = NULL;
	size_t n = 0;
	assert_int_equal(attest_age_encrypt(text, strlen(text), r, 1, false, &c, &n, NULL), 0);
	char *b = proto_b64_encode(c, n);
	free(c);
	return b;
}

/* A sealed task: code, stdin, args and files sealed to r; extra fields appended. */
static char *sealed_task(const attest_age_recipient *r, const char *extra)
{
	_cleanup_free_ char *code = seal_b64("import sys\nprint(sys.stdin.read(), open('in/"
	                                     "s.txt').read())\n# " CANARY,
	                                     r);
	_cleanup_free_ char *in = seal_b64("stdin " CANARY, r);
	_cleanup_free_ char *args = seal_b64("[\"--flag\",\"" CANARY "\"]", r);
	_cleanup_free_ char *files = seal_b64("[{\"path\":\"in/s.txt\",\"content_b64\":"
	                                      "\"c2VjcmV0\"}]",
	                                      r);
	return xasprintf("{\"id\":\"s1\",\"lang\":\"python\",\"code_age\":\"%s\","
	                 "\"stdin_age\":\"%s\",\"args_age\":\"%s\",\"files_age\":\"%s\","
	                 "\"reply_to\":\"%s\"%s%s}",
	                 code, in, args, files, F.buyer_text, extra ? "," : "", extra ? extra : "");
}

static void parse_ok(const char *json, proto_task *t)
{
	_cleanup_err_ err *e = NULL;
	if (proto_task_parse_entry(json, strlen(json), t, NULL, &e) < 0)
		fail_msg("%s", err_msg(e));
}

static void expect_parse_error(const char *json, const char *msg)
{
	proto_task t;
	_cleanup_err_ err *e = NULL;
	assert_int_equal(proto_task_parse_entry(json, strlen(json), &t, NULL, &e), -1);
	if (!strstr(err_msg(e), msg))
		fail_msg("expected \"%s\" in \"%s\"", msg, err_msg(e));
}

/* ---- parsing and opening ---- */

static void test_open(void **state)
{
	_cleanup_free_ char *json = sealed_task(&F.node_r, NULL);
	proto_task t;
	parse_ok(json, &t);
	assert_true(proto_task_sealed_pending(&t));
	assert_null(t.code);
	assert_int_equal(t.sealed->exec_mode, PROTO_EXEC_SEALED);
	assert_string_equal(t.sealed->reply_to, F.buyer_text);
	/* Serialised, a sealed task carries its ciphertexts, never plaintext. */
	buf out = BUF_INIT;
	proto_task_to_json(&t, &out);
	assert_non_null(strstr(buf_str(&out), "\"code_age\":"));
	assert_null(strstr(buf_str(&out), "\"code\":"));
	_cleanup_err_ err *e = NULL;
	assert_int_equal(attest_sealed_open(&t, &F.node, 1, &e), 0);
	assert_false(proto_task_sealed_pending(&t));
	assert_non_null(strstr(t.code, "# " CANARY));
	assert_memory_equal(t.stdin_data, "stdin " CANARY, t.stdin_len);
	assert_int_equal(t.argc, 2);
	assert_string_equal(t.argv[1], CANARY);
	assert_int_equal(t.n_files, 1);
	assert_string_equal(t.files[0].path, "in/s.txt");
	assert_memory_equal(t.files[0].data, "secret", 6);
	buf_reset(&out);
	proto_task_to_json(&t, &out);
	assert_null(strstr(buf_str(&out), CANARY));
	assert_null(strstr(buf_str(&out), "in/s.txt"));
	/* Re-parsed, the document is the same sealed task. */
	proto_task t2;
	parse_ok(buf_str(&out), &t2);
	assert_memory_equal(t2.sealed->age[PROTO_SEALED_CODE], t.sealed->age[PROTO_SEALED_CODE],
	                    t.sealed->age_len[PROTO_SEALED_CODE]);
	proto_task_deinit(&t2);
	buf_deinit(&out);
	proto_task_deinit(&t);
}

static void expect_open_error(const char *json, attest_age_identity *id, const char *msg,
                              const char *private_msg)
{
	proto_task t;
	parse_ok(json, &t);
	_cleanup_err_ err *e = NULL;
	assert_true(attest_sealed_open(&t, &id, 1, &e) < 0);
	if (!strstr(err_msg(e), msg))
		fail_msg("expected \"%s\" in \"%s\"", msg, err_msg(e));
	assert_null(strstr(err_msg(e), CANARY));
	if (private_msg &&
	    (!t.sealed->private_error || !strstr(t.sealed->private_error, private_msg)))
		fail_msg("expected \"%s\" in the private error \"%s\"", private_msg,
		         t.sealed->private_error ? t.sealed->private_error : "(none)");
	assert_true(proto_task_sealed_pending(&t));
	proto_task_deinit(&t);
}

static void test_open_errors(void **state)
{
	_cleanup_free_ char *json = sealed_task(&F.node_r, NULL);
	expect_open_error(json, F.stranger,
	                  "sealed part code_age: age: no identity matches any recipient stanza",
	                  NULL);
	proto_task other;
	parse_ok(json, &other);
	assert_int_equal(attest_sealed_open(&other, &F.stranger, 1, NULL), -2); /* not for us */
	proto_task_deinit(&other);
	/* A chunk changed in transit: its tag fails. */
	_cleanup_free_ char *code = seal_b64("print(1)", &F.node_r);
	uint8_t *raw = NULL;
	size_t n = 0;
	assert_int_equal(proto_b64_decode(code, strlen(code), &raw, &n), 0);
	raw[n - 1] ^= 1;
	_cleanup_free_ char *bad = proto_b64_encode(raw, n);
	free(raw);
	_cleanup_free_ char *j2 = xasprintf("{\"id\":\"s\",\"lang\":\"python\",\"code_age\":\"%s\","
	                                    "\"reply_to\":\"%s\"}",
	                                    bad, F.buyer_text);
	expect_open_error(j2, F.node, "sealed part code_age: age: payload: chunk 1 failed", NULL);
	/* A decrypted part that is invalid: the public message never quotes it. */
	_cleanup_free_ char *files =
	    seal_b64("[{\"path\":\"../" CANARY "\",\"content_b64\":\"\"}]", &F.node_r);
	_cleanup_free_ char *j3 = xasprintf("{\"id\":\"s\",\"lang\":\"python\",\"code\":\"x\","
	                                    "\"files_age\":\"%s\",\"reply_to\":\"%s\"}",
	                                    files, F.buyer_text);
	expect_open_error(j3, F.node,
	                  "sealed part files_age: the decrypted files is not valid (the reason is "
	                  "in the result sealed to reply_to)",
	                  "files[0].path \"../" CANARY "\" is not a valid relative path");
	_cleanup_free_ char *args = seal_b64("{\"a\":1} trailing", &F.node_r);
	_cleanup_free_ char *j4 = xasprintf("{\"id\":\"s\",\"lang\":\"python\",\"code\":\"x\","
	                                    "\"args_age\":\"%s\",\"reply_to\":\"%s\"}",
	                                    args, F.buyer_text);
	expect_open_error(j4, F.node, "sealed part args_age: the decrypted args", "not JSON");
	_cleanup_free_ char *c2 = seal_b64("\x80 not text", &F.node_r);
	_cleanup_free_ char *j5 = xasprintf("{\"id\":\"s\",\"lang\":\"python\",\"code_age\":\"%s\","
	                                    "\"reply_to\":\"%s\"}",
	                                    c2, F.buyer_text);
	expect_open_error(j5, F.node, "the decrypted code", "UTF-8 text without NUL");
	/* reply_to with a broken checksum. */
	char broken[ATTEST_AGE_RECIPIENT_LEN + 1];
	memcpy(broken, F.buyer_text, sizeof(broken));
	broken[10] = broken[10] == 'q' ? 'p' : 'q';
	_cleanup_free_ char *j6 = xasprintf("{\"id\":\"s\",\"lang\":\"python\",\"code_age\":\"%s\","
	                                    "\"reply_to\":\"%s\"}",
	                                    code, broken);
	expect_open_error(j6, F.node, "field \"reply_to\":", NULL);
}

static void test_parse_errors(void **state)
{
	_cleanup_free_ char *c = seal_b64("print(1)", &F.node_r);
	const char *r = F.buyer_text;
	const struct {
		const char *fmt, *msg;
	} cases[] = {
	    {"\"code\":\"x\",\"code_age\":\"@C\",\"reply_to\":\"@R\"",
	     "fields \"code\" and \"code_age\" are mutually exclusive"},
	    {"\"code\":\"x\",\"stdin\":\"\",\"stdin_age\":\"@C\",\"reply_to\":\"@R\"",
	     "fields \"stdin\" and \"stdin_age\" are mutually exclusive"},
	    {"\"code_age\":\"@C\"", "field \"code_age\" needs \"reply_to\""},
	    {"\"code\":\"x\",\"exec_mode\":\"sealed\",\"reply_to\":\"@R\"",
	     "exec_mode sealed needs the code as \"code_age\""},
	    {"\"code_age\":\"@C\",\"exec_mode\":\"source\",\"reply_to\":\"@R\"",
	     "exec_mode source needs the code in the clear"},
	    {"\"code\":\"x\",\"exec_mode\":\"open\"", "field \"exec_mode\" must be one of sealed"},
	    {"\"code\":\"x\",\"reply_to\":\"age1xyz\"", "field \"reply_to\" must be an age X25519"},
	    {"\"code_age\":\"@C!\",\"reply_to\":\"@R\"", "field \"code_age\" is not valid base64"},
	    {"\"code_age\":\"\",\"reply_to\":\"@R\"", "field \"code_age\" is empty"},
	    {"\"code_age\":5,\"reply_to\":\"@R\"", "field \"code_age\" must be a string"},
	    {"\"reply_to\":\"@R\"", "missing field \"code\""},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		buf b = BUF_INIT;
		buf_append_str(&b, "{\"id\":\"s\",\"lang\":\"python\",");
		for (const char *p = cases[i].fmt; *p; p++) {
			if (p[0] == '@' && (p[1] == 'C' || p[1] == 'R')) {
				buf_append_str(&b, p[1] == 'C' ? c : r);
				p++;
			} else {
				buf_append(&b, p, 1);
			}
		}
		buf_append_str(&b, "}");
		expect_parse_error(buf_str(&b), cases[i].msg);
		buf_deinit(&b);
	}
	/* reply_to alone: a clear task whose result is sealed. */
	_cleanup_free_ char *only =
	    xasprintf("{\"id\":\"s\",\"lang\":\"python\",\"code\":\"x\",\"reply_to\":\"%s\"}", r);
	proto_task t;
	parse_ok(only, &t);
	assert_false(proto_task_sealed_pending(&t));
	assert_int_equal(t.sealed->exec_mode, PROTO_EXEC_SOURCE);
	proto_task_deinit(&t);
}

/* ---- results ---- */

static void fixture_output(proto_output *o, const char *tag)
{
	proto_output_init(o);
	o->status = PROTO_STATUS_OK;
	o->exit_code = 0;
	buf_appendf(&o->out, "stdout %s " CANARY "\n", tag);
	buf_append_str(&o->err, "warn\n");
	o->files = xcalloc(1, sizeof(proto_file));
	o->files[0] = (proto_file){xstrdup("r.txt"), (uint8_t *)xstrdup("file " CANARY), 11 + 6};
	o->files[0].len = strlen((char *)o->files[0].data);
	o->n_files = 1;
}

static void fixture_result(proto_result *r, const char *id, const proto_output *o)
{
	proto_result_init(r);
	r->id = (char *)id;
	r->output = *o;
	r->usage = (proto_usage){120, 80, 1 << 20};
	r->node_id = (char *)"node-1";
	r->runtime = (char *)"runsc";
	r->image_digest =
	    (char *)"sha256:"
	            "abababababababababababababababababababababababababababababababab";
	r->received_ms = 1700000000000;
	r->started_ms = 1700000000010;
	r->finished_ms = 1700000000130;
	r->attempts = 1;
}

/* Seals and signs the result of t (opened) as a node would, with cost (borrowed) when not
 * NULL and, when pub_total >= 0, a public cost total other than the sealed one (a dishonest
 * node); returns the public document. */
static char *sealed_result_cost(const proto_task *t, const proto_output *o, const attest_key *k,
                                proto_cost *cost, int64_t pub_total)
{
	proto_result real, pub;
	fixture_result(&real, t->id, o);
	real.cost = cost;
	attest_sealed_out so;
	_cleanup_err_ err *e = NULL;
	if (attest_sealed_result(t, &real, fixture_env, ARRAY_SIZE(fixture_env), &pub, &so, &e) < 0)
		fail_msg("%s", err_msg(e));
	if (pub_total >= 0)
		pub.cost->total = pub_total;
	proto_limits lim = {.memory_bytes = 268435456};
	attest_claim c = {.task = t,
	                  .result = &pub,
	                  .limits = &lim,
	                  .env = fixture_env,
	                  .n_env = ARRAY_SIZE(fixture_env),
	                  .previous = "",
	                  .sequence = 1,
	                  .sealed = &so};
	char *exec = (char *)"unset";
	if (attest_sign(k, &c, &pub.attestation, &exec, NULL, &e) < 0)
		fail_msg("%s", err_msg(e));
	assert_null(exec);
	buf b = BUF_INIT;
	proto_result_to_json(&pub, &b);
	proto_result_deinit(&pub);
	return buf_steal(&b, NULL);
}

static char *sealed_result_json(const proto_task *t, const proto_output *o, const attest_key *k)
{
	return sealed_result_cost(t, o, k, NULL, -1);
}

typedef struct checks {
	char names[32][32];
	attest_sealed_verdict v[32];
	char details[32][512];
	size_t n;
} checks;

static void collect(void *ud, const char *name, attest_sealed_verdict v, const char *detail)
{
	checks *c = ud;
	assert_true(c->n < 32);
	snprintf(c->names[c->n], 32, "%s", name);
	snprintf(c->details[c->n], 512, "%s", detail ? detail : "");
	c->v[c->n++] = v;
}

static attest_sealed_verdict verdict(const checks *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->names[i], name))
			return c->v[i];
	fail_msg("no check %s", name);
	return ATTEST_SEALED_SKIP;
}

static int verify(const char *json, const attest_key *k, attest_age_identity *id,
                  const proto_task *sent, const proto_task *plain, checks *c, proto_result *inner)
{
	memset(c, 0, sizeof(*c));
	attest_sealed_verify_opts o = {.node_key = k,
	                               .ids = id ? &id : NULL,
	                               .n_ids = id ? 1 : 0,
	                               .sealed_task = sent,
	                               .plain_task = plain};
	_cleanup_err_ err *e = NULL;
	int rc = attest_sealed_verify(json, strlen(json), &o, collect, c, inner, &e);
	assert_int_not_equal(rc, -1);
	return rc;
}

static void dump(const checks *c)
{
	for (size_t i = 0; i < c->n; i++)
		print_message("# %s %d %s\n", c->names[i], c->v[i], c->details[i]);
}

/* The plaintext version of sealed_task() (for the input check). */
static void plain_task(proto_task *t)
{
	const char *json = "{\"id\":\"s1\",\"lang\":\"python\",\"code\":\"import sys\\nprint(sys."
	                   "stdin.read(), open('in/s.txt').read())\\n# " CANARY "\","
	                   "\"stdin\":\"stdin " CANARY "\",\"args\":[\"--flag\",\"" CANARY "\"],"
	                   "\"files\":[{\"path\":\"in/s.txt\",\"content_b64\":\"c2VjcmV0\"}]}";
	parse_ok(json, t);
}

static void test_result_roundtrip(void **state)
{
	_cleanup_free_ char *json = sealed_task(&F.node_r, NULL);
	proto_task t, plain;
	parse_ok(json, &t);
	assert_int_equal(attest_sealed_open(&t, &F.node, 1, NULL), 0);
	plain_task(&plain);
	proto_output o;
	fixture_output(&o, "a");
	_cleanup_free_ char *res = sealed_result_json(&t, &o, F.key);
	/* Nothing of the plaintext is in the public document, nor a plaintext digest. */
	assert_null(strstr(res, CANARY));
	char d[ATTEST_DIGEST_LEN];
	attest_output_digest(&o, d);
	assert_null(strstr(res, d + 7));
	attest_input_digest(&t, d);
	assert_null(strstr(res, d + 7));
	checks c;
	proto_result inner;
	proto_task sent;
	parse_ok(json, &sent);
	if (verify(res, F.key, F.buyer, &sent, &plain, &c, &inner) != 0) {
		dump(&c);
		fail_msg("verification failed");
	}
	static const char *const all[] = {
	    "signature",          "key_id",   "statement", "sealed_result", "metadata",
	    "environment_digest", "received", "decrypt",   "document",      "outputs",
	    "commitments",        "output",   "exit",      "input",         "execution"};
	assert_int_equal(c.n, ARRAY_SIZE(all));
	for (size_t i = 0; i < ARRAY_SIZE(all); i++) {
		assert_string_equal(c.names[i], all[i]);
		assert_int_equal(c.v[i], ATTEST_SEALED_PASS);
	}
	/* The buyer reads the real output. */
	assert_memory_equal(inner.output.out.data, o.out.data, o.out.len);
	assert_int_equal(inner.output.exit_code, 0);
	assert_string_equal(inner.output.files[0].path, "r.txt");
	proto_result_deinit(&inner);
	/* Without the identity and the tasks, the public part still verifies. */
	assert_int_equal(verify(res, F.key, NULL, NULL, NULL, &c, NULL), 0);
	assert_int_equal(verdict(&c, "decrypt"), ATTEST_SEALED_SKIP);
	assert_int_equal(verdict(&c, "received"), ATTEST_SEALED_SKIP);
	proto_output_deinit(&o);
	proto_task_deinit(&sent);
	proto_task_deinit(&plain);
	proto_task_deinit(&t);
}

/* Replaces the first occurrence of from in s by to. */
static char *replace(const char *s, const char *from, const char *to)
{
	const char *at = strstr(s, from);
	assert_non_null(at);
	return xasprintf("%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
}

/* The value of "key":"..." in a JSON text (the first), caller frees. */
static char *json_str(const char *s, const char *key)
{
	_cleanup_free_ char *k = xasprintf("\"%s\":\"", key);
	const char *at = strstr(s, k);
	assert_non_null(at);
	at += strlen(k);
	return xstrndup(at, strcspn(at, "\""));
}

static void expect_fail(const char *res, const proto_task *sent, attest_age_identity *id,
                        const attest_key *k, const char *check, const char *detail)
{
	checks c;
	assert_int_equal(verify(res, k, id, sent, NULL, &c, NULL), 1);
	for (size_t i = 0; i < c.n; i++) {
		if (c.v[i] != ATTEST_SEALED_FAIL)
			continue;
		if (strcmp(c.names[i], check) || !strstr(c.details[i], detail)) {
			dump(&c);
			fail_msg("first failure is %s (%s), expected %s (%s)", c.names[i],
			         c.details[i], check, detail);
		}
		return;
	}
}

/* A sealed task as the node has opened it, and a run's output for it. */
static void opened_fixture(proto_task *t, proto_output *o)
{
	_cleanup_free_ char *json = sealed_task(&F.node_r, NULL);
	parse_ok(json, t);
	assert_int_equal(attest_sealed_open(t, &F.node, 1, NULL), 0);
	fixture_output(o, "a");
}

static void test_tamper(void **state)
{
	_cleanup_free_ char *json = sealed_task(&F.node_r, NULL);
	proto_task t, other;
	parse_ok(json, &t);
	assert_int_equal(attest_sealed_open(&t, &F.node, 1, NULL), 0);
	proto_output o;
	fixture_output(&o, "a");
	_cleanup_free_ char *res = sealed_result_json(&t, &o, F.key);
	_cleanup_free_ char *res2 = sealed_result_json(&t, &o, F.key);
	/* Another run's sealed document under this run's statement. */
	_cleanup_free_ char *s1 = json_str(res, "sealed"), *s2 = json_str(res2, "sealed");
	_cleanup_free_ char *swapped = replace(res, s1, s2);
	expect_fail(swapped, NULL, F.buyer, F.key, "sealed_result", "not the one the subject");
	expect_fail(res, NULL, F.buyer, F.other_key, "signature", "does not verify");
	expect_fail(res, NULL, F.stranger, F.key, "decrypt", "no identity matches");
	_cleanup_free_ char *st = replace(res, "\"status\":\"ok\"", "\"status\":\"error\"");
	expect_fail(st, NULL, F.buyer, F.key, "metadata", "status is not the signed one");
	_cleanup_free_ char *out = replace(res, "\"stdout\":\"\"", "\"stdout\":\"x\"");
	expect_fail(out, NULL, F.buyer, F.key, "metadata", "carries output");
	_cleanup_free_ char *att = replace(res, "\"attempts\":1", "\"attempts\":2");
	expect_fail(att, NULL, F.buyer, F.key, "metadata", "attempts");
	/* The task as sent must be the one whose ciphertexts the node names. */
	_cleanup_free_ char *json2 = sealed_task(&F.node_r, NULL);
	parse_ok(json2, &other);
	expect_fail(res, &other, F.buyer, F.key, "received", "code_age: not the ciphertext");
	proto_task_deinit(&other);
	proto_output_deinit(&o);
	proto_task_deinit(&t);
}

/* A result whose sealed document was changed (from -> to) and then signed as the node would:
 * what a dishonest node can publish. The check that names the inconsistency must catch it. */
static char *dishonest(const proto_task *t, const proto_output *o, const char *from, const char *to)
{
	proto_result real, pub;
	fixture_result(&real, t->id, o);
	attest_sealed_out so;
	assert_int_equal(
	    attest_sealed_result(t, &real, fixture_env, ARRAY_SIZE(fixture_env), &pub, &so, NULL),
	    0);
	_cleanup_free_ uint8_t *age = NULL;
	uint8_t *plain = NULL;
	size_t n = 0, pn = 0;
	assert_int_equal(proto_b64_decode(pub.sealed, strlen(pub.sealed), &age, &n), 0);
	assert_int_equal(attest_age_decrypt(age, n, &F.buyer, 1, NULL, &plain, &pn, NULL, NULL), 0);
	_cleanup_free_ char *doc = xstrndup((char *)plain, pn);
	free(plain);
	_cleanup_free_ char *doc2 = replace(doc, from, to);
	uint8_t *age2 = NULL;
	size_t n2 = 0;
	assert_int_equal(
	    attest_age_encrypt(doc2, strlen(doc2), &F.buyer_r, 1, false, &age2, &n2, NULL), 0);
	free(pub.sealed);
	pub.sealed = proto_b64_encode(age2, n2);
	attest_sha256_str(age2, n2, so.delivered);
	free(age2);
	attest_claim c = {.task = t,
	                  .result = &pub,
	                  .env = fixture_env,
	                  .n_env = ARRAY_SIZE(fixture_env),
	                  .sealed = &so};
	assert_int_equal(attest_sign(F.key, &c, &pub.attestation, NULL, NULL, NULL), 0);
	buf b = BUF_INIT;
	proto_result_to_json(&pub, &b);
	proto_result_deinit(&pub);
	return buf_steal(&b, NULL);
}

static void test_tamper_document(void **state)
{
	proto_task t;
	proto_output o;
	opened_fixture(&t, &o);
	_cleanup_free_ char *r1 = dishonest(&t, &o, "stdout a", "stdout b");
	expect_fail(r1, NULL, F.buyer, F.key, "outputs", "stdout: the document says");
	_cleanup_free_ char *r2 = dishonest(&t, &o, "\"exit_code\":0", "\"exit_code\":3");
	expect_fail(r2, NULL, F.buyer, F.key, "exit", "recomputed");
	_cleanup_free_ char *r3 = dishonest(&t, &o, "\"salt\":\"", "\"salt\":\"AA");
	expect_fail(r3, NULL, F.buyer, F.key, "commitments", "malformed");
	_cleanup_free_ char *r4 = dishonest(&t, &o, "\"task_id\":\"s1\"", "\"task_id\":\"s9\"");
	expect_fail(r4, NULL, F.buyer, F.key, "document", "task_id");
	_cleanup_free_ char *r5 =
	    dishonest(&t, &o, "\"execution_digest\":\"sha256:", "\"execution_digest\":\"sha256:0");
	expect_fail(r5, NULL, F.buyer, F.key, "execution", "is not the recomputed");
	/* An honest result passes the same path. */
	_cleanup_free_ char *r6 = dishonest(&t, &o, "stdout a", "stdout a");
	checks c;
	assert_int_equal(verify(r6, F.key, F.buyer, NULL, NULL, &c, NULL), 0);
	proto_output_deinit(&o);
	proto_task_deinit(&t);
}

/* Statements a dishonest node could sign over an honest document: a commitment or an
 * environment digest that is not the document's; and a sealed task is never signed as an
 * ordinary one. */
static void test_dishonest_statements(void **state)
{
	proto_task t;
	proto_output o;
	opened_fixture(&t, &o);
	proto_result real, pub;
	fixture_result(&real, t.id, &o);
	attest_sealed_out so;
	assert_int_equal(
	    attest_sealed_result(&t, &real, fixture_env, ARRAY_SIZE(fixture_env), &pub, &so, NULL),
	    0);
	attest_sealed_out bad = so;
	bad.commitment[ATTEST_COMMIT_OUTPUT][10] ^= 1;
	attest_claim c = {.task = &t,
	                  .result = &pub,
	                  .env = fixture_env,
	                  .n_env = ARRAY_SIZE(fixture_env),
	                  .sealed = &bad};
	assert_int_equal(attest_sign(F.key, &c, &pub.attestation, NULL, NULL, NULL), 0);
	buf b = BUF_INIT;
	proto_result_to_json(&pub, &b);
	expect_fail(buf_str(&b), NULL, F.buyer, F.key, "commitments", "output: SHA-256(salt");
	bad = so;
	memcpy(bad.environment_digest + 7, "00", 2);
	free(pub.attestation);
	assert_int_equal(attest_sign(F.key, &c, &pub.attestation, NULL, NULL, NULL), 0);
	buf_reset(&b);
	proto_result_to_json(&pub, &b);
	expect_fail(buf_str(&b), NULL, F.buyer, F.key, "environment_digest", "recomputed");
	c.sealed = NULL;
	_cleanup_err_ err *e = NULL;
	char *env = NULL;
	assert_int_equal(attest_sign(F.key, &c, &env, NULL, NULL, &e), -1);
	assert_non_null(strstr(err_msg(e), "signed only as a sealed result"));
	buf_deinit(&b);
	proto_result_deinit(&pub);
	proto_output_deinit(&o);
	proto_task_deinit(&t);
}

/* A rejection after decryption: the buyer reads the reason, the public result does not. */
static void test_rejected(void **state)
{
	_cleanup_free_ char *files =
	    seal_b64("[{\"path\":\"/" CANARY "\",\"content_b64\":\"\"}]", &F.node_r);
	_cleanup_free_ char *json = xasprintf("{\"id\":\"s2\",\"lang\":\"python\",\"code\":\"x\","
	                                      "\"files_age\":\"%s\",\"reply_to\":\"%s\"}",
	                                      files, F.buyer_text);
	proto_task t;
	parse_ok(json, &t);
	_cleanup_err_ err *e = NULL;
	assert_int_equal(attest_sealed_open(&t, &F.node, 1, &e), -1);
	proto_output o;
	proto_output_init(&o);
	o.status = PROTO_STATUS_REJECTED;
	o.error = xstrdup(err_msg(e));
	_cleanup_free_ char *res = sealed_result_json(&t, &o, F.key);
	assert_null(strstr(res, CANARY));
	assert_non_null(strstr(res, "\"error\":\"sealed part files_age: the decrypted files"));
	checks c;
	proto_result inner;
	if (verify(res, F.key, F.buyer, NULL, NULL, &c, &inner) != 0) {
		dump(&c);
		fail_msg("verification failed");
	}
	assert_int_equal(verdict(&c, "input"), ATTEST_SEALED_SKIP);
	assert_non_null(strstr(inner.output.error, "files[0].path \"/" CANARY "\""));
	assert_int_equal(inner.output.status, PROTO_STATUS_REJECTED);
	proto_result_deinit(&inner);
	proto_output_deinit(&o);
	proto_task_deinit(&t);
}

/* A result too large for one document loses output files (files_truncated), not its proof. */
static void test_size_bound(void **state)
{
	_cleanup_free_ char *json = xasprintf(
	    "{\"id\":\"s3\",\"lang\":\"python\",\"code\":\"x\",\"reply_to\":\"%s\"}", F.buyer_text);
	proto_task t;
	parse_ok(json, &t);
	assert_int_equal(attest_sealed_open(&t, &F.node, 1, NULL), 0);
	proto_output o;
	proto_output_init(&o);
	o.status = PROTO_STATUS_OK;
	o.exit_code = 0;
	/* The worst case the node's default caps allow: 8 MiB of files, 1 MiB each of stdout and
	 * stderr that are not text (so base64 in the document). */
	for (size_t i = 0; i < 1024 * 1024; i++) {
		buf_append(&o.out, "\xff", 1);
		buf_append(&o.err, "\xfe", 1);
	}
	o.n_files = 8;
	o.files = xcalloc(o.n_files, sizeof(proto_file));
	for (size_t i = 0; i < o.n_files; i++) {
		o.files[i].path = xasprintf("f%zu", i);
		o.files[i].len = 1024 * 1024;
		o.files[i].data = xmalloc(o.files[i].len);
		memset(o.files[i].data, (int)('a' + i), o.files[i].len);
	}
	_cleanup_free_ char *res = sealed_result_json(&t, &o, F.key);
	checks c;
	proto_result inner;
	if (verify(res, F.key, F.buyer, NULL, NULL, &c, &inner) != 0) {
		dump(&c);
		fail_msg("verification failed");
	}
	assert_true(inner.output.files_truncated);
	assert_true(inner.output.n_files < 8);
	assert_true(inner.output.n_files >= 5);
	assert_int_equal(inner.output.out.len, 1024 * 1024);
	assert_true(strlen(res) < PROTO_TASK_MAX_BYTES);
	proto_result_deinit(&inner);
	proto_output_deinit(&o);
	proto_task_deinit(&t);
}

/* ---- golden vectors (attest/testdata/sealed/) ---- */

static char *vector_path(const char *name)
{
	const char *root = getenv("AISP_SOURCE_ROOT");
	return xasprintf("%s/attest/testdata/sealed/%s", root ? root : ".", name);
}

static void read_vector(const char *name, buf *b)
{
	_cleanup_free_ char *p = vector_path(name);
	_cleanup_err_ err *e = NULL;
	if (read_file_at(AT_FDCWD, p, 16u << 20, b, &e) < 0)
		fail_msg("%s (regenerate with AISP_REGEN_VECTORS=1)", err_msg(e));
}

static void write_vector(const char *name, const void *p, size_t n)
{
	_cleanup_free_ char *dir = vector_path("");
	assert_int_equal(mkdir_p(dir, 0755, NULL), 0);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	assert_int_equal(write_file_at(dfd, name, p, n, 0644, NULL), 0);
	close(dfd);
}

static attest_age_identity *vector_identity(const char *name)
{
	buf b = BUF_INIT;
	read_vector(name, &b);
	attest_age_identity **ids = NULL;
	size_t n = 0;
	_cleanup_err_ err *e = NULL;
	if (attest_age_identities_parse(buf_str(&b), b.len, &ids, &n, &e) < 0)
		fail_msg("%s: %s", name, err_msg(e));
	buf_deinit(&b);
	attest_age_identity *id = ids[0];
	ids[0] = NULL;
	attest_age_identities_free(ids, n);
	return id;
}

static attest_key *vector_key(const char *name)
{
	const char *root = getenv("AISP_SOURCE_ROOT");
	_cleanup_free_ char *p = xasprintf("%s/attest/testdata/%s", root ? root : ".", name);
	buf b = BUF_INIT;
	_cleanup_err_ err *e = NULL;
	assert_int_equal(read_file_at(AT_FDCWD, p, 1 << 16, &b, &e), 0);
	attest_key *k = NULL;
	int r = strstr(name, "key") ? attest_key_from_private_pem(&k, buf_str(&b), b.len, &e)
	                            : attest_key_from_public_pem(&k, buf_str(&b), b.len, &e);
	buf_deinit(&b);
	if (r < 0)
		fail_msg("%s: %s", name, err_msg(e));
	return k;
}

static const char vector_plain[] =
    "{\"id\":\"sealed-golden-1\",\"lang\":\"python\",\"code\":\"import sys\\nprint(int(sys.stdin."
    "read()) * 2)\\n\",\"stdin\":\"21\"}";

/* Writes task.json, plain-task.json and result.json from the vector identities. */
static void regenerate(void)
{
	static const char *const keys[] = {"node-age.key", "buyer-age.key"};
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		_cleanup_free_ char *p = vector_path(keys[i]);
		if (access(p, F_OK) == 0)
			continue;
		attest_age_identity *id = NULL;
		char text[ATTEST_AGE_IDENTITY_LEN + 1];
		assert_int_equal(attest_age_identity_generate(&id, NULL), 0);
		attest_age_identity_format(id, text);
		_cleanup_free_ char *file =
		    xasprintf("# TEST ONLY: never use this identity\n%s\n", text);
		write_vector(keys[i], file, strlen(file));
		attest_age_identity_free(id);
	}
	attest_age_identity *node = vector_identity("node-age.key");
	attest_age_identity *buyer = vector_identity("buyer-age.key");
	attest_age_recipient nr, br;
	attest_age_identity_recipient(node, &nr);
	attest_age_identity_recipient(buyer, &br);
	char brt[ATTEST_AGE_RECIPIENT_LEN + 1];
	attest_age_recipient_format(&br, brt);
	_cleanup_free_ char *code = seal_b64("import sys\nprint(int(sys.stdin.read()) * 2)\n", &nr);
	_cleanup_free_ char *in = seal_b64("21", &nr);
	_cleanup_free_ char *task =
	    xasprintf("{\"id\":\"sealed-golden-1\",\"lang\":\"python\",\"code_age\":\"%s\","
	              "\"stdin_age\":\"%s\",\"reply_to\":\"%s\"}\n",
	              code, in, brt);
	proto_task t;
	parse_ok(task, &t);
	assert_int_equal(attest_sealed_open(&t, &node, 1, NULL), 0);
	proto_output o;
	proto_output_init(&o);
	o.status = PROTO_STATUS_OK;
	o.exit_code = 0;
	buf_append_str(&o.out, "42\n");
	attest_key *k = vector_key("test-key.pem");
	_cleanup_free_ char *res = sealed_result_json(&t, &o, k);
	write_vector("task.json", task, strlen(task));
	_cleanup_free_ char *plain = xasprintf("%s\n", vector_plain);
	write_vector("plain-task.json", plain, strlen(plain));
	_cleanup_free_ char *resnl = xasprintf("%s\n", res);
	write_vector("result.json", resnl, strlen(resnl));
	attest_key_free(k);
	proto_output_deinit(&o);
	proto_task_deinit(&t);
	attest_age_identity_free(node);
	attest_age_identity_free(buyer);
}

/* ---- sealed chains: the steps (scripts and system prompts) and the input ---- */

#define CHAIN_STEPS                                                                                \
	"[{\"type\":\"llm\",\"model\":\"m/one\",\"system_prompt\":\"prompt " CANARY "\"},"         \
	"{\"type\":\"script\",\"lang\":\"python\",\"code\":\"output = input  # " CANARY            \
	"\",\"timeout_ms\":30000}]"
#define CHAIN_INPUT "{\"q\":\"input " CANARY "\"}"

static char *sealed_chain(const char *steps, const char *input)
{
	_cleanup_free_ char *s = seal_b64(steps, &F.node_r);
	_cleanup_free_ char *i = seal_b64(input, &F.node_r);
	return xasprintf("{\"id\":\"c1\",\"steps_age\":\"%s\",\"input_age\":\"%s\","
	                 "\"reply_to\":\"%s\"}",
	                 s, i, F.buyer_text);
}

static void chain_run_fixture(proto_output *o)
{
	proto_output_init(o);
	o->status = PROTO_STATUS_OK;
	o->chain = proto_chain_run_new();
	proto_step_run *s = proto_chain_run_add(o->chain, PROTO_STEP_LLM);
	assert_int_equal(
	    proto_value_from_string("answer " CANARY, strlen("answer " CANARY), &s->output, NULL),
	    0);
	s->model = xstrdup("m/one");
	s = proto_chain_run_add(o->chain, PROTO_STEP_SCRIPT);
	s->lang = PROTO_LANG_PYTHON;
	s->exit_code = 0;
	assert_int_equal(proto_value_from_string("done", 4, &s->output, NULL), 0);
}

static void test_chain(void **state)
{
	_cleanup_free_ char *json = sealed_chain(CHAIN_STEPS, CHAIN_INPUT);
	proto_task t;
	parse_ok(json, &t);
	/* Before opening: a chain whose steps and input are not known yet. */
	assert_true(proto_task_is_chain(&t));
	assert_true(proto_task_sealed_pending(&t));
	assert_int_equal(t.n_steps, 0);
	assert_null(t.input);
	assert_int_equal(t.sealed->exec_mode, PROTO_EXEC_SEALED);
	buf out = BUF_INIT;
	proto_task_to_json(&t, &out);
	assert_non_null(strstr(buf_str(&out), "\"steps_age\":"));
	assert_non_null(strstr(buf_str(&out), "\"input_age\":"));
	assert_null(strstr(buf_str(&out), "\"steps\":"));
	_cleanup_err_ err *e = NULL;
	assert_int_equal(attest_sealed_open(&t, &F.node, 1, &e), 0);
	assert_int_equal(t.n_steps, 2);
	assert_string_equal(t.steps[0].system_prompt, "prompt " CANARY);
	assert_int_equal(t.lang, PROTO_LANG_PYTHON); /* the pool's: the first script step's */
	assert_true(t.input->json);
	/* Opened, it still serialises as ciphertext only. */
	buf_reset(&out);
	proto_task_to_json(&t, &out);
	assert_null(strstr(buf_str(&out), CANARY));
	assert_null(strstr(buf_str(&out), "system_prompt"));
	/* The part digests are of the steps' and the input's compact JSON as proto writes them
	 * (CHAIN_STEPS is in that form: key order and the default timeout_ms). */
	char d[ATTEST_DIGEST_LEN], want[ATTEST_DIGEST_LEN];
	attest_part_digest(&t, ATTEST_COMMIT_STEPS, d);
	attest_sha256_str(CHAIN_STEPS, strlen(CHAIN_STEPS), want);
	assert_string_equal(d, want);
	attest_part_digest(&t, ATTEST_COMMIT_CHAIN_INPUT, d);
	attest_sha256_str(CHAIN_INPUT, strlen(CHAIN_INPUT), want);
	assert_string_equal(d, want);
	/* The sealed result: nothing of the steps, the input or the answers in public; the buyer
	 * checks every commitment against the plaintext chain. */
	proto_output o;
	chain_run_fixture(&o);
	_cleanup_free_ char *res = sealed_result_json(&t, &o, F.key);
	assert_null(strstr(res, CANARY));
	assert_null(strstr(res, "m/one"));
	_cleanup_free_ char *pj = xasprintf("{\"id\":\"c1\",\"steps\":%s,\"input\":%s,"
	                                    "\"reply_to\":\"%s\"}",
	                                    CHAIN_STEPS, CHAIN_INPUT, F.buyer_text);
	proto_task plain, sent;
	parse_ok(pj, &plain);
	parse_ok(json, &sent);
	checks c;
	proto_result inner;
	if (verify(res, F.key, F.buyer, &sent, &plain, &c, &inner) != 0) {
		dump(&c);
		fail_msg("verification failed");
	}
	assert_int_equal(verdict(&c, "received"), ATTEST_SEALED_PASS); /* steps_age, input_age */
	assert_int_equal(verdict(&c, "input"), ATTEST_SEALED_PASS);
	assert_int_equal(verdict(&c, "output"), ATTEST_SEALED_PASS);
	assert_int_equal(verdict(&c, "commitments"), ATTEST_SEALED_PASS);
	/* The buyer reads the chain's run. */
	assert_non_null(inner.output.chain);
	assert_int_equal(inner.output.chain->n_steps, 2);
	proto_result_deinit(&inner);
	/* A buyer who holds only the input (the steps are the seller's): a partial check. */
	proto_task_deinit(&plain);
	_cleanup_free_ char *half = seal_b64(CHAIN_STEPS, &F.node_r);
	_cleanup_free_ char *hj = xasprintf("{\"id\":\"c1\",\"steps_age\":\"%s\",\"input\":%s,"
	                                    "\"reply_to\":\"%s\"}",
	                                    half, CHAIN_INPUT, F.buyer_text);
	parse_ok(hj, &plain);
	assert_int_equal(verify(res, F.key, F.buyer, NULL, &plain, &c, NULL), 0);
	assert_int_equal(verdict(&c, "input"), ATTEST_SEALED_PASS);
	proto_task_deinit(&plain);
	proto_task_deinit(&sent);
	proto_output_deinit(&o);
	buf_deinit(&out);
	proto_task_deinit(&t);
}

/* The public part keeps the cost's total (what the buyer is billed), signed; the breakdown,
 * which names the steps' models, is only in the sealed document, and the buyer checks that
 * its total is the public one. */
static void test_cost(void **state)
{
	proto_task t;
	proto_output o;
	opened_fixture(&t, &o);
	proto_cost *cost = proto_cost_new();
	proto_cost_item *it = proto_cost_add(cost, PROTO_COST_LLM);
	*it = (proto_cost_item){.step = 0,
	                        .kind = PROTO_COST_LLM,
	                        .model = xstrdup("m/secret"),
	                        .prompt_tokens = 10,
	                        .source = PROTO_COST_SRC_PROVIDER,
	                        .cost = 38};
	it = proto_cost_add(cost, PROTO_COST_SCRIPT);
	*it = (proto_cost_item){
	    .step = 1, .kind = PROTO_COST_SCRIPT, .source = PROTO_COST_SRC_USAGE, .cost = 2};
	cost->total = 40;
	_cleanup_free_ char *res = sealed_result_cost(&t, &o, F.key, cost, -1);
	assert_non_null(strstr(res, "\"cost\":{\"unit\":\"micro_usd\",\"total\":40,"
	                            "\"breakdown_sealed\":true}"));
	assert_null(strstr(res, "m/secret"));
	checks c;
	proto_result inner;
	if (verify(res, F.key, F.buyer, NULL, NULL, &c, &inner) != 0) {
		dump(&c);
		fail_msg("verification failed");
	}
	assert_int_equal(verdict(&c, "cost"), ATTEST_SEALED_PASS);
	assert_int_equal(verdict(&c, "cost total"), ATTEST_SEALED_PASS);
	assert_non_null(inner.cost);
	assert_int_equal(inner.cost->n_items, 2);
	assert_string_equal(inner.cost->items[0].model, "m/secret");
	proto_result_deinit(&inner);
	/* a changed public total is not the signed one */
	_cleanup_free_ char *cheap = replace(res, "\"total\":40", "\"total\":4");
	expect_fail(cheap, NULL, F.buyer, F.key, "cost", "is not the signed");
	/* a node that signs a public total other than the sealed breakdown's */
	_cleanup_free_ char *over = sealed_result_cost(&t, &o, F.key, cost, 400);
	expect_fail(over, NULL, F.buyer, F.key, "cost total",
	            "the sealed document's cost total 40 is not the public 400");
	/* a node that bills a total its own sealed breakdown does not add up to */
	cost->items[1].cost = 5;
	_cleanup_free_ char *padded = sealed_result_cost(&t, &o, F.key, cost, -1);
	expect_fail(padded, NULL, F.buyer, F.key, "cost total",
	            "the sealed document's total 40 is not the sum of its breakdown (43)");
	proto_cost_free(cost);
	proto_output_deinit(&o);
	proto_task_deinit(&t);
}

static void test_chain_errors(void **state)
{
	_cleanup_free_ char *c = seal_b64("[]", &F.node_r);
	const char *r = F.buyer_text;
	struct {
		const char *json, *msg;
	} cases[] = {
	    {"{\"id\":\"c\",\"steps_age\":\"@C\"}", "field \"steps_age\" needs \"reply_to\""},
	    {"{\"id\":\"c\",\"steps\":[{\"type\":\"llm\",\"model\":\"m\"}],\"steps_age\":\"@C\","
	     "\"reply_to\":\"@R\"}",
	     "fields \"steps\" and \"steps_age\" are mutually exclusive"},
	    {"{\"id\":\"c\",\"steps_age\":\"@C\",\"input\":1,\"input_age\":\"@C\",\"reply_to\":"
	     "\"@R\"}",
	     "fields \"input\" and \"input_age\" are mutually exclusive"},
	    {"{\"id\":\"c\",\"steps_age\":\"@C\",\"code_age\":\"@C\",\"reply_to\":\"@R\"}",
	     "field \"code_age\" is not allowed in a chain task"},
	    {"{\"id\":\"c\",\"lang\":\"python\",\"code\":\"x\",\"input_age\":\"@C\",\"reply_to\":"
	     "\"@R\"}",
	     "field \"input_age\" belongs to a chain task"},
	    {"{\"id\":\"c\",\"steps_age\":\"@C\",\"exec_mode\":\"source\",\"reply_to\":\"@R\"}",
	     "exec_mode source needs the code in the clear"},
	    {"{\"id\":\"c\",\"lang\":\"python\",\"code_age\":\"@C\",\"blobs_age\":true,"
	     "\"reply_to\":\"@R\"}",
	     "field \"blobs_age\" needs \"blobs\" (the age files to open)"},
	    {"{\"id\":\"c\",\"lang\":\"python\",\"code_age\":\"@C\",\"blobs_age\":1,"
	     "\"reply_to\":\"@R\"}",
	     "field \"blobs_age\" must be true or false"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_free_ char *a = replace(cases[i].json, "@C", c);
		_cleanup_free_ char *b = strstr(a, "@C") ? replace(a, "@C", c) : xstrdup(a);
		_cleanup_free_ char *j = strstr(b, "@R") ? replace(b, "@R", r) : xstrdup(b);
		expect_parse_error(j, cases[i].msg);
	}
	/* Plaintext that breaks the chain rules: the public message names the part only. */
	_cleanup_free_ char *j1 = sealed_chain("[]", "1");
	expect_open_error(j1, F.node,
	                  "sealed part steps_age: the decrypted steps is not valid (the reason is "
	                  "in the result sealed to reply_to)",
	                  "field \"steps\" must have at least one step");
	_cleanup_free_ char *j2 =
	    sealed_chain("[{\"type\":\"script\",\"code\":\"" CANARY "\",\"lang\":\"ruby\"}]", "1");
	expect_open_error(j2, F.node, "sealed part steps_age", "steps[0].lang must be");
	_cleanup_free_ char *j3 = sealed_chain(CHAIN_STEPS, "{\"a\":1} x");
	expect_open_error(j3, F.node, "sealed part input_age: the decrypted input", "not JSON");
}

static void test_golden(void **state)
{
	if (getenv("AISP_REGEN_VECTORS") && !strcmp(getenv("AISP_REGEN_VECTORS"), "1"))
		regenerate();
	buf task = BUF_INIT, plain = BUF_INIT, res = BUF_INIT;
	read_vector("task.json", &task);
	read_vector("plain-task.json", &plain);
	read_vector("result.json", &res);
	proto_task t, p;
	parse_ok(buf_str(&task), &t);
	parse_ok(buf_str(&plain), &p);
	attest_key *pub = vector_key("test-pub.pem");
	attest_age_identity *buyer = vector_identity("buyer-age.key");
	checks c;
	proto_result inner;
	if (verify(buf_str(&res), pub, buyer, &t, &p, &c, &inner) != 0) {
		dump(&c);
		fail_msg("the golden sealed result does not verify");
	}
	for (size_t i = 0; i < c.n; i++)
		if (c.v[i] != ATTEST_SEALED_PASS)
			fail_msg("check %s: %d %s", c.names[i], c.v[i], c.details[i]);
	assert_memory_equal(inner.output.out.data, "42\n", 3);
	/* The node could open the task too: the vector's node identity is the right one. */
	attest_age_identity *node = vector_identity("node-age.key");
	assert_int_equal(attest_sealed_open(&t, &node, 1, NULL), 0);
	assert_int_equal(t.stdin_len, 2);
	attest_age_identity_free(node);
	attest_age_identity_free(buyer);
	attest_key_free(pub);
	proto_result_deinit(&inner);
	proto_task_deinit(&t);
	proto_task_deinit(&p);
	buf_deinit(&task);
	buf_deinit(&plain);
	buf_deinit(&res);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_open),
	    cmocka_unit_test(test_open_errors),
	    cmocka_unit_test(test_parse_errors),
	    cmocka_unit_test(test_result_roundtrip),
	    cmocka_unit_test(test_tamper),
	    cmocka_unit_test(test_tamper_document),
	    cmocka_unit_test(test_dishonest_statements),
	    cmocka_unit_test(test_rejected),
	    cmocka_unit_test(test_size_bound),
	    cmocka_unit_test(test_chain),
	    cmocka_unit_test(test_chain_errors),
	    cmocka_unit_test(test_cost),
	    cmocka_unit_test(test_golden),
	};
	return cmocka_run_group_tests(tests, fx_setup, fx_teardown);
}
