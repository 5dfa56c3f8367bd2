/* The trust decision (attest/TRUST.md): what a node trusts ([trust] config), the checked facts
 * of a task's signature and passport, the revocation store's answers, and
 * attest_trust_decide(), a pure function of those that says whether a task may run and, when
 * not, exactly why. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "attest/attest.h"
#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"

static const char *const reason_names[ATTEST_TRUST__COUNT] = {
    "ok",
    "bad_signature",
    "unsigned",
    "revoked",
    "no_passport",
    "passport_invalid",
    "passport_signature",
    "unknown_issuer",
    "not_yet_valid",
    "expired",
    "subject_mismatch",
    "missing_claim",
    "assurance",
    "provider",
};

const char *attest_trust_reason_name(attest_trust_reason r)
{
	return (unsigned)r < ATTEST_TRUST__COUNT ? reason_names[r] : NULL;
}

/* ---- configuration ---- */

void attest_trust_config_init(attest_trust_config *c)
{
	memset(c, 0, sizeof(*c));
	c->clock_skew_s = 60;
	c->revocation_poll_ms = 1000;
	c->min_level = PROTO_TRUST_NONE;
}

void attest_trust_config_deinit(attest_trust_config *c)
{
	free(c->issuers);
	attest_trust_config_init(c);
}

bool attest_trust_config_trusts(const attest_trust_config *c, const char *issuer_id)
{
	for (size_t i = 0; i < c->n_issuers; i++)
		if (!strcmp(c->issuers[i], issuer_id))
			return true;
	return false;
}

static bool key_id_text(const char *s)
{
	return strlen(s) == ATTEST_DIGEST_LEN - 1 && !strncmp(s, "sha256:", 7) &&
	       strspn(s + 7, "0123456789abcdef") == 64;
}

/* One entry of "issuers": a key id, or the path of a PEM public key. */
static int add_issuer(attest_trust_config *c, const char *entry, err **e)
{
	char id[ATTEST_DIGEST_LEN];
	if (entry[0] == '/') {
		attest_key *k = NULL;
		if (attest_key_load_public(&k, entry, e) < 0)
			return -1;
		memcpy(id, attest_key_id(k), ATTEST_DIGEST_LEN);
		attest_key_free(k);
	} else if (key_id_text(entry)) {
		memcpy(id, entry, ATTEST_DIGEST_LEN);
	} else {
		return err_set(
		    e, 0,
		    "\"%s\" is neither a key id (sha256: and 64 lower-case hex digits) nor "
		    "the absolute path of a PEM public key",
		    entry);
	}
	if (attest_trust_config_trusts(c, id))
		return err_set(e, 0, "issuer %s is listed twice", id);
	if (c->n_issuers == ATTEST_TRUST_ISSUERS_MAX)
		return err_set(e, 0, "more than %d issuers", ATTEST_TRUST_ISSUERS_MAX);
	c->issuers = xreallocarray(c->issuers, c->n_issuers + 1, sizeof(*c->issuers));
	memcpy(c->issuers[c->n_issuers++], id, ATTEST_DIGEST_LEN);
	return 0;
}

static int set_issuers(attest_trust_config *c, const char *value, err **e)
{
	_cleanup_free_ char *s = xstrdup(value);
	size_t n = 0;
	for (char *save = NULL, *tok = strtok_r(s, ", \t", &save); tok;
	     tok = strtok_r(NULL, ", \t", &save), n++)
		if (add_issuer(c, tok, e) < 0)
			return -1;
	return n ? 0 : err_set(e, 0, "no issuer given");
}

int attest_trust_config_set(attest_trust_config *c, const char *key, const char *value, err **e)
{
	int r = 0;
	if (!strcmp(key, "issuers")) {
		r = set_issuers(c, value, e);
	} else if (!strcmp(key, "clock_skew_s")) {
		if (parse_i64(value, 0, 3600, &c->clock_skew_s) < 0)
			r = err_set(e, 0, "\"%s\": not an integer in 0..3600", value);
	} else if (!strcmp(key, "revocation_poll_ms")) {
		if (parse_i64(value, 50, 1000, &c->revocation_poll_ms) < 0)
			r = err_set(e, 0,
			            "\"%s\": not an integer in 50..1000 (a running task's "
			            "parties are checked at least every second)",
			            value);
	} else if (!strcmp(key, "min_level")) {
		if (!strcmp(value, "none"))
			c->min_level = PROTO_TRUST_NONE;
		else if (proto_trust_level_parse(value, &c->min_level) < 0)
			r = err_set(e, 0, "\"%s\": expected none, L0, L1 or L2", value);
	} else {
		return err_set(e, 0,
		               "[trust] has no key \"%s\" (issuers, clock_skew_s, "
		               "revocation_poll_ms, min_level)",
		               key);
	}
	return r < 0 ? err_prefix(e, "[trust] %s", key) : 0;
}

/* ---- the checked facts ---- */

static void check_signature(attest_task_auth *a, const proto_task *t)
{
	const proto_task_sig *sig = t->auth->sig;
	attest_key *k = NULL;
	if (strcmp(sig->keyid, a->signer_id))
		a->signature_error =
		    xasprintf("the task's signature names key %s, but its signer is "
		              "%s",
		              sig->keyid, a->signer_id);
	else if (attest_key_from_raw(&k, t->auth->signer, NULL) < 0 ||
	         !attest_dsse_verify(k, PROTO_TASK_PAYLOAD_TYPE, sig->payload, sig->payload_len,
	                             sig->sig))
		a->signature_error = xasprintf(
		    "the task's signature does not verify with its signer key %s", a->signer_id);
	attest_key_free(k);
}

void attest_task_auth_init(attest_task_auth *a, const proto_task *t)
{
	memset(a, 0, sizeof(*a));
	const proto_auth *pa = t->auth;
	if (!pa)
		return;
	if (pa->has_signer)
		attest_raw_key_id(pa->signer, a->signer_id);
	if (pa->sig) {
		a->is_signed = true;
		check_signature(a, t);
	}
	if (!pa->passport)
		return;
	a->has_passport = true;
	_cleanup_err_ err *e = NULL;
	if (attest_passport_parse(pa->passport, strlen(pa->passport), &a->passport, &e) < 0)
		a->passport_error = xstrdup(err_msg(e));
	else
		a->passport_signature_ok = attest_passport_signature_ok(&a->passport);
}

void attest_task_auth_deinit(attest_task_auth *a)
{
	free(a->signature_error);
	free(a->passport_error);
	attest_passport_deinit(&a->passport);
	memset(a, 0, sizeof(*a));
}

/* ---- revocations ---- */

size_t attest_task_auth_fields(const attest_task_auth *a, char *fields[ATTEST_PARTY__COUNT],
                               attest_party party[ATTEST_PARTY__COUNT])
{
	size_t n = 0;
	if (a->signer_id[0]) {
		party[n] = ATTEST_PARTY_SIGNER;
		fields[n++] = proto_revocation_field(true, a->signer_id);
	}
	if (a->has_passport && !a->passport_error) {
		party[n] = ATTEST_PARTY_ISSUER;
		fields[n++] = proto_revocation_field(true, a->passport.issuer);
		party[n] = ATTEST_PARTY_PASSPORT;
		fields[n++] = proto_revocation_field(false, a->passport.id);
	}
	return n;
}

char *attest_revocation_describe(const char *field, const char *value, size_t len)
{
	_cleanup_free_ char *reason = NULL;
	int64_t at = 0;
	_cleanup_err_ err *e = NULL;
	const char *what =
	    !strncmp(field, PROTO_REVOKED_KEY, strlen(PROTO_REVOKED_KEY)) ? "key" : "passport";
	const char *id = strchr(field, ':') ? strchr(field, ':') + 1 : field;
	if (proto_revocation_parse(value, len, &reason, &at, &e) < 0)
		return xasprintf("%s %s is revoked (its record in %s is unreadable: %s)", what, id,
		                 PROTO_KEY_REVOKED, err_msg(e));
	char when[32];
	attest_time_str(at / 1000, when);
	_cleanup_free_ char *q = proto_quote(reason, strlen(reason));
	return xasprintf("%s %s is revoked (since %s: %s)", what, id, when, q);
}

void attest_revocations_set(attest_revocations *r, attest_party p, const char *field,
                            const char *value, size_t len)
{
	free(r->why[p]);
	r->why[p] = value ? attest_revocation_describe(field, value, len) : NULL;
}

void attest_revocations_deinit(attest_revocations *r)
{
	for (int i = 0; i < ATTEST_PARTY__COUNT; i++)
		free(r->why[i]);
	memset(r, 0, sizeof(*r));
}

/* ---- the decision ---- */

/* What the requirements add up to: the strictest of each. */
typedef struct need {
	proto_trust_level level;
	proto_assurance assurance;
	const char *claims[1 + 4 * PROTO_TRUST_LIST_MAX];
	size_t n_claims;
	const proto_trust_req *const *reqs; /* each one's accepted_providers must hold */
	size_t n_reqs;
} need;

static void add_claim(need *n, const char *c)
{
	for (size_t i = 0; i < n->n_claims; i++)
		if (!strcmp(n->claims[i], c))
			return;
	if (n->n_claims < ARRAY_SIZE(n->claims))
		n->claims[n->n_claims++] = c;
}

static void need_of(need *n, proto_trust_level floor, const proto_trust_req *const *reqs, size_t k)
{
	memset(n, 0, sizeof(*n));
	n->level = floor;
	n->reqs = reqs;
	n->n_reqs = k;
	for (size_t i = 0; i < k; i++) {
		if (reqs[i]->level > n->level)
			n->level = reqs[i]->level;
		if (reqs[i]->min_assurance > n->assurance)
			n->assurance = reqs[i]->min_assurance;
	}
	static const proto_assurance level_floor[PROTO_TRUST__COUNT] = {
	    PROTO_ASSURANCE_NONE, PROTO_ASSURANCE_LOW, PROTO_ASSURANCE_SUBSTANTIAL,
	    PROTO_ASSURANCE_HIGH};
	if (level_floor[n->level] > n->assurance)
		n->assurance = level_floor[n->level];
	if (n->level == PROTO_TRUST_L1)
		add_claim(n, "verified_human");
	if (n->level == PROTO_TRUST_L2)
		add_claim(n, "verified_identity");
	for (size_t i = 0; i < k; i++)
		for (size_t j = 0; j < reqs[i]->n_claims; j++)
			add_claim(n, reqs[i]->claims[j]);
}

static bool provider_accepted(const need *n, const char *provider)
{
	for (size_t i = 0; i < n->n_reqs; i++) {
		const proto_trust_req *r = n->reqs[i];
		bool ok = r->n_providers == 0;
		for (size_t j = 0; !ok && j < r->n_providers; j++)
			ok = !strcmp(r->providers[j], provider);
		if (!ok)
			return false;
	}
	return true;
}

/* A claim of this type: verified_identity also proves verified_human. */
static bool claim_counts(const char *have, const char *want)
{
	return !strcmp(have, want) ||
	       (!strcmp(want, "verified_human") && !strcmp(have, "verified_identity"));
}

/* The accepted providers of every requirement, for a message: "[a, b]" or "[a, b] and [c]". */
static char *providers_text(const need *n)
{
	buf b = BUF_INIT;
	for (size_t i = 0; i < n->n_reqs; i++) {
		if (!n->reqs[i]->n_providers)
			continue;
		buf_append_str(&b, b.len ? " and [" : "[");
		for (size_t j = 0; j < n->reqs[i]->n_providers; j++)
			buf_appendf(&b, "%s%s", j ? ", " : "", n->reqs[i]->providers[j]);
		buf_append_str(&b, "]");
	}
	return buf_steal(&b, NULL);
}

static int reject(attest_trust_decision *d, attest_trust_reason r, char *msg)
{
	d->reason = r;
	d->message = msg;
	return -1;
}

/* One required claim type: a claim that satisfies it, or why none does (the closest one). */
static int check_claim(const need *n, const attest_passport *p, const char *want,
                       attest_trust_decision *d)
{
	const attest_passport_claim *best = NULL, *strong = NULL;
	for (size_t i = 0; i < p->n_claims; i++) {
		const attest_passport_claim *c = &p->claims[i];
		if (!claim_counts(c->type, want))
			continue;
		if (c->assurance >= n->assurance && provider_accepted(n, c->provider))
			return 0;
		if (c->assurance >= n->assurance && !strong)
			strong = c;
		if (!best || c->assurance > best->assurance)
			best = c;
	}
	const char *lvl = proto_trust_level_name(n->level);
	if (!best) {
		buf have = BUF_INIT;
		for (size_t i = 0; i < p->n_claims; i++)
			buf_appendf(&have, "%s%s", i ? ", " : "", p->claims[i].type);
		char *m =
		    xasprintf("trust level %s requires claim %s; passport %s has none (it has: "
		              "%s)",
		              lvl, want, p->id, have.len ? buf_str(&have) : "no claims");
		buf_deinit(&have);
		return reject(d, ATTEST_TRUST_MISSING_CLAIM, m);
	}
	if (!strong)
		return reject(
		    d, ATTEST_TRUST_ASSURANCE,
		    xasprintf("trust level %s requires claim %s at assurance %s or higher; "
		              "passport %s has it at %s at best (provider %s)",
		              lvl, want, proto_assurance_name(n->assurance), p->id,
		              proto_assurance_name(best->assurance), best->provider));
	_cleanup_free_ char *acc = providers_text(n);
	return reject(d, ATTEST_TRUST_PROVIDER,
	              xasprintf("trust level %s requires claim %s from an accepted provider %s; "
	                        "passport %s has it from %s",
	                        lvl, want, acc, p->id, strong->provider));
}

static int check_passport(const attest_trust_config *cfg, const attest_task_auth *a,
                          const attest_revocations *rev, int64_t now, attest_trust_decision *d)
{
	const attest_passport *p = &a->passport;
	char t[32];
	if (a->passport_error)
		return reject(d, ATTEST_TRUST_PASSPORT_INVALID, xstrdup(a->passport_error));
	if (!a->passport_signature_ok)
		return reject(
		    d, ATTEST_TRUST_PASSPORT_SIGNATURE,
		    xasprintf("passport %s: the signature does not verify with its issuer "
		              "key %s",
		              p->id, p->issuer));
	if (!attest_trust_config_trusts(cfg, p->issuer))
		return reject(
		    d, ATTEST_TRUST_UNKNOWN_ISSUER,
		    xasprintf("passport %s: issuer %s is not trusted by this node ([trust] "
		              "issuers)",
		              p->id, p->issuer));
	for (int party = ATTEST_PARTY_ISSUER; party <= ATTEST_PARTY_PASSPORT; party++)
		if (rev->why[party])
			return reject(d, ATTEST_TRUST_REVOKED, xstrdup(rev->why[party]));
	if (p->issued_at > now + cfg->clock_skew_s) {
		attest_time_str(p->issued_at, t);
		return reject(d, ATTEST_TRUST_NOT_YET_VALID,
		              xasprintf("passport %s is not valid before %s", p->id, t));
	}
	if (p->expires_at <= now - cfg->clock_skew_s) {
		attest_time_str(p->expires_at, t);
		return reject(d, ATTEST_TRUST_EXPIRED,
		              xasprintf("passport %s expired at %s", p->id, t));
	}
	if (strcmp(p->subject_id, a->signer_id))
		return reject(d, ATTEST_TRUST_SUBJECT_MISMATCH,
		              xasprintf("passport %s is for key %s, but the task is signed by %s",
		                        p->id, p->subject_id, a->signer_id));
	return 0;
}

int attest_trust_decide(const attest_trust_config *cfg, const proto_trust_req *const *reqs,
                        size_t n_reqs, const attest_task_auth *a, const attest_revocations *rev,
                        int64_t now_s, attest_trust_decision *out)
{
	need n;
	need_of(&n, cfg->min_level, reqs, n_reqs);
	memset(out, 0, sizeof(*out));
	out->level = n.level;
	const char *lvl = proto_trust_level_name(n.level);
	if (a->signature_error)
		return reject(out, ATTEST_TRUST_BAD_SIGNATURE, xstrdup(a->signature_error));
	if (n.level > PROTO_TRUST_NONE && !a->is_signed)
		return reject(out, ATTEST_TRUST_UNSIGNED,
		              xasprintf("trust level %s requires a signed task; this task is not "
		                        "signed",
		                        lvl));
	if (rev->why[ATTEST_PARTY_SIGNER])
		return reject(out, ATTEST_TRUST_REVOKED, xstrdup(rev->why[ATTEST_PARTY_SIGNER]));
	if (a->has_passport && check_passport(cfg, a, rev, now_s, out) < 0)
		return -1;
	if (n.level == PROTO_TRUST_NONE && n.n_claims == 0)
		return 0;
	if (!a->has_passport)
		return reject(
		    out, ATTEST_TRUST_NO_PASSPORT,
		    xasprintf("trust level %s requires a passport; the task carries none", lvl));
	for (size_t i = 0; i < n.n_claims; i++)
		if (check_claim(&n, &a->passport, n.claims[i], out) < 0)
			return -1;
	return 0;
}

void attest_trust_decision_deinit(attest_trust_decision *d)
{
	free(d->message);
	memset(d, 0, sizeof(*d));
}
