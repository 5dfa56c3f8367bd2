/* Unit tests for the node's secret store (daemon/secrets.c): its [secrets] keys, the rules on
 * files and directories (modes, owners, links, values), lookups (declared only, per skill or
 * granted node-wide, missing named), redaction (the value and its common encodings, merged
 * matches, a value cut at a cap, and what it cannot catch), and the keyed digest of a value
 * for the attestation (attest/secret.c). */
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
#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "daemon/secrets.h"
#include "proto/proto.h"

/* Names as the manifest holds them (char *), from literals. */
#define S(x) ((char *)(x))

/* ---- configuration ---- */

static void expect_set_error(const char *key, const char *value, const char *want)
{
	secrets_config c;
	secrets_config_defaults(&c);
	err *e = NULL;
	assert_int_equal(secrets_config_set(&c, key, value, &e), -1);
	assert_string_equal(err_msg(e), want);
	err_free(e);
	secrets_config_deinit(&c);
}

static void test_config(void **state)
{
	secrets_config c;
	secrets_config_defaults(&c);
	assert_string_equal(c.dir, "/etc/aisp/secrets");
	assert_false(secrets_run_code_allowed(&c, "salesforce"));
	err *e = NULL;
	assert_int_equal(secrets_config_set(&c, "dir", "/srv/secrets", &e), 0);
	assert_int_equal(
	    secrets_config_set(&c, "grant.SALESFORCE_ORG_ID", "salesforce, reports", &e), 0);
	assert_int_equal(secrets_config_set(&c, "run_code_skills", "salesforce", &e), 0);
	assert_string_equal(c.dir, "/srv/secrets");
	assert_int_equal(c.n_grants, 1);
	assert_int_equal(c.grants[0].n_skills, 2);
	assert_string_equal(c.grants[0].skills[1], "reports");
	assert_true(secrets_run_code_allowed(&c, "salesforce"));
	assert_false(secrets_run_code_allowed(&c, "reports"));
	assert_int_equal(secrets_config_set(&c, "grant.SALESFORCE_ORG_ID", "x", &e), -1);
	assert_string_equal(err_msg(e), "grant.SALESFORCE_ORG_ID: set twice");
	err_free(e);
	secrets_config_deinit(&c);

	expect_set_error("dir", "relative/dir",
	                 "dir: expected an absolute path, not \"relative/dir\"");
	expect_set_error("grant.PATH", "a",
	                 "grant.PATH: \"PATH\" is not a secret name (an "
	                 "environment variable name a skill may receive)");
	expect_set_error("grant.1X", "a",
	                 "grant.1X: \"1X\" is not a secret name (an environment "
	                 "variable name a skill may receive)");
	expect_set_error("grant.KEY", "Sales", "grant.KEY: \"Sales\" is not a skill name");
	expect_set_error("grant.KEY", " , ", "grant.KEY: expected one or more skill names");
	expect_set_error("run_code_skills", "ok ../x",
	                 "run_code_skills: \"../x\" is not a skill name");
	expect_set_error("values", "x",
	                 "unknown key values (keys: dir, grant.NAME, run_code_skills)");
}

/* ---- the store ---- */

typedef struct fixture {
	char *dir;
	secrets_config c;
	secrets *s;
} fixture;

static void put(const char *dir, const char *rel, const char *text, size_t len, mode_t mode)
{
	_cleanup_free_ char *p = xasprintf("%s/%s", dir, rel);
	unlink(p);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, text, len), 0);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void mkdir_mode(const char *dir, const char *rel, mode_t mode)
{
	_cleanup_free_ char *p = xasprintf("%s/%s", dir, rel);
	assert_int_equal(mkdir(p, mode), 0);
	assert_int_equal(chmod(p, mode), 0);
}

static int setup(void **state)
{
	fixture *f = xzalloc(sizeof(*f));
	f->dir = xstrdup("/tmp/test-secrets.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	mkdir_mode(f->dir, "skills", 0700);
	mkdir_mode(f->dir, "skills/salesforce", 0700);
	mkdir_mode(f->dir, "node", 0700);
	put(f->dir, "skills/salesforce/SALESFORCE_API_KEY", "sk-live-0123456789\n", 19, 0600);
	put(f->dir, "node/SALESFORCE_ORG_ID", "00D000000000001\r\n", 17, 0400);
	put(f->dir, "node/SHARED_TOKEN", "shared-token-value", 18, 0600);
	secrets_config_defaults(&f->c);
	err *e = NULL;
	assert_int_equal(secrets_config_set(&f->c, "dir", f->dir, &e), 0);
	assert_int_equal(secrets_config_set(&f->c, "grant.SALESFORCE_ORG_ID", "salesforce", &e), 0);
	assert_int_equal(secrets_open(&f->s, &f->c, &e), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	secrets_free(f->s);
	secrets_config_deinit(&f->c);
	assert_int_equal(rm_rf_at(AT_FDCWD, f->dir, NULL), 0);
	free(f->dir);
	free(f);
	return 0;
}

static void test_lookup(void **state)
{
	fixture *f = *state;
	char *names[] = {S("SALESFORCE_ORG_ID"), S("SALESFORCE_API_KEY")};
	secret_value *v;
	err *e = NULL;
	assert_int_equal(secrets_lookup(f->s, "salesforce", names, 2, &v, &e), 0);
	assert_string_equal(v[0].name, "SALESFORCE_ORG_ID"); /* granted node-wide, CR LF cut */
	assert_string_equal((char *)v[0].value, "00D000000000001");
	assert_int_equal(v[0].len, 15);
	assert_string_equal((char *)v[1].value, "sk-live-0123456789"); /* the skill's own */
	secrets_values_free(v, 2);
	assert_int_equal(secrets_lookup(f->s, "salesforce", names, 0, &v, &e), 0);
	assert_null(v);

	/* a skill's own file wins over a node-wide one */
	put(f->dir, "node/SALESFORCE_API_KEY", "node-wide-value-1", 17, 0600);
	assert_int_equal(secrets_config_set(&f->c, "grant.SALESFORCE_API_KEY", "salesforce", &e),
	                 0);
	assert_int_equal(secrets_lookup(f->s, "salesforce", names + 1, 1, &v, &e), 0);
	assert_string_equal((char *)v[0].value, "sk-live-0123456789");
	secrets_values_free(v, 1);
}

/* A lookup of up to two names for skill that must fail with want. */
static void expect_lookup_error(fixture *f, const char *skill, const char *a, const char *b,
                                const char *want)
{
	char *names[] = {S(a), S(b)};
	secret_value *v;
	err *e = NULL;
	assert_int_equal(secrets_lookup(f->s, skill, names, b ? 2 : 1, &v, &e), -1);
	assert_string_equal(err_msg(e), want);
	assert_null(v);
	err_free(e);
}

/* A skill receives only what it declares and what it was granted: declaring another skill's
 * secret name, or a node-wide secret without a grant, gets nothing. */
static void test_lookup_declared_only(void **state)
{
	fixture *f = *state;
	expect_lookup_error(f, "other", "SALESFORCE_API_KEY", NULL,
	                    "skill other declares the secret SALESFORCE_API_KEY, which this node "
	                    "does not hold");
	expect_lookup_error(
	    f, "other", "SALESFORCE_ORG_ID", NULL,
	    "skill other declares the secret SALESFORCE_ORG_ID, which this node does "
	    "not hold");
	expect_lookup_error(
	    f, "salesforce", "SHARED_TOKEN", NULL,
	    "skill salesforce declares the secret SHARED_TOKEN, which this node does "
	    "not hold");
	expect_lookup_error(
	    f, "salesforce", "SALESFORCE_API_KEY", "NOPE_TOKEN",
	    "skill salesforce declares the secret NOPE_TOKEN, which this node does not "
	    "hold");
	expect_lookup_error(f, "salesforce", "LD_PRELOAD", NULL,
	                    "skill salesforce declares \"LD_PRELOAD\", which is not a secret name");
	expect_lookup_error(f, "../skills/salesforce", "SALESFORCE_API_KEY", NULL,
	                    "invalid skill name \"../skills/salesforce\"");
}

static void expect_refused(fixture *f, const char *want_suffix)
{
	_cleanup_free_ char *want = xasprintf("secret store %s: %s", f->dir, want_suffix);
	expect_lookup_error(f, "salesforce", "SALESFORCE_API_KEY", NULL, want);
}

static void test_file_rules(void **state)
{
	fixture *f = *state;
	const char *key = "skills/salesforce/SALESFORCE_API_KEY";
	put(f->dir, key, "sk-live-0123456789", 18, 0644);
	expect_refused(f, "skills/salesforce/SALESFORCE_API_KEY: mode 0644 owned by uid 0; secret "
	                  "files must be 0600 or 0400 and owned by uid 0");
	put(f->dir, key, "sk-live-0123456789", 18, 0640);
	expect_refused(f, "skills/salesforce/SALESFORCE_API_KEY: mode 0640 owned by uid 0; secret "
	                  "files must be 0600 or 0400 and owned by uid 0");
	put(f->dir, key, "sk-live-0123456789", 18, 0600);
	_cleanup_free_ char *p = xasprintf("%s/%s", f->dir, key);
	assert_int_equal(chown(p, 1234, 1234), 0);
	expect_refused(f,
	               "skills/salesforce/SALESFORCE_API_KEY: mode 0600 owned by uid 1234; secret "
	               "files must be 0600 or 0400 and owned by uid 0");
	assert_int_equal(unlink(p), 0);
	assert_int_equal(symlink("/etc/shadow", p), 0);
	expect_refused(f, "skills/salesforce/SALESFORCE_API_KEY: a symbolic link");
	assert_int_equal(unlink(p), 0);
	assert_int_equal(mkfifo(p, 0600), 0);
	expect_refused(f, "skills/salesforce/SALESFORCE_API_KEY: not a regular file");
	put(f->dir, key, "short\n", 6, 0600);
	expect_refused(f,
	               "skills/salesforce/SALESFORCE_API_KEY: shorter than 8 bytes (too short to "
	               "redact)");
	put(f->dir, key, "sk-live\0-0123456789", 19, 0600);
	expect_refused(f, "skills/salesforce/SALESFORCE_API_KEY: holds a NUL byte");
	char *big = xmalloc(SECRETS_VALUE_MAX + 1);
	memset(big, 'k', SECRETS_VALUE_MAX + 1);
	put(f->dir, key, big, SECRETS_VALUE_MAX + 1, 0600);
	expect_refused(f, "skills/salesforce/SALESFORCE_API_KEY: longer than 8192 bytes");
	put(f->dir, key, big, SECRETS_VALUE_MAX, 0600); /* exactly the cap */
	char *names[] = {S("SALESFORCE_API_KEY")};
	secret_value *v;
	err *e = NULL;
	assert_int_equal(secrets_lookup(f->s, "salesforce", names, 1, &v, &e), 0);
	assert_int_equal(v[0].len, SECRETS_VALUE_MAX);
	secrets_values_free(v, 1);
	free(big);
}

static void test_dir_rules(void **state)
{
	fixture *f = *state;
	_cleanup_free_ char *sd = xasprintf("%s/skills/salesforce", f->dir);
	assert_int_equal(chmod(sd, 0755), 0);
	expect_refused(f,
	               "skills/salesforce is mode 0755 owned by uid 0; it must be 0700 and owned "
	               "by uid 0");
	assert_int_equal(chmod(sd, 0700), 0);
	_cleanup_free_ char *skills = xasprintf("%s/skills", f->dir);
	assert_int_equal(chmod(skills, 0711), 0);
	expect_refused(f, "skills is mode 0711 owned by uid 0; it must be 0700 and owned by uid 0");
	assert_int_equal(chmod(skills, 0700), 0);

	assert_int_equal(chmod(f->dir, 0750), 0);
	secrets *s;
	err *e = NULL;
	assert_int_equal(secrets_open(&s, &f->c, &e), -1);
	_cleanup_free_ char *want = xasprintf("secret store %s: . is mode 0750 owned by uid 0; it "
	                                      "must be 0700 and owned by uid 0",
	                                      f->dir);
	assert_string_equal(err_msg(e), want);
	assert_int_equal(chmod(f->dir, 0700), 0);
	_cleanup_free_ char *link = xasprintf("%s.link", f->dir);
	assert_int_equal(symlink(f->dir, link), 0);
	secrets_config c;
	secrets_config_defaults(&c);
	assert_int_equal(secrets_config_set(&c, "dir", link, &e), 0);
	assert_int_equal(secrets_open(&s, &c, &e), -1);
	_cleanup_free_ char *lmsg = xasprintf("secret store %s: a symbolic link (it must be the "
	                                      "directory itself)",
	                                      link);
	assert_string_equal(err_msg(e), lmsg);
	assert_int_equal(unlink(link), 0);
	secrets_config_deinit(&c);
	err_free(e);
}

/* ---- redaction ---- */

static secrets_redactor *redactor(const char *a, const char *b)
{
	secret_value v[2] = {{S("A"), (uint8_t *)a, strlen(a)},
	                     {S("B"), (uint8_t *)b, b ? strlen(b) : 0}};
	return secrets_redactor_new(v, b ? 2 : 1);
}

static char *redacted(const secrets_redactor *r, const char *text, bool truncated, size_t *masks)
{
	buf b = BUF_INIT;
	buf_append_str(&b, text);
	size_t n = secrets_redact(r, &b, truncated);
	if (masks)
		*masks = n;
	return buf_steal(&b, NULL);
}

static void expect_redacted(const secrets_redactor *r, const char *text, const char *want)
{
	_cleanup_free_ char *got = redacted(r, text, false, NULL);
	assert_string_equal(got, want);
}

static void test_redact_values(void **state)
{
	secrets_redactor *r = redactor("sk-live-0123456789", "0123456789-abc");
	size_t masks;
	_cleanup_free_ char *got =
	    redacted(r, "key=sk-live-0123456789 again sk-live-0123456789.", false, &masks);
	assert_string_equal(got, "key=*** again ***.");
	assert_int_equal(masks, 2);
	/* overlapping values (B starts inside A) and adjacent repeats become one mask */
	expect_redacted(r, "[sk-live-0123456789-abc]", "[***]");
	expect_redacted(r, "sk-live-0123456789sk-live-0123456789", "***");
	expect_redacted(r, "nothing secret here", "nothing secret here");
	expect_redacted(r, "", "");
	expect_redacted(r, "sk-live-012345678", "sk-live-012345678"); /* a part is not a match */
	secrets_redactor_free(r);
	secrets_redactor *none = secrets_redactor_new(NULL, 0);
	expect_redacted(none, "sk-live-0123456789", "sk-live-0123456789");
	secrets_redactor_free(none);
	/* a value that holds the mask: masking must not spell it again */
	secrets_redactor *star = redactor("***abcde", NULL);
	expect_redacted(star, "***abcdeabcde!", "***!");
	secrets_redactor_free(star);
	secrets_redactor *tiny = redactor("abc", NULL); /* never from a lookup: ignored */
	expect_redacted(tiny, "abcabc", "abcabc");
	secrets_redactor_free(tiny);
}

static void test_redact_encodings(void **state)
{
	const char *secret = "sk-live-0123456789";
	secrets_redactor *r = redactor(secret, NULL);
	expect_redacted(r, "hex 736b2d6c6976652d30313233343536373839 .",
	                "hex *** ."); /* secret.encode().hex() */
	expect_redacted(r, "HEX 736B2D6C6976652D30313233343536373839", "HEX ***");
	expect_redacted(r, "b64 c2stbGl2ZS0wMTIzNDU2Nzg5 .", "b64 *** .");
	/* inside a longer base64 text, at each alignment: only the characters that depend on the
	 * value are known in advance, and they are masked */
	for (size_t k = 0; k < 3; k++) {
		buf plain = BUF_INIT;
		buf_append(&plain, "xyz", k);
		buf_append_str(&plain, secret);
		buf_append_str(&plain, "-and-a-tail");
		_cleanup_free_ char *enc = proto_b64_encode(plain.data, plain.len);
		_cleanup_free_ char *got = redacted(r, enc, false, NULL);
		assert_non_null(strstr(got, "***"));
		assert_true(strlen(got) < strlen(enc) - 16);
		for (char *url = enc; *url; url++) /* the URL-safe alphabet too */
			*url = *url == '+' ? '-' : *url == '/' ? '_' : *url;
		_cleanup_free_ char *got_url = redacted(r, enc, false, NULL);
		assert_non_null(strstr(got_url, "***"));
		buf_deinit(&plain);
	}
	secrets_redactor_free(r);

	/* JSON string escapes, as Python (ASCII) and JavaScript (UTF-8) write them */
	secrets_redactor *j = redactor("pa\"ss\\w\xc3\xb6rd\n\xf0\x9f\x98\x80", NULL);
	expect_redacted(j, "{\"p\": \"pa\\\"ss\\\\w\\u00f6rd\\n\\ud83d\\ude00\"}",
	                "{\"p\": \"***\"}");
	expect_redacted(j, "{\"p\":\"pa\\\"ss\\\\w\xc3\xb6rd\\n\xf0\x9f\x98\x80\"}",
	                "{\"p\":\"***\"}");
	secrets_redactor_free(j);
}

/* A value cut at an output cap: its start is masked only in a truncated buffer. */
static void test_redact_truncated(void **state)
{
	secrets_redactor *r = redactor("sk-live-0123456789", NULL);
	_cleanup_free_ char *cut = redacted(r, "padding... sk-live-01234", true, NULL);
	assert_string_equal(cut, "padding... ***");
	_cleanup_free_ char *whole = redacted(r, "padding... sk-live-01234", false, NULL);
	assert_string_equal(whole, "padding... sk-live-01234");
	_cleanup_free_ char *s = secrets_redact_str(r, "x sk-live-0123456789 y");
	assert_string_equal(s, "x *** y");
	secrets_redactor_free(r);
}

/* What redaction does not catch (proto/SKILLS.md): these pass unchanged, which is why a secret
 * goes only to the skill that declares it. */
static void test_redact_limits(void **state)
{
	secrets_redactor *r = redactor("sk-live-0123456789", NULL);
	expect_redacted(r, "9876543210-evil-ks", "9876543210-evil-ks");           /* reversed */
	expect_redacted(r, "s k - l i v e - 0 1 2 3", "s k - l i v e - 0 1 2 3"); /* spread out */
	expect_redacted(r, "fx-yvir-0123456789", "fx-yvir-0123456789");           /* rot13 */
	expect_redacted(r, "sk%2Dlive%2D0123456789", "sk%2Dlive%2D0123456789");   /* URL-encoded */
	secrets_redactor_free(r);
}

/* ---- the keyed digest (attest/secret.c) ---- */

static void test_secret_digest(void **state)
{
	uint8_t key[ATTEST_SECRET_KEY_LEN];
	for (int i = 0; i < ATTEST_SECRET_KEY_LEN; i++)
		key[i] = (uint8_t)i;
	char d[ATTEST_SECRET_DIGEST_LEN], d2[ATTEST_SECRET_DIGEST_LEN];
	err *e = NULL;
	const uint8_t *v = (const uint8_t *)"sk-test-0123456789";
	assert_int_equal(attest_secret_digest(key, "SALESFORCE_API_KEY", v, 18, d, &e), 0);
	/* printf 'aisp-secret-v1\0SALESFORCE_API_KEY\0sk-test-0123456789' |
	 *   openssl dgst -sha256 -mac HMAC -macopt hexkey:000102...1f */
	assert_string_equal(d,
	                    "hmac-sha256:514c6d89a0631e9f5830f3e358924087f83808a293db69ced9b73b83"
	                    "7ec542da");
	assert_int_equal(attest_secret_digest(key, "SALESFORCE_ORG_ID", v, 18, d2, &e), 0);
	assert_string_not_equal(d, d2); /* the name is bound */
	assert_int_equal(attest_secret_digest(key, "SALESFORCE_API_KEY", v, 17, d2, &e), 0);
	assert_string_not_equal(d, d2);
	key[0] ^= 1;
	assert_int_equal(attest_secret_digest(key, "SALESFORCE_API_KEY", v, 18, d2, &e), 0);
	assert_string_not_equal(d, d2); /* another node's key */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config),
	    cmocka_unit_test_setup_teardown(test_lookup, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lookup_declared_only, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_rules, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dir_rules, setup, teardown),
	    cmocka_unit_test(test_redact_values),
	    cmocka_unit_test(test_redact_encodings),
	    cmocka_unit_test(test_redact_truncated),
	    cmocka_unit_test(test_redact_limits),
	    cmocka_unit_test(test_secret_digest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
