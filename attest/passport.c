/* Signed documents beyond the attestation (attest/TRUST.md): raw Ed25519 public keys and their
 * key ids, DSSE envelopes of any payload type, signed tasks, and passports (a claims document
 * about a subject key, signed by an issuer key): issuing and strict parsing. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "attest/attest.h"
#include "attest/internal.h"
#include "common/cleanup.h"
#include "common/xalloc.h"
#include "proto/json.h"

/* The DER SubjectPublicKeyInfo of an Ed25519 key is this prefix and the 32 raw bytes
 * (RFC 8410, section 4). */
static const uint8_t spki_prefix[12] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                        0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};

static const char *const passport_fields[] = {"_type",   "id",        "issuer",     "issuer_key",
                                              "subject", "issued_at", "expires_at", "claims"};
static const char *const claim_fields[] = {"type", "assurance", "provider"};
static const char *const envelope_fields[] = {"payloadType", "payload", "signatures"};
static const char *const sig_fields[] = {"keyid", "sig"};

static const char *pstr_or(yajl_val obj, const char *k)
{
	const char *s = proto_json_get_str(obj, k);
	return s ? s : "";
}

/* ---- raw keys ---- */

void attest_raw_key_id(const uint8_t raw[ATTEST_RAW_KEY_LEN], char out[ATTEST_DIGEST_LEN])
{
	uint8_t der[sizeof(spki_prefix) + ATTEST_RAW_KEY_LEN];
	memcpy(der, spki_prefix, sizeof(spki_prefix));
	memcpy(der + sizeof(spki_prefix), raw, ATTEST_RAW_KEY_LEN);
	attest_sha256_str(der, sizeof(der), out);
}

int attest_key_from_raw(attest_key **out, const uint8_t raw[ATTEST_RAW_KEY_LEN], err **e)
{
	uint8_t der[sizeof(spki_prefix) + ATTEST_RAW_KEY_LEN];
	memcpy(der, spki_prefix, sizeof(spki_prefix));
	memcpy(der + sizeof(spki_prefix), raw, ATTEST_RAW_KEY_LEN);
	_cleanup_free_ char *b64 = proto_b64_encode(der, sizeof(der));
	_cleanup_free_ char *pem =
	    xasprintf("-----BEGIN PUBLIC KEY-----\n%s\n-----END PUBLIC KEY-----\n", b64);
	return attest_key_from_public_pem(out, pem, strlen(pem), e);
}

void attest_key_raw(const attest_key *k, uint8_t out[ATTEST_RAW_KEY_LEN])
{
	/* The PEM's body is the DER SubjectPublicKeyInfo; its last 32 bytes are the key. */
	_cleanup_free_ char *pem = attest_key_public_pem(k);
	char *body = strchr(pem, '\n') + 1;
	char *end = strstr(body, "\n-----END");
	_cleanup_free_ uint8_t *der = NULL;
	size_t n = 0;
	if (!end || proto_b64_decode(body, (size_t)(end - body), &der, &n) < 0 ||
	    n != sizeof(spki_prefix) + ATTEST_RAW_KEY_LEN)
		abort(); /* OpenSSL writes an Ed25519 public key as one line of 60 characters */
	memcpy(out, der + sizeof(spki_prefix), ATTEST_RAW_KEY_LEN);
}

/* ---- DSSE ---- */

int attest_dsse_sign(const attest_key *k, const char *payload_type, const void *payload, size_t len,
                     char **envelope_json, err **e)
{
	buf pae = BUF_INIT;
	attest_pae(payload_type, payload, len, &pae);
	uint8_t sig[ATTEST_SIG_LEN];
	int r = attest_key_sign(k, pae.data, pae.len, sig, e);
	buf_deinit(&pae);
	if (r < 0)
		return -1;
	return attest_dsse_envelope(payload_type, payload, len, sig, attest_key_id(k),
	                            envelope_json, e);
}

bool attest_dsse_verify(const attest_key *k, const char *payload_type, const void *payload,
                        size_t len, const uint8_t sig[ATTEST_SIG_LEN])
{
	buf pae = BUF_INIT;
	attest_pae(payload_type, payload, len, &pae);
	bool ok = attest_key_verify(k, pae.data, pae.len, sig, ATTEST_SIG_LEN);
	buf_deinit(&pae);
	return ok;
}

int attest_task_sign(const attest_key *k, const char *task_json, size_t len, char **envelope_json,
                     err **e)
{
	proto_task t;
	_cleanup_err_ err *pe = NULL;
	if (proto_task_parse(task_json, len, &t, NULL, &pe) < 0)
		return err_set(e, 0, "sign task: not a valid task: %s", err_msg(pe));
	uint8_t raw[ATTEST_RAW_KEY_LEN];
	attest_key_raw(k, raw);
	bool mine = t.auth && t.auth->has_signer && !memcmp(t.auth->signer, raw, sizeof(raw));
	proto_task_deinit(&t);
	if (!mine)
		return err_set(e, 0, "sign task: its \"signer\" must be the signing key %s",
		               attest_key_id(k));
	return attest_dsse_sign(k, PROTO_TASK_PAYLOAD_TYPE, task_json, len, envelope_json, e);
}

/* ---- passports: issuing ---- */

void attest_time_str(int64_t s, char out[32])
{
	time_t t = (time_t)s;
	struct tm tm;
	if (!gmtime_r(&t, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, 32, "@%" PRId64, s);
}

static int claims_check(const attest_passport *p, err **e)
{
	if (p->n_claims > ATTEST_PASSPORT_CLAIMS_MAX)
		return err_set(e, 0, "more than %d claims", ATTEST_PASSPORT_CLAIMS_MAX);
	for (size_t i = 0; i < p->n_claims; i++) {
		const attest_passport_claim *c = &p->claims[i];
		if (!proto_trust_name_valid(c->type) || !proto_trust_name_valid(c->provider))
			return err_set(e, 0,
			               "claims[%zu]: type and provider must match "
			               "[a-z0-9][a-z0-9_.-]{0,63}",
			               i);
		if (!proto_assurance_name(c->assurance) || c->assurance == PROTO_ASSURANCE_NONE)
			return err_set(
			    e, 0, "claims[%zu]: assurance must be low, substantial or high", i);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(p->claims[j].type, c->type) &&
			    !strcmp(p->claims[j].provider, c->provider))
				return err_set(e, 0, "claims[%zu] repeats claim %s from %s", i,
				               c->type, c->provider);
	}
	return 0;
}

static int passport_check(const attest_passport *p, err **e)
{
	if (!proto_id_valid(p->id))
		return err_set(e, 0, "id must match [A-Za-z0-9._-]{1,64}");
	if (p->issued_at < 0 || p->expires_at <= p->issued_at)
		return err_set(e, 0,
		               "expires_at must come after issued_at (both seconds since the "
		               "epoch, not negative)");
	return claims_check(p, e);
}

static void gen_key(proto_gen *j, const char *k, const uint8_t raw[ATTEST_RAW_KEY_LEN])
{
	_cleanup_free_ char *s = proto_b64_encode(raw, ATTEST_RAW_KEY_LEN);
	proto_json_gen_kstr(j, k, s);
}

static int passport_payload(const attest_passport *p, char **out, size_t *len, err **e)
{
	_cleanup_json_gen_ proto_gen *j = proto_json_gen_new();
	proto_json_gen_open(j, true);
	proto_json_gen_kstr(j, "_type", ATTEST_PASSPORT_TYPE);
	proto_json_gen_kstr(j, "id", p->id);
	proto_json_gen_kstr(j, "issuer", p->issuer);
	gen_key(j, "issuer_key", p->issuer_key);
	gen_key(j, "subject", p->subject);
	proto_json_gen_kint(j, "issued_at", p->issued_at);
	proto_json_gen_kint(j, "expires_at", p->expires_at);
	proto_json_gen_str(j, "claims");
	proto_json_gen_open(j, false);
	for (size_t i = 0; i < p->n_claims; i++) {
		proto_json_gen_open(j, true);
		proto_json_gen_kstr(j, "type", p->claims[i].type);
		proto_json_gen_kstr(j, "assurance", proto_assurance_name(p->claims[i].assurance));
		proto_json_gen_kstr(j, "provider", p->claims[i].provider);
		proto_json_gen_close(j, true);
	}
	proto_json_gen_close(j, false);
	proto_json_gen_close(j, true);
	*out = proto_json_gen_steal(j, len, e);
	return *out ? 0 : -1;
}

int attest_passport_issue(const attest_key *issuer, attest_passport *p, char **envelope_json,
                          err **e)
{
	if (passport_check(p, e) < 0)
		return err_prefix(e, "passport");
	memcpy(p->issuer, attest_key_id(issuer), ATTEST_DIGEST_LEN);
	attest_key_raw(issuer, p->issuer_key);
	attest_raw_key_id(p->subject, p->subject_id);
	_cleanup_free_ char *payload = NULL;
	size_t len = 0;
	if (passport_payload(p, &payload, &len, e) < 0 ||
	    attest_dsse_sign(issuer, ATTEST_PASSPORT_PAYLOAD_TYPE, payload, len, envelope_json, e) <
	        0)
		return err_prefix(e, "passport");
	return 0;
}

/* ---- passports: parsing ---- */

/* The first key of obj not in allowed[0..n), as an error naming it. */
static int unknown_field(yajl_val obj, const char *const *allowed, size_t n, const char *where,
                         err **e)
{
	for (size_t i = 0; i < obj->u.object.len; i++) {
		size_t k = 0;
		while (k < n && strcmp(obj->u.object.keys[i], allowed[k]))
			k++;
		if (k == n) {
			const char *key = obj->u.object.keys[i];
			_cleanup_free_ char *q = proto_quote(key, strlen(key));
			return err_set(e, 0, "%sunknown field %s", where, q);
		}
	}
	return 0;
}

static int raw_key(yajl_val root, const char *k, uint8_t out[ATTEST_RAW_KEY_LEN], err **e)
{
	const char *s = proto_json_get_str(root, k);
	_cleanup_free_ uint8_t *d = NULL;
	size_t n = 0;
	if (!s || strlen(s) != 44 || proto_b64_decode(s, 44, &d, &n) < 0 || n != ATTEST_RAW_KEY_LEN)
		return err_set(e, 0, "\"%s\" must be the base64 of a 32-byte Ed25519 public key",
		               k);
	memcpy(out, d, ATTEST_RAW_KEY_LEN);
	return 0;
}

static int copy_name(yajl_val obj, const char *k, char out[PROTO_TRUST_NAME_MAX + 1], size_t i,
                     err **e)
{
	const char *s = proto_json_get_str(obj, k);
	if (!proto_trust_name_valid(s))
		return err_set(e, 0, "claims[%zu].%s must match [a-z0-9][a-z0-9_.-]{0,63}", i, k);
	memcpy(out, s, strlen(s) + 1);
	return 0;
}

static int parse_claims(yajl_val v, attest_passport *p, err **e)
{
	if (!YAJL_IS_ARRAY(v))
		return err_set(e, 0, "\"claims\" must be an array");
	if (v->u.array.len > ATTEST_PASSPORT_CLAIMS_MAX)
		return err_set(e, 0, "more than %d claims", ATTEST_PASSPORT_CLAIMS_MAX);
	for (size_t i = 0; i < v->u.array.len; i++) {
		yajl_val c = v->u.array.values[i];
		attest_passport_claim *pc = &p->claims[i];
		_cleanup_free_ char *where = xasprintf("claims[%zu]: ", i);
		if (!YAJL_IS_OBJECT(c))
			return err_set(e, 0, "claims[%zu] must be an object", i);
		if (unknown_field(c, claim_fields, ARRAY_SIZE(claim_fields), where, e) < 0 ||
		    copy_name(c, "type", pc->type, i, e) < 0 ||
		    copy_name(c, "provider", pc->provider, i, e) < 0)
			return -1;
		if (proto_assurance_parse(proto_json_get_str(c, "assurance"), &pc->assurance) < 0)
			return err_set(e, 0,
			               "claims[%zu].assurance must be low, substantial or high", i);
		p->n_claims = i + 1;
	}
	return claims_check(p, e);
}

static int parse_payload(const uint8_t *payload, size_t len, attest_passport *p, err **e)
{
	_cleanup_yajl_val_ yajl_val root = NULL;
	if (proto_json_parse((const char *)payload, len, &root, e) < 0)
		return err_prefix(e, "payload");
	if (!YAJL_IS_OBJECT(root))
		return err_set(e, 0, "payload is not a JSON object");
	if (unknown_field(root, passport_fields, ARRAY_SIZE(passport_fields), "", e) < 0)
		return -1;
	const char *type = proto_json_get_str(root, "_type");
	const char *id = proto_json_get_str(root, "id");
	const char *issuer = proto_json_get_str(root, "issuer");
	if (!type || strcmp(type, ATTEST_PASSPORT_TYPE))
		return err_set(e, 0, "\"_type\" must be \"%s\"", ATTEST_PASSPORT_TYPE);
	if (!proto_id_valid(id))
		return err_set(e, 0, "\"id\" must match [A-Za-z0-9._-]{1,64}");
	memcpy(p->id, id, strlen(id) + 1);
	if (!issuer || strlen(issuer) != ATTEST_DIGEST_LEN - 1)
		return err_set(e, 0, "\"issuer\" must be a key id (sha256: and 64 hex digits)");
	memcpy(p->issuer, issuer, ATTEST_DIGEST_LEN);
	if (raw_key(root, "issuer_key", p->issuer_key, e) < 0 ||
	    raw_key(root, "subject", p->subject, e) < 0)
		return -1;
	attest_raw_key_id(p->subject, p->subject_id);
	if (proto_json_get_int(root, "issued_at", &p->issued_at) < 0 ||
	    proto_json_get_int(root, "expires_at", &p->expires_at) < 0)
		return err_set(e, 0,
		               "\"issued_at\" and \"expires_at\" must be integers (seconds "
		               "since the epoch)");
	if (parse_claims(proto_json_get(root, "claims"), p, e) < 0)
		return -1;
	char kid[ATTEST_DIGEST_LEN];
	attest_raw_key_id(p->issuer_key, kid);
	if (strcmp(kid, p->issuer))
		return err_set(e, 0, "\"issuer\" %s is not the key id of \"issuer_key\" (%s)",
		               p->issuer, kid);
	return passport_check(p, e);
}

static int dsse_parse(const char *json, size_t len, const char *type, attest_dsse *d, err **e)
{
	_cleanup_yajl_val_ yajl_val root = NULL;
	if (proto_json_parse(json, len, &root, e) < 0)
		return -1;
	if (!YAJL_IS_OBJECT(root))
		return err_set(e, 0, "not a JSON object (a DSSE envelope)");
	if (unknown_field(root, envelope_fields, ARRAY_SIZE(envelope_fields), "", e) < 0)
		return -1;
	const char *pt = proto_json_get_str(root, "payloadType");
	const char *payload = proto_json_get_str(root, "payload");
	yajl_val sigs = proto_json_get(root, "signatures");
	if (!pt || strcmp(pt, type))
		return err_set(e, 0, "\"payloadType\" must be \"%s\"", type);
	if (!payload || proto_b64_decode(payload, strlen(payload), &d->payload, &d->len) < 0)
		return err_set(e, 0, "\"payload\" must be base64");
	if (!YAJL_IS_ARRAY(sigs) || sigs->u.array.len != 1)
		return err_set(e, 0, "\"signatures\" must hold exactly one signature");
	yajl_val s = sigs->u.array.values[0];
	const char *keyid = proto_json_get_str(s, "keyid"), *sig = proto_json_get_str(s, "sig");
	_cleanup_free_ uint8_t *raw = NULL;
	size_t n = 0;
	if (!YAJL_IS_OBJECT(s))
		return err_set(e, 0, "signatures[0] must be an object");
	if (unknown_field(s, sig_fields, ARRAY_SIZE(sig_fields), "signatures[0]: ", e) < 0)
		return -1;
	if (!keyid || strlen(keyid) != ATTEST_DIGEST_LEN - 1)
		return err_set(e, 0, "signatures[0].keyid must be a key id");
	if (!sig || proto_b64_decode(sig, strlen(sig), &raw, &n) < 0 || n != ATTEST_SIG_LEN)
		return err_set(e, 0, "signatures[0].sig must be the base64 of a 64-byte signature");
	memcpy(d->sig, raw, ATTEST_SIG_LEN);
	memcpy(d->keyid, keyid, ATTEST_DIGEST_LEN);
	return 0;
}

int attest_dsse_parse(const char *json, size_t len, const char *type, attest_dsse *d, err **e)
{
	memset(d, 0, sizeof(*d));
	if (dsse_parse(json, len, type, d, e) < 0) {
		attest_dsse_deinit(d);
		return -1;
	}
	return 0;
}

void attest_dsse_deinit(attest_dsse *d)
{
	free(d->payload);
	memset(d, 0, sizeof(*d));
}

int attest_passport_parse(const char *json, size_t len, attest_passport *p, err **e)
{
	memset(p, 0, sizeof(*p));
	if (len > PROTO_PASSPORT_MAX)
		return err_set(e, 0, "passport: %zu bytes, above the %u-byte limit", len,
		               PROTO_PASSPORT_MAX);
	attest_dsse d;
	int r = attest_dsse_parse(json, len, ATTEST_PASSPORT_PAYLOAD_TYPE, &d, e);
	p->payload = steal_pointer(&d.payload);
	p->payload_len = d.len;
	memcpy(p->sig, d.sig, ATTEST_SIG_LEN);
	if (r == 0)
		r = parse_payload(p->payload, p->payload_len, p, e);
	if (r == 0 && strcmp(d.keyid, p->issuer))
		r = err_set(e, 0, "the signature's keyid %s is not the issuer %s", d.keyid,
		            p->issuer);
	attest_dsse_deinit(&d);
	if (r < 0) {
		attest_passport_deinit(p);
		return err_prefix(e, "passport");
	}
	return 0;
}
bool attest_passport_signature_ok(const attest_passport *p)
{
	attest_key *k = NULL;
	if (!p->payload || attest_key_from_raw(&k, p->issuer_key, NULL) < 0)
		return false;
	bool ok =
	    attest_dsse_verify(k, ATTEST_PASSPORT_PAYLOAD_TYPE, p->payload, p->payload_len, p->sig);
	attest_key_free(k);
	return ok;
}

void attest_passport_deinit(attest_passport *p)
{
	free(p->payload);
	memset(p, 0, sizeof(*p));
}

/* ---- the node's age recipient ---- */

int attest_recipient_sign(const attest_key *k, const char *node_id, const attest_age_recipient *r,
                          int64_t issued_at_ms, char **envelope_json, err **e)
{
	char text[ATTEST_AGE_RECIPIENT_LEN + 1];
	attest_age_recipient_format(r, text);
	_cleanup_json_gen_ proto_gen *j = proto_json_gen_new();
	proto_json_gen_open(j, true);
	proto_json_gen_kstr(j, "_type", ATTEST_RECIPIENT_TYPE);
	proto_json_gen_kstr(j, "node_id", node_id);
	proto_json_gen_kstr(j, "recipient", text);
	proto_json_gen_kstr(j, "key_id", attest_key_id(k));
	proto_json_gen_kint(j, "issued_at_ms", issued_at_ms);
	proto_json_gen_close(j, true);
	_cleanup_free_ char *payload = NULL;
	size_t len = 0;
	if (!(payload = proto_json_gen_steal(j, &len, e)))
		return -1;
	return attest_dsse_sign(k, ATTEST_RECIPIENT_PAYLOAD_TYPE, payload, len, envelope_json, e);
}

int attest_recipient_verify(const char *envelope_json, size_t len, const attest_key *pub,
                            const char *node_id, attest_age_recipient *out, err **e)
{
	attest_dsse d;
	if (attest_dsse_parse(envelope_json, len, ATTEST_RECIPIENT_PAYLOAD_TYPE, &d, e) < 0)
		return err_prefix(e, "node recipient");
	_cleanup_yajl_val_ yajl_val root = NULL;
	int r = 0;
	if (!attest_dsse_verify(pub, ATTEST_RECIPIENT_PAYLOAD_TYPE, d.payload, d.len, d.sig))
		r = err_set(e, 0, "the signature does not verify with the node's key %s",
		            attest_key_id(pub));
	else if (proto_json_parse((const char *)d.payload, d.len, &root, e) < 0)
		r = -1;
	else if (strcmp(pstr_or(root, "_type"), ATTEST_RECIPIENT_TYPE) ||
	         strcmp(pstr_or(root, "key_id"), attest_key_id(pub)))
		r = err_set(e, 0, "not a recipient statement of the key %s", attest_key_id(pub));
	else if (strcmp(pstr_or(root, "node_id"), node_id))
		r = err_set(e, 0, "it is node %s's, not %s's", pstr_or(root, "node_id"), node_id);
	else if (attest_age_recipient_parse(out, pstr_or(root, "recipient"), e) < 0)
		r = -1;
	attest_dsse_deinit(&d);
	return r < 0 ? err_prefix(e, "node recipient") : 0;
}
