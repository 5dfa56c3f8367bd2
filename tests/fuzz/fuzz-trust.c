/* libFuzzer target for the parsers of sealed and signed tasks (issue 20): whatever anyone who can
 * XADD sends, and what a buyer reads back. The first input byte picks what the rest goes to:
 *   0  proto_task_parse_entry (a task or a signed-task envelope), then the node's checks on
 *      it: attest_task_auth_init (the task signature, the passport) and attest_trust_decide
 *      at every level with the test key trusted as issuer; a task that parsed serialises and
 *      parses again to the same document;
 *   1  attest_passport_parse; what parses has valid fields and a stable signature verdict;
 *   2  a task's sealed parts opened with the golden vectors' node identity
 *      (attest/testdata/sealed/node-age.key), so that mutations of a real sealed task get past
 *      the age layer into proto_task_open_part;
 *   3  attest_sealed_verify of a result with the test key and the golden buyer identity;
 *   4  a revocation record: proto_revocation_parse and attest_revocation_describe.
 * Failures must come with a message and leave nothing allocated (ASan/LSan). The libraries are
 * linked, not compiled in: a fuzz build instruments every library of the project (meson.build).
 * Seeds: tests/fuzz/corpus/trust/ (the golden sealed task and result, a signed task with a
 * passport, passports, records). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attest/attest.h"
#include "common/buf.h"
#include "common/err.h"
#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* TEST ONLY keys of attest/testdata: the node's age identity and the buyer's (sealed/), and
 * the public half of test-key.pem (the node's and the seeds' issuer's signing key). */
static const char node_identity[] =
    "AGE-SECRET-KEY-1SVUHEPCQZGWEP4KMAD2XDHXA24RW3R807SFC0HHVJFCYPNC2K93QFSF5FU";
static const char buyer_identity[] =
    "AGE-SECRET-KEY-1P4HC0S4ZXZLVU6RTQ50GWCW72VYPZK2WV8GXE6DL0QAD8DUWKUGSNCJVSC";
static const char test_pub[] = "-----BEGIN PUBLIC KEY-----\n"
                               "MCowBQYDK2VwAyEAxGz9PUZsI/h/U80GWRKLNTd41zHs9cYEpONThhYJwSk=\n"
                               "-----END PUBLIC KEY-----\n";

static attest_age_identity *identity(const char *text, attest_age_identity **slot)
{
	if (!*slot && attest_age_identity_parse(slot, text, NULL) < 0)
		abort();
	return *slot;
}

static attest_key *test_key(void)
{
	static attest_key *k;
	if (!k && attest_key_from_public_pem(&k, test_pub, strlen(test_pub), NULL) < 0)
		abort();
	return k;
}

static void need_message(const err *e)
{
	if (!e || !err_msg(e)[0])
		abort();
}

static void decide_all(const proto_task *t)
{
	attest_trust_config cfg;
	attest_trust_config_init(&cfg);
	if (attest_trust_config_set(&cfg, "issuers", attest_key_id(test_key()), NULL) < 0)
		abort();
	attest_task_auth a;
	attest_task_auth_init(&a, t);
	if (a.has_passport && !a.passport_error && !proto_id_valid(a.passport.id))
		abort();
	attest_revocations rev = {0};
	for (int level = PROTO_TRUST_NONE; level < PROTO_TRUST__COUNT; level++) {
		cfg.min_level = (proto_trust_level)level;
		const proto_trust_req *reqs[] = {t->auth ? &t->auth->req : NULL};
		attest_trust_decision d;
		int r = attest_trust_decide(&cfg, reqs, t->auth ? 1 : 0, &a, &rev, 1700000000, &d);
		if ((r == 0) != (d.message == NULL) || (r == 0) != (d.reason == ATTEST_TRUST_OK))
			abort();
		attest_trust_decision_deinit(&d);
	}
	attest_task_auth_deinit(&a);
	attest_trust_config_deinit(&cfg);
}

static void fuzz_entry(const char *p, size_t n)
{
	proto_task t, t2;
	err *e = NULL;
	if (proto_task_parse_entry(p, n, &t, NULL, &e) < 0) {
		need_message(e);
		err_free(e);
		return;
	}
	decide_all(&t);
	/* The task (the payload of an envelope) is a fixed point of serialising. */
	buf a = BUF_INIT, b = BUF_INIT;
	proto_task_to_json(&t, &a);
	if (proto_task_parse(buf_str(&a), a.len, &t2, NULL, &e) < 0)
		abort();
	proto_task_to_json(&t2, &b);
	if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
		abort();
	if (proto_task_sealed_pending(&t) != proto_task_sealed_pending(&t2))
		abort();
	proto_task_deinit(&t);
	proto_task_deinit(&t2);
	buf_deinit(&a);
	buf_deinit(&b);
}

static void fuzz_passport(const char *p, size_t n)
{
	attest_passport pp;
	err *e = NULL;
	if (attest_passport_parse(p, n, &pp, &e) < 0) {
		need_message(e);
		err_free(e);
		return;
	}
	char id[ATTEST_DIGEST_LEN];
	attest_raw_key_id(pp.issuer_key, id);
	if (!proto_id_valid(pp.id) || strcmp(id, pp.issuer) || pp.expires_at <= pp.issued_at ||
	    pp.n_claims > ATTEST_PASSPORT_CLAIMS_MAX)
		abort();
	if (attest_passport_signature_ok(&pp) != attest_passport_signature_ok(&pp))
		abort();
	attest_passport_deinit(&pp);
}

static void fuzz_open(const char *p, size_t n)
{
	static attest_age_identity *node;
	attest_age_identity *id = identity(node_identity, &node);
	proto_task t;
	err *e = NULL;
	if (proto_task_parse_entry(p, n, &t, NULL, &e) < 0) {
		need_message(e);
		err_free(e);
		return;
	}
	int r = attest_sealed_open(&t, &id, 1, &e);
	if ((r < 0) != (e != NULL) || (r == 0 && proto_task_sealed_pending(&t)))
		abort();
	err_free(e);
	proto_task_deinit(&t);
}

static void on_check(void *ud, const char *name, attest_sealed_verdict v, const char *detail)
{
	if (!name || (v == ATTEST_SEALED_FAIL && (!detail || !detail[0])))
		abort();
}

static void fuzz_verify(const char *p, size_t n)
{
	static attest_age_identity *buyer;
	attest_age_identity *id = identity(buyer_identity, &buyer);
	attest_sealed_verify_opts o = {.node_key = test_key(), .ids = &id, .n_ids = 1};
	proto_result inner;
	err *e = NULL;
	int r = attest_sealed_verify(p, n, &o, on_check, NULL, &inner, &e);
	if (r < 0) {
		need_message(e);
		err_free(e);
		return;
	}
	if (r == 0 && !inner.id)
		abort(); /* every check passed: the document was read */
	proto_result_deinit(&inner);
}

static void fuzz_record(const char *p, size_t n)
{
	char *reason = NULL;
	int64_t at = 0;
	err *e = NULL;
	if (proto_revocation_parse(p, n, &reason, &at, &e) < 0)
		need_message(e);
	else if (strlen(reason) > PROTO_REVOCATION_REASON_MAX || at < 0)
		abort();
	err_free(e);
	free(reason);
	char *d = attest_revocation_describe("passport:pp_1", p, n);
	if (!d || strncmp(d, "passport pp_1 is revoked (", 26))
		abort();
	free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *p = (const char *)data + 1;
	size_t n = size - 1;
	switch (data[0] % 5) {
	case 0:
		fuzz_entry(p, n);
		break;
	case 1:
		fuzz_passport(p, n);
		break;
	case 2:
		fuzz_open(p, n);
		break;
	case 3:
		fuzz_verify(p, n);
		break;
	default:
		fuzz_record(p, n);
		break;
	}
	return 0;
}
