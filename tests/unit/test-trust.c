/* Unit tests for signed tasks, passports and the trust decision (attest/passport.c,
 * attest/trust.c, proto/sealed.c; attest/TRUST.md): raw keys, passports issued and parsed
 * strictly, signed-task envelopes, the [trust] configuration, revocation records, and the
 * whole trust level x passport matrix of attest_trust_decide() as one table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attest/attest.h"
#include "common/buf.h"
#include "common/cleanup.h"
#include "common/err.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "proto/json.h"
#include "proto/proto.h"

#define NOW 1700000000LL

static attest_key *issuer, *rogue, *signer, *other;

static int keys_setup(void **state)
{
	assert_int_equal(attest_key_generate(&issuer, NULL), 0);
	assert_int_equal(attest_key_generate(&rogue, NULL), 0);
	assert_int_equal(attest_key_generate(&signer, NULL), 0);
	assert_int_equal(attest_key_generate(&other, NULL), 0);
	return 0;
}

static int keys_teardown(void **state)
{
	attest_key_free(issuer);
	attest_key_free(rogue);
	attest_key_free(signer);
	attest_key_free(other);
	return 0;
}

static char *raw_b64(const attest_key *k)
{
	uint8_t raw[ATTEST_RAW_KEY_LEN];
	attest_key_raw(k, raw);
	return proto_b64_encode(raw, sizeof(raw));
}

/* A passport for subject by iss, valid [from, until), with claims "type:assurance:provider". */
static char *passport(const attest_key *iss, const attest_key *subject, const char *id,
                      int64_t from, int64_t until, const char *const *claims)
{
	attest_passport p = {0};
	snprintf(p.id, sizeof(p.id), "%s", id);
	attest_key_raw(subject, p.subject);
	p.issued_at = from;
	p.expires_at = until;
	for (; claims && *claims; claims++) {
		attest_passport_claim *c = &p.claims[p.n_claims++];
		char a[32];
		assert_int_equal(sscanf(*claims, "%64[^:]:%31[^:]:%64s", c->type, a, c->provider),
		                 3);
		assert_int_equal(proto_assurance_parse(a, &c->assurance), 0);
	}
	char *json = NULL;
	_cleanup_err_ err *e = NULL;
	assert_int_equal(attest_passport_issue(iss, &p, &json, &e), 0);
	return json;
}

/* ---- raw keys and passports ---- */

static void test_raw_keys(void **state)
{
	uint8_t raw[ATTEST_RAW_KEY_LEN];
	char id[ATTEST_DIGEST_LEN];
	attest_key_raw(signer, raw);
	attest_raw_key_id(raw, id);
	assert_string_equal(id, attest_key_id(signer));
	attest_key *pub = NULL;
	assert_int_equal(attest_key_from_raw(&pub, raw, NULL), 0);
	assert_string_equal(attest_key_id(pub), attest_key_id(signer));
	assert_false(attest_key_is_private(pub));
	const char msg[] = "x";
	uint8_t sig[ATTEST_SIG_LEN];
	assert_int_equal(attest_key_sign(signer, msg, 1, sig, NULL), 0);
	assert_true(attest_key_verify(pub, msg, 1, sig, sizeof(sig)));
	attest_key_free(pub);
}

static void test_passport_roundtrip(void **state)
{
	const char *claims[] = {"verified_human:substantial:worldid",
	                        "verified_identity:high:bankid_se", NULL};
	_cleanup_free_ char *json = passport(issuer, signer, "pp_1", NOW - 10, NOW + 3600, claims);
	attest_passport p;
	_cleanup_err_ err *e = NULL;
	assert_int_equal(attest_passport_parse(json, strlen(json), &p, &e), 0);
	assert_string_equal(p.id, "pp_1");
	assert_string_equal(p.issuer, attest_key_id(issuer));
	assert_string_equal(p.subject_id, attest_key_id(signer));
	assert_int_equal(p.issued_at, NOW - 10);
	assert_int_equal(p.expires_at, NOW + 3600);
	assert_int_equal(p.n_claims, 2);
	assert_string_equal(p.claims[1].type, "verified_identity");
	assert_int_equal(p.claims[1].assurance, PROTO_ASSURANCE_HIGH);
	assert_string_equal(p.claims[1].provider, "bankid_se");
	assert_true(attest_passport_signature_ok(&p));
	/* Another passport's signature over this payload does not verify. */
	_cleanup_free_ char *json2 = passport(issuer, signer, "pp_2", NOW - 10, NOW + 3600, claims);
	attest_passport p2;
	assert_int_equal(attest_passport_parse(json2, strlen(json2), &p2, &e), 0);
	memcpy(p.sig, p2.sig, sizeof(p.sig));
	assert_false(attest_passport_signature_ok(&p));
	attest_passport_deinit(&p);
	attest_passport_deinit(&p2);
}

/* A passport envelope around a payload written by hand, signed by k. */
static char *envelope_of(const attest_key *k, const char *payload)
{
	char *json = NULL;
	assert_int_equal(attest_dsse_sign(k, ATTEST_PASSPORT_PAYLOAD_TYPE, payload, strlen(payload),
	                                  &json, NULL),
	                 0);
	return json;
}

static void expect_bad_passport(const char *json, const char *msg)
{
	attest_passport p;
	_cleanup_err_ err *e = NULL;
	assert_int_equal(attest_passport_parse(json, strlen(json), &p, &e), -1);
	if (!strstr(err_msg(e), msg))
		fail_msg("expected \"%s\" in \"%s\"", msg, err_msg(e));
}

/* t with @I, @K and @S replaced by the issuer id, the issuer key and the subject key. */
static char *fill(const char *t, const char *i, const char *k, const char *sk)
{
	buf b = BUF_INIT;
	for (; *t; t++) {
		if (t[0] == '@' && strchr("IKS", t[1])) {
			buf_append_str(&b, t[1] == 'I' ? i : t[1] == 'K' ? k : sk);
			t++;
		} else {
			buf_append(&b, t, 1);
		}
	}
	return buf_steal(&b, NULL);
}

static void test_passport_strict(void **state)
{
	_cleanup_free_ char *ik = raw_b64(issuer), *sk = raw_b64(signer);
	const char *id = attest_key_id(issuer);
	const struct {
		const char *payload, *msg;
	} cases[] = {
	    {"{}", "\"_type\" must be"},
	    {"{\"_type\":\"https://aisp.dev/passport/v1\",\"x\":1}", "unknown field \"x\""},
	    {"{\"_type\":\"https://aisp.dev/passport/v1\",\"id\":\"a b\"}", "\"id\" must match"},
	    {"{\"_type\":\"https://aisp.dev/passport/v1\",\"id\":\"p\",\"issuer\":\"@I\","
	     "\"issuer_key\":\"@K\",\"subject\":\"AAAA\"}",
	     "\"subject\" must be the base64 of a 32-byte"},
	    {"{\"_type\":\"https://aisp.dev/passport/v1\",\"id\":\"p\",\"issuer\":\"@I\","
	     "\"issuer_key\":\"@K\",\"subject\":\"@S\",\"issued_at\":5,\"expires_at\":5,"
	     "\"claims\":[]}",
	     "expires_at must come after issued_at"},
	    {"{\"_type\":\"https://aisp.dev/passport/v1\",\"id\":\"p\",\"issuer\":\"@I\","
	     "\"issuer_key\":\"@K\",\"subject\":\"@S\",\"issued_at\":1,\"expires_at\":5,"
	     "\"claims\":[{\"type\":\"verified_human\",\"assurance\":\"medium\","
	     "\"provider\":\"x\"}]}",
	     "claims[0].assurance must be low, substantial or high"},
	    {"{\"_type\":\"https://aisp.dev/passport/v1\",\"id\":\"p\",\"issuer\":\"@I\","
	     "\"issuer_key\":\"@K\",\"subject\":\"@S\",\"issued_at\":1,\"expires_at\":5,"
	     "\"claims\":[{\"type\":\"Verified\",\"assurance\":\"low\",\"provider\":\"x\"}]}",
	     "claims[0].type must match"},
	    {"{\"_type\":\"https://aisp.dev/passport/v1\",\"id\":\"p\",\"issuer\":\"@I\","
	     "\"issuer_key\":\"@K\",\"subject\":\"@S\",\"issued_at\":1,\"expires_at\":5,"
	     "\"claims\":[{\"type\":\"a\",\"assurance\":\"low\",\"provider\":\"x\"},"
	     "{\"type\":\"a\",\"assurance\":\"high\",\"provider\":\"x\"}]}",
	     "claims[1] repeats claim a from x"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_free_ char *payload = fill(cases[i].payload, id, ik, sk);
		_cleanup_free_ char *json = envelope_of(issuer, payload);
		expect_bad_passport(json, cases[i].msg);
	}
	/* The issuer named is not the key that signed, or not the key carried. */
	_cleanup_free_ char *good =
	    fill("{\"_type\":\"https://aisp.dev/passport/v1\",\"id\":\"p\",\"issuer\":\"@I\","
	         "\"issuer_key\":\"@K\",\"subject\":\"@S\",\"issued_at\":1,\"expires_at\":5,"
	         "\"claims\":[]}",
	         id, ik, sk);
	_cleanup_free_ char *by_rogue = envelope_of(rogue, good);
	expect_bad_passport(by_rogue, "the signature's keyid");
	_cleanup_free_ char *bad_key =
	    fill("{\"_type\":\"https://aisp.dev/passport/v1\",\"id\":\"p\",\"issuer\":\"@I\","
	         "\"issuer_key\":\"@K\",\"subject\":\"@S\",\"issued_at\":1,\"expires_at\":5,"
	         "\"claims\":[]}",
	         id, sk, sk);
	_cleanup_free_ char *env2 = envelope_of(issuer, bad_key);
	expect_bad_passport(env2, "is not the key id of \"issuer_key\"");
	expect_bad_passport("[]", "not a JSON object");
	expect_bad_passport("{\"payloadType\":\"x\"}", "\"payloadType\" must be");
}

/* ---- signed tasks ---- */

/* A task document, signed by k (NULL: not signed) and naming signer_key (NULL: no signer). */
static char *task_doc(const attest_key *signer_key, const char *extra)
{
	buf b = BUF_INIT;
	buf_append_str(&b, "{\"id\":\"t1\",\"lang\":\"python\",\"code\":\"print(1)\"");
	if (signer_key) {
		_cleanup_free_ char *s = raw_b64(signer_key);
		buf_appendf(&b, ",\"signer\":\"%s\"", s);
	}
	if (extra)
		buf_appendf(&b, ",%s", extra);
	buf_append_str(&b, "}");
	return buf_steal(&b, NULL);
}

static char *signed_doc(const attest_key *k, const char *doc)
{
	char *env = NULL;
	_cleanup_err_ err *e = NULL;
	if (attest_task_sign(k, doc, strlen(doc), &env, &e) < 0)
		fail_msg("%s", err_msg(e));
	return env;
}

static int parse_entry(const char *json, proto_task *t, err **e)
{
	return proto_task_parse_entry(json, strlen(json), t, NULL, e);
}

static void expect_entry_error(const char *json, const char *msg)
{
	proto_task t;
	_cleanup_err_ err *e = NULL;
	assert_int_equal(parse_entry(json, &t, &e), -1);
	if (!strstr(err_msg(e), msg))
		fail_msg("expected \"%s\" in \"%s\"", msg, err_msg(e));
}

static void test_signed_task(void **state)
{
	_cleanup_free_ char *doc = task_doc(signer, NULL);
	_cleanup_free_ char *env = signed_doc(signer, doc);
	proto_task t;
	_cleanup_err_ err *e = NULL;
	assert_int_equal(parse_entry(env, &t, &e), 0);
	assert_non_null(t.auth);
	assert_non_null(t.auth->sig);
	assert_memory_equal(t.auth->sig->payload, doc, strlen(doc));
	assert_string_equal(t.auth->sig->keyid, attest_key_id(signer));
	attest_task_auth a;
	attest_task_auth_init(&a, &t);
	assert_true(a.is_signed);
	assert_null(a.signature_error);
	assert_string_equal(a.signer_id, attest_key_id(signer));
	attest_task_auth_deinit(&a);
	/* The head of a signed task is read from its payload (a rejection reaches the client). */
	proto_task_head head;
	proto_task_deinit(&t);
	_cleanup_free_ char *bad = task_doc(signer, "\"limits\":{\"pids\":0}");
	_cleanup_free_ char *benv = NULL;
	assert_int_equal(
	    attest_dsse_sign(signer, PROTO_TASK_PAYLOAD_TYPE, bad, strlen(bad), &benv, NULL), 0);
	assert_int_equal(proto_task_parse_entry(benv, strlen(benv), &t, &head, &e), -1);
	assert_string_equal(head.id, "t1");
	assert_string_equal(err_msg(e),
	                    "signed task: field \"limits.pids\" must be a positive integer");
	proto_task_head_deinit(&head);
	/* A task signed by another key than its signer. */
	char *env2 = NULL;
	assert_int_equal(attest_task_sign(other, doc, strlen(doc), &env2, &e), -1);
	assert_non_null(strstr(err_msg(e), "its \"signer\" must be the signing key"));
	assert_int_equal(
	    attest_dsse_sign(other, PROTO_TASK_PAYLOAD_TYPE, doc, strlen(doc), &env2, NULL), 0);
	assert_int_equal(parse_entry(env2, &t, &e), 0);
	attest_task_auth_init(&a, &t);
	assert_non_null(strstr(a.signature_error, "the task's signature names key"));
	attest_task_auth_deinit(&a);
	proto_task_deinit(&t);
	free(env2);
}

/* The envelope of doc_a with its payload replaced by doc_b's: the signature no longer holds. */
static char *swapped(const char *env_a, const char *doc_a, const char *doc_b)
{
	_cleanup_free_ char *a64 = proto_b64_encode((const uint8_t *)doc_a, strlen(doc_a));
	_cleanup_free_ char *b64 = proto_b64_encode((const uint8_t *)doc_b, strlen(doc_b));
	const char *at = strstr(env_a, a64);
	assert_non_null(at);
	return xasprintf("%.*s%s%s", (int)(at - env_a), env_a, b64, at + strlen(a64));
}

static void test_signed_task_errors(void **state)
{
	_cleanup_free_ char *doc = task_doc(signer, NULL), *doc2 = task_doc(signer, "\"env\":{}");
	_cleanup_free_ char *env = signed_doc(signer, doc);
	_cleanup_free_ char *forged = swapped(env, doc, doc2);
	proto_task t;
	_cleanup_err_ err *e = NULL;
	assert_int_equal(parse_entry(forged, &t, &e), 0);
	attest_task_auth a;
	attest_task_auth_init(&a, &t);
	assert_non_null(strstr(a.signature_error, "does not verify with its signer key"));
	attest_task_auth_deinit(&a);
	proto_task_deinit(&t);

	expect_entry_error(doc, "field \"signer\" needs a signed task");
	_cleanup_free_ char *unsigned_doc = task_doc(NULL, NULL);
	char *env_nosigner = NULL;
	assert_int_equal(attest_dsse_sign(signer, PROTO_TASK_PAYLOAD_TYPE, unsigned_doc,
	                                  strlen(unsigned_doc), &env_nosigner, NULL),
	                 0);
	expect_entry_error(env_nosigner, "the task must name its signer");
	free(env_nosigner);
	expect_entry_error("{\"payloadType\":\"text/plain\",\"payload\":\"\",\"signatures\":[]}",
	                   "\"payloadType\" must be \"application/vnd.aisp.task+json\"");
	expect_entry_error("{\"payloadType\":\"application/vnd.aisp.task+json\",\"payload\":\"!\","
	                   "\"signatures\":[]}",
	                   "\"payload\" must be the base64");
	expect_entry_error("{\"payloadType\":\"application/vnd.aisp.task+json\",\"payload\":\"\","
	                   "\"signatures\":[],\"x\":1}",
	                   "unknown field \"x\"");
	expect_entry_error("{\"payloadType\":\"application/vnd.aisp.task+json\",\"payload\":\"\","
	                   "\"signatures\":[{\"keyid\":\"k\",\"sig\":\"\"}]}",
	                   "signatures[0].keyid must be");
	_cleanup_free_ char *two =
	    xasprintf("%.*s,{\"keyid\":\"x\",\"sig\":\"\"}]}", (int)(strlen(env) - 2), env);
	expect_entry_error(two, "exactly one signature");
	_cleanup_free_ char *pp_unsigned = task_doc(NULL, "\"passport\":{}");
	expect_entry_error(pp_unsigned, "field \"passport\" needs \"signer\"");
	_cleanup_free_ char *short_key = task_doc(NULL, "\"signer\":\"AAAA\"");
	expect_entry_error(short_key, "must be the base64 of a 32-byte Ed25519 public key");
}

static void test_trust_req_parse(void **state)
{
	const struct {
		const char *extra, *msg;
	} cases[] = {
	    {"\"trust_level\":\"L3\"", "field \"trust_level\" must be one of L0, L1, L2"},
	    {"\"trust_level\":\"none\"", "field \"trust_level\" must be one of L0, L1, L2"},
	    {"\"trust_requirements\":{}", "field \"trust_requirements\" needs \"trust_level\""},
	    {"\"trust_level\":\"L0\",\"trust_requirements\":[]", "must be an object"},
	    {"\"trust_level\":\"L0\",\"trust_requirements\":{\"x\":1}",
	     "unknown field \"trust_requirements.x\""},
	    {"\"trust_level\":\"L0\",\"trust_requirements\":{\"min_assurance\":\"max\"}",
	     "min_assurance\" must be one of low, substantial, high"},
	    {"\"trust_level\":\"L0\",\"trust_requirements\":{\"accepted_providers\":[\"A\"]}",
	     "trust_requirements.accepted_providers[0] must match"},
	    {"\"trust_level\":\"L0\",\"trust_requirements\":{\"required_claims\":[\"a\",\"a\"]}",
	     "lists \"a\" twice"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_free_ char *doc = task_doc(NULL, cases[i].extra);
		expect_entry_error(doc, cases[i].msg);
	}
	_cleanup_free_ char *doc = task_doc(
	    NULL, "\"trust_level\":\"L2\",\"trust_requirements\":{\"min_assurance\":\"high\","
	          "\"accepted_providers\":[\"bankid_se\",\"plaid\"],"
	          "\"required_claims\":[\"verified_identity\"]}");
	proto_task t;
	assert_int_equal(parse_entry(doc, &t, NULL), 0);
	assert_int_equal(t.auth->req.level, PROTO_TRUST_L2);
	assert_int_equal(t.auth->req.min_assurance, PROTO_ASSURANCE_HIGH);
	assert_int_equal(t.auth->req.n_providers, 2);
	assert_string_equal(t.auth->req.providers[1], "plaid");
	buf out = BUF_INIT;
	proto_task_to_json(&t, &out);
	assert_non_null(strstr(buf_str(&out),
	                       "\"trust_level\":\"L2\",\"trust_requirements\":{\"min_assurance\":"
	                       "\"high\",\"accepted_providers\":[\"bankid_se\",\"plaid\"],"
	                       "\"required_claims\":[\"verified_identity\"]}"));
	buf_deinit(&out);
	proto_task_deinit(&t);
}

/* ---- the decision table ---- */

typedef enum variant {
	V_UNSIGNED,    /* not signed, no passport */
	V_BAD_SIG,     /* signed, but the payload was changed */
	V_NO_PASSPORT, /* signed, no passport */
	V_HUMAN_LOW,
	V_HUMAN_SUB,
	V_IDENT_SUB,
	V_IDENT_HIGH,
	V_NO_CLAIMS,
	V_EXPIRED,
	V_FUTURE,
	V_UNTRUSTED,
	V_FORGED,
	V_OTHER_SUBJECT,
	V_MALFORMED,
	V_REVOKED,
	V_SIGNER_REVOKED,
	V_ISSUER_REVOKED,
	V__COUNT,
} variant;

static const char *const variant_names[V__COUNT] = {
    "unsigned",          "bad signature",        "no passport",      "human low",
    "human substantial", "identity substantial", "identity high",    "no claims",
    "expired",           "not yet valid",        "untrusted issuer", "forged passport",
    "other subject",     "malformed passport",   "revoked",          "signer revoked",
    "issuer revoked",
};

/* The passport of a variant (NULL: none). */
static char *variant_passport(variant v)
{
	const char *human_low[] = {"verified_human:low:worldid", NULL};
	const char *human_sub[] = {"verified_human:substantial:worldid", NULL};
	const char *ident_sub[] = {"verified_identity:substantial:stripe_identity", NULL};
	const char *ident_high[] = {"verified_identity:high:bankid_se", NULL};
	int64_t from = NOW - 3600, until = NOW + 3600;
	switch (v) {
	case V_HUMAN_LOW:
		return passport(issuer, signer, "pp_hl", from, until, human_low);
	case V_HUMAN_SUB:
		return passport(issuer, signer, "pp_hs", from, until, human_sub);
	case V_IDENT_SUB:
		return passport(issuer, signer, "pp_is", from, until, ident_sub);
	case V_NO_CLAIMS:
		return passport(issuer, signer, "pp_nc", from, until, NULL);
	case V_EXPIRED:
		return passport(issuer, signer, "pp_ex", NOW - 7200, NOW - 61, ident_high);
	case V_FUTURE:
		return passport(issuer, signer, "pp_fu", NOW + 61, NOW + 7200, ident_high);
	case V_UNTRUSTED:
		return passport(rogue, signer, "pp_un", from, until, ident_high);
	case V_OTHER_SUBJECT:
		return passport(issuer, other, "pp_os", from, until, ident_high);
	case V_FORGED: {
		_cleanup_free_ char *a = passport(issuer, signer, "pp_fa", from, until, human_low);
		_cleanup_free_ char *b = passport(issuer, signer, "pp_fb", from, until, ident_high);
		/* b's payload under a's signature */
		const char *sa = strstr(a, "\"sig\":\""), *sb = strstr(b, "\"sig\":\"");
		return xasprintf("%.*s%s", (int)(sb - b), b, sa);
	}
	case V_MALFORMED:
		return envelope_of(issuer, "{}");
	case V_UNSIGNED:
	case V_BAD_SIG:
	case V_NO_PASSPORT:
		return NULL;
	default:
		return passport(issuer, signer, "pp_ih", from, until, ident_high);
	}
}

/* The stream entry of a variant, with the task's own trust fields (extra, may be NULL). */
static char *variant_entry(variant v, const char *extra)
{
	_cleanup_free_ char *pp = variant_passport(v);
	buf fields = BUF_INIT;
	if (pp)
		buf_appendf(&fields, "\"passport\":%s", pp);
	if (extra)
		buf_appendf(&fields, "%s%s", fields.len ? "," : "", extra);
	_cleanup_free_ char *doc =
	    task_doc(v == V_UNSIGNED ? NULL : signer, fields.len ? buf_str(&fields) : NULL);
	buf_deinit(&fields);
	if (v == V_UNSIGNED)
		return steal_pointer(&doc);
	_cleanup_free_ char *env = signed_doc(signer, doc);
	if (v != V_BAD_SIG)
		return steal_pointer(&env);
	_cleanup_free_ char *doc2 = xasprintf("%.*s,\"env\":{}}", (int)(strlen(doc) - 1), doc);
	return swapped(env, doc, doc2);
}

typedef struct row {
	variant v;
	const char *trust; /* the task's trust fields, or NULL */
	proto_trust_level floor;
	attest_trust_reason want;
	const char *msg; /* a part of the message, for rejections */
} row;

#define LVL(l) "\"trust_level\":\"" l "\""

/* Every variant under no requirement and L0, L1, L2; then requirements and the node floor. */
static const row matrix[] = {
    {V_UNSIGNED, NULL, 0, ATTEST_TRUST_OK, NULL},
    {V_UNSIGNED, LVL("L0"), 0, ATTEST_TRUST_UNSIGNED, "trust level L0 requires a signed task"},
    {V_UNSIGNED, LVL("L1"), 0, ATTEST_TRUST_UNSIGNED, "trust level L1 requires a signed task"},
    {V_UNSIGNED, LVL("L2"), 0, ATTEST_TRUST_UNSIGNED, "trust level L2 requires a signed task"},
    {V_BAD_SIG, NULL, 0, ATTEST_TRUST_BAD_SIGNATURE, "does not verify with its signer key"},
    {V_BAD_SIG, LVL("L0"), 0, ATTEST_TRUST_BAD_SIGNATURE, "does not verify"},
    {V_BAD_SIG, LVL("L1"), 0, ATTEST_TRUST_BAD_SIGNATURE, "does not verify"},
    {V_BAD_SIG, LVL("L2"), 0, ATTEST_TRUST_BAD_SIGNATURE, "does not verify"},
    {V_NO_PASSPORT, NULL, 0, ATTEST_TRUST_OK, NULL},
    {V_NO_PASSPORT, LVL("L0"), 0, ATTEST_TRUST_NO_PASSPORT,
     "trust level L0 requires a passport; the task carries none"},
    {V_NO_PASSPORT, LVL("L1"), 0, ATTEST_TRUST_NO_PASSPORT, "L1 requires a passport"},
    {V_NO_PASSPORT, LVL("L2"), 0, ATTEST_TRUST_NO_PASSPORT, "L2 requires a passport"},
    {V_HUMAN_LOW, NULL, 0, ATTEST_TRUST_OK, NULL},
    {V_HUMAN_LOW, LVL("L0"), 0, ATTEST_TRUST_OK, NULL},
    {V_HUMAN_LOW, LVL("L1"), 0, ATTEST_TRUST_ASSURANCE,
     "trust level L1 requires claim verified_human at assurance substantial or higher; "
     "passport pp_hl has it at low at best (provider worldid)"},
    {V_HUMAN_LOW, LVL("L2"), 0, ATTEST_TRUST_MISSING_CLAIM,
     "trust level L2 requires claim verified_identity; passport pp_hl has none (it has: "
     "verified_human)"},
    {V_HUMAN_SUB, NULL, 0, ATTEST_TRUST_OK, NULL},
    {V_HUMAN_SUB, LVL("L0"), 0, ATTEST_TRUST_OK, NULL},
    {V_HUMAN_SUB, LVL("L1"), 0, ATTEST_TRUST_OK, NULL},
    {V_HUMAN_SUB, LVL("L2"), 0, ATTEST_TRUST_MISSING_CLAIM, "requires claim verified_identity"},
    {V_IDENT_SUB, NULL, 0, ATTEST_TRUST_OK, NULL},
    {V_IDENT_SUB, LVL("L0"), 0, ATTEST_TRUST_OK, NULL},
    {V_IDENT_SUB, LVL("L1"), 0, ATTEST_TRUST_OK, NULL}, /* identity proves a human */
    {V_IDENT_SUB, LVL("L2"), 0, ATTEST_TRUST_ASSURANCE,
     "requires claim verified_identity at assurance high or higher; passport pp_is has it at "
     "substantial"},
    {V_IDENT_HIGH, NULL, 0, ATTEST_TRUST_OK, NULL},
    {V_IDENT_HIGH, LVL("L0"), 0, ATTEST_TRUST_OK, NULL},
    {V_IDENT_HIGH, LVL("L1"), 0, ATTEST_TRUST_OK, NULL},
    {V_IDENT_HIGH, LVL("L2"), 0, ATTEST_TRUST_OK, NULL},
    {V_NO_CLAIMS, NULL, 0, ATTEST_TRUST_OK, NULL},
    {V_NO_CLAIMS, LVL("L0"), 0, ATTEST_TRUST_OK, NULL},
    {V_NO_CLAIMS, LVL("L1"), 0, ATTEST_TRUST_MISSING_CLAIM, "(it has: no claims)"},
    {V_NO_CLAIMS, LVL("L2"), 0, ATTEST_TRUST_MISSING_CLAIM, "requires claim verified_identity"},
    /* A passport that is presented must be valid, whatever the level. */
    {V_EXPIRED, NULL, 0, ATTEST_TRUST_EXPIRED, "passport pp_ex expired at 2023-11-14T"},
    {V_EXPIRED, LVL("L0"), 0, ATTEST_TRUST_EXPIRED, "expired"},
    {V_EXPIRED, LVL("L1"), 0, ATTEST_TRUST_EXPIRED, "expired"},
    {V_EXPIRED, LVL("L2"), 0, ATTEST_TRUST_EXPIRED, "expired"},
    {V_FUTURE, NULL, 0, ATTEST_TRUST_NOT_YET_VALID, "passport pp_fu is not valid before"},
    {V_FUTURE, LVL("L0"), 0, ATTEST_TRUST_NOT_YET_VALID, "not valid before"},
    {V_FUTURE, LVL("L1"), 0, ATTEST_TRUST_NOT_YET_VALID, "not valid before"},
    {V_FUTURE, LVL("L2"), 0, ATTEST_TRUST_NOT_YET_VALID, "not valid before"},
    {V_UNTRUSTED, NULL, 0, ATTEST_TRUST_UNKNOWN_ISSUER, "is not trusted by this node"},
    {V_UNTRUSTED, LVL("L0"), 0, ATTEST_TRUST_UNKNOWN_ISSUER, "passport pp_un: issuer sha256:"},
    {V_UNTRUSTED, LVL("L1"), 0, ATTEST_TRUST_UNKNOWN_ISSUER, "not trusted"},
    {V_UNTRUSTED, LVL("L2"), 0, ATTEST_TRUST_UNKNOWN_ISSUER, "not trusted"},
    {V_FORGED, NULL, 0, ATTEST_TRUST_PASSPORT_SIGNATURE,
     "passport pp_fb: the signature does not verify with its issuer key"},
    {V_FORGED, LVL("L0"), 0, ATTEST_TRUST_PASSPORT_SIGNATURE, "does not verify"},
    {V_FORGED, LVL("L1"), 0, ATTEST_TRUST_PASSPORT_SIGNATURE, "does not verify"},
    {V_FORGED, LVL("L2"), 0, ATTEST_TRUST_PASSPORT_SIGNATURE, "does not verify"},
    {V_OTHER_SUBJECT, NULL, 0, ATTEST_TRUST_SUBJECT_MISMATCH, "passport pp_os is for key sha256:"},
    {V_OTHER_SUBJECT, LVL("L0"), 0, ATTEST_TRUST_SUBJECT_MISMATCH, "but the task is signed by"},
    {V_OTHER_SUBJECT, LVL("L1"), 0, ATTEST_TRUST_SUBJECT_MISMATCH, "but the task is signed by"},
    {V_OTHER_SUBJECT, LVL("L2"), 0, ATTEST_TRUST_SUBJECT_MISMATCH, "but the task is signed by"},
    {V_MALFORMED, NULL, 0, ATTEST_TRUST_PASSPORT_INVALID, "passport: \"_type\" must be"},
    {V_MALFORMED, LVL("L0"), 0, ATTEST_TRUST_PASSPORT_INVALID, "passport:"},
    {V_MALFORMED, LVL("L1"), 0, ATTEST_TRUST_PASSPORT_INVALID, "passport:"},
    {V_MALFORMED, LVL("L2"), 0, ATTEST_TRUST_PASSPORT_INVALID, "passport:"},
    {V_REVOKED, NULL, 0, ATTEST_TRUST_REVOKED,
     "passport pp_ih is revoked (since 2023-11-14T22:13:20Z: \"lost device\")"},
    {V_REVOKED, LVL("L0"), 0, ATTEST_TRUST_REVOKED, "passport pp_ih is revoked"},
    {V_REVOKED, LVL("L1"), 0, ATTEST_TRUST_REVOKED, "passport pp_ih is revoked"},
    {V_REVOKED, LVL("L2"), 0, ATTEST_TRUST_REVOKED, "passport pp_ih is revoked"},
    {V_SIGNER_REVOKED, NULL, 0, ATTEST_TRUST_REVOKED, "key sha256:"},
    {V_SIGNER_REVOKED, LVL("L0"), 0, ATTEST_TRUST_REVOKED, "is revoked (since"},
    {V_SIGNER_REVOKED, LVL("L1"), 0, ATTEST_TRUST_REVOKED, "is revoked (since"},
    {V_SIGNER_REVOKED, LVL("L2"), 0, ATTEST_TRUST_REVOKED, "is revoked (since"},
    {V_ISSUER_REVOKED, NULL, 0, ATTEST_TRUST_REVOKED, "key sha256:"},
    {V_ISSUER_REVOKED, LVL("L0"), 0, ATTEST_TRUST_REVOKED, "is revoked (since"},
    {V_ISSUER_REVOKED, LVL("L1"), 0, ATTEST_TRUST_REVOKED, "is revoked (since"},
    {V_ISSUER_REVOKED, LVL("L2"), 0, ATTEST_TRUST_REVOKED, "is revoked (since"},
    /* trust_requirements */
    {V_HUMAN_SUB, LVL("L1") ",\"trust_requirements\":{\"accepted_providers\":[\"bankid_se\"]}", 0,
     ATTEST_TRUST_PROVIDER,
     "requires claim verified_human from an accepted provider [bankid_se]; passport pp_hs has "
     "it from worldid"},
    {V_IDENT_HIGH,
     LVL("L2") ",\"trust_requirements\":{\"accepted_providers\":[\"bankid_se\",\"plaid\"]}", 0,
     ATTEST_TRUST_OK, NULL},
    {V_HUMAN_LOW, LVL("L0") ",\"trust_requirements\":{\"required_claims\":[\"verified_human\"]}", 0,
     ATTEST_TRUST_OK, NULL},
    {V_HUMAN_LOW,
     LVL("L0") ",\"trust_requirements\":{\"min_assurance\":\"substantial\","
               "\"required_claims\":[\"verified_human\"]}",
     0, ATTEST_TRUST_ASSURANCE,
     "trust level L0 requires claim verified_human at assurance "
     "substantial"},
    {V_IDENT_SUB, LVL("L1") ",\"trust_requirements\":{\"min_assurance\":\"high\"}", 0,
     ATTEST_TRUST_ASSURANCE, "at assurance high or higher"},
    {V_IDENT_HIGH, LVL("L0") ",\"trust_requirements\":{\"required_claims\":[\"over_18\"]}", 0,
     ATTEST_TRUST_MISSING_CLAIM, "requires claim over_18; passport pp_ih has none"},
    /* The node's floor ([trust] min_level) applies to tasks that ask for nothing. */
    {V_UNSIGNED, NULL, PROTO_TRUST_L1, ATTEST_TRUST_UNSIGNED, "trust level L1 requires"},
    {V_HUMAN_LOW, NULL, PROTO_TRUST_L1, ATTEST_TRUST_ASSURANCE, "trust level L1 requires"},
    {V_HUMAN_SUB, NULL, PROTO_TRUST_L1, ATTEST_TRUST_OK, NULL},
    {V_HUMAN_SUB, LVL("L0"), PROTO_TRUST_L2, ATTEST_TRUST_MISSING_CLAIM,
     "trust level L2 requires claim verified_identity"},
};

static void revoke_party(attest_revocations *rev, attest_party p, const char *field)
{
	buf rec = BUF_INIT;
	proto_revocation_to_json("lost device", NOW * 1000, &rec);
	attest_revocations_set(rev, p, field, buf_str(&rec), rec.len);
	buf_deinit(&rec);
}

/* What the store would answer for the variant's parties. */
static void variant_revocations(variant v, const attest_task_auth *a, attest_revocations *rev)
{
	char *fields[ATTEST_PARTY__COUNT];
	attest_party party[ATTEST_PARTY__COUNT];
	size_t n = attest_task_auth_fields(a, fields, party);
	attest_party hit = v == V_REVOKED          ? ATTEST_PARTY_PASSPORT
	                   : v == V_SIGNER_REVOKED ? ATTEST_PARTY_SIGNER
	                   : v == V_ISSUER_REVOKED ? ATTEST_PARTY_ISSUER
	                                           : ATTEST_PARTY__COUNT;
	for (size_t i = 0; i < n; i++) {
		if (party[i] == hit)
			revoke_party(rev, party[i], fields[i]);
		free(fields[i]);
	}
}

static void test_decide_matrix(void **state)
{
	attest_trust_config cfg;
	attest_trust_config_init(&cfg);
	_cleanup_free_ char *issuers = xasprintf("%s", attest_key_id(issuer));
	assert_int_equal(attest_trust_config_set(&cfg, "issuers", issuers, NULL), 0);
	bool seen[V__COUNT][PROTO_TRUST__COUNT] = {{false}};
	for (size_t i = 0; i < ARRAY_SIZE(matrix); i++) {
		const row *r = &matrix[i];
		cfg.min_level = r->floor;
		_cleanup_free_ char *entry = variant_entry(r->v, r->trust);
		proto_task t;
		_cleanup_err_ err *e = NULL;
		if (parse_entry(entry, &t, &e) < 0)
			fail_msg("row %zu (%s): %s", i, variant_names[r->v], err_msg(e));
		attest_task_auth a;
		attest_task_auth_init(&a, &t);
		attest_revocations rev = {0};
		variant_revocations(r->v, &a, &rev);
		const proto_trust_req *reqs[] = {t.auth ? &t.auth->req : NULL};
		attest_trust_decision d;
		int rc = attest_trust_decide(&cfg, reqs, t.auth ? 1 : 0, &a, &rev, NOW, &d);
		if ((int)d.reason != (int)r->want || rc != (r->want == ATTEST_TRUST_OK ? 0 : -1))
			fail_msg("row %zu (%s, %s): got %s (%s), want %s", i, variant_names[r->v],
			         r->trust ? r->trust : "no level",
			         attest_trust_reason_name(d.reason), d.message ? d.message : "-",
			         attest_trust_reason_name(r->want));
		if (r->msg && !strstr(d.message, r->msg))
			fail_msg("row %zu (%s): \"%s\" not in \"%s\"", i, variant_names[r->v],
			         r->msg, d.message);
		if (!r->msg)
			assert_null(d.message);
		if (!r->floor && (!r->trust || !strchr(r->trust + 15, ',')))
			seen[r->v][t.auth ? t.auth->req.level : 0] = true;
		attest_trust_decision_deinit(&d);
		attest_revocations_deinit(&rev);
		attest_task_auth_deinit(&a);
		proto_task_deinit(&t);
	}
	/* The table covers every variant at every level. */
	for (int v = 0; v < V__COUNT; v++)
		for (int l = 0; l < PROTO_TRUST__COUNT; l++)
			if (!seen[v][l])
				fail_msg("no row for %s at %s", variant_names[v],
				         proto_trust_level_name(l));
	attest_trust_config_deinit(&cfg);
}

/* A skill's requirement and the task's add up: both lists of providers must hold. */
static void test_decide_two_requirements(void **state)
{
	attest_trust_config cfg;
	attest_trust_config_init(&cfg);
	assert_int_equal(attest_trust_config_set(&cfg, "issuers", attest_key_id(issuer), NULL), 0);
	_cleanup_free_ char *entry = variant_entry(
	    V_IDENT_HIGH,
	    LVL("L1") ",\"trust_requirements\":{\"accepted_providers\":[\"bankid_se\",\"plaid\"]}");
	proto_task t;
	assert_int_equal(parse_entry(entry, &t, NULL), 0);
	proto_trust_req skill = {0};
	_cleanup_yajl_val_ yajl_val req = NULL;
	const char *text = "{\"accepted_providers\":[\"plaid\"]}";
	assert_int_equal(proto_json_parse(text, strlen(text), &req, NULL), 0);
	assert_int_equal(proto_trust_req_parse("L2", req, &skill, NULL), 0);
	attest_task_auth a;
	attest_task_auth_init(&a, &t);
	attest_revocations rev = {0};
	const proto_trust_req *reqs[] = {&t.auth->req, &skill};
	attest_trust_decision d;
	assert_int_equal(attest_trust_decide(&cfg, reqs, 2, &a, &rev, NOW, &d), -1);
	assert_int_equal(d.reason, ATTEST_TRUST_PROVIDER);
	assert_int_equal(d.level, PROTO_TRUST_L2);
	assert_non_null(strstr(d.message, "[bankid_se, plaid] and [plaid]; passport pp_ih has it "
	                                  "from bankid_se"));
	attest_trust_decision_deinit(&d);
	assert_int_equal(attest_trust_decide(&cfg, reqs, 1, &a, &rev, NOW, &d), 0);
	assert_int_equal(d.level, PROTO_TRUST_L1);
	attest_task_auth_deinit(&a);
	proto_trust_req_deinit(&skill);
	proto_task_deinit(&t);
	attest_trust_config_deinit(&cfg);
}

/* ---- configuration and revocation records ---- */

static void test_config(void **state)
{
	attest_trust_config c;
	attest_trust_config_init(&c);
	assert_int_equal(c.clock_skew_s, 60);
	assert_int_equal(c.revocation_poll_ms, 1000);
	char dir[] = "/tmp/aisp-trust-XXXXXX";
	assert_non_null(mkdtemp(dir));
	assert_int_equal(attest_key_write_pair(issuer, dir, false, NULL), 0);
	_cleanup_free_ char *pem = xasprintf("%s/public.pem", dir);
	_cleanup_free_ char *list =
	    xasprintf("%s, %s\t%s", attest_key_id(rogue), pem, attest_key_id(other));
	_cleanup_err_ err *e = NULL;
	assert_int_equal(attest_trust_config_set(&c, "issuers", list, &e), 0);
	assert_int_equal(c.n_issuers, 3);
	assert_true(attest_trust_config_trusts(&c, attest_key_id(issuer)));
	assert_true(attest_trust_config_trusts(&c, attest_key_id(other)));
	assert_false(attest_trust_config_trusts(&c, attest_key_id(signer)));
	/* A second line adds to the list; a key listed twice is an error. */
	assert_int_equal(attest_trust_config_set(&c, "issuers", attest_key_id(signer), &e), 0);
	assert_int_equal(c.n_issuers, 4);
	const struct {
		const char *key, *value, *msg;
	} bad[] = {
	    {"issuers", "sha256:abc", "[trust] issuers: \"sha256:abc\" is neither a key id"},
	    {"issuers", "", "[trust] issuers: no issuer given"},
	    {"issuers", "/nonexistent.pem", "[trust] issuers: open /nonexistent.pem"},
	    {"clock_skew_s", "3601", "[trust] clock_skew_s: \"3601\": not an integer in 0..3600"},
	    {"revocation_poll_ms", "2000", "not an integer in 50..1000"},
	    {"min_level", "L4", "[trust] min_level: \"L4\": expected none, L0, L1 or L2"},
	    {"issuer", "x", "[trust] has no key \"issuer\""},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(attest_trust_config_set(&c, bad[i].key, bad[i].value, &e), -1);
		if (!strstr(err_msg(e), bad[i].msg))
			fail_msg("expected \"%s\" in \"%s\"", bad[i].msg, err_msg(e));
	}
	assert_int_equal(attest_trust_config_set(&c, "issuers", attest_key_id(signer), &e), -1);
	assert_non_null(strstr(err_msg(e), "is listed twice"));
	assert_int_equal(attest_trust_config_set(&c, "min_level", "L2", &e), 0);
	assert_int_equal(c.min_level, PROTO_TRUST_L2);
	assert_int_equal(attest_trust_config_set(&c, "min_level", "none", &e), 0);
	assert_int_equal(c.min_level, PROTO_TRUST_NONE);
	assert_int_equal(attest_trust_config_set(&c, "revocation_poll_ms", "250", &e), 0);
	assert_int_equal(c.revocation_poll_ms, 250);
	attest_trust_config_deinit(&c);
	unlink(pem);
	_cleanup_free_ char *priv = xasprintf("%s/private.pem", dir);
	unlink(priv);
	rmdir(dir);
}

static void test_revocation_records(void **state)
{
	buf b = BUF_INIT;
	proto_revocation_to_json("key \"leaked\"", 1700000000123LL, &b);
	assert_string_equal(buf_str(&b), "{\"reason\":\"key \\\"leaked\\\"\",\"revoked_at_ms\":"
	                                 "1700000000123}");
	_cleanup_free_ char *reason = NULL;
	int64_t at = 0;
	assert_int_equal(proto_revocation_parse(buf_str(&b), b.len, &reason, &at, NULL), 0);
	assert_string_equal(reason, "key \"leaked\"");
	assert_int_equal(at, 1700000000123LL);
	_cleanup_free_ char *d = attest_revocation_describe("key:sha256:ab", buf_str(&b), b.len);
	assert_string_equal(d, "key sha256:ab is revoked (since 2023-11-14T22:13:20Z: "
	                       "\"key \\\"leaked\\\"\")");
	buf_deinit(&b);
	/* An unreadable record still revokes (fail closed). */
	_cleanup_free_ char *u = attest_revocation_describe("passport:pp_1", "yes", 3);
	assert_non_null(strstr(u, "passport pp_1 is revoked (its record in aisp:revoked is "
	                          "unreadable:"));
	_cleanup_err_ err *e = NULL;
	assert_int_equal(proto_revocation_parse("{\"reason\":1}", 12, &reason, &at, &e), -1);
	assert_non_null(strstr(err_msg(e), "\"reason\" must be a string"));
	_cleanup_free_ char *f = proto_revocation_field(false, "pp_1");
	assert_string_equal(f, "passport:pp_1");
}

/* The node's age recipient under its signing key (what the registry publishes). */
static void test_node_recipient(void **state)
{
	attest_age_identity *id = NULL;
	attest_age_recipient r, got;
	assert_int_equal(attest_age_identity_generate(&id, NULL), 0);
	attest_age_identity_recipient(id, &r);
	char *env = NULL;
	assert_int_equal(attest_recipient_sign(signer, "node-1", &r, 1700000000000LL, &env, NULL),
	                 0);
	attest_key *pub = NULL, *other_pub = NULL;
	uint8_t raw[ATTEST_RAW_KEY_LEN];
	attest_key_raw(signer, raw);
	assert_int_equal(attest_key_from_raw(&pub, raw, NULL), 0);
	attest_key_raw(other, raw);
	assert_int_equal(attest_key_from_raw(&other_pub, raw, NULL), 0);
	_cleanup_err_ err *e = NULL;
	assert_int_equal(attest_recipient_verify(env, strlen(env), pub, "node-1", &got, &e), 0);
	assert_memory_equal(got.key, r.key, sizeof(r.key));
	assert_int_equal(attest_recipient_verify(env, strlen(env), other_pub, "node-1", &got, &e),
	                 -1);
	assert_non_null(strstr(err_msg(e), "node recipient: the signature does not verify"));
	assert_int_equal(attest_recipient_verify(env, strlen(env), pub, "node-2", &got, &e), -1);
	assert_non_null(strstr(err_msg(e), "it is node node-1's, not node-2's"));
	assert_int_equal(attest_recipient_verify("{}", 2, pub, "node-1", &got, &e), -1);
	assert_non_null(strstr(err_msg(e), "node recipient: \"payloadType\" must be"));
	free(env);
	attest_key_free(pub);
	attest_key_free(other_pub);
	attest_age_identity_free(id);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_raw_keys),
	    cmocka_unit_test(test_passport_roundtrip),
	    cmocka_unit_test(test_passport_strict),
	    cmocka_unit_test(test_signed_task),
	    cmocka_unit_test(test_signed_task_errors),
	    cmocka_unit_test(test_trust_req_parse),
	    cmocka_unit_test(test_decide_matrix),
	    cmocka_unit_test(test_decide_two_requirements),
	    cmocka_unit_test(test_config),
	    cmocka_unit_test(test_revocation_records),
	    cmocka_unit_test(test_node_recipient),
	};
	return cmocka_run_group_tests(tests, keys_setup, keys_teardown);
}
