/* The primitives age is built from, each over OpenSSL 3.0: base64 in age's two forms (over the
 * project's one strict coder, proto_b64_*), HKDF-SHA-256, HMAC-SHA-256, ChaCha20-Poly1305 and
 * X25519. Every intermediate secret is wiped here before it goes out of scope. */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "attest/age-internal.h"
#include "attest/internal.h"
#include "common/cleanup.h"
#include "proto/proto.h"

DEFINE_CLEANUP_FUNC(EVP_KDF *, EVP_KDF_free)
DEFINE_CLEANUP_FUNC(EVP_KDF_CTX *, EVP_KDF_CTX_free)
DEFINE_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free)
DEFINE_CLEANUP_FUNC(EVP_PKEY_CTX *, EVP_PKEY_CTX_free)

ssize_t age_b64_decode(const char *s, size_t len, bool padded, uint8_t *out, size_t cap)
{
	char quads[AGE_COLUMNS + 8];
	if (len > AGE_COLUMNS + 4 || (!padded && (len % 4 == 1 || memchr(s, '=', len))))
		return -1;
	/* Unpadded text is given its padding, so that one strict decoder (proto_b64_decode:
	 * alphabet, padding, unused bits zero) judges both forms. */
	size_t q = padded ? len : (len + 3) / 4 * 4;
	memcpy(quads, s, len);
	memset(quads + len, '=', q - len);
	uint8_t *d = NULL;
	size_t n = 0;
	if (proto_b64_decode(quads, q, &d, &n) < 0)
		return -1;
	ssize_t r = n <= cap ? (ssize_t)n : -1;
	if (r >= 0)
		memcpy(out, d, n);
	OPENSSL_cleanse(d, n);
	free(d);
	return r;
}

/* The base64 text of p[0..n), without its padding when raw. Caller frees. */
static char *b64_text(const uint8_t *p, size_t n, bool padded, size_t *len)
{
	char *t = proto_b64_encode(p, n);
	*len = strlen(t);
	while (!padded && *len && t[*len - 1] == '=')
		t[--*len] = '\0';
	return t;
}

bool age_b64_wrap(buf *b, const uint8_t *p, size_t n, bool padded)
{
	size_t len = 0, off = 0;
	_cleanup_free_ char *t = b64_text(p, n, padded, &len);
	buf_reserve(b, len + len / AGE_COLUMNS);
	for (; len - off >= AGE_COLUMNS; off += AGE_COLUMNS) {
		buf_append(b, t + off, AGE_COLUMNS);
		buf_append(b, "\n", 1);
	}
	buf_append(b, t + off, len - off);
	return len == off;
}

void age_b64_raw(buf *b, const uint8_t *p, size_t n)
{
	size_t len = 0;
	_cleanup_free_ char *t = b64_text(p, n, false, &len);
	buf_append(b, t, len);
}

int age_hkdf(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
             const char *info, uint8_t out[AGE_KEY_LEN], err **e)
{
	_cleanup_(EVP_KDF_freep) EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	_cleanup_(EVP_KDF_CTX_freep) EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[5], *p = params;
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
	/* An empty salt is HKDF's default (HashLen zeros, the same HMAC key). */
	if (salt_len)
		*p++ =
		    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info));
	*p = OSSL_PARAM_construct_end();
	if (!ctx || EVP_KDF_derive(ctx, out, AGE_KEY_LEN, params) != 1)
		return err_set(e, 0, "HKDF-SHA-256: %s", attest_ossl_reason());
	return 0;
}

int age_hmac(const uint8_t key[AGE_KEY_LEN], const void *p, size_t n, uint8_t out[AGE_KEY_LEN],
             err **e)
{
	size_t len = 0;
	if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, AGE_KEY_LEN, p, n, out, AGE_KEY_LEN,
	               &len) ||
	    len != AGE_KEY_LEN)
		return err_set(e, 0, "HMAC-SHA-256: %s", attest_ossl_reason());
	return 0;
}

EVP_CIPHER_CTX *age_aead_new(const uint8_t key[AGE_KEY_LEN], bool encrypt, err **e)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	if (!c || EVP_CipherInit_ex(c, EVP_chacha20_poly1305(), NULL, key, NULL, encrypt) != 1) {
		EVP_CIPHER_CTX_free(c);
		err_set(e, 0, "ChaCha20-Poly1305: %s", attest_ossl_reason());
		return NULL;
	}
	return c;
}

int age_aead_seal(EVP_CIPHER_CTX *c, const uint8_t nonce[12], const uint8_t *p, size_t n,
                  uint8_t *out, err **e)
{
	int len = 0, fin = 0;
	if (n > AGE_CHUNK || EVP_EncryptInit_ex(c, NULL, NULL, NULL, nonce) != 1 ||
	    (n && EVP_EncryptUpdate(c, out, &len, p, (int)n) != 1) ||
	    EVP_EncryptFinal_ex(c, out + len, &fin) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, AGE_TAG_LEN, out + n) != 1)
		return err_set(e, 0, "ChaCha20-Poly1305 seal: %s", attest_ossl_reason());
	return 0;
}

bool age_aead_open(EVP_CIPHER_CTX *c, const uint8_t nonce[12], const uint8_t *in, size_t n,
                   uint8_t *out)
{
	size_t m = n - AGE_TAG_LEN;
	int len = 0, fin = 0;
	bool ok =
	    n >= AGE_TAG_LEN && m <= AGE_CHUNK &&
	    EVP_DecryptInit_ex(c, NULL, NULL, NULL, nonce) == 1 &&
	    (m == 0 || EVP_DecryptUpdate(c, out, &len, in, (int)m) == 1) &&
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, AGE_TAG_LEN, (void *)(in + m)) == 1 &&
	    EVP_DecryptFinal_ex(c, out + len, &fin) == 1;
	if (!ok) {
		if (n >= AGE_TAG_LEN)
			OPENSSL_cleanse(out, m); /* never leave unauthenticated plaintext */
		ERR_clear_error();
	}
	return ok;
}

EVP_PKEY *age_x25519_key(const uint8_t secret[AGE_KEY_LEN], uint8_t public_key[AGE_KEY_LEN],
                         err **e)
{
	EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, secret, AGE_KEY_LEN);
	size_t len = AGE_KEY_LEN;
	if (!k || EVP_PKEY_get_raw_public_key(k, public_key, &len) != 1 || len != AGE_KEY_LEN) {
		EVP_PKEY_free(k);
		err_set(e, 0, "X25519 key: %s", attest_ossl_reason());
		return NULL;
	}
	return k;
}

int age_x25519(EVP_PKEY *priv, const uint8_t point[AGE_KEY_LEN], uint8_t out[AGE_KEY_LEN], err **e)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *peer =
	    EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, point, AGE_KEY_LEN);
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(priv, NULL);
	size_t len = AGE_KEY_LEN;
	if (!peer || !ctx || EVP_PKEY_derive_init(ctx) != 1 ||
	    EVP_PKEY_derive_set_peer_ex(ctx, peer, 0) != 1)
		return err_set(e, 0, "X25519: %s", attest_ossl_reason());
	/* OpenSSL's X25519 fails exactly when the result is all zeros (RFC 7748, section 6.1):
	 * the point has small order. age requires aborting then. */
	if (EVP_PKEY_derive(ctx, out, &len) != 1 || len != AGE_KEY_LEN) {
		ERR_clear_error();
		OPENSSL_cleanse(out, AGE_KEY_LEN);
		return 1;
	}
	return 0;
}
