/* Unit tests for attest/: keys and their files, digest stability, sign-then-verify, every
 * tamper case failing the check that names it, the hash chain, and the golden vectors in
 * attest/testdata/ (regenerated with AISP_REGEN_VECTORS=1). */
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
#include "attest/internal.h"
#include "common/buf.h"
#include "common/cleanup.h"
#include "common/err.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "proto/proto.h"

/* ---- a fixed task, result and environment ---- */

static const proto_env fixture_env[] = {
    {(char *)"runtime.name", (char *)"runsc"},
    {(char *)"runtime.version", (char *)"release-20221017.0"},
    {(char *)"runtime.flags", (char *)"--network=none --platform=ptrace"},
    {(char *)"limits.memory_bytes", (char *)"268435456"},
    {(char *)"limits.timeout_ms", (char *)"10000"},
    {(char *)"uid", (char *)"65534"},
    {(char *)"gid", (char *)"65534"},
    {(char *)"cwd", (char *)"/workspace"},
    {(char *)"hostname", (char *)"sandbox"},
    {(char *)"env.LANG", (char *)"C.UTF-8"},
    {(char *)"env.TZ", (char *)"UTC"},
    {(char *)"env.GREETING", (char *)"hello"},
    {(char *)"network", (char *)"none"},
    {(char *)"agent.version", (char *)"0.1.0"},
    {(char *)"arch", (char *)"x86_64"},
};

static void add_file(proto_file **files, size_t *n, const char *path, const char *data)
{
	*files = xreallocarray(*files, *n + 1, sizeof(**files));
	(*files)[*n] = (proto_file){xstrdup(path), (uint8_t *)xstrdup(data), strlen(data)};
	(*n)++;
}

static void fixture_task(proto_task *t)
{
	proto_task_init(t);
	t->id = xstrdup("golden-1");
	t->lang = PROTO_LANG_PYTHON;
	t->mode = PROTO_MODE_FUNCTION;
	t->code = xstrdup("import sys\ndef main(args):\n    print(open('data.txt').read())\n"
	                  "    print('warn', file=sys.stderr)\n    return args['n'] * 2\n");
	t->code_len = strlen(t->code);
	t->stdin_data = (uint8_t *)xstrdup("line\n");
	t->stdin_len = 5;
	t->args_json = xstrdup("{\"n\":21}");
	t->env = xcalloc(1, sizeof(*t->env));
	t->env[0] = (proto_env){xstrdup("GREETING"), xstrdup("hello")};
	t->n_env = 1;
	add_file(&t->files, &t->n_files, "data.txt", "input data");
	t->limits.memory_bytes = 268435456;
	t->limits.timeout_ms = 10000;
}

static void fixture_result(proto_result *r)
{
	proto_result_init(r);
	r->id = xstrdup("golden-1");
	proto_output *o = &r->output;
	o->status = PROTO_STATUS_OK;
	o->exit_code = 0;
	buf_append_str(&o->out, "input data\n");
	buf_append_str(&o->err, "warn\n");
	add_file(&o->files, &o->n_files, "report.txt", "all good\n");
	o->return_value = xstrdup("42");
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

static const proto_limits fixture_limits = {
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

/* Signs r for t into r->attestation / r->execution_digest; returns the attestation digest. */
static char *sign_into(const attest_key *k, const proto_task *t, proto_result *r,
                       const char *previous, uint64_t seq)
{
	attest_claim c = {.task = t,
	                  .result = r,
	                  .limits = &fixture_limits,
	                  .env = fixture_env,
	                  .n_env = ARRAY_SIZE(fixture_env),
	                  .previous = previous,
	                  .sequence = seq};
	_cleanup_err_ err *e = NULL;
	char *digest = NULL;
	free(r->attestation);
	free(r->execution_digest);
	r->attestation = r->execution_digest = NULL;
	int ret = attest_sign(k, &c, &r->attestation, &r->execution_digest, &digest, &e);
	if (ret < 0)
		fail_msg("attest_sign: %s", err_msg(e));
	return digest;
}

/* ---- check recording ---- */

struct checks {
	char names[64][32];
	bool ok[64];
	size_t n;
};

static void record(void *ud, const char *name, bool ok, const char *detail)
{
	struct checks *c = ud;
	assert_true(c->n < 64);
	snprintf(c->names[c->n], sizeof(c->names[c->n]), "%s", name);
	c->ok[c->n++] = ok;
	assert_true(ok == (detail == NULL));
}

/* The failed checks, space-separated ("" when all passed). */
static const char *failed(const struct checks *c)
{
	static char out[512];
	out[0] = '\0';
	for (size_t i = 0; i < c->n; i++)
		if (!c->ok[i])
			snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%s",
			         out[0] ? " " : "", c->names[i]);
	return out;
}

static bool reported(const struct checks *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->names[i], name))
			return true;
	return false;
}

static const char *verify_once(const proto_result *r, const attest_key *pub, const proto_task *t,
                               struct checks *c, int *ret)
{
	memset(c, 0, sizeof(*c));
	attest_verifier *v = attest_verifier_new();
	*ret = attest_verifier_check(v, r, pub, t, record, c);
	attest_verifier_free(v);
	return failed(c);
}

/* ---- shared state: one generated key, one signed fixture ---- */

struct fx {
	attest_key *key;
	proto_task task;
	proto_result result;
};

static int fx_setup(void **state)
{
	struct fx *f = xzalloc(sizeof(*f));
	_cleanup_err_ err *e = NULL;
	assert_int_equal(attest_key_generate(&f->key, &e), 0);
	fixture_task(&f->task);
	fixture_result(&f->result);
	free(sign_into(f->key, &f->task, &f->result, NULL, 1));
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	attest_key_free(f->key);
	proto_task_deinit(&f->task);
	proto_result_deinit(&f->result);
	free(f);
	return 0;
}

static void test_sign_verify(void **state)
{
	struct fx *f = *state;
	struct checks c;
	int ret;
	assert_string_equal(verify_once(&f->result, f->key, &f->task, &c, &ret), "");
	assert_int_equal(ret, 0);
	static const char *const all[] = {
	    "signature", "key_id",       "statement",          "subjects",     "output_digest",
	    "exit",      "image_digest", "environment_digest", "input_digest", "execution_digest",
	    "metadata"};
	assert_int_equal(c.n, ARRAY_SIZE(all));
	for (size_t i = 0; i < ARRAY_SIZE(all); i++)
		assert_string_equal(c.names[i], all[i]);
	/* Without a task, input_digest is not checked; the rest still passes. */
	assert_string_equal(verify_once(&f->result, f->key, NULL, &c, &ret), "");
	assert_false(reported(&c, "input_digest"));
	assert_int_equal(ret, 0);
	/* The public half alone verifies. */
	_cleanup_free_ char *pem = attest_key_public_pem(f->key);
	attest_key *pub = NULL;
	_cleanup_err_ err *e = NULL;
	assert_int_equal(attest_key_from_public_pem(&pub, pem, strlen(pem), &e), 0);
	assert_false(attest_key_is_private(pub));
	assert_string_equal(attest_key_id(pub), attest_key_id(f->key));
	assert_string_equal(verify_once(&f->result, pub, &f->task, &c, &ret), "");
	uint8_t sig[ATTEST_SIG_LEN];
	assert_int_equal(attest_key_sign(pub, "x", 1, sig, &e), -1);
	attest_key_free(pub);
}

/* Runs verification of a copy of the signed fixture changed by fn; returns the failed set. */
typedef void (*tamper_fn)(struct fx *f, proto_result *r);

static void copy_result(const proto_result *src, proto_result *r)
{
	fixture_result(r);
	r->attestation = xstrdup(src->attestation);
	r->execution_digest = xstrdup(src->execution_digest);
}

static void expect_failed(struct fx *f, tamper_fn fn, const char *want)
{
	proto_result r;
	copy_result(&f->result, &r);
	fn(f, &r);
	struct checks c;
	int ret;
	const char *got = verify_once(&r, f->key, &f->task, &c, &ret);
	assert_string_equal(got, want);
	assert_int_equal(ret, want[0] ? 1 : 0);
	proto_result_deinit(&r);
}

static void t_stdout(struct fx *f, proto_result *r)
{
	r->output.out.data[3] ^= 1;
}
static void t_stderr(struct fx *f, proto_result *r)
{
	r->output.err.data[0] ^= 0x20;
}
static void t_file(struct fx *f, proto_result *r)
{
	r->output.files[0].data[r->output.files[0].len - 1] = '!';
}
static void t_return(struct fx *f, proto_result *r)
{
	r->output.return_value[1] = '3';
}
static void t_exit(struct fx *f, proto_result *r)
{
	r->output.exit_code = 1;
}
static void t_image(struct fx *f, proto_result *r)
{
	r->image_digest[strlen(r->image_digest) - 1] = '0';
}
static void t_metadata(struct fx *f, proto_result *r)
{
	r->finished_ms += 1;
}
static void t_signature(struct fx *f, proto_result *r)
{
	char *sig = strstr(r->attestation, "\"sig\":\"");
	assert_non_null(sig);
	sig[7] = sig[7] == 'A' ? 'B' : 'A';
}
static void t_payload(struct fx *f, proto_result *r)
{
	char *p = strstr(r->attestation, "\"payload\":\"");
	assert_non_null(p);
	p[20] = p[20] == 'A' ? 'B' : 'A';
}

/* Rewrites the statement (replacing from with to) and signs it again with the node's key, as
 * a buggy or lying node would: the signature holds, the internal consistency must not. */
static void resign(struct fx *f, proto_result *r, const char *from, const char *to)
{
	_cleanup_err_ err *e = NULL;
	char *p64 = strstr(r->attestation, "\"payload\":\"");
	assert_non_null(p64);
	p64 += 11;
	_cleanup_free_ char *b64 = xstrndup(p64, strcspn(p64, "\""));
	size_t len = 0;
	_cleanup_free_ uint8_t *stmt = NULL;
	assert_int_equal(proto_b64_decode(b64, strlen(b64), &stmt, &len), 0);
	char *at = strstr((char *)stmt, from);
	assert_non_null(at);
	assert_int_equal(strlen(from), strlen(to));
	memcpy(at, to, strlen(to));
	buf pae = BUF_INIT;
	attest_pae(ATTEST_PAYLOAD_TYPE, stmt, len, &pae);
	uint8_t sig[ATTEST_SIG_LEN];
	assert_int_equal(attest_key_sign(f->key, pae.data, pae.len, sig, &e), 0);
	buf_deinit(&pae);
	_cleanup_free_ char *np = proto_b64_encode(stmt, len);
	_cleanup_free_ char *ns = proto_b64_encode(sig, sizeof(sig));
	jg j;
	jg_init(&j);
	jg_open(&j, true);
	jg_kstr(&j, "payloadType", ATTEST_PAYLOAD_TYPE);
	jg_kstr(&j, "payload", np);
	jg_str(&j, "signatures");
	jg_open(&j, false);
	jg_open(&j, true);
	jg_kstr(&j, "keyid", attest_key_id(f->key));
	jg_kstr(&j, "sig", ns);
	jg_close(&j, true);
	jg_close(&j, false);
	jg_close(&j, true);
	free(r->attestation);
	assert_int_equal(jg_take(&j, &r->attestation, NULL, &e), 0);
	jg_deinit(&j);
}

static void t_environment(struct fx *f, proto_result *r)
{
	resign(f, r, "\"value\":\"runsc\"", "\"value\":\"runcc\"");
}
static void t_statement_exit(struct fx *f, proto_result *r)
{
	/* A node that claims exit 3 in the result and the statement while the execution digest
	 * was built for exit 0: the result matches the statement, the execution digest does not. */
	resign(f, r, "\"exit_code\":0", "\"exit_code\":3");
	r->output.exit_code = 3;
}
static void t_nothing(struct fx *f, proto_result *r)
{
}

static void test_tamper(void **state)
{
	struct fx *f = *state;
	expect_failed(f, t_stdout, "subjects output_digest");
	expect_failed(f, t_stderr, "subjects output_digest");
	expect_failed(f, t_file, "subjects output_digest");
	expect_failed(f, t_return, "subjects output_digest");
	expect_failed(f, t_exit, "exit");
	expect_failed(f, t_image, "image_digest");
	expect_failed(f, t_metadata, "metadata");
	expect_failed(f, t_signature, "signature");
	expect_failed(f, t_payload, "signature");
	expect_failed(f, t_environment, "environment_digest");
	expect_failed(f, t_statement_exit, "execution_digest");
}

static void test_tamper_keys_and_task(void **state)
{
	struct fx *f = *state;
	struct checks c;
	int ret;
	/* A wrong public key: only the signature is reported, nothing else is parsed. */
	attest_key *other = NULL;
	_cleanup_err_ err *e = NULL;
	assert_int_equal(attest_key_generate(&other, &e), 0);
	assert_string_not_equal(attest_key_id(other), attest_key_id(f->key));
	assert_string_equal(verify_once(&f->result, other, &f->task, &c, &ret), "signature");
	assert_int_equal(c.n, 1);
	attest_key_free(other);
	assert_string_equal(verify_once(&f->result, NULL, &f->task, &c, &ret), "signature");
	/* A different task (one byte of code): input_digest. */
	proto_task t;
	fixture_task(&t);
	t.code[0] = 'J';
	assert_string_equal(verify_once(&f->result, f->key, &t, &c, &ret), "input_digest");
	proto_task_deinit(&t);
	expect_failed(f, t_nothing, "");
}

static void test_chain(void **state)
{
	struct fx *f = *state;
	proto_result r[3];
	char *digest[3] = {NULL};
	attest_chain chain = ATTEST_CHAIN_INIT;
	for (int i = 0; i < 3; i++) {
		fixture_result(&r[i]);
		r[i].finished_ms += i;
		digest[i] = sign_into(f->key, &f->task, &r[i], chain.previous, chain.sequence + 1);
		attest_chain_advance(&chain, digest[i], chain.sequence + 1);
		char d[ATTEST_DIGEST_LEN];
		_cleanup_err_ err *e = NULL;
		assert_int_equal(attest_envelope_digest(r[i].attestation, d, &e), 0);
		assert_string_equal(d, digest[i]);
	}
	assert_int_equal(chain.sequence, 3);
	assert_string_equal(chain.previous, digest[2]);

	struct checks c = {0};
	attest_verifier *v = attest_verifier_new();
	for (int i = 0; i < 3; i++)
		assert_int_equal(attest_verifier_check(v, &r[i], f->key, &f->task, record, &c), 0);
	attest_verifier_free(v);
	assert_string_equal(failed(&c), "");
	int chains = 0;
	for (size_t i = 0; i < c.n; i++)
		chains += !strcmp(c.names[i], "chain");
	assert_int_equal(chains, 2);

	/* Swapped order: 0, 2, 1. */
	memset(&c, 0, sizeof(c));
	v = attest_verifier_new();
	assert_int_equal(attest_verifier_check(v, &r[0], f->key, &f->task, record, &c), 0);
	assert_int_equal(attest_verifier_check(v, &r[2], f->key, &f->task, record, &c), 1);
	assert_string_equal(failed(&c), "chain");
	attest_verifier_free(v);
	for (int i = 0; i < 3; i++) {
		proto_result_deinit(&r[i]);
		free(digest[i]);
	}
}

static char *make_tmpdir(void)
{
	char *dir = xstrdup("/tmp/test-attest-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return dir;
}

static void test_chain_file(void **state)
{
	_cleanup_free_ char *dir = make_tmpdir();
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_err_ err *e = NULL;
	attest_chain c;
	assert_int_equal(attest_chain_load(dfd, "chain.json", &c, &e), 0);
	assert_string_equal(c.previous, "");
	assert_int_equal(c.sequence, 0);
	char d[ATTEST_DIGEST_LEN];
	attest_sha256_str("x", 1, d);
	attest_chain_advance(&c, d, 7);
	assert_int_equal(attest_chain_save(dfd, "chain.json", &c, &e), 0);
	attest_chain c2;
	assert_int_equal(attest_chain_load(dfd, "chain.json", &c2, &e), 0);
	assert_string_equal(c2.previous, d);
	assert_int_equal(c2.sequence, 7);
	struct stat st;
	assert_int_equal(fstatat(dfd, "chain.json", &st, 0), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(
	    write_file_at(dfd, "chain.json", "{\"previous\":\"x\",\"sequence\":1}", 29, 0600, &e),
	    0);
	assert_int_equal(attest_chain_load(dfd, "chain.json", &c2, &e), -1);
	assert_non_null(strstr(err_msg(e), "invalid previous"));
	assert_int_equal(rm_rf_at(AT_FDCWD, dir, &e), 0);
}

static void test_key_files(void **state)
{
	_cleanup_free_ char *dir = make_tmpdir();
	_cleanup_free_ char *priv = xasprintf("%s/private.pem", dir);
	_cleanup_free_ char *pub = xasprintf("%s/public.pem", dir);
	_cleanup_err_ err *e = NULL;
	attest_key *k = NULL, *k2 = NULL, *p = NULL;
	assert_int_equal(attest_key_generate(&k, &e), 0);
	assert_int_equal(attest_key_write_pair(k, dir, false, &e), 0);
	struct stat st;
	assert_int_equal(stat(priv, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(pub, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	/* No silent overwrite; --force replaces. */
	assert_int_equal(attest_key_write_pair(k, dir, false, &e), -1);
	assert_non_null(strstr(err_msg(e), "--force"));
	assert_int_equal(attest_key_load_private(&k2, priv, &e), 0);
	assert_true(attest_key_is_private(k2));
	assert_string_equal(attest_key_id(k2), attest_key_id(k));
	assert_int_equal(attest_key_load_public(&p, pub, &e), 0);
	assert_string_equal(attest_key_id(p), attest_key_id(k));
	uint8_t sig[ATTEST_SIG_LEN];
	assert_int_equal(attest_key_sign(k2, "abc", 3, sig, &e), 0);
	assert_true(attest_key_verify(p, "abc", 3, sig, sizeof(sig)));
	assert_false(attest_key_verify(p, "abd", 3, sig, sizeof(sig)));
	attest_key_free(k2);
	k2 = NULL;
	/* A private key readable by others is refused with the fix in the message. */
	assert_int_equal(chmod(priv, 0644), 0);
	assert_int_equal(attest_key_load_private(&k2, priv, &e), -1);
	assert_null(k2);
	assert_non_null(strstr(err_msg(e), "chmod 600"));
	assert_int_equal(chmod(priv, 0640), 0);
	assert_int_equal(attest_key_load_private(&k2, priv, &e), -1);
	/* A symlink to the key is not followed. */
	_cleanup_free_ char *link = xasprintf("%s/link.pem", dir);
	assert_int_equal(chmod(priv, 0600), 0);
	assert_int_equal(symlink(priv, link), 0);
	assert_int_equal(attest_key_load_private(&k2, link, &e), -1);
	/* A public key file is not a private key. */
	assert_int_equal(chmod(pub, 0600), 0);
	assert_int_equal(attest_key_load_private(&k2, pub, &e), -1);
	attest_key *k3 = NULL;
	assert_int_equal(attest_key_generate(&k3, &e), 0);
	assert_int_equal(attest_key_write_pair(k3, dir, true, &e), 0);
	assert_int_equal(attest_key_load_private(&k2, priv, &e), 0);
	assert_string_equal(attest_key_id(k2), attest_key_id(k3));
	assert_int_equal(stat(priv, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	attest_key_free(k);
	attest_key_free(k2);
	attest_key_free(k3);
	attest_key_free(p);
	assert_int_equal(rm_rf_at(AT_FDCWD, dir, &e), 0);
}

static void test_digests_stable(void **state)
{
	proto_task t;
	fixture_task(&t);
	char a[ATTEST_DIGEST_LEN], b[ATTEST_DIGEST_LEN];
	attest_input_digest(&t, a);
	attest_input_digest(&t, b);
	assert_string_equal(a, b);
	free(t.id);
	t.id = xstrdup("another-id"); /* the id is not part of the input */
	attest_input_digest(&t, b);
	assert_string_equal(a, b);
	t.stdin_data[0] = 'L';
	attest_input_digest(&t, b);
	assert_string_not_equal(a, b);
	t.stdin_data[0] = 'l';
	t.env[0].value[0] = 'H';
	attest_input_digest(&t, b);
	assert_string_not_equal(a, b);
	proto_task_deinit(&t);

	/* Moving bytes between adjacent fields changes the digest (length prefixes). */
	proto_output o1, o2;
	proto_output_init(&o1);
	proto_output_init(&o2);
	buf_append_str(&o1.out, "ab");
	buf_append_str(&o2.out, "a");
	buf_append_str(&o2.err, "b");
	attest_output_digest(&o1, a);
	attest_output_digest(&o2, b);
	assert_string_not_equal(a, b);
	attest_output_digest(&o1, b);
	assert_string_equal(a, b);
	o1.stdout_truncated = true;
	attest_output_digest(&o1, b);
	assert_string_not_equal(a, b);
	proto_output_deinit(&o1);
	proto_output_deinit(&o2);

	/* The environment digest does not depend on the order of the pairs; duplicates fail. */
	_cleanup_err_ err *e = NULL;
	size_t n = ARRAY_SIZE(fixture_env);
	proto_env rev[ARRAY_SIZE(fixture_env) + 1];
	for (size_t i = 0; i < n; i++)
		rev[i] = fixture_env[n - 1 - i];
	assert_int_equal(attest_environment_digest(fixture_env, n, a, &e), 0);
	assert_int_equal(attest_environment_digest(rev, n, b, &e), 0);
	assert_string_equal(a, b);
	rev[n] = rev[0];
	assert_int_equal(attest_environment_digest(rev, n + 1, b, &e), -1);
	assert_non_null(strstr(err_msg(e), "duplicate"));
	rev[0].value = (char *)"gvisor";
	assert_int_equal(attest_environment_digest(rev, n, b, &e), 0);
	assert_string_not_equal(a, b);

	/* Exit encodings: exit 0, exit 1, a signal and a timeout all differ. */
	buf x1 = BUF_INIT, x2 = BUF_INIT, x3 = BUF_INIT, x4 = BUF_INIT;
	attest_exit_encoding(PROTO_STATUS_OK, 0, 0, &x1);
	attest_exit_encoding(PROTO_STATUS_OK, 1, 0, &x2);
	attest_exit_encoding(PROTO_STATUS_OK, -1, 9, &x3);
	attest_exit_encoding(PROTO_STATUS_TIMEOUT, -1, 9, &x4);
	assert_false(x1.len == x2.len && !memcmp(x1.data, x2.data, x1.len));
	assert_false(x3.len == x4.len && !memcmp(x3.data, x4.data, x3.len));
	assert_int_equal(x1.len, x2.len);
	buf_deinit(&x1);
	buf_deinit(&x2);
	buf_deinit(&x3);
	buf_deinit(&x4);
}

static void test_field_bytes(void **state)
{
	buf b = BUF_INIT;
	attest_field(&b, "ab", "xyz", 3);
	static const uint8_t want[] = {'a', 'b', 0, 0, 0, 0, 0, 0, 0, 0, 3, 'x', 'y', 'z'};
	assert_int_equal(b.len, sizeof(want));
	assert_memory_equal(b.data, want, sizeof(want));
	buf_deinit(&b);
	attest_pae("t", "pl", 2, &b);
	assert_string_equal(buf_str(&b), "DSSEv1 1 t 2 pl");
	buf_deinit(&b);
	char d[ATTEST_DIGEST_LEN];
	attest_sha256_str("abc", 3, d);
	assert_string_equal(
	    d, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	size_t n = 0;
	_cleanup_free_ uint8_t *dec = NULL;
	assert_int_equal(proto_b64_decode("abc", 3, &dec, &n), -1);
	assert_int_equal(proto_b64_decode("ab=c", 4, &dec, &n), -1);
	assert_int_equal(proto_b64_decode("YWJ=", 4, &dec, &n), -1); /* unused bits set */
	assert_int_equal(proto_b64_decode("YWI=", 4, &dec, &n), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(dec, "ab", 2);
}

/* Through a result document and back: the return value is re-serialised compactly by proto,
 * and the digests are over that form, so spacing in the agent's JSON does not matter. */
static void test_result_document(void **state)
{
	struct fx *f = *state;
	proto_result r;
	fixture_result(&r);
	free(r.output.return_value);
	r.output.return_value = xstrdup("{ \"a\" : [1, 2.50, \"x\"] }");
	free(sign_into(f->key, &f->task, &r, NULL, 1));
	buf doc = BUF_INIT;
	proto_result_to_json(&r, &doc);
	struct checks c = {0};
	_cleanup_err_ err *e = NULL;
	assert_int_equal(
	    attest_verify_result(buf_str(&doc), doc.len, f->key, &f->task, record, &c, &e), 0);
	assert_string_equal(failed(&c), "");
	assert_int_equal(attest_verify_result("{", 1, f->key, NULL, record, &c, &e), -1);
	buf_deinit(&doc);
	proto_result_deinit(&r);
}

/* A killed program with binary output and no files: null exit code, a signal, base64 stdout in
 * the result document, no return value subject. */
static void test_signalled(void **state)
{
	struct fx *f = *state;
	proto_result r;
	fixture_result(&r);
	proto_output_deinit(&r.output);
	r.output.status = PROTO_STATUS_TIMEOUT;
	r.output.signal = 9;
	buf_append(&r.output.out, "\xff\x00\xfe", 3);
	free(sign_into(f->key, &f->task, &r, NULL, 1));
	_cleanup_free_ char *stmt = NULL;
	const char *p = strstr(r.attestation, "\"payload\":\"") + 11;
	_cleanup_free_ char *b64 = xstrndup(p, strcspn(p, "\""));
	size_t len = 0;
	assert_int_equal(proto_b64_decode(b64, strlen(b64), (uint8_t **)&stmt, &len), 0);
	assert_non_null(strstr(stmt, "\"status\":\"timeout\",\"exit_code\":null,\"signal\":9"));
	assert_null(strstr(stmt, "return_value"));
	buf doc = BUF_INIT;
	proto_result_to_json(&r, &doc);
	struct checks c = {0};
	_cleanup_err_ err *e = NULL;
	assert_int_equal(attest_verify_result(buf_str(&doc), doc.len, f->key, NULL, record, &c, &e),
	                 0);
	assert_string_equal(failed(&c), "");
	/* The same output claimed as an exit 0 fails the exit check. */
	r.output.status = PROTO_STATUS_OK;
	r.output.exit_code = 0;
	r.output.signal = 0;
	int ret;
	assert_string_equal(verify_once(&r, f->key, NULL, &c, &ret), "exit");
	buf_deinit(&doc);
	proto_result_deinit(&r);
}

/* ---- golden vectors ---- */

static char *testdata(const char *name)
{
	const char *root = getenv("AISP_SOURCE_ROOT");
	return xasprintf("%s/attest/testdata/%s", root ? root : ".", name);
}

static void read_text(const char *path, buf *b)
{
	_cleanup_err_ err *e = NULL;
	if (read_file_at(AT_FDCWD, path, 16u << 20, b, &e) < 0)
		fail_msg("%s (regenerate with AISP_REGEN_VECTORS=1)", err_msg(e));
}

static void hexline(buf *out, const char *name, const buf *b)
{
	char *hex = xmalloc(2 * b->len + 1);
	hex_encode(b->data, b->len, hex);
	buf_appendf(out, "%s %s\n", name, hex);
	free(hex);
}

/* Every intermediate value, one "name value" line each (ATTESTATION.md, "Test vectors"). */
static void expected_lines(const proto_task *t, const proto_result *r, const attest_key *k,
                           buf *out)
{
	_cleanup_err_ err *e = NULL;
	char d[ATTEST_DIGEST_LEN];
	buf b = BUF_INIT;
	buf_appendf(out, "key_id %s\n", attest_key_id(k));
	attest_input_encoding(t, &b);
	hexline(out, "input_encoding_hex", &b);
	attest_input_digest(t, d);
	buf_appendf(out, "input_digest %s\n", d);
	buf_reset(&b);
	attest_output_encoding(&r->output, &b);
	hexline(out, "output_encoding_hex", &b);
	attest_output_digest(&r->output, d);
	buf_appendf(out, "output_digest %s\n", d);
	buf_reset(&b);
	attest_exit_encoding(r->output.status, r->output.exit_code, r->output.signal, &b);
	hexline(out, "exit_encoding_hex", &b);
	buf_reset(&b);
	assert_int_equal(attest_environment_encoding(fixture_env, ARRAY_SIZE(fixture_env), &b, &e),
	                 0);
	hexline(out, "environment_encoding_hex", &b);
	assert_int_equal(attest_environment_digest(fixture_env, ARRAY_SIZE(fixture_env), d, &e), 0);
	buf_appendf(out, "environment_digest %s\n", d);
	buf_appendf(out, "execution_digest %s\n", r->execution_digest);
	assert_int_equal(attest_envelope_digest(r->attestation, d, &e), 0);
	buf_appendf(out, "attestation_digest %s\n", d);
	buf_reset(&b);
	/* The PAE, from the envelope's payload. */
	const char *p = strstr(r->attestation, "\"payload\":\"") + 11;
	_cleanup_free_ char *b64 = xstrndup(p, strcspn(p, "\""));
	size_t len = 0;
	_cleanup_free_ uint8_t *stmt = NULL;
	if (proto_b64_decode(b64, strlen(b64), &stmt, &len) < 0)
		abort();
	attest_pae(ATTEST_PAYLOAD_TYPE, stmt, len, &b);
	hexline(out, "pae_hex", &b);
	buf_deinit(&b);
}

static void write_vector(const char *name, const void *data, size_t len)
{
	_cleanup_free_ char *dir = testdata("");
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_err_ err *e = NULL;
	if (dfd < 0 || write_file_at(dfd, name, data, len, 0644, &e) < 0)
		fail_msg("%s", err_msg(e));
}

static void test_golden(void **state)
{
	_cleanup_err_ err *e = NULL;
	_cleanup_free_ char *key_path = testdata("test-key.pem");
	buf pem = BUF_INIT;
	read_text(key_path, &pem);
	attest_key *k = NULL;
	assert_int_equal(attest_key_from_private_pem(&k, buf_str(&pem), pem.len, &e), 0);
	buf_deinit(&pem);
	proto_task t;
	proto_result r;
	fixture_task(&t);
	fixture_result(&r);
	char *prev =
	    xstrdup("sha256:1111111111111111111111111111111111111111111111111111111111111111");
	free(sign_into(k, &t, &r, prev, 2));
	free(prev);
	buf task_json = BUF_INIT, result_json = BUF_INIT, expected = BUF_INIT;
	expected_lines(&t, &r, k, &expected);
	if (getenv("AISP_REGEN_VECTORS") && !strcmp(getenv("AISP_REGEN_VECTORS"), "1")) {
		proto_task_to_json(&t, &task_json);
		proto_result_to_json(&r, &result_json);
		buf_append_str(&task_json, "\n");
		buf_append_str(&result_json, "\n");
		write_vector("task.json", task_json.data, task_json.len);
		write_vector("result.json", result_json.data, result_json.len);
		write_vector("expected.txt", expected.data, expected.len);
		buf_reset(&task_json);
		buf_reset(&result_json);
	}
	/* The stored vectors: the task parses to the same input; the stored envelope is exactly
	 * the one signed now; every intermediate value is unchanged; the result verifies. */
	_cleanup_free_ char *tp = testdata("task.json"), *rp = testdata("result.json");
	_cleanup_free_ char *ep = testdata("expected.txt"), *pp = testdata("test-pub.pem");
	read_text(tp, &task_json);
	read_text(rp, &result_json);
	buf stored = BUF_INIT;
	read_text(ep, &stored);
	assert_string_equal(buf_str(&stored), buf_str(&expected));
	proto_task pt;
	proto_task_init(&pt);
	if (proto_task_parse(buf_str(&task_json), task_json.len, &pt, NULL, &e) < 0)
		fail_msg("task.json: %s", err_msg(e));
	char a[ATTEST_DIGEST_LEN], b[ATTEST_DIGEST_LEN];
	attest_input_digest(&t, a);
	attest_input_digest(&pt, b);
	assert_string_equal(a, b);
	proto_result pr;
	proto_result_init(&pr);
	if (proto_result_parse(buf_str(&result_json), result_json.len, &pr, &e) < 0)
		fail_msg("result.json: %s", err_msg(e));
	assert_string_equal(pr.attestation, r.attestation);
	attest_key *pub = NULL;
	assert_int_equal(attest_key_load_public(&pub, pp, &e), 0);
	struct checks c = {0};
	int ret =
	    attest_verify_result(buf_str(&result_json), result_json.len, pub, &pt, record, &c, &e);
	assert_string_equal(failed(&c), "");
	assert_int_equal(ret, 0);
	assert_true(reported(&c, "input_digest"));
	attest_key_free(pub);
	attest_key_free(k);
	proto_result_deinit(&pr);
	proto_task_deinit(&pt);
	proto_task_deinit(&t);
	proto_result_deinit(&r);
	buf_deinit(&stored);
	buf_deinit(&task_json);
	buf_deinit(&result_json);
	buf_deinit(&expected);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_field_bytes),
	    cmocka_unit_test(test_digests_stable),
	    cmocka_unit_test(test_key_files),
	    cmocka_unit_test(test_chain_file),
	    cmocka_unit_test_setup_teardown(test_sign_verify, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_tamper, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_tamper_keys_and_task, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_chain, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_result_document, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_signalled, fx_setup, fx_teardown),
	    cmocka_unit_test(test_golden),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
