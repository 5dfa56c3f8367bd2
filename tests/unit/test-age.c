/* Unit tests for the age implementation in attest/: every official test vector
 * (attest/testdata/age/, C2SP CCTV) that uses only X25519 identities gives exactly its expected
 * result and releases exactly the plaintext its payload hash covers; round trips at the chunk
 * boundaries, armored and not, to several recipients; tampering, truncation and limits failing
 * with their precise messages; bech32 checksums; identity files and their modes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <openssl/evp.h>

#include "attest/age-internal.h"
#include "attest/attest.h"
#include "common/buf.h"
#include "common/cleanup.h"
#include "common/err.h"
#include "common/util.h"
#include "common/xalloc.h"

/* ---- helpers ---- */

static char *vectors_dir(void)
{
	const char *root = getenv("AISP_SOURCE_ROOT");
	return xasprintf("%s/attest/testdata/age", root ? root : ".");
}

static void sha256_hex(const void *p, size_t n, char out[65])
{
	uint8_t md[32];
	unsigned len = 0;
	EVP_Digest(p, n, md, &len, EVP_sha256(), NULL);
	hex_encode(md, sizeof(md), out);
}

static attest_age_identity *identity(const char *text)
{
	attest_age_identity *id = NULL;
	_cleanup_err_ err *e = NULL;
	if (attest_age_identity_parse(&id, text, &e) < 0)
		fail_msg("%s: %s", text, err_msg(e));
	return id;
}

/* Decrypts with one identity; returns the failure class, the error message in msg (when not
 * NULL, caller frees) and the plaintext in *out (caller frees). */
static attest_age_failure open_with(const uint8_t *in, size_t len, attest_age_identity *const *ids,
                                    size_t n_ids, const attest_age_decrypt_opts *o, buf *out,
                                    char **msg)
{
	uint8_t *p = NULL;
	size_t n = 0;
	attest_age_failure why = ATTEST_AGE_OK;
	err *e = NULL;
	int r = attest_age_decrypt(in, len, ids, n_ids, o, &p, &n, &why, &e);
	assert_int_equal(r < 0, why != ATTEST_AGE_OK);
	assert_int_equal(r < 0, e != NULL);
	if (e)
		assert_true(strncmp(err_msg(e), "age: ", 5) == 0);
	if (r < 0 && !(o && o->release_prefix))
		assert_null(p);
	if (out && p)
		buf_append(out, p, n);
	if (msg)
		*msg = e ? xstrdup(err_msg(e)) : NULL;
	free(p);
	err_free(e);
	return why;
}

/* ---- the official vectors ---- */

struct vector {
	const char *name;
	char expect[32];
	char payload[65]; /* hex SHA-256, "" when none */
	attest_age_identity *ids[8];
	size_t n_ids;
	bool armored, compressed, passphrase, other_identity;
	buf file; /* the age file, decompressed */
};

static void inflate_all(buf *b)
{
	z_stream z = {0};
	buf out = BUF_INIT;
	assert_int_equal(inflateInit(&z), Z_OK);
	z.next_in = b->data;
	z.avail_in = (uInt)b->len;
	int r;
	do {
		buf_reserve(&out, 1u << 20);
		z.next_out = out.data + out.len;
		z.avail_out = (uInt)(out.cap - out.len - 1);
		r = inflate(&z, Z_NO_FLUSH);
		out.len = out.cap - 1 - z.avail_out;
		assert_true(r == Z_OK || r == Z_STREAM_END);
		assert_true(out.len < (64u << 20));
	} while (r != Z_STREAM_END);
	inflateEnd(&z);
	buf_deinit(b);
	*b = out;
}

static void vector_key(struct vector *v, const char *key, const char *value)
{
	if (!strcmp(key, "expect")) {
		snprintf(v->expect, sizeof(v->expect), "%s", value);
	} else if (!strcmp(key, "payload")) {
		snprintf(v->payload, sizeof(v->payload), "%s", value);
	} else if (!strcmp(key, "identity")) {
		if (strncmp(value, "AGE-SECRET-KEY-1", 16) != 0) {
			v->other_identity = true;
			return;
		}
		assert_true(v->n_ids < ARRAY_SIZE(v->ids));
		v->ids[v->n_ids++] = identity(value);
	} else if (!strcmp(key, "passphrase")) {
		v->passphrase = true;
	} else if (!strcmp(key, "armored")) {
		v->armored = !strcmp(value, "yes");
	} else if (!strcmp(key, "compressed")) {
		assert_string_equal(value, "zlib");
		v->compressed = true;
	} else if (strcmp(key, "file key") && strcmp(key, "comment")) {
		fail_msg("unknown vector header key \"%s\"", key);
	}
}

/* The textual header (key: value lines), an empty line, then the file. */
static void vector_load(const char *dir, const char *name, struct vector *v)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
	_cleanup_err_ err *e = NULL;
	buf raw = BUF_INIT;
	*v = (struct vector){.name = name};
	if (read_file_at(AT_FDCWD, path, 4u << 20, &raw, &e) < 0)
		fail_msg("%s", err_msg(e));
	size_t off = 0;
	for (;;) {
		char *lf = memchr(raw.data + off, '\n', raw.len - off);
		assert_non_null(lf);
		*lf = '\0';
		char *line = (char *)raw.data + off, *sep = strstr(line, ": ");
		off = (size_t)((uint8_t *)lf - raw.data) + 1;
		if (!*line)
			break;
		assert_non_null(sep);
		*sep = '\0';
		vector_key(v, line, sep + 2);
	}
	buf_append(&v->file, raw.data + off, raw.len - off);
	buf_deinit(&raw);
	if (v->compressed)
		inflate_all(&v->file);
}

static void vector_free(struct vector *v)
{
	for (size_t i = 0; i < v->n_ids; i++)
		attest_age_identity_free(v->ids[i]);
	buf_deinit(&v->file);
}

/* Runs one vector both ways (streamed prefix and all-or-nothing). NULL when it behaved as
 * expected, else what went wrong (caller frees). */
static char *vector_run(const struct vector *v)
{
	attest_age_decrypt_opts o = {.armor = v->armored ? ATTEST_AGE_ARMOR_REQUIRE
	                                                 : ATTEST_AGE_ARMOR_AUTO,
	                             .release_prefix = true};
	buf out = BUF_INIT, all = BUF_INIT;
	_cleanup_free_ char *msg = NULL;
	attest_age_failure why =
	    open_with(v->file.data, v->file.len, v->ids, v->n_ids, &o, &out, &msg);
	char got[65] = "", *bad = NULL;
	sha256_hex(out.data ? out.data : (const uint8_t *)"", out.len, got);
	if (getenv("AISP_AGE_VERBOSE"))
		print_message("# %-36s %-15s %s\n", v->name, attest_age_failure_name(why),
		              msg ? msg : "");
	o.release_prefix = false;
	attest_age_failure why2 =
	    open_with(v->file.data, v->file.len, v->ids, v->n_ids, &o, &all, NULL);
	if (strcmp(attest_age_failure_name(why), v->expect) != 0)
		bad = xasprintf("expected %s, got %s (%s)", v->expect, attest_age_failure_name(why),
		                msg ? msg : "no error");
	else if (v->payload[0] && strcmp(got, v->payload) != 0)
		bad = xasprintf("released %zu bytes whose SHA-256 is not the payload hash (%s)",
		                out.len, msg ? msg : "no error");
	else if (!v->payload[0] && out.len)
		bad = xasprintf("released %zu bytes but the vector has no payload hash", out.len);
	else if (why2 != why ||
	         (why == ATTEST_AGE_OK
	              ? all.len != out.len || (out.len && memcmp(all.data, out.data, out.len))
	              : all.len != 0))
		bad = xasprintf("all-or-nothing decryption differs (%s)",
		                attest_age_failure_name(why2));
	buf_deinit(&out);
	buf_deinit(&all);
	return bad;
}

static bool vector_file(const char *name)
{
	return name[0] != '.' && strcmp(name, "SOURCE.md") && strncmp(name, "README", 6) &&
	       strncmp(name, "LICENSE", 7);
}

static void test_vectors(void **state)
{
	_cleanup_free_ char *dir = vectors_dir();
	DIR *d = opendir(dir);
	assert_non_null(d);
	size_t ran = 0, skip_scrypt = 0, skip_other = 0, failed = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!vector_file(de->d_name))
			continue;
		struct vector v;
		vector_load(dir, de->d_name, &v);
		/* Only vectors whose identities are all X25519 ones: scrypt passphrases and
		 * hybrid (post-quantum) identities are not implemented. */
		if (v.passphrase || v.other_identity) {
			v.passphrase ? skip_scrypt++ : skip_other++;
			vector_free(&v);
			continue;
		}
		if (v.n_ids == 0) /* "empty" files: any identity must fail on the header */
			assert_int_equal(attest_age_identity_generate(&v.ids[v.n_ids++], NULL), 0);
		ran++;
		_cleanup_free_ char *bad = vector_run(&v);
		if (bad) {
			failed++;
			print_message("# vector %s: %s\n", de->d_name, bad);
		}
		vector_free(&v);
	}
	closedir(d);
	print_message("# age vectors: %zu ran, %zu skipped (%zu scrypt passphrase, %zu hybrid "
	              "identity), %zu failed\n",
	              ran, skip_scrypt + skip_other, skip_scrypt, skip_other, failed);
	assert_int_equal(failed, 0);
	/* The copy in attest/testdata/age holds 143 vectors: 26 use a passphrase, 19 a hybrid
	 * identity (hybrid_x25519_arg has an X25519 one too). */
	assert_int_equal(ran, 98);
	assert_int_equal(skip_scrypt, 26);
	assert_int_equal(skip_other, 19);
}

/* ---- bech32 ---- */

static void test_bech32(void **state)
{
	/* BIP 173's valid strings whose data are whole bytes, and its invalid ones. */
	static const char *const valid[] = {
	    "A12UEL5L",
	    "a12uel5l",
	    "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt"
	    "5tgs",
	    "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
	    "11qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"
	    "c8247j",
	};
	static const char *const invalid[][2] = {
	    {"pzry9x0s0muk", "no separator"},
	    {"1pzry9x0s0muk", "no separator"},
	    {"x1b4n0q5v", "not in the bech32 alphabet"},
	    {"li1dgmt3", "no separator"},
	    {"de1lg7wt\xff", "not printable"},
	    {"A1G7SGD8", "invalid checksum"},
	    {"10a06t8", "no separator"},
	    {"a12UEL5L", "mixed upper and lower case"},
	    {"a12uel5m", "invalid checksum"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(valid); i++) {
		char *hrp = NULL;
		uint8_t *data = NULL;
		size_t n = 0;
		_cleanup_err_ err *e = NULL;
		if (attest_bech32_decode(valid[i], &hrp, &data, &n, &e) < 0)
			fail_msg("%s: %s", valid[i], err_msg(e));
		bool upper = valid[i][0] >= 'A' && valid[i][0] <= 'Z';
		_cleanup_free_ char *again = attest_bech32_encode(hrp, data, n, upper);
		assert_string_equal(again, valid[i]);
		free(hrp);
		free(data);
	}
	for (size_t i = 0; i < ARRAY_SIZE(invalid); i++) {
		char *hrp = NULL;
		uint8_t *data = NULL;
		size_t n = 0;
		_cleanup_err_ err *e = NULL;
		assert_int_equal(attest_bech32_decode(invalid[i][0], &hrp, &data, &n, &e), -1);
		if (!strstr(err_msg(e), invalid[i][1]))
			fail_msg("%s: \"%s\" does not say %s", invalid[i][0], err_msg(e),
			         invalid[i][1]);
	}
	/* Every single-character change of a recipient breaks its checksum. */
	const char *r = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj";
	for (size_t i = 4; i < strlen(r); i++) {
		char mutated[ATTEST_AGE_RECIPIENT_LEN + 1];
		attest_age_recipient rc;
		strcpy(mutated, r);
		mutated[i] = mutated[i] == 'q' ? 'p' : 'q';
		_cleanup_err_ err *e = NULL;
		assert_int_equal(attest_age_recipient_parse(&rc, mutated, &e), -1);
		assert_non_null(strstr(err_msg(e), "invalid checksum"));
	}
}

/* The identity and recipient in the C2SP age text are one key pair (X25519 over OpenSSL). */
static void test_spec_keys(void **state)
{
	const char *sk =
	    "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX";
	const char *pk = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj";
	attest_age_identity *id = identity(sk);
	char text[ATTEST_AGE_IDENTITY_LEN + 1], rtext[ATTEST_AGE_RECIPIENT_LEN + 1];
	attest_age_identity_format(id, text);
	assert_string_equal(text, sk);
	attest_age_recipient r, parsed;
	attest_age_identity_recipient(id, &r);
	attest_age_recipient_format(&r, rtext);
	assert_string_equal(rtext, pk);
	_cleanup_err_ err *e = NULL;
	assert_int_equal(attest_age_recipient_parse(&parsed, pk, &e), 0);
	assert_memory_equal(parsed.key, r.key, sizeof(r.key));
	attest_age_identity_free(id);
}

static void expect_recipient_error(const char *text, const char *want)
{
	attest_age_recipient r;
	_cleanup_err_ err *e = NULL;
	assert_int_equal(attest_age_recipient_parse(&r, text, &e), -1);
	if (!strstr(err_msg(e), want))
		fail_msg("%s: \"%s\" does not say \"%s\"", text, err_msg(e), want);
}

static void expect_identity_error(const char *text, const char *want)
{
	attest_age_identity *id = NULL;
	_cleanup_err_ err *e = NULL;
	assert_int_equal(attest_age_identity_parse(&id, text, &e), -1);
	assert_null(id);
	if (!strstr(err_msg(e), want))
		fail_msg("%s: \"%s\" does not say \"%s\"", text, err_msg(e), want);
}

static void test_key_text_errors(void **state)
{
	expect_recipient_error("AGE1ZVKYG2LQZRAA2LNJVQEJ32NKUU0UES2S82HZRYE869XEEXVN73EQUNUJWJ",
	                       "not an age recipient");
	expect_recipient_error("age1pq1x34nzsvr0rxjsgdn8zgyhfe8j7ceq5r9rdelkjuh3y235jzxshfg",
	                       "post-quantum");
	expect_recipient_error("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG", "SSH recipients");
	expect_recipient_error("age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq", "");
	expect_recipient_error("age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj ",
	                       "character 63 is not printable ASCII");
	expect_recipient_error("age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwb",
	                       "'b' is not in the bech32 alphabet");
	/* The right checksum over 31 bytes: a valid bech32 string of the wrong length. */
	uint8_t key[33] = {1};
	_cleanup_free_ char *s = attest_bech32_encode("age", key, 31, false);
	expect_recipient_error(s, "expected a 32-byte key, got 31 bytes");
	/* An identity must be upper case, and of 32 bytes. */
	_cleanup_free_ char *t = attest_bech32_encode("age-secret-key-", key, 32, false);
	expect_identity_error(t, "not an age identity");
	_cleanup_free_ char *u = attest_bech32_encode("AGE-SECRET-KEY-", key, 33, true);
	expect_identity_error(u, "expected a 32-byte key, got 33 bytes");
	expect_identity_error(
	    "AGE-SECRET-KEY-PQ-1XX76JRALNLXDMEW0CRK45QMCCH4X06SE84UN3VPM33W6HWDX0H3S"
	    "K3ZQFR",
	    "post-quantum");
	expect_identity_error("AGE-PLUGIN-YUBIKEY-1QQQQ", "plugin identities");
	expect_identity_error(
	    "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EG"
	    "AEY",
	    "invalid checksum");
}

/* ---- round trips ---- */

static uint8_t *pattern(size_t n)
{
	uint8_t *p = xmalloc(n + 1);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + (i >> 16));
	return p;
}

static void seal(const void *p, size_t n, attest_age_identity *const *ids, size_t n_ids, bool armor,
                 buf *out)
{
	attest_age_recipient r[8];
	assert_true(n_ids <= ARRAY_SIZE(r));
	for (size_t i = 0; i < n_ids; i++)
		attest_age_identity_recipient(ids[i], &r[i]);
	uint8_t *c = NULL;
	size_t len = 0;
	_cleanup_err_ err *e = NULL;
	if (attest_age_encrypt(p, n, r, n_ids, armor, &c, &len, &e) < 0)
		fail_msg("%s", err_msg(e));
	buf_reset(out);
	buf_append(out, c, len);
	free(c);
}

static void test_roundtrip(void **state)
{
	static const size_t sizes[] = {0,
	                               1,
	                               47,
	                               48,
	                               AGE_CHUNK - 1,
	                               AGE_CHUNK,
	                               AGE_CHUNK + 1,
	                               2 * AGE_CHUNK,
	                               3 * AGE_CHUNK + 5};
	attest_age_identity *ids[3], *stranger = NULL;
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(attest_age_identity_generate(&ids[i], NULL), 0);
	assert_int_equal(attest_age_identity_generate(&stranger, NULL), 0);
	for (size_t s = 0; s < ARRAY_SIZE(sizes); s++)
		for (int armor = 0; armor < 2; armor++) {
			_cleanup_free_ uint8_t *p = pattern(sizes[s]);
			buf c = BUF_INIT, out = BUF_INIT;
			seal(p, sizes[s], ids, s % 2 ? 3 : 1, armor, &c);
			assert_int_equal(age_armor_detect(c.data, c.len), armor);
			size_t want = armor ? 0 : age_stream_len(sizes[s]);
			if (!armor) /* header, then exactly the payload's size */
				assert_true(c.len > want && !memcmp(c.data, AGE_INTRO "\n", 22));
			for (size_t i = 0; i < (s % 2 ? 3u : 1u); i++) {
				buf_reset(&out);
				assert_int_equal(
				    open_with(c.data, c.len, &ids[i], 1, NULL, &out, NULL),
				    ATTEST_AGE_OK);
				assert_int_equal(out.len, sizes[s]);
				if (sizes[s])
					assert_memory_equal(out.data, p, sizes[s]);
			}
			_cleanup_free_ char *msg = NULL;
			assert_int_equal(open_with(c.data, c.len, &stranger, 1, NULL, NULL, &msg),
			                 ATTEST_AGE_FAIL_NO_MATCH);
			if (strncmp(msg, "age: no identity matches any recipient stanza (", 47) !=
			    0)
				fail_msg("%s", msg);
			buf_deinit(&c);
			buf_deinit(&out);
		}
	/* Two files of the same plaintext share nothing (fresh file key, shares and nonce). */
	buf a = BUF_INIT, b = BUF_INIT;
	seal("x", 1, ids, 1, false, &a);
	seal("x", 1, ids, 1, false, &b);
	assert_int_equal(a.len, b.len);
	assert_memory_not_equal(a.data, b.data, a.len);
	buf_deinit(&a);
	buf_deinit(&b);
	for (size_t i = 0; i < 3; i++)
		attest_age_identity_free(ids[i]);
	attest_age_identity_free(stranger);
}

/* The armor has the reference's exact layout: 64 columns, END after a full last line. */
static void test_armor_layout(void **state)
{
	static const size_t sizes[] = {1, 47, 48, 49, 96, 1000};
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		_cleanup_free_ uint8_t *p = pattern(sizes[i]);
		buf arm = BUF_INIT, back = BUF_INIT;
		age_armor_encode(p, sizes[i], &arm);
		const char *s = buf_str(&arm);
		assert_true(!strncmp(s, AGE_ARMOR_BEGIN "\n", strlen(AGE_ARMOR_BEGIN) + 1));
		size_t end = strlen(AGE_ARMOR_END) + 1;
		assert_string_equal(s + arm.len - end, AGE_ARMOR_END "\n");
		size_t lines = 0;
		for (const char *l = strchr(s, '\n') + 1; l < s + arm.len - end;) {
			size_t len = strcspn(l, "\n");
			assert_true(len > 0 && len <= 64);
			lines++;
			l += len + 1;
		}
		assert_int_equal(lines, (sizes[i] + 47) / 48);
		_cleanup_err_ err *e = NULL;
		assert_int_equal(age_armor_decode(arm.data, arm.len, &back, &e), 0);
		assert_int_equal(back.len, sizes[i]);
		assert_memory_equal(back.data, p, sizes[i]);
		buf_deinit(&arm);
		buf_deinit(&back);
	}
}

/* ---- failures and their messages ---- */

struct fx {
	attest_age_identity *id;
	buf c; /* a fresh file to the identity */
};

static void fx_seal(struct fx *f, size_t n, bool armor)
{
	_cleanup_free_ uint8_t *p = pattern(n);
	seal(p, n, &f->id, 1, armor, &f->c);
}

static int fx_setup(void **state)
{
	struct fx *f = xzalloc(sizeof(*f));
	assert_int_equal(attest_age_identity_generate(&f->id, NULL), 0);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	attest_age_identity_free(f->id);
	buf_deinit(&f->c);
	free(f);
	return 0;
}

/* Decrypts in[0..len) with the fixture's identity and checks the class and the message. */
static void expect_fail(struct fx *f, const uint8_t *in, size_t len,
                        const attest_age_decrypt_opts *o, attest_age_failure want,
                        const char *msg_part)
{
	_cleanup_free_ char *msg = NULL;
	attest_age_failure got = open_with(in, len, &f->id, 1, o, NULL, &msg);
	if (got != want || !msg || !strstr(msg, msg_part))
		fail_msg("expected %s with \"%s\", got %s: %s", attest_age_failure_name(want),
		         msg_part, attest_age_failure_name(got), msg ? msg : "no error");
}

/* The offset of the payload (just after the header's MAC line). */
static size_t payload_at(const buf *c)
{
	const char *mac = strstr(buf_str(c), "\n--- ");
	assert_non_null(mac);
	return (size_t)(strchr(mac + 1, '\n') + 1 - buf_str(c));
}

static void test_payload_tamper(void **state)
{
	struct fx *f = *state;
	size_t n = 2 * AGE_CHUNK + 100;
	fx_seal(f, n, false);
	size_t start = payload_at(&f->c) + AGE_NONCE_LEN;
	_cleanup_free_ uint8_t *p = pattern(n);
	/* Chunk 3 changed: the streamed prefix is exactly chunks 1 and 2. */
	f->c.data[start + 2 * AGE_ENC_CHUNK + 10] ^= 1;
	attest_age_decrypt_opts o = {.release_prefix = true};
	buf out = BUF_INIT;
	_cleanup_free_ char *msg = NULL;
	assert_int_equal(open_with(f->c.data, f->c.len, &f->id, 1, &o, &out, &msg),
	                 ATTEST_AGE_FAIL_PAYLOAD);
	assert_string_equal(msg, "age: payload: chunk 3 failed authentication");
	assert_int_equal(out.len, 2 * AGE_CHUNK);
	assert_memory_equal(out.data, p, out.len);
	buf_deinit(&out);
	expect_fail(f, f->c.data, f->c.len, NULL, ATTEST_AGE_FAIL_PAYLOAD,
	            "chunk 3 failed authentication");
	f->c.data[start + 2 * AGE_ENC_CHUNK + 10] ^= 1;
	/* Chunk 1 changed. */
	f->c.data[start] ^= 0x80;
	expect_fail(f, f->c.data, f->c.len, NULL, ATTEST_AGE_FAIL_PAYLOAD,
	            "age: payload: chunk 1 failed authentication");
	f->c.data[start] ^= 0x80;
	/* Truncated: the last chunk gone, or cut inside it; the nonce changed. */
	expect_fail(f, f->c.data, start + 2 * AGE_ENC_CHUNK, NULL, ATTEST_AGE_FAIL_PAYLOAD,
	            "age: payload: truncated (no final chunk after chunk 2)");
	expect_fail(f, f->c.data, f->c.len - 1, NULL, ATTEST_AGE_FAIL_PAYLOAD,
	            "age: payload: chunk 3 failed authentication");
	f->c.data[start - 1] ^= 1;
	expect_fail(f, f->c.data, f->c.len, NULL, ATTEST_AGE_FAIL_PAYLOAD,
	            "age: payload: chunk 1 failed authentication");
	expect_fail(f, f->c.data, start - 3, NULL, ATTEST_AGE_FAIL_HEADER,
	            "age: payload: nonce truncated (13 of 16 bytes)");
}

static void test_trailing_data(void **state)
{
	struct fx *f = *state;
	fx_seal(f, 2 * AGE_CHUNK, false); /* the final chunk is a full one */
	buf_append(&f->c, "x", 1);
	expect_fail(f, f->c.data, f->c.len, NULL, ATTEST_AGE_FAIL_PAYLOAD,
	            "age: payload: 1 byte of trailing data after the final chunk 2");
	fx_seal(f, 0, false);
	f->c.len--; /* the empty payload's one chunk cut short */
	expect_fail(f, f->c.data, f->c.len, NULL, ATTEST_AGE_FAIL_PAYLOAD,
	            "age: payload: chunk 1 truncated (15 bytes, less than its tag)");
}

static void test_header_tamper(void **state)
{
	struct fx *f = *state;
	fx_seal(f, 10, false);
	/* A stanza added: the file key still unwraps, the MAC no longer matches. */
	buf t = BUF_INIT;
	buf_append_str(&t, AGE_INTRO "\n-> grease x\n\n");
	buf_append(&t, f->c.data + 22, f->c.len - 22);
	expect_fail(f, t.data, t.len, NULL, ATTEST_AGE_FAIL_HMAC, "age: header MAC mismatch");
	buf_deinit(&t);
	/* The MAC changed (canonically: its first character). */
	size_t mac = (size_t)(strstr(buf_str(&f->c), "\n--- ") - buf_str(&f->c)) + 5;
	f->c.data[mac] = f->c.data[mac] == 'A' ? 'B' : 'A';
	expect_fail(f, f->c.data, f->c.len, NULL, ATTEST_AGE_FAIL_HMAC, "header MAC mismatch");
	/* The wrapped file key changed: nobody can unwrap it. */
	size_t body = (size_t)(strchr(buf_str(&f->c) + 22, '\n') + 1 - buf_str(&f->c));
	f->c.data[body] = f->c.data[body] == 'A' ? 'B' : 'A';
	expect_fail(f, f->c.data, f->c.len, NULL, ATTEST_AGE_FAIL_NO_MATCH,
	            "age: no identity matches any recipient stanza (1 stanza, 1 X25519)");
}

/* Rules stricter than, or not covered by, the vectors. */
#define MAC43 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" /* 32 zero bytes */

static void test_header_grammar(void **state)
{
	struct fx *f = *state;
	static const char *const bad[][2] = {
	    {AGE_INTRO "\n--- " MAC43 "\n", "age: header: no recipient stanzas"},
	    {AGE_INTRO "\n-> X25519 AAAA\r\nAAAA\n--- " MAC43 "\n",
	     "age: header: line 2 ends with CR (CRLF line endings are not allowed)"},
	    {AGE_INTRO "\n-> grease\nAAAA\r\n--- " MAC43 "\n", "age: header: line 3 ends with CR"},
	    {AGE_INTRO "\n-> grease\n"
	               "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
	     "age: header: line 3: stanza body line longer than 64 columns"},
	    {AGE_INTRO "\n-> grease\n", "age: header: line 3: stanza body truncated"},
	    {AGE_INTRO "\n-> grease\n\n", "age: header: line 4: header truncated (no MAC line)"},
	    {AGE_INTRO "\n-> grease\n\n---", "age: header: line 4: header truncated (no MAC line)"},
	    {AGE_INTRO, "age: header: version line not terminated"},
	    {"age-encryption.org/v1\n", "age: header: line 2: header truncated"},
	    {"PK\x03\x04", "age: header: not an age file"},
	    {AGE_INTRO "\n->X25519\n\n--- " MAC43 "\n", "age: header: line 2: expected a stanza"},
	    {AGE_INTRO "\n-> a  b\n\n--- " MAC43 "\n",
	     "age: header: line 2: stanza argument 2 is empty"},
	    {AGE_INTRO "\n-> a\n\n---\n", "age: header: line 4: MAC line has no MAC"},
	    {AGE_INTRO "\n-> scrypt c2FsdHNhbHRzYWx0c2FsdA 10\nAAAA\n-> grease\n\n--- "
	               "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
	     "age: header: line 2: an scrypt stanza must be the only stanza in the header"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		expect_fail(f, (const uint8_t *)bad[i][0], strlen(bad[i][0]), NULL,
		            ATTEST_AGE_FAIL_HEADER, bad[i][1]);
	const char *scrypt = AGE_INTRO "\n-> scrypt c2FsdHNhbHRzYWx0c2FsdA 10\n"
	                               "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n--- "
	                               "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n";
	expect_fail(f, (const uint8_t *)scrypt, strlen(scrypt), NULL, ATTEST_AGE_FAIL_NO_MATCH,
	            "passphrase-encrypted: scrypt is not supported");
}

static void test_limits(void **state)
{
	struct fx *f = *state;
	fx_seal(f, 1000, false);
	attest_age_decrypt_opts o = {.max_size = f->c.len - 1};
	expect_fail(f, f->c.data, f->c.len, &o, ATTEST_AGE_FAIL_LIMIT, "more than the maximum of");
	o.max_size = f->c.len;
	assert_int_equal(open_with(f->c.data, f->c.len, &f->id, 1, &o, NULL, NULL), ATTEST_AGE_OK);
	/* The stanza cap, and the header's size cap (a body that never ends in time). */
	buf h = BUF_INIT;
	buf_append_str(&h, AGE_INTRO "\n");
	for (int i = 0; i <= ATTEST_AGE_STANZA_MAX; i++)
		buf_append_str(&h, "-> grease\n\n");
	buf_append_str(&h, "--- AAAA\n");
	expect_fail(f, h.data, h.len, NULL, ATTEST_AGE_FAIL_HEADER,
	            "age: header: more than 128 recipient stanzas");
	buf_reset(&h);
	buf_append_str(&h, AGE_INTRO "\n-> grease\n");
	while (h.len <= ATTEST_AGE_HEADER_MAX + 100)
		buf_append_str(
		    &h, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n");
	buf_append_str(&h, "\n--- AAAA\n");
	expect_fail(f, h.data, h.len, NULL, ATTEST_AGE_FAIL_HEADER,
	            "age: header: longer than 262144 bytes");
	buf_deinit(&h);
	/* Encryption needs 1 to ATTEST_AGE_STANZA_MAX recipients. */
	attest_age_recipient r[ATTEST_AGE_STANZA_MAX + 1];
	for (size_t i = 0; i < ARRAY_SIZE(r); i++)
		attest_age_identity_recipient(f->id, &r[i]);
	uint8_t *c = NULL;
	size_t len = 0;
	_cleanup_err_ err *e = NULL;
	assert_int_equal(attest_age_encrypt("x", 1, r, 0, false, &c, &len, &e), -1);
	assert_null(c);
	e = err_free(e);
	assert_int_equal(attest_age_encrypt("x", 1, r, ARRAY_SIZE(r), false, &c, &len, &e), -1);
	assert_non_null(strstr(err_msg(e), "129 recipients (1 to 128 allowed)"));
	e = err_free(e);
	assert_int_equal(attest_age_encrypt("x", 1, r, ATTEST_AGE_STANZA_MAX, true, &c, &len, &e),
	                 0);
	assert_int_equal(open_with(c, len, &f->id, 1, NULL, NULL, NULL), ATTEST_AGE_OK);
	free(c);
}

static void test_armor_modes(void **state)
{
	struct fx *f = *state;
	fx_seal(f, 100, true);
	attest_age_decrypt_opts o = {.armor = ATTEST_AGE_ARMOR_REFUSE};
	expect_fail(f, f->c.data, f->c.len, &o, ATTEST_AGE_FAIL_HEADER, "armor is refused");
	/* Whitespace around the armor, CRLF, and no final LF are accepted. */
	buf w = BUF_INIT;
	buf_append_str(&w, "\n  \r\n");
	for (size_t i = 0; i < f->c.len - 1; i++)
		buf_append(&w, f->c.data[i] == '\n' ? "\r\n" : (const char *)&f->c.data[i],
		           f->c.data[i] == '\n' ? 2 : 1);
	assert_int_equal(open_with(w.data, w.len, &f->id, 1, NULL, NULL, NULL), ATTEST_AGE_OK);
	buf_append_str(&w, "\n\t \n");
	assert_int_equal(open_with(w.data, w.len, &f->id, 1, NULL, NULL, NULL), ATTEST_AGE_OK);
	buf_append_str(&w, "x");
	expect_fail(f, w.data, w.len, NULL, ATTEST_AGE_FAIL_ARMOR,
	            "age: armor: data after the END line");
	buf_deinit(&w);
	fx_seal(f, 100, false);
	o.armor = ATTEST_AGE_ARMOR_REQUIRE;
	expect_fail(f, f->c.data, f->c.len, &o, ATTEST_AGE_FAIL_ARMOR,
	            "age: armor: line 1: expected \"-----BEGIN AGE ENCRYPTED FILE-----\"");
}

/* ---- identity files ---- */

static void test_identity_files(void **state)
{
	struct fx *f = *state;
	char text[ATTEST_AGE_IDENTITY_LEN + 1], rcpt[ATTEST_AGE_RECIPIENT_LEN + 1];
	attest_age_identity_format(f->id, text);
	_cleanup_free_ char *doc =
	    xasprintf("# created: 2024-01-01T00:00:00Z\r\n# public key: x\r\n\r\n%s\r\n%s\n", text,
	              "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX");
	attest_age_identity **ids = NULL;
	size_t n = 0;
	_cleanup_err_ err *e = NULL;
	assert_int_equal(attest_age_identities_parse(doc, strlen(doc), &ids, &n, &e), 0);
	assert_int_equal(n, 2);
	fx_seal(f, 5, false);
	assert_int_equal(open_with(f->c.data, f->c.len, ids, n, NULL, NULL, NULL), ATTEST_AGE_OK);
	assert_int_equal(open_with(f->c.data, f->c.len, ids + 1, 1, NULL, NULL, NULL),
	                 ATTEST_AGE_FAIL_NO_MATCH);
	attest_age_identities_free(ids, n);
	static const char *const bad[][2] = {
	    {"# only comments\n\n", "age: identity file: no identity in it"},
	    {"# x\nage1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj\n",
	     "age: identity file: line 2: not an age identity"},
	    {"\n\n AGE-SECRET-KEY-1GFPYYSJZ\n", "age: identity file: line 3: not an age identity"},
	    {"AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX x\n",
	     "age: identity file: line 1: not an age identity (76 characters, expected 74)"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		e = err_free(e);
		assert_int_equal(
		    attest_age_identities_parse(bad[i][0], strlen(bad[i][0]), &ids, &n, &e), -1);
		assert_null(ids);
		if (!strstr(err_msg(e), bad[i][1]))
			fail_msg("\"%s\" does not say \"%s\"", err_msg(e), bad[i][1]);
	}
	(void)rcpt;
}

static char *read_text(const char *path)
{
	buf b = BUF_INIT;
	_cleanup_err_ err *e = NULL;
	if (read_file_at(AT_FDCWD, path, 1u << 16, &b, &e) < 0)
		fail_msg("%s", err_msg(e));
	return buf_steal(&b, NULL);
}

static void test_write_pair(void **state)
{
	char dir[] = "/tmp/test-age.XXXXXX";
	assert_non_null(mkdtemp(dir));
	attest_age_identity *id = NULL, *back = NULL;
	assert_int_equal(attest_age_identity_generate(&id, NULL), 0);
	_cleanup_err_ err *e = NULL;
	assert_int_equal(attest_age_identity_write_pair(id, dir, false, &e), 0);
	_cleanup_free_ char *key = xasprintf("%s/age.key", dir),
	                    *pub = xasprintf("%s/age.pub", dir);
	struct stat st;
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(pub, &st), 0);
	assert_int_equal(st.st_mode & 0777 & ~0022, 0644 & ~0022);
	assert_int_equal(attest_age_identity_load(key, &back, &e), 0);
	char a[ATTEST_AGE_RECIPIENT_LEN + 1], b[ATTEST_AGE_RECIPIENT_LEN + 1];
	attest_age_recipient r;
	attest_age_identity_recipient(id, &r);
	attest_age_recipient_format(&r, a);
	attest_age_identity_recipient(back, &r);
	attest_age_recipient_format(&r, b);
	assert_string_equal(a, b);
	_cleanup_free_ char *pub_text = read_text(pub), *key_text = read_text(key);
	assert_int_equal(strlen(pub_text), ATTEST_AGE_RECIPIENT_LEN + 1);
	assert_memory_equal(pub_text, a, ATTEST_AGE_RECIPIENT_LEN);
	_cleanup_free_ char *line = xasprintf("\n# public key: %s\nAGE-SECRET-KEY-1", a);
	assert_non_null(strstr(key_text, line));
	assert_true(strncmp(key_text, "# created: ", 11) == 0);
	/* Not replaced without force; replaced with it. */
	assert_int_equal(attest_age_identity_write_pair(id, dir, false, &e), -1);
	assert_non_null(strstr(err_msg(e), "create age.key (use --force to replace it)"));
	e = err_free(e);
	assert_int_equal(attest_age_identity_write_pair(back, dir, true, &e), 0);
	/* A key others can read, or a link, is refused. */
	assert_int_equal(chmod(key, 0640), 0);
	attest_age_identity_free(back);
	back = NULL;
	assert_int_equal(attest_age_identity_load(key, &back, &e), -1);
	assert_non_null(strstr(err_msg(e), "has mode 0640: it must not be accessible"));
	e = err_free(e);
	assert_int_equal(chmod(key, 0600), 0);
	_cleanup_free_ char *link = xasprintf("%s/link.key", dir);
	assert_int_equal(symlink(key, link), 0);
	assert_int_equal(attest_age_identity_load(link, &back, &e), -1);
	assert_non_null(strstr(err_msg(e), "open"));
	attest_age_identity_free(id);
	assert_int_equal(rm_rf_at(AT_FDCWD, dir, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors),
	    cmocka_unit_test(test_bech32),
	    cmocka_unit_test(test_spec_keys),
	    cmocka_unit_test(test_key_text_errors),
	    cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_armor_layout),
	    cmocka_unit_test_setup_teardown(test_payload_tamper, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_trailing_data, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_header_tamper, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_header_grammar, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_limits, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_armor_modes, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_identity_files, fx_setup, fx_teardown),
	    cmocka_unit_test(test_write_pair),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
