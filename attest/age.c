/* age (C2SP age v1) for the node: X25519 identities and recipients in their bech32 text forms,
 * identity files in age-keygen's format, and the in-memory encryption and decryption of byte
 * strings (binary or ASCII-armored) that the header, payload and armor files implement. See
 * attest/AGE.md for what is implemented and what is rejected. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "attest/age-internal.h"
#include "attest/internal.h"
#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"

#define IDENTITY_HRP  "AGE-SECRET-KEY-"
#define RECIPIENT_HRP "age"

static int identity_new(attest_age_identity **out, const uint8_t secret[AGE_KEY_LEN], err **e)
{
	attest_age_identity *id = xzalloc(sizeof(*id));
	memcpy(id->secret, secret, AGE_KEY_LEN);
	id->pkey = age_x25519_key(id->secret, id->public_key, e);
	if (!id->pkey) {
		attest_age_identity_free(id);
		return -1;
	}
	*out = id;
	return 0;
}

int attest_age_identity_generate(attest_age_identity **out, err **e)
{
	uint8_t secret[AGE_KEY_LEN];
	if (RAND_priv_bytes(secret, sizeof(secret)) != 1)
		return err_set(e, 0, "age: generate identity: no entropy");
	int r = identity_new(out, secret, e);
	OPENSSL_cleanse(secret, sizeof(secret));
	return r < 0 ? err_prefix(e, "age: generate identity") : 0;
}

/* Text quoted in a message: at most 24 characters, then "...". */
static char *quote(const char *s)
{
	size_t n = strnlen(s, 25);
	return n > 24 ? xasprintf("%.24s...", s) : xstrdup(s);
}

/* The 32 bytes of a bech32 key whose HRP is exactly hrp (so also in its case). */
static int key_decode(const char *text, const char *hrp, uint8_t out[AGE_KEY_LEN], err **e)
{
	char *got = NULL;
	uint8_t *data = NULL;
	size_t n = 0;
	if (attest_bech32_decode(text, &got, &data, &n, e) < 0)
		return -1;
	int r = 0;
	if (strcmp(got, hrp) != 0)
		r = err_set(e, 0, "unsupported type \"%s\"", got);
	else if (n != AGE_KEY_LEN)
		r = err_set(e, 0, "expected a 32-byte key, got %zu bytes", n);
	else
		memcpy(out, data, AGE_KEY_LEN);
	OPENSSL_cleanse(data, n);
	free(data);
	free(got);
	return r;
}

static int identity_parse(attest_age_identity **out, const char *text, err **e)
{
	uint8_t secret[AGE_KEY_LEN];
	if (strncmp(text, "AGE-SECRET-KEY-PQ-1", 19) == 0)
		return err_set(e, 0, "post-quantum (hybrid) identities are not supported");
	if (strncmp(text, "AGE-PLUGIN-", 11) == 0)
		return err_set(e, 0, "plugin identities are not supported");
	if (strncmp(text, IDENTITY_HRP "1", strlen(IDENTITY_HRP) + 1) != 0)
		return err_set(e, 0, "not an age identity (expected \"" IDENTITY_HRP "1...\")");
	if (key_decode(text, IDENTITY_HRP, secret, e) < 0)
		return -1;
	int r = identity_new(out, secret, e);
	OPENSSL_cleanse(secret, sizeof(secret));
	return r;
}

int attest_age_identity_parse(attest_age_identity **out, const char *text, err **e)
{
	return identity_parse(out, text, e) < 0 ? err_prefix(e, "age: identity") : 0;
}

void attest_age_identity_format(const attest_age_identity *id,
                                char out[ATTEST_AGE_IDENTITY_LEN + 1])
{
	char *s = attest_bech32_encode(IDENTITY_HRP, id->secret, AGE_KEY_LEN, true);
	memcpy(out, s, ATTEST_AGE_IDENTITY_LEN + 1);
	OPENSSL_cleanse(s, ATTEST_AGE_IDENTITY_LEN);
	free(s);
}

void attest_age_identity_recipient(const attest_age_identity *id, attest_age_recipient *out)
{
	memcpy(out->key, id->public_key, AGE_KEY_LEN);
}

attest_age_identity *attest_age_identity_free(attest_age_identity *id)
{
	if (id) {
		EVP_PKEY_free(id->pkey);
		OPENSSL_cleanse(id, sizeof(*id));
		free(id);
	}
	return NULL;
}

attest_age_identity **attest_age_identities_free(attest_age_identity **ids, size_t n)
{
	for (size_t i = 0; ids && i < n; i++)
		attest_age_identity_free(ids[i]);
	free(ids);
	return NULL;
}

static int recipient_parse(attest_age_recipient *out, const char *text, err **e)
{
	if (strncmp(text, "age1pq1", 7) == 0)
		return err_set(e, 0, "post-quantum (hybrid) recipients are not supported");
	if (strncmp(text, "ssh-", 4) == 0)
		return err_set(e, 0, "SSH recipients are not supported");
	if (strncmp(text, RECIPIENT_HRP "1", 4) != 0)
		return err_set(e, 0, "not an age recipient (expected \"age1...\")");
	return key_decode(text, RECIPIENT_HRP, out->key, e);
}

int attest_age_recipient_parse(attest_age_recipient *out, const char *text, err **e)
{
	if (recipient_parse(out, text, e) == 0)
		return 0;
	_cleanup_free_ char *q = quote(text);
	return err_prefix(e, "age: recipient \"%s\"", q);
}

void attest_age_recipient_format(const attest_age_recipient *r,
                                 char out[ATTEST_AGE_RECIPIENT_LEN + 1])
{
	_cleanup_free_ char *s = attest_bech32_encode(RECIPIENT_HRP, r->key, AGE_KEY_LEN, false);
	memcpy(out, s, ATTEST_AGE_RECIPIENT_LEN + 1);
}

/* ---- identity files ---- */

static int identities_add(attest_age_identity ***ids, size_t *n, const char *s, size_t len,
                          size_t line, err **e)
{
	char text[ATTEST_AGE_IDENTITY_LEN + 1];
	if (len > ATTEST_AGE_IDENTITY_LEN && strncmp(s, "AGE-SECRET-KEY-PQ-1", 19) != 0)
		return err_set(e, 0,
		               "age: identity file: line %zu: not an age identity (%zu "
		               "characters, expected %d)",
		               line, len, ATTEST_AGE_IDENTITY_LEN);
	size_t copy = len < sizeof(text) - 1 ? len : sizeof(text) - 1;
	memcpy(text, s, copy);
	text[copy] = '\0';
	attest_age_identity *id = NULL;
	int r = identity_parse(&id, text, e);
	OPENSSL_cleanse(text, sizeof(text));
	if (r < 0)
		return err_prefix(e, "age: identity file: line %zu", line);
	*ids = xreallocarray(*ids, *n + 1, sizeof(**ids));
	(*ids)[(*n)++] = id;
	return 0;
}

int attest_age_identities_parse(const char *text, size_t len, attest_age_identity ***ids, size_t *n,
                                err **e)
{
	*ids = NULL;
	*n = 0;
	size_t line = 0;
	for (size_t off = 0; off < len;) {
		const char *s = text + off, *lf = memchr(s, '\n', len - off);
		size_t l = lf ? (size_t)(lf - s) : len - off;
		off += l + (lf ? 1 : 0);
		line++;
		if (l && s[l - 1] == '\r')
			l--;
		if (l == 0 || s[0] == '#')
			continue;
		if (identities_add(ids, n, s, l, line, e) < 0) {
			*ids = attest_age_identities_free(*ids, *n);
			*n = 0;
			return -1;
		}
	}
	if (*n == 0)
		return err_set(e, 0, "age: identity file: no identity in it");
	return 0;
}

int attest_age_identities_load(const char *path, attest_age_identity ***ids, size_t *n, err **e)
{
	buf b = BUF_INIT;
	int r = attest_read_secret_file(path, true, ATTEST_AGE_IDENTITY_FILE_MAX, &b, e);
	if (r == 0 && attest_age_identities_parse(buf_str(&b), b.len, ids, n, e) < 0)
		r = err_prefix(e, "%s", path);
	if (b.data)
		OPENSSL_cleanse(b.data, b.len);
	buf_deinit(&b);
	return r;
}

int attest_age_identity_load(const char *path, attest_age_identity **out, err **e)
{
	attest_age_identity **ids = NULL;
	size_t n = 0;
	if (attest_age_identities_load(path, &ids, &n, e) < 0)
		return -1;
	if (n != 1) {
		attest_age_identities_free(ids, n);
		return err_set(e, 0, "%s: %zu identities, expected exactly one", path, n);
	}
	*out = ids[0];
	free(ids);
	return 0;
}

static int refuse_existing(int dfd, const char *name, err **e)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return err_set(e, EEXIST, "create %s (use --force to replace it)", name);
	if (errno != ENOENT)
		return err_set(e, errno, "stat %s", name);
	return 0;
}

int attest_age_identity_write_pair(const attest_age_identity *id, const char *dir, bool force,
                                   err **e)
{
	char secret[ATTEST_AGE_IDENTITY_LEN + 1], rcpt[ATTEST_AGE_RECIPIENT_LEN + 1], when[32];
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return err_set(e, errno, "open directory %s", dir);
	if (!force && (refuse_existing(dfd, ATTEST_AGE_KEY_FILE, e) < 0 ||
	               refuse_existing(dfd, ATTEST_AGE_PUB_FILE, e) < 0))
		return err_prefix(e, "%s", dir);
	attest_age_recipient r;
	attest_age_identity_recipient(id, &r);
	attest_age_recipient_format(&r, rcpt);
	attest_age_identity_format(id, secret);
	time_t now = time(NULL);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	buf key = BUF_INIT, pub = BUF_INIT;
	buf_appendf(&key, "# created: %s\n# public key: %s\n%s\n", when, rcpt, secret);
	buf_appendf(&pub, "%s\n", rcpt);
	OPENSSL_cleanse(secret, sizeof(secret));
	int rc = write_file_at(dfd, ATTEST_AGE_KEY_FILE, key.data, key.len, 0600, e);
	if (rc == 0)
		rc = write_file_at(dfd, ATTEST_AGE_PUB_FILE, pub.data, pub.len, 0644, e);
	OPENSSL_cleanse(key.data, key.len);
	buf_deinit(&key);
	buf_deinit(&pub);
	return rc < 0 ? err_prefix(e, "%s", dir) : 0;
}

/* ---- encryption and decryption ---- */

int attest_age_encrypt(const void *p, size_t n, const attest_age_recipient *r, size_t n_r,
                       bool armor, uint8_t **out, size_t *out_len, err **e)
{
	uint8_t file_key[AGE_FILE_KEY_LEN];
	*out = NULL;
	*out_len = 0;
	if (n_r == 0 || n_r > ATTEST_AGE_STANZA_MAX)
		return err_set(e, 0, "age: encrypt: %zu recipients (1 to %d allowed)", n_r,
		               ATTEST_AGE_STANZA_MAX);
	if (RAND_priv_bytes(file_key, sizeof(file_key)) != 1)
		return err_set(e, 0, "age: encrypt: random file key: no entropy");
	buf bin = BUF_INIT;
	int rc = age_header_write(r, n_r, file_key, &bin, e);
	if (rc == 0)
		rc = age_stream_seal(file_key, p, n, &bin, e);
	OPENSSL_cleanse(file_key, sizeof(file_key));
	if (rc < 0) {
		buf_deinit(&bin);
		return err_prefix(e, "age: encrypt");
	}
	if (armor) {
		buf arm = BUF_INIT;
		age_armor_encode(bin.data, bin.len, &arm);
		buf_deinit(&bin);
		bin = arm;
	}
	*out = (uint8_t *)buf_steal(&bin, out_len);
	return 0;
}

const char *attest_age_failure_name(attest_age_failure f)
{
	switch (f) {
	case ATTEST_AGE_OK:
		return "success";
	case ATTEST_AGE_FAIL_LIMIT:
		return "size limit";
	case ATTEST_AGE_FAIL_ARMOR:
		return "armor failure";
	case ATTEST_AGE_FAIL_HEADER:
		return "header failure";
	case ATTEST_AGE_FAIL_NO_MATCH:
		return "no match";
	case ATTEST_AGE_FAIL_HMAC:
		return "HMAC failure";
	case ATTEST_AGE_FAIL_PAYLOAD:
		return "payload failure";
	}
	return "unknown";
}

/* Header, file key, MAC, payload, in the reference order. *out gets room for the payload. */
static int decrypt_binary(const uint8_t *p, size_t n, attest_age_identity *const *ids, size_t n_ids,
                          uint8_t **out, size_t *out_len, attest_age_failure *why, err **e)
{
	uint8_t file_key[AGE_FILE_KEY_LEN];
	age_header h;
	*why = ATTEST_AGE_FAIL_HEADER;
	if (age_header_parse(p, n, &h, e) < 0)
		return -1;
	int rc = age_header_unwrap(&h, ids, n_ids, file_key, why, e);
	if (rc == 0 && age_header_check_mac(&h, p, file_key, e) < 0) {
		*why = ATTEST_AGE_FAIL_HMAC;
		rc = -1;
	}
	if (rc == 0) {
		*out = xmalloc(n - h.len + 1);
		rc = age_stream_open(file_key, p + h.len, n - h.len, *out, out_len, why, e);
	}
	OPENSSL_cleanse(file_key, sizeof(file_key));
	age_header_deinit(&h);
	return rc;
}

static int decrypt_input(const uint8_t *p, size_t len, const attest_age_decrypt_opts *o,
                         attest_age_identity *const *ids, size_t n_ids, uint8_t **out,
                         size_t *out_len, attest_age_failure *why, err **e)
{
	size_t max = o->max_size ? o->max_size : ATTEST_AGE_INPUT_MAX;
	*why = ATTEST_AGE_FAIL_LIMIT;
	if (len > max)
		return err_set(e, 0, "input is %zu bytes, more than the maximum of %zu", len, max);
	bool armored = o->armor == ATTEST_AGE_ARMOR_REQUIRE ||
	               (o->armor == ATTEST_AGE_ARMOR_AUTO && age_armor_detect(p, len));
	*why = ATTEST_AGE_FAIL_NO_MATCH;
	if (n_ids == 0)
		return err_set(e, 0, "no identities to decrypt with");
	*why = ATTEST_AGE_FAIL_HEADER;
	if (o->armor == ATTEST_AGE_ARMOR_REFUSE && age_armor_detect(p, len))
		return err_set(e, 0,
		               "header: the input is ASCII-armored, and armor is refused here");
	if (!armored)
		return decrypt_binary(p, len, ids, n_ids, out, out_len, why, e);
	buf bin = BUF_INIT;
	int rc = -1;
	*why = ATTEST_AGE_FAIL_ARMOR;
	if (age_armor_decode(p, len, &bin, e) == 0)
		rc = decrypt_binary(bin.data ? bin.data : (const uint8_t *)"", bin.len, ids, n_ids,
		                    out, out_len, why, e);
	buf_deinit(&bin);
	return rc;
}

int attest_age_decrypt(const void *in, size_t len, attest_age_identity *const *ids, size_t n_ids,
                       const attest_age_decrypt_opts *opts, uint8_t **out, size_t *out_len,
                       attest_age_failure *why, err **e)
{
	static const attest_age_decrypt_opts defaults = {0};
	const attest_age_decrypt_opts *o = opts ? opts : &defaults;
	attest_age_failure f = ATTEST_AGE_OK;
	*out = NULL;
	*out_len = 0;
	int rc = decrypt_input(in, len, o, ids, n_ids, out, out_len, &f, e);
	if (why)
		*why = rc < 0 ? f : ATTEST_AGE_OK;
	if (rc < 0 && *out && !o->release_prefix) {
		OPENSSL_cleanse(*out, *out_len);
		free(*out);
		*out = NULL;
		*out_len = 0;
	}
	if (rc < 0)
		return err_prefix(e, "age");
	(*out)[*out_len] = '\0';
	return 0;
}
