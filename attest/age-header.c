/* The age v1 header: a strict parser (the grammar of C2SP age, "ABNF definition of file
 * header", with the canonical base64 and 64-column rules, so that the bytes the MAC covers are
 * exactly the header's one encoding), X25519 stanza unwrapping, the constant-time MAC check,
 * and the writer used for encryption. */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "attest/age-internal.h"
#include "common/cleanup.h"
#include "common/xalloc.h"

#define X25519_LABEL "age-encryption.org/v1/X25519"

/* A line reader over the header bytes; lines end with LF, which is not part of them. */
struct cursor {
	const char *p;
	size_t n, off;
	size_t line; /* number of the line last returned */
	bool eof;    /* a line was asked for past the last LF */
};

static bool next_line(struct cursor *c, const char **s, size_t *len)
{
	const char *lf = memchr(c->p + c->off, '\n', c->n - c->off);
	if (!lf) {
		c->eof = true;
		return false;
	}
	*s = c->p + c->off;
	*len = (size_t)(lf - *s);
	c->off += *len + 1;
	c->line++;
	return true;
}

static bool has_prefix(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);
	return len >= n && memcmp(s, prefix, n) == 0;
}

/* Splits "-> a b c" into owned arguments, each one or more VCHARs (0x21-0x7e). */
static int stanza_args(age_stanza *st, const char *s, size_t len, size_t line, err **e)
{
	if (!has_prefix(s, len, "->") || (len > 2 && s[2] != ' '))
		return err_set(
		    e, 0, "line %zu: expected a stanza (\"-> \") or the MAC line (\"--- \")", line);
	if (len <= 3)
		return err_set(e, 0, "line %zu: stanza has no arguments", line);
	for (size_t i = 3, start = 3; i <= len; i++) {
		if (i < len && s[i] != ' ') {
			if (s[i] < 0x21 || s[i] > 0x7e)
				return err_set(
				    e, 0,
				    "line %zu: stanza argument %zu has byte 0x%02x (only "
				    "0x21-0x7e are allowed)",
				    line, st->n_args + 1, (unsigned char)s[i]);
			continue;
		}
		if (i == start)
			return err_set(e, 0, "line %zu: stanza argument %zu is empty", line,
			               st->n_args + 1);
		st->args = xreallocarray(st->args, st->n_args + 1, sizeof(*st->args));
		st->args[st->n_args++] = xstrndup(s + start, i - start);
		start = i + 1;
	}
	return 0;
}

/* The body: canonical unpadded base64 in lines of 64 columns, ended by a shorter line. */
static int stanza_body(age_stanza *st, struct cursor *c, err **e)
{
	buf body = BUF_INIT;
	const char *s;
	size_t len;
	for (;;) {
		if (!next_line(c, &s, &len)) {
			buf_deinit(&body);
			return err_set(e, 0, "line %zu: stanza body truncated", c->line + 1);
		}
		if (len && s[len - 1] == '\r') {
			buf_deinit(&body);
			return err_set(e, 0,
			               "line %zu ends with CR (CRLF line endings are not allowed)",
			               c->line);
		}
		uint8_t bytes[AGE_LINE_BYTES];
		ssize_t got =
		    len > AGE_COLUMNS ? -2 : age_b64_decode(s, len, false, bytes, sizeof(bytes));
		if (got < 0) {
			buf_deinit(&body);
			if (got == -2)
				return err_set(e, 0,
				               "line %zu: stanza body line longer than %d columns",
				               c->line, AGE_COLUMNS);
			if (has_prefix(s, len, "->") || has_prefix(s, len, "---"))
				return err_set(e, 0,
				               "line %zu: stanza body ended without a short line",
				               c->line);
			return err_set(e, 0, "line %zu: stanza body is not canonical base64",
			               c->line);
		}
		buf_append(&body, bytes, (size_t)got);
		if (len < AGE_COLUMNS)
			break;
	}
	st->body_len = body.len;
	st->body = (uint8_t *)buf_steal(&body, NULL);
	return 0;
}

static int parse_mac_line(age_header *h, const char *s, size_t len, size_t line, err **e)
{
	if (len == 3)
		return err_set(e, 0, "line %zu: MAC line has no MAC", line);
	if (s[3] != ' ')
		return err_set(e, 0,
		               "line %zu: malformed MAC line (\"---\" must be followed by one "
		               "space and the MAC)",
		               line);
	if (memchr(s + 4, ' ', len - 4) || len == 4)
		return err_set(
		    e, 0, "line %zu: malformed MAC line (one MAC expected after \"--- \")", line);
	if (age_b64_decode(s + 4, len - 4, false, h->mac, sizeof(h->mac)) != AGE_KEY_LEN)
		return err_set(e, 0, "line %zu: the MAC is not the canonical base64 of 32 bytes",
		               line);
	return 0;
}

static int parse_version(struct cursor *c, err **e)
{
	const char *s;
	size_t len;
	if (c->n == 0)
		return err_set(e, 0, "empty file");
	bool ours = has_prefix(c->p, c->n, "age-encryption.org/");
	if (!next_line(c, &s, &len) || !ours)
		return err_set(e, 0,
		               ours ? "version line not terminated"
		                    : "not an age file (no \"age-encryption.org/\" version line)");
	if (len == strlen(AGE_INTRO) + 1 && has_prefix(s, len, AGE_INTRO) && s[len - 1] == '\r')
		return err_set(e, 0, "line 1 ends with CR (CRLF line endings are not allowed)");
	if (len != strlen(AGE_INTRO) || memcmp(s, AGE_INTRO, len) != 0)
		return err_set(e, 0, "unsupported version line \"%.*s\" (only %s is supported)",
		               (int)(len > 40 ? 40 : len), s, AGE_INTRO);
	return 0;
}

/* One stanza or the MAC line. Returns 1 after the MAC line, 0 after a stanza, -1 on error. */
static int parse_item(struct cursor *c, age_header *h, err **e)
{
	const char *s;
	size_t len;
	if (!next_line(c, &s, &len))
		return err_set(e, 0, "line %zu: header truncated (no MAC line)", c->line + 1);
	if (len && s[len - 1] == '\r')
		return err_set(e, 0, "line %zu ends with CR (CRLF line endings are not allowed)",
		               c->line);
	if (has_prefix(s, len, "---")) {
		h->mac_input_len = (size_t)(s - c->p) + 3;
		h->len = c->off;
		return parse_mac_line(h, s, len, c->line, e) < 0 ? -1 : 1;
	}
	if (h->n == ATTEST_AGE_STANZA_MAX)
		return err_set(e, 0, "more than %d recipient stanzas", ATTEST_AGE_STANZA_MAX);
	h->stanzas = xreallocarray(h->stanzas, h->n + 1, sizeof(*h->stanzas));
	age_stanza *st = &h->stanzas[h->n++];
	*st = (age_stanza){.line = c->line};
	if (stanza_args(st, s, len, c->line, e) < 0 || stanza_body(st, c, e) < 0)
		return -1;
	return 0;
}

int age_header_parse(const uint8_t *p, size_t n, age_header *h, err **e)
{
	*h = (age_header){0};
	bool capped = n > ATTEST_AGE_HEADER_MAX;
	struct cursor c = {(const char *)p, capped ? ATTEST_AGE_HEADER_MAX : n, 0, 0, false};
	int r = parse_version(&c, e);
	while (r == 0)
		r = parse_item(&c, h, e);
	if (r < 0) {
		age_header_deinit(h);
		if (capped && c.eof)
			return err_set(e, 0, "header: longer than %u bytes", ATTEST_AGE_HEADER_MAX);
		return err_prefix(e, "header");
	}
	if (h->n == 0) {
		age_header_deinit(h);
		return err_set(e, 0, "header: no recipient stanzas");
	}
	return 0;
}

void age_header_deinit(age_header *h)
{
	for (size_t i = 0; i < h->n; i++) {
		for (size_t j = 0; j < h->stanzas[i].n_args; j++)
			free(h->stanzas[i].args[j]);
		free(h->stanzas[i].args);
		free(h->stanzas[i].body);
	}
	free(h->stanzas);
	*h = (age_header){0};
}

void age_header_marshal(const age_header *h, buf *out)
{
	buf_append_str(out, AGE_INTRO "\n");
	for (size_t i = 0; i < h->n; i++) {
		buf_append_str(out, "->");
		for (size_t j = 0; j < h->stanzas[i].n_args; j++) {
			buf_append_str(out, " ");
			buf_append_str(out, h->stanzas[i].args[j]);
		}
		buf_append_str(out, "\n");
		age_b64_wrap(out, h->stanzas[i].body, h->stanzas[i].body_len, false);
		buf_append_str(out, "\n");
	}
	buf_append_str(out, "---");
}

static bool is_type(const age_stanza *st, const char *type)
{
	return strcmp(st->args[0], type) == 0;
}

/* An X25519 stanza must have exactly the share, 32 bytes in canonical base64, and a body of
 * exactly 32 bytes (the spec's defence against partitioning oracles). */
static int x25519_check(const age_stanza *st, uint8_t share[AGE_KEY_LEN], err **e)
{
	if (st->n_args != 2)
		return err_set(e, 0,
		               "line %zu: X25519 stanza has %zu arguments after its type, "
		               "expected 1 (the share)",
		               st->line, st->n_args - 1);
	if (age_b64_decode(st->args[1], strlen(st->args[1]), false, share, AGE_KEY_LEN) !=
	    AGE_KEY_LEN)
		return err_set(e, 0,
		               "line %zu: X25519 share is not the canonical base64 of 32 bytes",
		               st->line);
	if (st->body_len != AGE_FILE_KEY_LEN + AGE_TAG_LEN)
		return err_set(e, 0, "line %zu: X25519 stanza body is %zu bytes, expected %d",
		               st->line, st->body_len, AGE_FILE_KEY_LEN + AGE_TAG_LEN);
	return 0;
}

/* Checks every stanza this implementation knows before any identity is tried. */
static int header_check(const age_header *h, err **e)
{
	uint8_t share[AGE_KEY_LEN];
	for (size_t i = 0; i < h->n; i++) {
		if (is_type(&h->stanzas[i], "X25519") && x25519_check(&h->stanzas[i], share, e) < 0)
			return err_prefix(e, "header");
		if (is_type(&h->stanzas[i], "scrypt") && h->n > 1)
			return err_set(e, 0,
			               "header: line %zu: an scrypt stanza must be the only "
			               "stanza in the header",
			               h->stanzas[i].line);
	}
	return 0;
}

/* Tries one identity on one X25519 stanza: 1 and the file key when it unwraps, 0 when the
 * stanza is for someone else, -1 with *e when the share is a low-order point. */
static int x25519_unwrap(const attest_age_identity *id, const age_stanza *st,
                         uint8_t file_key[AGE_FILE_KEY_LEN], err **e)
{
	uint8_t share[AGE_KEY_LEN], shared[AGE_KEY_LEN], salt[2 * AGE_KEY_LEN], wrap[AGE_KEY_LEN];
	static const uint8_t zero_nonce[12];
	if (x25519_check(st, share, e) < 0)
		return -1;
	int r = age_x25519(id->pkey, share, shared, e);
	if (r == 1)
		return err_set(e, 0,
		               "line %zu: X25519 share is a low-order point (the shared "
		               "secret is all zeros)",
		               st->line);
	memcpy(salt, share, AGE_KEY_LEN);
	memcpy(salt + AGE_KEY_LEN, id->public_key, AGE_KEY_LEN);
	if (r == 0)
		r = age_hkdf(shared, sizeof(shared), salt, sizeof(salt), X25519_LABEL, wrap, e);
	OPENSSL_cleanse(shared, sizeof(shared));
	if (r < 0)
		return -1;
	EVP_CIPHER_CTX *c = age_aead_new(wrap, false, e);
	OPENSSL_cleanse(wrap, sizeof(wrap));
	if (!c)
		return -1;
	bool ok = age_aead_open(c, zero_nonce, st->body, st->body_len, file_key);
	EVP_CIPHER_CTX_free(c);
	return ok ? 1 : 0;
}

int age_header_unwrap(const age_header *h, attest_age_identity *const *ids, size_t n_ids,
                      uint8_t file_key[AGE_FILE_KEY_LEN], attest_age_failure *why, err **e)
{
	*why = ATTEST_AGE_FAIL_HEADER;
	if (header_check(h, e) < 0)
		return -1;
	size_t n_x25519 = 0;
	for (size_t s = 0; s < h->n; s++)
		n_x25519 += is_type(&h->stanzas[s], "X25519");
	for (size_t i = 0; i < n_ids; i++)
		for (size_t s = 0; s < h->n; s++) {
			if (!is_type(&h->stanzas[s], "X25519"))
				continue;
			int r = x25519_unwrap(ids[i], &h->stanzas[s], file_key, e);
			if (r < 0)
				return err_prefix(e, "header");
			if (r == 1)
				return 0;
		}
	*why = ATTEST_AGE_FAIL_NO_MATCH;
	if (h->n == 1 && is_type(&h->stanzas[0], "scrypt"))
		return err_set(e, 0,
		               "no identity matches any recipient stanza (the file is "
		               "passphrase-encrypted: scrypt is not supported)");
	return err_set(e, 0, "no identity matches any recipient stanza (%zu stanza%s, %zu X25519)",
	               h->n, h->n == 1 ? "" : "s", n_x25519);
}

int age_header_check_mac(const age_header *h, const uint8_t *p,
                         const uint8_t file_key[AGE_FILE_KEY_LEN], err **e)
{
	uint8_t key[AGE_KEY_LEN], mac[AGE_KEY_LEN];
	int r = age_hkdf(file_key, AGE_FILE_KEY_LEN, NULL, 0, "header", key, e);
	if (r == 0)
		r = age_hmac(key, p, h->mac_input_len, mac, e);
	OPENSSL_cleanse(key, sizeof(key));
	if (r < 0)
		return -1;
	if (CRYPTO_memcmp(mac, h->mac, AGE_KEY_LEN) != 0)
		return err_set(e, 0,
		               "header MAC mismatch: the header was modified or is not from "
		               "this file key");
	return 0;
}

/* One X25519 stanza for recipient r: a fresh ephemeral share and the wrapped file key. */
static int x25519_wrap(const attest_age_recipient *r, const uint8_t file_key[AGE_FILE_KEY_LEN],
                       age_stanza *st, err **e)
{
	uint8_t eph[AGE_KEY_LEN], share[AGE_KEY_LEN], shared[AGE_KEY_LEN], salt[2 * AGE_KEY_LEN],
	    wrap[AGE_KEY_LEN];
	static const uint8_t zero_nonce[12];
	if (RAND_priv_bytes(eph, sizeof(eph)) != 1)
		return err_set(e, 0, "random ephemeral key: no entropy");
	EVP_PKEY *k = age_x25519_key(eph, share, e);
	OPENSSL_cleanse(eph, sizeof(eph));
	int rc = k ? age_x25519(k, r->key, shared, e) : -1;
	EVP_PKEY_free(k);
	if (rc == 1)
		return err_set(e, 0, "the recipient is a low-order point");
	memcpy(salt, share, AGE_KEY_LEN);
	memcpy(salt + AGE_KEY_LEN, r->key, AGE_KEY_LEN);
	if (rc == 0)
		rc = age_hkdf(shared, sizeof(shared), salt, sizeof(salt), X25519_LABEL, wrap, e);
	OPENSSL_cleanse(shared, sizeof(shared));
	EVP_CIPHER_CTX *c = rc == 0 ? age_aead_new(wrap, true, e) : NULL;
	OPENSSL_cleanse(wrap, sizeof(wrap));
	if (!c)
		return -1;
	st->body_len = AGE_FILE_KEY_LEN + AGE_TAG_LEN;
	st->body = xmalloc(st->body_len);
	rc = age_aead_seal(c, zero_nonce, file_key, AGE_FILE_KEY_LEN, st->body, e);
	EVP_CIPHER_CTX_free(c);
	buf arg = BUF_INIT;
	age_b64_raw(&arg, share, sizeof(share));
	st->n_args = 2;
	st->args = xcalloc(2, sizeof(*st->args));
	st->args[0] = xstrdup("X25519");
	st->args[1] = buf_steal(&arg, NULL);
	return rc;
}

int age_header_write(const attest_age_recipient *r, size_t n,
                     const uint8_t file_key[AGE_FILE_KEY_LEN], buf *out, err **e)
{
	age_header h = {.stanzas = xcalloc(n, sizeof(age_stanza)), .n = n};
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		if (x25519_wrap(&r[i], file_key, &h.stanzas[i], e) < 0)
			rc = err_prefix(e, "recipient %zu", i + 1);
	size_t start = out->len;
	uint8_t key[AGE_KEY_LEN], mac[AGE_KEY_LEN];
	if (rc == 0) {
		age_header_marshal(&h, out);
		rc = age_hkdf(file_key, AGE_FILE_KEY_LEN, NULL, 0, "header", key, e);
	}
	if (rc == 0)
		rc = age_hmac(key, out->data + start, out->len - start, mac, e);
	OPENSSL_cleanse(key, sizeof(key));
	if (rc == 0) {
		buf_append_str(out, " ");
		age_b64_raw(out, mac, sizeof(mac));
		buf_append_str(out, "\n");
	}
	age_header_deinit(&h);
	return rc;
}
