/* Unit tests for attest/: keys and their files, digest stability, sign-then-verify, tamper
 * cases failing the check that names them (error, limits, statement edits by a lying node), the
 * hash chain, and the claims a replay reads. The golden vectors and the tamper test of every
 * result field are in test-attest-vectors.c. */
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
#include "tests/unit/attest-fixture.h"

/* ---- shared state: one generated key, the basic vector signed with it ---- */

struct fx {
	attest_key *key;
	fx_case c;
};

static int fx_setup(void **state)
{
	struct fx *f = xzalloc(sizeof(*f));
	_cleanup_err_ err *e = NULL;
	assert_int_equal(attest_key_generate(&f->key, &e), 0);
	fx_case_init(&f->c, fx_vector_named("01-basic"));
	free(fx_sign(f->key, &f->c, NULL, 1));
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	attest_key_free(f->key);
	fx_case_deinit(&f->c);
	free(f);
	return 0;
}

static void test_sign_verify(void **state)
{
	struct fx *f = *state;
	fx_checks c;
	int ret;
	assert_string_equal(fx_verify(&f->c.result, f->key, &f->c.task, &c, &ret), "");
	assert_int_equal(ret, 0);
	static const char *const all[] = {"signature", "key_id",        "statement",
	                                  "subjects",  "output_digest", "exit",
	                                  "error",     "image_digest",  "environment_digest",
	                                  "limits",    "input_digest",  "execution_digest",
	                                  "metadata"};
	assert_int_equal(c.n, ARRAY_SIZE(all));
	for (size_t i = 0; i < ARRAY_SIZE(all); i++) {
		assert_string_equal(c.names[i], all[i]);
		assert_int_equal(c.v[i], ATTEST_PASS);
	}
	/* Without a task, input_digest is reported as skipped (not silently left out). */
	assert_string_equal(fx_verify(&f->c.result, f->key, NULL, &c, &ret), "");
	assert_int_equal(fx_verdict(&c, "input_digest"), ATTEST_SKIP);
	assert_string_equal(fx_detail(&c, "input_digest"), "no --task");
	assert_int_equal(ret, 0);
	/* The public half alone verifies. */
	_cleanup_free_ char *pem = attest_key_public_pem(f->key);
	attest_key *pub = NULL;
	_cleanup_err_ err *e = NULL;
	assert_int_equal(attest_key_from_public_pem(&pub, pem, strlen(pem), &e), 0);
	assert_false(attest_key_is_private(pub));
	assert_string_equal(attest_key_id(pub), attest_key_id(f->key));
	assert_string_equal(fx_verify(&f->c.result, pub, &f->c.task, &c, &ret), "");
	uint8_t sig[ATTEST_SIG_LEN];
	assert_int_equal(attest_key_sign(pub, "x", 1, sig, &e), -1);
	attest_key_free(pub);
}

/* Verification of a copy of the signed basic result changed by fn must fail exactly want. */
typedef void (*tamper_fn)(struct fx *f, proto_result *r);

static void copy_result(const fx_case *src, proto_result *r)
{
	proto_result_init(r);
	src->v->fill(r);
	r->attestation = xstrdup(src->result.attestation);
	r->execution_digest = xstrdup(src->result.execution_digest);
}

static void expect_failed(struct fx *f, tamper_fn fn, const char *want)
{
	proto_result r;
	copy_result(&f->c, &r);
	fn(f, &r);
	fx_checks c;
	int ret;
	assert_string_equal(fx_verify(&r, f->key, &f->c.task, &c, &ret), want);
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
static void t_error_added(struct fx *f, proto_result *r)
{
	r->output.error = xstrdup("your account is suspended: pay at evil.example");
}
static void t_image(struct fx *f, proto_result *r)
{
	r->image_digest[strlen(r->image_digest) - 1] = '0';
}
static void t_metadata(struct fx *f, proto_result *r)
{
	r->finished_ms += 1;
}
static void t_no_execution_digest(struct fx *f, proto_result *r)
{
	free(r->execution_digest);
	r->execution_digest = NULL;
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
static void t_environment(struct fx *f, proto_result *r)
{
	fx_resign(f->key, r, "\"value\":\"runsc\"", "\"value\":\"runcc\"");
}
static void t_statement_exit(struct fx *f, proto_result *r)
{
	/* A node that claims exit 3 in the result and the statement while the execution digest
	 * was built for exit 0: the result matches the statement, the execution digest does not. */
	fx_resign(f->key, r, "\"exit_code\":0", "\"exit_code\":3");
	r->output.exit_code = 3;
}
/* The limits a sandbox ran with are written twice: predicate.limits and the environment's
 * limits.* (which the environment digest covers). A statement whose two copies disagree
 * claims two different runs; before the limits check it verified. */
static void t_limits(struct fx *f, proto_result *r)
{
	fx_resign(f->key, r, "\"memory_bytes\":268435456", "\"memory_bytes\":536870912");
}
static void t_limits_env(struct fx *f, proto_result *r)
{
	fx_resign(f->key, r, "\"limits.pids\",\"value\":\"128\"",
	          "\"limits.pids\",\"value\":\"512\"");
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
	expect_failed(f, t_error_added, "error");
	expect_failed(f, t_image, "image_digest");
	expect_failed(f, t_metadata, "metadata");
	expect_failed(f, t_no_execution_digest, "execution_digest");
	expect_failed(f, t_signature, "signature");
	expect_failed(f, t_payload, "signature");
	expect_failed(f, t_environment, "environment_digest");
	expect_failed(f, t_statement_exit, "execution_digest");
	expect_failed(f, t_limits, "limits");
	expect_failed(f, t_limits_env, "environment_digest limits");
	expect_failed(f, t_nothing, "");
}

/* The error text is signed: changed, added to an ok result, or removed, verification fails
 * with the error check naming it (before, it was covered by nothing). */
static void test_error_signed(void **state)
{
	struct fx *f = *state;
	fx_case k;
	fx_case_init(&k, fx_vector_named("07-function-error"));
	free(fx_sign(f->key, &k, NULL, 1));
	fx_checks c;
	int ret;
	assert_string_equal(fx_verify(&k.result, f->key, &k.task, &c, &ret), "");
	char *err_text = k.result.output.error;
	k.result.output.error = xstrdup("ValueError: nothing to see");
	assert_string_equal(fx_verify(&k.result, f->key, &k.task, &c, &ret), "error");
	assert_non_null(
	    strstr(fx_detail(&c, "error"), "error differs (statement \"ValueError: bad"));
	assert_non_null(strstr(fx_detail(&c, "error"), "result \"ValueError: nothing to see\")"));
	free(k.result.output.error);
	k.result.output.error = NULL;
	assert_string_equal(fx_verify(&k.result, f->key, &k.task, &c, &ret), "error");
	assert_non_null(strstr(fx_detail(&c, "error"), "result none"));
	k.result.output.error = err_text;
	/* Text that is not UTF-8 is signed as the document carries it (U+FFFD). */
	free(k.result.output.error);
	k.result.output.error = xstrdup("bad byte \xff here");
	free(fx_sign(f->key, &k, NULL, 1));
	buf doc = BUF_INIT;
	assert_int_equal(fx_verify_doc(&k.result, f->key, &k.task, &doc, &c), 0);
	assert_non_null(strstr(buf_str(&doc), "\"error\":\"bad byte \xef\xbf\xbd here\""));
	buf_deinit(&doc);
	fx_case_deinit(&k);
}

/* A return value that is not JSON cannot be carried by a result document, so it is no return
 * value for the digests either. Before, the statement had a return_value subject the published
 * document could never match: the node's own result failed verification. */
static void test_return_not_json(void **state)
{
	struct fx *f = *state;
	fx_case k;
	fx_case_init(&k, fx_vector_named("01-basic"));
	free(k.result.output.return_value);
	k.result.output.return_value = xstrdup("{not json");
	free(fx_sign(f->key, &k, NULL, 1));
	size_t len = 0;
	_cleanup_free_ char *stmt = fx_statement(k.result.attestation, &len);
	assert_null(strstr(stmt, "return_value"));
	buf doc = BUF_INIT;
	fx_checks c;
	assert_int_equal(fx_verify_doc(&k.result, f->key, &k.task, &doc, &c), 0);
	assert_null(strstr(buf_str(&doc), "return_value"));
	buf_deinit(&doc);
	fx_case_deinit(&k);
}

/* Subjects list output files sorted by path whatever order the output holds them in. */
static void test_subjects_sorted(void **state)
{
	struct fx *f = *state;
	fx_case k;
	fx_case_init(&k, fx_vector_named("03-unicode"));
	proto_output *o = &k.result.output;
	proto_file first = o->files[0];
	o->files[0] = o->files[o->n_files - 1];
	o->files[o->n_files - 1] = first;
	free(fx_sign(f->key, &k, NULL, 1));
	size_t len = 0;
	_cleanup_free_ char *stmt = fx_statement(k.result.attestation, &len);
	const char *b = strstr(stmt, "\"out/B.txt\""), *z = strstr(stmt, "\"out/Z\u00fcrich.txt\"");
	const char *a = strstr(stmt, "\"out/a.txt\""),
	           *e8 = strstr(stmt, "\"out/\u00e9/\u00fc.txt\"");
	assert_true(b && z && a && e8);
	assert_true(b < z && z < a && a < e8);
	fx_case_deinit(&k);
}

/* What a replay reads: the claims, and limits that disagree with the environment named. */
static void test_claims(void **state)
{
	struct fx *f = *state;
	attest_claims cl;
	_cleanup_err_ err *e = NULL;
	assert_int_equal(attest_claims_read(f->c.result.attestation, &cl, &e), 0);
	assert_string_equal(cl.runtime, "runsc");
	assert_string_equal(cl.status, "ok");
	assert_int_equal(cl.exit_code, 0);
	assert_int_equal(cl.limits.memory_bytes, 268435456);
	assert_int_equal(cl.limits.stderr_bytes, 1048576);
	assert_int_equal(cl.n_env, f->c.n_env);
	assert_false(cl.nondeterministic);
	assert_string_equal(cl.execution_digest, f->c.result.execution_digest);
	attest_claims_deinit(&cl);
	proto_result r;
	copy_result(&f->c, &r);
	t_limits(f, &r);
	assert_int_equal(attest_claims_read(r.attestation, &cl, &e), -1);
	assert_string_equal(err_msg(e), "the statement's limits disagree with its environment: "
	                                "limits.memory_bytes is 536870912 in predicate.limits, "
	                                "268435456 in the environment");
	proto_result_deinit(&r);
	/* A rejected result never ran: nothing to replay. */
	fx_case k;
	fx_case_init(&k, fx_vector_named("08-rejected"));
	free(fx_sign(f->key, &k, NULL, 1));
	assert_int_equal(attest_claims_read(k.result.attestation, &cl, &e), -1);
	assert_non_null(strstr(err_msg(e), "never ran"));
	fx_case_deinit(&k);
}

/* A node refuses to sign limits that disagree with the environment it describes. */
static void test_sign_limits_mismatch(void **state)
{
	struct fx *f = *state;
	proto_limits l = fx_limits;
	l.pids = 64;
	attest_claim claim = {.task = &f->c.task,
	                      .result = &f->c.result,
	                      .limits = &l,
	                      .env = f->c.env,
	                      .n_env = f->c.n_env,
	                      .sequence = 1};
	_cleanup_err_ err *e = NULL;
	char *env = NULL;
	assert_int_equal(attest_sign(f->key, &claim, &env, NULL, NULL, &e), -1);
	assert_null(env);
	assert_non_null(strstr(err_msg(e), "limits.pids is 64 in predicate.limits, 128 in the"));
	/* No limits and no limits.* pairs (a result that never ran) is consistent. */
	assert_int_equal(attest_limits_match(NULL, NULL, 0, &e), 0);
	assert_int_equal(attest_limits_match(NULL, f->c.env, f->c.n_env, &e), -1);
}

static void test_tamper_keys_and_task(void **state)
{
	struct fx *f = *state;
	fx_checks c;
	int ret;
	/* A wrong public key: only the signature is reported, nothing else is parsed. */
	attest_key *other = NULL;
	_cleanup_err_ err *e = NULL;
	assert_int_equal(attest_key_generate(&other, &e), 0);
	assert_string_not_equal(attest_key_id(other), attest_key_id(f->key));
	assert_string_equal(fx_verify(&f->c.result, other, &f->c.task, &c, &ret), "signature");
	assert_int_equal(c.n, 1);
	attest_key_free(other);
	assert_string_equal(fx_verify(&f->c.result, NULL, &f->c.task, &c, &ret), "signature");
	/* A different task (one byte of code): input_digest. */
	fx_case k;
	fx_case_init(&k, fx_vector_named("01-basic"));
	k.task.code[0] = 'J';
	assert_string_equal(fx_verify(&f->c.result, f->key, &k.task, &c, &ret), "input_digest");
	fx_case_deinit(&k);
	/* The envelope names its key id, checked as digest text. */
	char kid[ATTEST_DIGEST_LEN];
	assert_int_equal(attest_envelope_key_id(f->c.result.attestation, kid, &e), 0);
	assert_string_equal(kid, attest_key_id(f->key));
	assert_int_equal(attest_envelope_key_id("{\"signatures\":[{\"keyid\":\"x:1\"}]}", kid, &e),
	                 -1);
}

static void test_chain(void **state)
{
	struct fx *f = *state;
	fx_case k[3];
	char *digest[3] = {NULL};
	attest_chain chain = ATTEST_CHAIN_INIT;
	for (int i = 0; i < 3; i++) {
		fx_case_init(&k[i], fx_vector_named("01-basic"));
		k[i].result.finished_ms += i;
		digest[i] = fx_sign(f->key, &k[i], chain.previous, chain.sequence + 1);
		attest_chain_advance(&chain, digest[i], chain.sequence + 1);
		char d[ATTEST_DIGEST_LEN];
		_cleanup_err_ err *e = NULL;
		assert_int_equal(attest_envelope_digest(k[i].result.attestation, d, &e), 0);
		assert_string_equal(d, digest[i]);
	}
	assert_int_equal(chain.sequence, 3);
	assert_string_equal(chain.previous, digest[2]);

	fx_checks c = {0};
	attest_verifier *v = attest_verifier_new();
	for (int i = 0; i < 3; i++)
		assert_int_equal(
		    attest_verifier_check(v, &k[i].result, f->key, &k[i].task, fx_record, &c), 0);
	attest_verifier_free(v);
	assert_string_equal(fx_failed(&c), "");
	int chains = 0;
	for (size_t i = 0; i < c.n; i++)
		chains += !strcmp(c.names[i], "chain");
	assert_int_equal(chains, 2);

	/* Swapped order: 0, 2, 1. */
	memset(&c, 0, sizeof(c));
	v = attest_verifier_new();
	assert_int_equal(attest_verifier_check(v, &k[0].result, f->key, &k[0].task, fx_record, &c),
	                 0);
	assert_int_equal(attest_verifier_check(v, &k[2].result, f->key, &k[2].task, fx_record, &c),
	                 1);
	assert_string_equal(fx_failed(&c), "chain");
	attest_verifier_free(v);
	for (int i = 0; i < 3; i++) {
		fx_case_deinit(&k[i]);
		free(digest[i]);
	}
}

static char *make_tmpdir(void)
{
	char *dir = xstrdup("/tmp/test-attest-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return dir;
}

/* Reads dir/chain.json's raw bytes into b (at most 3 slots). */
static size_t chain_bytes(int dfd, char *b)
{
	_cleanup_close_ int fd = openat(dfd, "chain.json", O_RDONLY);
	assert_true(fd >= 0);
	ssize_t n = read(fd, b, 3 * ATTEST_CHAIN_SLOT);
	assert_true(n >= 0);
	return (size_t)n;
}

static void put_chain_bytes(int dfd, const char *b, size_t n)
{
	_cleanup_err_ err *e = NULL;
	assert_int_equal(write_file_at(dfd, "chain.json", b, n, 0600, &e), 0);
}

/* The state file: created on open, saved by turns into the slot that does not hold the newest
 * state, each slot a JSON line with its check; the older single-object form is converted. */
static void test_chain_file(void **state)
{
	_cleanup_free_ char *dir = make_tmpdir();
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_err_ err *e = NULL;
	attest_chain c, c2;
	assert_int_equal(attest_chain_load(dfd, "chain.json", &c, &e), 0); /* missing: fresh */
	assert_int_equal(c.sequence, 0);
	attest_chain_file *f = NULL;
	assert_int_equal(attest_chain_open(dfd, "chain.json", &f, &c, &e), 0);
	assert_string_equal(c.previous, "");
	assert_int_equal(c.sequence, 0);
	struct stat st;
	assert_int_equal(fstatat(dfd, "chain.json", &st, 0), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, 2 * ATTEST_CHAIN_SLOT);
	assert_null(attest_chain_skipped(f)); /* both slots valid */
	char d7[ATTEST_DIGEST_LEN], d8[ATTEST_DIGEST_LEN];
	attest_sha256_str("x", 1, d7);
	attest_sha256_str("y", 1, d8);
	attest_chain_advance(&c, d7, 7);
	assert_int_equal(attest_chain_store(f, &c, &e), 0);
	assert_int_equal(attest_chain_load(dfd, "chain.json", &c2, &e), 0);
	assert_string_equal(c2.previous, d7);
	assert_int_equal(c2.sequence, 7);
	attest_chain_advance(&c, d8, 8);
	assert_int_equal(attest_chain_store(f, &c, &e), 0);
	char b[3 * ATTEST_CHAIN_SLOT + 1];
	assert_int_equal(chain_bytes(dfd, b), 2 * ATTEST_CHAIN_SLOT);
	b[2 * ATTEST_CHAIN_SLOT] = '\0';
	/* slot 1 got 7, slot 0 then 8: each a line of its own */
	assert_non_null(strstr(b, "\"sequence\":8,\"check\":\""));
	assert_non_null(strstr(b + ATTEST_CHAIN_SLOT, "\"sequence\":7,\"check\":\""));
	assert_int_equal(b[ATTEST_CHAIN_SLOT - 1], '\n');
	assert_int_equal(b[2 * ATTEST_CHAIN_SLOT - 1], '\n');
	attest_chain_close(f);

	/* a torn save of 9 into slot 1: the newest valid slot (8) is the state */
	char torn[2 * ATTEST_CHAIN_SLOT];
	memcpy(torn, b, sizeof(torn));
	memcpy(torn + ATTEST_CHAIN_SLOT, b, 40); /* slot 0's first bytes, the rest still 7's */
	put_chain_bytes(dfd, torn, sizeof(torn));
	assert_int_equal(attest_chain_load(dfd, "chain.json", &c2, &e), 0);
	assert_int_equal(c2.sequence, 8);
	/* a slot whose line parses but whose check does not match is refused too */
	memcpy(torn, b, sizeof(torn));
	char *seq = strstr(torn + ATTEST_CHAIN_SLOT, "\"sequence\":7");
	seq[11] = '9';
	put_chain_bytes(dfd, torn, sizeof(torn));
	assert_int_equal(attest_chain_load(dfd, "chain.json", &c2, &e), 0);
	assert_int_equal(c2.sequence, 8);
	/* the open says which slot it passed over, and why (the node logs it) */
	assert_int_equal(attest_chain_open(dfd, "chain.json", &f, &c2, &e), 0);
	assert_non_null(attest_chain_skipped(f));
	assert_non_null(strstr(attest_chain_skipped(f), "slot 1 passed over (check "));
	assert_non_null(strstr(attest_chain_skipped(f), "slot 0 holds sequence 8"));
	attest_chain_close(f);
	/* with slot 0 torn as well, nothing is trusted */
	memset(torn, 'z', 30);
	put_chain_bytes(dfd, torn, sizeof(torn));
	assert_int_equal(attest_chain_load(dfd, "chain.json", &c2, &e), -1);
	assert_non_null(strstr(err_msg(e), "neither slot holds a state"));
	assert_non_null(strstr(err_msg(e), "a torn write"));
	err_free(steal_pointer(&e));

	/* the older form is read, and converted on open; a save then goes to the other slot */
	_cleanup_free_ char *old = xasprintf("{\"previous\":\"%s\",\"sequence\":8}", d8);
	put_chain_bytes(dfd, old, strlen(old));
	assert_int_equal(attest_chain_load(dfd, "chain.json", &c2, &e), 0);
	assert_int_equal(c2.sequence, 8);
	assert_int_equal(attest_chain_open(dfd, "chain.json", &f, &c, &e), 0);
	assert_int_equal(c.sequence, 8);
	assert_string_equal(c.previous, d8);
	assert_int_equal(fstatat(dfd, "chain.json", &st, 0), 0);
	assert_int_equal(st.st_size, 2 * ATTEST_CHAIN_SLOT);
	attest_chain_advance(&c, d7, 9);
	assert_int_equal(attest_chain_store(f, &c, &e), 0);
	assert_int_equal(attest_chain_load(dfd, "chain.json", &c2, &e), 0);
	assert_int_equal(c2.sequence, 9);
	/* saving the same state again (a retry) never overwrites the newest slot */
	assert_int_equal(attest_chain_store(f, &c, &e), 0);
	assert_int_equal(chain_bytes(dfd, b), 2 * ATTEST_CHAIN_SLOT);
	b[2 * ATTEST_CHAIN_SLOT] = '\0';
	assert_non_null(strstr(b, "\"sequence\":9,"));
	assert_non_null(strstr(b + ATTEST_CHAIN_SLOT, "\"sequence\":9,"));
	attest_chain_close(f);

	/* a file replaced under the node (renamed over): a save into the old inode is refused */
	assert_int_equal(attest_chain_open(dfd, "chain.json", &f, &c, &e), 0);
	put_chain_bytes(dfd, b, 2 * ATTEST_CHAIN_SLOT);
	assert_int_equal(attest_chain_store(f, &c, &e), -1);
	assert_non_null(strstr(err_msg(e), "removed or replaced while the node runs"));
	err_free(steal_pointer(&e));
	attest_chain_close(f);

	put_chain_bytes(dfd, "{\"previous\":\"x\",\"sequence\":1}", 29);
	assert_int_equal(attest_chain_load(dfd, "chain.json", &c2, &e), -1);
	assert_non_null(strstr(err_msg(e), "invalid previous"));
	err_free(steal_pointer(&e));
	assert_int_equal(attest_chain_open(dfd, "chain.json", &f, &c, &e), -1);
	assert_null(f);
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
	fx_case k;
	fx_case_init(&k, fx_vector_named("01-basic"));
	proto_task t = k.task;
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
	k.task = t;
	fx_case_deinit(&k);

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
	fx_case ek;
	fx_case_init(&ek, fx_vector_named("01-basic"));
	size_t n = ek.n_env;
	proto_env *rev = xcalloc(n + 1, sizeof(*rev));
	for (size_t i = 0; i < n; i++)
		rev[i] = ek.env[n - 1 - i];
	assert_int_equal(attest_environment_digest(ek.env, n, a, &e), 0);
	assert_int_equal(attest_environment_digest(rev, n, b, &e), 0);
	assert_string_equal(a, b);
	rev[n] = rev[0];
	assert_int_equal(attest_environment_digest(rev, n + 1, b, &e), -1);
	assert_non_null(strstr(err_msg(e), "duplicate"));
	rev[0].value = (char *)"gvisor";
	assert_int_equal(attest_environment_digest(rev, n, b, &e), 0);
	assert_string_not_equal(a, b);
	free(rev);
	fx_case_deinit(&ek);

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
	fx_case k;
	fx_case_init(&k, fx_vector_named("01-basic"));
	free(k.result.output.return_value);
	k.result.output.return_value = xstrdup("{ \"a\" : [1, 2.50, \"x\"] }");
	free(fx_sign(f->key, &k, NULL, 1));
	buf doc = BUF_INIT;
	fx_checks c;
	assert_int_equal(fx_verify_doc(&k.result, f->key, &k.task, &doc, &c), 0);
	assert_non_null(strstr(buf_str(&doc), "\"return_value\":{\"a\":[1,2.50,\"x\"]}"));
	_cleanup_err_ err *e = NULL;
	assert_int_equal(attest_verify_result("{", 1, f->key, NULL, fx_record, &c, &e), -1);
	buf_deinit(&doc);
	fx_case_deinit(&k);
}

/* A killed program with binary output: null exit code, a signal, base64 stdout in the result
 * document, no return value subject; the same output claimed as an exit 0 fails exit. */
static void test_signalled(void **state)
{
	struct fx *f = *state;
	fx_case k;
	fx_case_init(&k, fx_vector_named("06-binary"));
	free(fx_sign(f->key, &k, NULL, 1));
	size_t len = 0;
	_cleanup_free_ char *stmt = fx_statement(k.result.attestation, &len);
	assert_non_null(strstr(stmt, "\"status\":\"ok\",\"exit_code\":null,\"signal\":9,"));
	assert_null(strstr(stmt, "return_value"));
	buf doc = BUF_INIT;
	fx_checks c;
	assert_int_equal(fx_verify_doc(&k.result, f->key, NULL, &doc, &c), 0);
	assert_non_null(strstr(buf_str(&doc), "\"stdout_b64\":"));
	k.result.output.exit_code = 0;
	k.result.output.signal = 0;
	int ret;
	assert_string_equal(fx_verify(&k.result, f->key, NULL, &c, &ret), "exit");
	buf_deinit(&doc);
	fx_case_deinit(&k);
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
	    cmocka_unit_test_setup_teardown(test_error_signed, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_return_not_json, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_subjects_sorted, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_claims, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_sign_limits_mismatch, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_tamper_keys_and_task, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_chain, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_result_document, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_signalled, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
