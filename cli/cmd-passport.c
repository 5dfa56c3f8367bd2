/* aisp passport: passports for issuers and tests, and the revocation store (attest/TRUST.md).
 *   issue    sign a claims document about a subject key with an issuer key
 *   show     print a passport's fields and whether its signature holds
 *   verify   check it as a node would (trusted issuer, times, revocation, signer)
 *   revoke / unrevoke / revoked   the revocation store in Redis (PROTO_KEY_REVOKED)
 *   key-id   the key id of a public key (what [trust] issuers and revocations name) */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <openssl/rand.h>

#include "attest/attest.h"
#include "cli/cli.h"
#include "cli/redis.h"
#include "cli/sealed.h"
#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "proto/proto.h"

#define REDIS_TIMEOUT_MS 5000
#define DEFAULT_VALID_S  (30 * 86400)

DEFINE_CLEANUP_FUNC(attest_key *, attest_key_free)

static void passport_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: aisp passport issue --key ISSUER.pem --subject KEY --claim T:A:P...\n"
	    "                           [--id ID] [--valid-for N(s|m|h|d)] [--issued-at UNIX]\n"
	    "                           [-o FILE]\n"
	    "       aisp passport show FILE\n"
	    "       aisp passport verify FILE --issuer KEY... [--signer KEY] [--now UNIX]\n"
	    "                            [--clock-skew S] [--redis ADDR]\n"
	    "       aisp passport revoke (--passport ID | --key KEY) [--reason TEXT] "
	    "[--redis ADDR]\n"
	    "       aisp passport unrevoke (--passport ID | --key KEY) [--redis ADDR]\n"
	    "       aisp passport revoked [--redis ADDR]\n"
	    "       aisp passport key-id KEY\n\n"
	    "KEY: a PEM public key file, a key directory (DIR/public.pem, from aisp keygen), the\n"
	    "base64 of a raw Ed25519 public key, or (verify --issuer, revoke) a key id\n"
	    "sha256:<hex>. A claim T:A:P is a type (verified_human, verified_identity, ...), an\n"
	    "assurance (low, substantial, high) and a provider (bankid_se, ...). A passport is\n"
	    "valid from --issued-at (default: now) for --valid-for (default 30d).\n"
	    "Redis: --redis, or $AISP_REDIS (default 127.0.0.1:6379).\n");
}

/* ---- issue ---- */

static int parse_claim(const char *s, attest_passport *p, err **e)
{
	if (p->n_claims == ATTEST_PASSPORT_CLAIMS_MAX)
		return err_set(e, 0, "more than %d claims", ATTEST_PASSPORT_CLAIMS_MAX);
	attest_passport_claim *c = &p->claims[p->n_claims];
	char a[32];
	int n = 0;
	if (sscanf(s, "%64[^:]:%31[^:]:%64[^:]%n", c->type, a, c->provider, &n) != 3 || s[n] ||
	    proto_assurance_parse(a, &c->assurance) < 0)
		return err_set(e, 0,
		               "--claim \"%s\": expected TYPE:ASSURANCE:PROVIDER, assurance "
		               "one of low, substantial, high",
		               s);
	p->n_claims++;
	return 0;
}

static int parse_duration(const char *s, int64_t *out, err **e)
{
	size_t n = strlen(s);
	int64_t unit = n ? (s[n - 1] == 's'   ? 1
	                    : s[n - 1] == 'm' ? 60
	                    : s[n - 1] == 'h' ? 3600
	                    : s[n - 1] == 'd' ? 86400
	                                      : 0)
	                 : 0;
	_cleanup_free_ char *num = xstrndup(s, n ? n - 1 : 0);
	int64_t v;
	if (!unit || parse_i64(num, 1, 100LL * 365 * 86400, &v) < 0 ||
	    v * unit > 100LL * 365 * 86400)
		return err_set(e, 0,
		               "--valid-for \"%s\": expected a positive number and s, m, h or d, "
		               "at most 100 years",
		               s);
	*out = v * unit;
	return 0;
}

static void random_id(char out[PROTO_ID_MAX + 1])
{
	uint8_t r[8];
	char hex[17];
	if (RAND_bytes(r, sizeof(r)) != 1)
		abort();
	hex_encode(r, sizeof(r), hex);
	snprintf(out, PROTO_ID_MAX + 1, "pp_%s", hex);
}

static int issue_args(attest_passport *p, const char **key, const char **out, int argc, char **argv,
                      err **e)
{
	int64_t valid = DEFAULT_VALID_S;
	bool subject = false;
	p->issued_at = (int64_t)time(NULL);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[++i] : NULL;
		char sid[ATTEST_DIGEST_LEN];
		int r = !v                      ? err_set(e, 0, "%s needs a value", a)
		        : !strcmp(a, "--key")   ? (*key = v, 0)
		        : !strcmp(a, "-o")      ? (*out = v, 0)
		        : !strcmp(a, "--claim") ? parse_claim(v, p, e)
		        : !strcmp(a, "--subject")
		            ? (subject = true, cli_public_key(v, p->subject, sid, e))
		        : !strcmp(a, "--valid-for") ? parse_duration(v, &valid, e)
		        : !strcmp(a, "--issued-at")
		            ? (parse_i64(v, 0, INT64_MAX / 4, &p->issued_at) < 0
		                   ? err_set(e, 0, "--issued-at: seconds since the epoch")
		                   : 0)
		        : !strcmp(a, "--id")
		            ? (proto_id_valid(v)
		                   ? (snprintf(p->id, sizeof(p->id), "%s", v), 0)
		                   : err_set(e, 0, "--id must match [A-Za-z0-9._-]{1,64}"))
		            : err_set(e, 0, "unknown option \"%s\"", a);
		if (r < 0)
			return -1;
	}
	if (!*key || !subject)
		return err_set(e, 0, "give --key ISSUER.pem and --subject KEY");
	if (!p->id[0])
		random_id(p->id);
	p->expires_at = p->issued_at + valid;
	return 0;
}

static int passport_issue(int argc, char **argv, err **e)
{
	attest_passport p = {0};
	const char *keyfile = NULL, *out = NULL;
	if (issue_args(&p, &keyfile, &out, argc, argv, e) < 0)
		return -1;
	_cleanup_(attest_key_freep) attest_key *k = NULL;
	_cleanup_free_ char *json = NULL;
	if (attest_key_load_private(&k, keyfile, e) < 0 ||
	    attest_passport_issue(k, &p, &json, e) < 0)
		return -1;
	_cleanup_free_ char *line = xasprintf("%s\n", json);
	if (out)
		return write_file_path(out, line, strlen(line), 0644, e);
	fputs(line, stdout);
	return 0;
}

/* ---- show, verify ---- */

static int read_passport(const char *path, attest_passport *p, err **e)
{
	buf b = BUF_INIT;
	int r = read_file_at(AT_FDCWD, path, PROTO_PASSPORT_MAX, &b, e);
	/* A file ends with a newline; the envelope is what comes before it. */
	while (r == 0 && b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
		b.len--;
	if (r == 0)
		r = attest_passport_parse((const char *)b.data, b.len, p, e);
	buf_deinit(&b);
	return r < 0 ? err_prefix(e, "%s", path) : 0;
}

static void print_passport(const attest_passport *p)
{
	char from[32], until[32];
	attest_time_str(p->issued_at, from);
	attest_time_str(p->expires_at, until);
	printf("id %s\nissuer %s\nsubject %s\nvalid %s .. %s\n", p->id, p->issuer, p->subject_id,
	       from, until);
	for (size_t i = 0; i < p->n_claims; i++)
		printf("claim %s %s %s\n", p->claims[i].type,
		       proto_assurance_name(p->claims[i].assurance), p->claims[i].provider);
}

static int passport_show(int argc, char **argv, err **e)
{
	if (argc != 2)
		return err_set(e, 0, "usage: aisp passport show FILE");
	attest_passport p;
	if (read_passport(argv[1], &p, e) < 0)
		return -1;
	print_passport(&p);
	printf("signature %s\n", attest_passport_signature_ok(&p) ? "ok" : "INVALID");
	attest_passport_deinit(&p);
	return 0;
}

/* The store's answer for field (NULL: not revoked; caller frees). */
static int redis_hget(redisContext *c, const char *field, char **out, size_t *len, err **e)
{
	const char *argv[] = {"HGET", PROTO_KEY_REVOKED, field};
	redisReply *r = redisCommandArgv(c, 3, argv, NULL);
	int rc = 0;
	*out = NULL;
	if (!r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL))
		rc = err_set(e, 0, "HGET %s: %s", PROTO_KEY_REVOKED,
		             r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
	else if (r->type == REDIS_REPLY_STRING) {
		*out = xmemdup(r->str, r->len + 1);
		*len = r->len;
	}
	freeReplyObject(r);
	return rc;
}

static int verify_revocations(const char *addr, const attest_task_auth *a, attest_revocations *rev,
                              err **e)
{
	char *fields[ATTEST_PARTY__COUNT];
	attest_party party[ATTEST_PARTY__COUNT];
	size_t n = attest_task_auth_fields(a, fields, party);
	redisContext *c = cli_redis_connect(addr, REDIS_TIMEOUT_MS, e);
	int r = c ? 0 : -1;
	for (size_t i = 0; r == 0 && i < n; i++) {
		_cleanup_free_ char *v = NULL;
		size_t len = 0;
		r = redis_hget(c, fields[i], &v, &len, e);
		if (r == 0 && v)
			attest_revocations_set(rev, party[i], fields[i], v, len);
	}
	for (size_t i = 0; i < n; i++)
		free(fields[i]);
	if (c)
		redisFree(c);
	return r;
}

typedef struct verify_args {
	const char *file, *signer, *redis;
	attest_trust_config cfg;
	int64_t now;
} verify_args;

static int verify_parse(verify_args *v, int argc, char **argv, err **e)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *x = i + 1 < argc ? argv[i + 1] : NULL;
		char id[ATTEST_DIGEST_LEN];
		int r = 0;
		if (a[0] != '-' && !v->file) {
			v->file = a;
			continue;
		}
		if (!x)
			return err_set(e, 0, "unknown or incomplete option \"%s\"", a);
		i++;
		if (!strcmp(a, "--issuer"))
			r = cli_key_id(x, id, e) < 0
			        ? -1
			        : attest_trust_config_set(&v->cfg, "issuers", id, e);
		else if (!strcmp(a, "--signer"))
			v->signer = x;
		else if (!strcmp(a, "--redis"))
			v->redis = x;
		else if (!strcmp(a, "--clock-skew"))
			r = attest_trust_config_set(&v->cfg, "clock_skew_s", x, e);
		else if (!strcmp(a, "--now"))
			r = parse_i64(x, 0, INT64_MAX / 4, &v->now) < 0
			        ? err_set(e, 0, "--now: seconds since the epoch")
			        : 0;
		else
			return err_set(e, 0, "unknown option \"%s\"", a);
		if (r < 0)
			return -1;
	}
	return v->file ? 0 : err_set(e, 0, "which passport? (aisp passport verify FILE)");
}

/* The node's decision for a task at L0 signed by the passport's subject (or --signer). */
static int passport_verify(int argc, char **argv, err **e)
{
	verify_args v = {.now = (int64_t)time(NULL)};
	attest_trust_config_init(&v.cfg);
	attest_task_auth a = {.is_signed = true, .has_passport = true};
	attest_revocations rev = {0};
	int rc = verify_parse(&v, argc, argv, e);
	if (rc == 0)
		rc = read_passport(v.file, &a.passport, e);
	if (rc == 0) {
		uint8_t raw[ATTEST_RAW_KEY_LEN];
		memcpy(a.signer_id, a.passport.subject_id, ATTEST_DIGEST_LEN);
		if (v.signer)
			rc = cli_public_key(v.signer, raw, a.signer_id, e);
		a.passport_signature_ok = attest_passport_signature_ok(&a.passport);
	}
	if (rc == 0 && v.redis)
		rc = verify_revocations(v.redis, &a, &rev, e);
	if (rc == 0) {
		print_passport(&a.passport);
		proto_trust_req l0 = {.level = PROTO_TRUST_L0};
		const proto_trust_req *reqs[] = {&l0};
		attest_trust_decision d;
		if (attest_trust_decide(&v.cfg, reqs, 1, &a, &rev, v.now, &d) == 0)
			printf("valid%s\n",
			       v.redis ? "" : " (revocations not checked: no --redis)");
		else
			rc = err_set(e, 0, "%s", d.message);
		attest_trust_decision_deinit(&d);
	}
	attest_revocations_deinit(&rev);
	attest_task_auth_deinit(&a);
	attest_trust_config_deinit(&v.cfg);
	return rc;
}

/* ---- the revocation store ---- */

typedef struct revoke_args {
	const char *passport, *key, *reason, *redis;
} revoke_args;

static int revoke_parse(revoke_args *r, int argc, char **argv, err **e)
{
	for (int i = 1; i < argc; i += 2) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		const char **dst = !strcmp(a, "--passport") ? &r->passport
		                   : !strcmp(a, "--key")    ? &r->key
		                   : !strcmp(a, "--reason") ? &r->reason
		                   : !strcmp(a, "--redis")  ? &r->redis
		                                            : NULL;
		if (!dst || !v)
			return err_set(e, 0, "unknown or incomplete option \"%s\"", a);
		*dst = v;
	}
	if (!r->passport == !r->key)
		return err_set(e, 0, "give exactly one of --passport ID and --key KEY");
	if (r->passport && !proto_id_valid(r->passport))
		return err_set(e, 0, "--passport: a passport id matches [A-Za-z0-9._-]{1,64}");
	if (r->reason && strlen(r->reason) > PROTO_REVOCATION_REASON_MAX)
		return err_set(e, 0, "--reason: at most %d bytes", PROTO_REVOCATION_REASON_MAX);
	return 0;
}

/* HSET (revoke) or HDEL (unrevoke) of one field of the store. */
static int passport_revoke(int argc, char **argv, bool revoke, err **e)
{
	revoke_args r = {0};
	char id[ATTEST_DIGEST_LEN];
	if (revoke_parse(&r, argc, argv, e) < 0 || (r.key && cli_key_id(r.key, id, e) < 0))
		return -1;
	_cleanup_free_ char *field = proto_revocation_field(r.key != NULL, r.key ? id : r.passport);
	buf rec = BUF_INIT;
	proto_revocation_to_json(r.reason ? r.reason : "revoked with aisp passport revoke",
	                         now_wall_ms(), &rec);
	redisContext *c = cli_redis_connect(r.redis, REDIS_TIMEOUT_MS, e);
	int rc = c ? 0 : -1;
	const char *av[] = {revoke ? "HSET" : "HDEL", PROTO_KEY_REVOKED, field, buf_str(&rec)};
	size_t lens[] = {4, strlen(PROTO_KEY_REVOKED), strlen(field), rec.len};
	redisReply *rep = c ? redisCommandArgv(c, revoke ? 4 : 3, av, lens) : NULL;
	if (c && (!rep || rep->type != REDIS_REPLY_INTEGER))
		rc = err_set(e, 0, "%s %s: %s", av[0], PROTO_KEY_REVOKED,
		             rep && rep->type == REDIS_REPLY_ERROR ? rep->str : c->errstr);
	else if (c)
		printf("%s %s%s\n", revoke ? "revoked" : "unrevoked", field,
		       rep->integer ? ""
		       : revoke     ? " (it was revoked already: record replaced)"
		                    : " (it was not revoked)");
	freeReplyObject(rep);
	if (c)
		redisFree(c);
	buf_deinit(&rec);
	return rc;
}

static int passport_revoked(int argc, char **argv, err **e)
{
	const char *addr = argc == 3 && !strcmp(argv[1], "--redis") ? argv[2] : NULL;
	if (argc != 1 && !addr)
		return err_set(e, 0, "usage: aisp passport revoked [--redis ADDR]");
	redisContext *c = cli_redis_connect(addr, REDIS_TIMEOUT_MS, e);
	if (!c)
		return -1;
	redisReply *r = redisCommand(c, "HGETALL %s", PROTO_KEY_REVOKED);
	int rc = 0;
	if (!r || r->type != REDIS_REPLY_ARRAY)
		rc = err_set(e, 0, "HGETALL %s: %s", PROTO_KEY_REVOKED,
		             r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
	for (size_t i = 0; rc == 0 && i + 1 < r->elements; i += 2) {
		_cleanup_free_ char *d = attest_revocation_describe(
		    r->element[i]->str, r->element[i + 1]->str, r->element[i + 1]->len);
		printf("%s\n", d);
	}
	freeReplyObject(r);
	redisFree(c);
	return rc;
}

static int passport_key_id(int argc, char **argv, err **e)
{
	uint8_t raw[ATTEST_RAW_KEY_LEN];
	char id[ATTEST_DIGEST_LEN];
	if (argc != 2)
		return err_set(e, 0, "usage: aisp passport key-id KEY");
	if (cli_public_key(argv[1], raw, id, e) < 0)
		return -1;
	_cleanup_free_ char *b64 = proto_b64_encode(raw, sizeof(raw));
	printf("%s\n%s\n", id, b64);
	return 0;
}

int cmd_passport(int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";
	_cleanup_err_ err *e = NULL;
	int rc;
	argc--;
	argv++;
	if (!strcmp(sub, "issue"))
		rc = passport_issue(argc, argv, &e);
	else if (!strcmp(sub, "show"))
		rc = passport_show(argc, argv, &e);
	else if (!strcmp(sub, "verify"))
		rc = passport_verify(argc, argv, &e);
	else if (!strcmp(sub, "revoke") || !strcmp(sub, "unrevoke"))
		rc = passport_revoke(argc, argv, !strcmp(sub, "revoke"), &e);
	else if (!strcmp(sub, "revoked"))
		rc = passport_revoked(argc, argv, &e);
	else if (!strcmp(sub, "key-id"))
		rc = passport_key_id(argc, argv, &e);
	else {
		bool help = !strcmp(sub, "--help") || !strcmp(sub, "-h");
		passport_usage(help ? stdout : stderr);
		return help ? 0 : 2;
	}
	if (rc < 0)
		fprintf(stderr, "aisp passport %s: %s\n", sub, err_msg(e));
	return rc < 0 ? 1 : 0;
}
