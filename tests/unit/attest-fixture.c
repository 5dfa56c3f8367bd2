/* The attest/ test fixtures (attest-fixture.h): the vectors' results, built as the node would
 * have produced them, their environment, signing, and the check recorder. */
#include "tests/unit/attest-fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest/internal.h"
#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "proto/json.h"

const proto_limits fx_limits = {
    .cpus_milli = 1000,
    .memory_bytes = 268435456,
    .timeout_ms = 10000,
    .pids = 128,
    .nofile = 256,
    .fsize_bytes = 67108864,
    .workspace_bytes = 67108864,
    .stdout_bytes = 1048576,
    .stderr_bytes = 1048576,
};

/* ---- the results ---- */

static void add_file(proto_output *o, const char *path, const void *data, size_t len)
{
	o->files = xreallocarray(o->files, o->n_files + 1, sizeof(*o->files));
	o->files[o->n_files++] = (proto_file){xstrdup(path), xmemdup(data, len), len};
}

/* What every result that ran has: node, runtime, image, times, usage, one attempt. */
static void ran(proto_result *r, const char *id)
{
	r->id = xstrdup(id);
	r->output.exit_code = 0;
	r->usage = (proto_usage){.wall_ms = 41, .cpu_ms = 23, .memory_peak_bytes = 9437184};
	r->node_id = xstrdup("node-a");
	r->runtime = xstrdup("runsc");
	r->image_digest =
	    xstrdup("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	r->received_ms = 1767225600000;
	r->started_ms = 1767225600004;
	r->finished_ms = 1767225600045;
	r->attempts = 1;
}

static void fill_basic(proto_result *r)
{
	ran(r, "golden-1");
	buf_append_str(&r->output.out, "input data\n");
	buf_append_str(&r->output.err, "warn\n");
	add_file(&r->output, "report.txt", "all good\n", 9);
	r->output.return_value = xstrdup("42");
}

static void fill_escapes(proto_result *r)
{
	ran(r, "escapes-1");
	buf_append_str(&r->output.out, "tab\there \"q\" \\ \x01 \x7f /\r\n");
	add_file(&r->output, "a\"b\\c.txt", "x\n", 2);
	/* As the agent sent it: spaced, with escapes the node's form rewrites. */
	r->output.return_value =
	    xstrdup("{ \"echo\" : {\"quote\": \"\\\"\", \"x\": \"\\/\\u0041\\u00e9\\ud83d\\ude00"
	            "\\u001f\\u007f\\b\\f\\n\\r\\t\"}, \"n\" : [1, -2, 2.5, 0], \"note\": "
	            "\"tab\\\\there\" }");
}

static void fill_unicode(proto_result *r)
{
	ran(r, "unicode-1");
	buf_append_str(&r->output.out, "h\u00e9llo \U0001F600 \u2603 \u2028 ['\u00fc', "
	                               "'\u65e5\u672c']\n");
	buf_append_str(&r->output.err, "na\u00efve\n");
	/* Bytewise order: upper case, then lower case, then multi-byte sequences. */
	add_file(&r->output, "B.txt", "b\n", 2);
	add_file(&r->output, "Z\u00fcrich.txt", "z\n", 2);
	add_file(&r->output, "a.txt", "a\n", 2);
	add_file(&r->output, "\u00e9/\u00fc.txt", "\u00e9\n", 3);
}

static void fill_empty_args(proto_result *r)
{
	ran(r, "empty-args-1");
	buf_append_str(&r->output.out, "ok\n");
}

static void fill_null_return(proto_result *r)
{
	ran(r, "null-return-1");
	r->output.return_value = xstrdup("null");
}

static void fill_binary(proto_result *r)
{
	ran(r, "binary-1");
	proto_output *o = &r->output;
	o->exit_code = -1;
	o->signal = 9;
	for (int i = 0; i < 4; i++)
		buf_append(&o->out, "\xff\x00\xfe", 3);
	buf_append_str(&o->err, "\xc3\x28 not UTF-8\n");
	uint8_t blob[256];
	for (int i = 0; i < 256; i++)
		blob[i] = (uint8_t)i;
	add_file(o, "blob.bin", blob, sizeof(blob));
	o->stdout_truncated = true;
	o->files_truncated = true;
	o->error = xstrdup("the sandbox was killed: the program reached its process limit");
}

static void fill_function_error(proto_result *r)
{
	ran(r, "function-error-1");
	proto_output *o = &r->output;
	o->status = PROTO_STATUS_ERROR;
	o->exit_code = 1;
	buf_append_str(&o->err, "Traceback (most recent call last):\n  File \"main.py\", line 2, "
	                        "in main\nValueError: bad \"input\"\t\\ \u00e9\n");
	o->error = xstrdup("ValueError: bad \"input\"\t\\ \u00e9");
}

/* Rejected before it parsed: no runtime, image, environment, limits or start time. */
static void fill_rejected(proto_result *r)
{
	r->id = xstrdup("job-43");
	r->output.status = PROTO_STATUS_REJECTED;
	r->output.exit_code = -1;
	r->output.error = xstrdup("field \"lang\" must be one of python, javascript, shell");
	r->node_id = xstrdup("node-a");
	r->received_ms = r->finished_ms = 1767225600100;
	r->attempts = 1;
}

/* PROTOCOL.md's example: the job-42 task's result. */
static void fill_protocol_result(proto_result *r)
{
	ran(r, "job-42");
	free(r->image_digest);
	r->image_digest =
	    xstrdup("sha256:6b1f0e0a0c2f4e6d8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f");
	r->received_ms = 1700000000000;
	r->started_ms = 1700000000003;
	r->finished_ms = 1700000000044;
	buf_append_str(&r->output.out, "hello world ['--verbose']\n");
	add_file(&r->output, "greeting.txt", "hello world", 11);
}

/* PROTOCOL.md's rejected example: job-43 asked for ruby. */
static void fill_protocol_rejected(proto_result *r)
{
	fill_rejected(r);
	r->received_ms = r->finished_ms = 1700000000100;
}

const fx_vector fx_vectors[] = {
    {"01-basic", fill_basic, &fx_limits},
    {"02-escapes", fill_escapes, &fx_limits},
    {"03-unicode", fill_unicode, &fx_limits},
    {"04-empty-args", fill_empty_args, &fx_limits},
    {"05-null-return", fill_null_return, &fx_limits},
    {"06-binary", fill_binary, &fx_limits},
    {"07-function-error", fill_function_error, &fx_limits},
    {"08-rejected", fill_rejected, &fx_limits},
};
const size_t fx_n_vectors = ARRAY_SIZE(fx_vectors);

const fx_vector fx_examples[] = {
    {"protocol-result", fill_protocol_result, NULL},
    {"protocol-rejected", fill_protocol_rejected, NULL},
};
const size_t fx_n_examples = ARRAY_SIZE(fx_examples);

const fx_vector *fx_vector_named(const char *name)
{
	for (size_t i = 0; i < fx_n_vectors; i++)
		if (!strcmp(fx_vectors[i].name, name))
			return &fx_vectors[i];
	for (size_t i = 0; i < fx_n_examples; i++)
		if (!strcmp(fx_examples[i].name, name))
			return &fx_examples[i];
	fail_msg("no vector %s", name);
	return NULL;
}

/* ---- the environment a vector claims (what sandbox_environment() lists) ---- */

static const char *const fixed_env[][2] = {
    {"runtime.name", "runsc"},
    {"runtime.version", "release-20221017.0"},
    {"runtime.flags", "--network=none --platform=ptrace"},
    {"uid", "65534"},
    {"gid", "65534"},
    {"cwd", "/workspace"},
    {"hostname", "sandbox"},
    {"env.HOME", "/workspace"},
    {"env.HOSTNAME", "sandbox"},
    {"env.LANG", "C.UTF-8"},
    {"env.PATH", "/usr/local/bin:/usr/bin:/bin"},
    {"env.PYTHONDONTWRITEBYTECODE", "1"},
    {"env.PYTHONHASHSEED", "0"},
    {"env.PYTHONUNBUFFERED", "1"},
    {"env.TMPDIR", "/tmp"},
    {"env.TZ", "UTC"},
    {"network", "none"},
    {"agent.version", "0.1.0"},
    {"arch", "x86_64"},
};

static void env_add(fx_case *c, char *k, char *v)
{
	c->env = xreallocarray(c->env, c->n_env + 1, sizeof(*c->env));
	c->env[c->n_env++] = (proto_env){k, v};
}

/* In the node's order (not sorted: the digest sorts, the statement keeps this order). */
static void build_env(fx_case *c)
{
	for (size_t i = 0; i < ARRAY_SIZE(fixed_env); i++)
		env_add(c, xstrdup(fixed_env[i][0]), xstrdup(fixed_env[i][1]));
	for (size_t i = 0; i < PROTO_LIMIT_COUNT; i++) {
		const proto_limit_field *f = &proto_limit_fields[i];
		env_add(c, xasprintf("limits.%s", f->field),
		        xasprintf("%lld", (long long)proto_limit_get(&c->limits, f)));
	}
	for (size_t i = 0; i < c->task.n_env; i++)
		env_add(c, xasprintf("env.%s", c->task.env[i].name), xstrdup(c->task.env[i].value));
}

char *fx_testdata(const char *name)
{
	const char *root = getenv("AISP_SOURCE_ROOT");
	return xasprintf("%s/attest/testdata/%s", root ? root : ".", name);
}

static bool read_opt(const char *path, buf *b)
{
	_cleanup_err_ err *e = NULL;
	return read_file_at(AT_FDCWD, path, 16u << 20, b, &e) == 0;
}

void fx_case_init(fx_case *c, const fx_vector *v)
{
	memset(c, 0, sizeof(*c));
	c->v = v;
	proto_task_init(&c->task);
	proto_result_init(&c->result);
	_cleanup_free_ char *tp = xasprintf("%s/task.json", v->name);
	_cleanup_free_ char *ep = xasprintf("%s/entry.json", v->name);
	_cleanup_free_ char *task_path = fx_testdata(tp), *entry_path = fx_testdata(ep);
	buf b = BUF_INIT;
	c->has_task = read_opt(task_path, &b);
	if (!c->has_task && !read_opt(entry_path, &b))
		fail_msg("%s: neither task.json nor entry.json", v->name);
	_cleanup_err_ err *e = NULL;
	int rc = proto_task_parse(buf_str(&b), b.len, &c->task, NULL, &e);
	if (c->has_task && rc < 0)
		fail_msg("%s/task.json: %s", v->name, err_msg(e));
	if (!c->has_task && rc == 0)
		fail_msg("%s/entry.json parses: a rejected entry must not", v->name);
	c->task_text = buf_steal(&b, NULL);
	v->fill(&c->result);
	if (!c->has_task)
		return;
	if (v->limits) {
		c->limits = *v->limits;
	} else {
		proto_limits dflt;
		proto_limits_default(&dflt);
		c->limits = c->task.limits;
		if (proto_limits_resolve(&c->limits, &dflt, &dflt, &e) < 0)
			fail_msg("%s: limits: %s", v->name, err_msg(e));
	}
	build_env(c);
}

void fx_case_deinit(fx_case *c)
{
	proto_task_deinit(&c->task);
	proto_result_deinit(&c->result);
	proto_env_list_free(c->env, c->n_env);
	free(c->task_text);
	memset(c, 0, sizeof(*c));
}

char *fx_sign(const attest_key *k, fx_case *c, const char *previous, uint64_t seq)
{
	attest_claim claim = {.task = c->has_task ? &c->task : NULL,
	                      .result = &c->result,
	                      .limits = c->has_task ? &c->limits : NULL,
	                      .env = c->env,
	                      .n_env = c->n_env,
	                      .previous = previous,
	                      .sequence = seq};
	_cleanup_err_ err *e = NULL;
	char *digest = NULL;
	proto_result *r = &c->result;
	free(r->attestation);
	free(r->execution_digest);
	r->attestation = r->execution_digest = NULL;
	if (attest_sign(k, &claim, &r->attestation, &r->execution_digest, &digest, &e) < 0)
		fail_msg("attest_sign %s: %s", c->v->name, err_msg(e));
	return digest;
}

attest_key *fx_test_key(void)
{
	_cleanup_free_ char *path = fx_testdata("test-key.pem");
	buf pem = BUF_INIT;
	if (!read_opt(path, &pem))
		fail_msg("cannot read %s", path);
	attest_key *k = NULL;
	_cleanup_err_ err *e = NULL;
	if (attest_key_from_private_pem(&k, buf_str(&pem), pem.len, &e) < 0)
		fail_msg("test key: %s", err_msg(e));
	buf_deinit(&pem);
	return k;
}

/* ---- checks ---- */

void fx_record(void *ud, const char *name, attest_verdict v, const char *detail)
{
	fx_checks *c = ud;
	assert_true(c->n < ARRAY_SIZE(c->names));
	snprintf(c->names[c->n], sizeof(c->names[c->n]), "%s", name);
	snprintf(c->details[c->n], sizeof(c->details[c->n]), "%s", detail ? detail : "");
	c->v[c->n++] = v;
	/* A pass says nothing more; every other verdict says why. */
	assert_true((v == ATTEST_PASS) == (detail == NULL));
}

const char *fx_failed(const fx_checks *c)
{
	static char out[512];
	out[0] = '\0';
	for (size_t i = 0; i < c->n; i++)
		if (c->v[i] == ATTEST_FAIL)
			snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%s",
			         out[0] ? " " : "", c->names[i]);
	return out;
}

int fx_verdict(const fx_checks *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->names[i], name))
			return (int)c->v[i];
	return -1;
}

const char *fx_detail(const fx_checks *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->names[i], name))
			return c->details[i];
	return "";
}

int fx_verify_doc(const proto_result *r, const attest_key *pub, const proto_task *t, buf *doc,
                  fx_checks *c)
{
	_cleanup_err_ err *e = NULL;
	memset(c, 0, sizeof(*c));
	buf_reset(doc);
	proto_result_to_json(r, doc);
	int ret = attest_verify_result(buf_str(doc), doc->len, pub, t, fx_record, c, &e);
	if (ret < 0)
		fail_msg("not a result: %s", err_msg(e));
	return ret;
}

const char *fx_verify(const proto_result *r, const attest_key *pub, const proto_task *t,
                      fx_checks *c, int *ret)
{
	memset(c, 0, sizeof(*c));
	attest_verifier *v = attest_verifier_new();
	*ret = attest_verifier_check(v, r, pub, t, fx_record, c);
	attest_verifier_free(v);
	return fx_failed(c);
}

char *fx_statement(const char *envelope, size_t *len)
{
	uint8_t *stmt = NULL;
	_cleanup_err_ err *e = NULL;
	if (attest_envelope_payload(envelope, &stmt, len, &e) < 0)
		fail_msg("%s", err_msg(e));
	return (char *)stmt;
}

void fx_resign(const attest_key *k, proto_result *r, const char *from, const char *to)
{
	_cleanup_err_ err *e = NULL;
	size_t len = 0;
	_cleanup_free_ char *stmt = fx_statement(r->attestation, &len);
	char *at = strstr(stmt, from);
	if (!at)
		fail_msg("the statement has no %s", from);
	assert_int_equal(strlen(from), strlen(to));
	memcpy(at, to, strlen(to));
	buf pae = BUF_INIT;
	attest_pae(ATTEST_PAYLOAD_TYPE, stmt, len, &pae);
	uint8_t sig[ATTEST_SIG_LEN];
	assert_int_equal(attest_key_sign(k, pae.data, pae.len, sig, &e), 0);
	buf_deinit(&pae);
	free(r->attestation);
	r->attestation = NULL;
	assert_int_equal(attest_envelope_gen(stmt, len, sig, attest_key_id(k), &r->attestation, &e),
	                 0);
}
