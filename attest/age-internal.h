/* The pieces of the age implementation (attest/age*.c, attest/bech32.c) shared between its
 * files; not part of the module's interface. attest/AGE.md states every rule enforced here. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/evp.h>

#include "attest/attest.h"
#include "common/buf.h"
#include "common/err.h"

#define AGE_FILE_KEY_LEN 16
#define AGE_KEY_LEN      32 /* X25519 scalars and points, HKDF outputs, the header MAC */
#define AGE_TAG_LEN      16 /* Poly1305 */
#define AGE_NONCE_LEN    16 /* the payload nonce */
#define AGE_CHUNK        (64u * 1024)
#define AGE_ENC_CHUNK    (AGE_CHUNK + AGE_TAG_LEN)
#define AGE_COLUMNS      64 /* base64 columns per line, in stanza bodies and the armor */
#define AGE_LINE_BYTES   48 /* bytes a full line encodes */
#define AGE_INTRO        "age-encryption.org/v1"
#define AGE_ARMOR_BEGIN  "-----BEGIN AGE ENCRYPTED FILE-----"
#define AGE_ARMOR_END    "-----END AGE ENCRYPTED FILE-----"
#define AGE_ARMOR_SPACE  1024 /* whitespace allowed before and after the armor */

struct attest_age_identity {
	uint8_t secret[AGE_KEY_LEN];
	uint8_t public_key[AGE_KEY_LEN];
	EVP_PKEY *pkey;
};

/* ---- bech32 (bech32.c) ---- */

#define ATTEST_BECH32_MAX 4096
/* hrp (case kept only through upper) + "1" + data + checksum. Caller frees. */
char *attest_bech32_encode(const char *hrp, const uint8_t *data, size_t n, bool upper);
/* Decodes s: *hrp as written and *data (both caller-owned). Returns 0, or -1 with *e. */
int attest_bech32_decode(const char *s, char **hrp, uint8_t **data, size_t *n, err **e);

/* ---- primitives over OpenSSL (age-crypto.c) ---- */

/* Strict base64 of s[0..len) (len <= AGE_COLUMNS + 4) into out (cap bytes): RFC 4648
 * alphabet, '=' padding required when padded (the armor) and refused otherwise (the header),
 * and only the canonical encoding (unused bits zero). The byte count, or -1. */
ssize_t age_b64_decode(const char *s, size_t len, bool padded, uint8_t *out, size_t cap);
/* Appends p[0..n) as base64 lines of AGE_COLUMNS columns, each full line followed by LF and
 * the last, shorter (possibly empty) line without one. Returns true when that line is empty. */
bool age_b64_wrap(buf *b, const uint8_t *p, size_t n, bool padded);
/* Appends the unpadded base64 of p[0..n) on one line (no LF). */
void age_b64_raw(buf *b, const uint8_t *p, size_t n);

/* HKDF-SHA-256 (salt may be empty) into out[32]. Returns 0, or -1 with *e. */
int age_hkdf(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
             const char *info, uint8_t out[AGE_KEY_LEN], err **e);
/* HMAC-SHA-256. Returns 0, or -1 with *e. */
int age_hmac(const uint8_t key[AGE_KEY_LEN], const void *p, size_t n, uint8_t out[AGE_KEY_LEN],
             err **e);
/* A ChaCha20-Poly1305 context keyed once for encryption or decryption. NULL on failure. */
EVP_CIPHER_CTX *age_aead_new(const uint8_t key[AGE_KEY_LEN], bool encrypt, err **e);
/* Seals p[0..n) under the 12-byte nonce into out (n + AGE_TAG_LEN bytes). 0 or -1 with *e. */
int age_aead_seal(EVP_CIPHER_CTX *c, const uint8_t nonce[12], const uint8_t *p, size_t n,
                  uint8_t *out, err **e);
/* Opens c[0..n) (n >= AGE_TAG_LEN) into out (n - AGE_TAG_LEN bytes). True when it
 * authenticates; otherwise out is wiped. */
bool age_aead_open(EVP_CIPHER_CTX *c, const uint8_t nonce[12], const uint8_t *in, size_t n,
                   uint8_t *out);
/* An X25519 private key from 32 secret bytes, and its public point. NULL on failure. */
EVP_PKEY *age_x25519_key(const uint8_t secret[AGE_KEY_LEN], uint8_t public_key[AGE_KEY_LEN],
                         err **e);
/* X25519(priv, point). Returns 0, 1 when the shared secret would be all zeros (a low-order
 * point: OpenSSL refuses to output it), or -1 with *e. */
int age_x25519(EVP_PKEY *priv, const uint8_t point[AGE_KEY_LEN], uint8_t out[AGE_KEY_LEN], err **e);

/* ---- the header (age-header.c) ---- */

typedef struct age_stanza {
	char **args; /* args[0] is the type; owned */
	size_t n_args;
	uint8_t *body; /* owned */
	size_t body_len;
	size_t line; /* 1-based line of its "->" in the header (0 when written) */
} age_stanza;

typedef struct age_header {
	age_stanza *stanzas;
	size_t n;
	uint8_t mac[AGE_KEY_LEN];
	size_t mac_input_len; /* bytes the MAC covers: everything through "---" */
	size_t len;           /* the header's length through the MAC line's LF */
} age_header;

/* Parses the header at the start of p[0..n) (at most ATTEST_AGE_HEADER_MAX bytes of it).
 * Returns 0, or -1 with *e (a header failure). */
int age_header_parse(const uint8_t *p, size_t n, age_header *h, err **e);
void age_header_deinit(age_header *h);
/* Appends the version line, the stanzas and "---" (what the MAC covers). */
void age_header_marshal(const age_header *h, buf *out);
/* Finds the file key: each identity in turn tries the stanzas in order. Returns 0, or -1
 * with *e and *why (ATTEST_AGE_FAIL_HEADER or ATTEST_AGE_FAIL_NO_MATCH). */
int age_header_unwrap(const age_header *h, attest_age_identity *const *ids, size_t n_ids,
                      uint8_t file_key[AGE_FILE_KEY_LEN], attest_age_failure *why, err **e);
/* Checks the MAC over p[0..h->mac_input_len) in constant time. 0, or -1 with *e. */
int age_header_check_mac(const age_header *h, const uint8_t *p,
                         const uint8_t file_key[AGE_FILE_KEY_LEN], err **e);
/* The whole header (with its MAC) for recipients r[0..n). 0, or -1 with *e. */
int age_header_write(const attest_age_recipient *r, size_t n,
                     const uint8_t file_key[AGE_FILE_KEY_LEN], buf *out, err **e);

/* ---- the payload (age-stream.c) ---- */

/* The payload's size (nonce and chunks) for n bytes of plaintext, or 0 on overflow. */
size_t age_stream_len(size_t n);
/* Appends the nonce and the encrypted chunks of p[0..n). 0, or -1 with *e. */
int age_stream_seal(const uint8_t file_key[AGE_FILE_KEY_LEN], const uint8_t *p, size_t n, buf *out,
                    err **e);
/* Decrypts the payload p[0..n) into out (room for n bytes) the way a stream reader releases
 * it: *out_len counts the bytes of the chunks that authenticated, in order, even on failure.
 * Returns 0, or -1 with *e and *why (ATTEST_AGE_FAIL_HEADER for a short nonce, as the
 * vectors count it, otherwise ATTEST_AGE_FAIL_PAYLOAD). */
int age_stream_open(const uint8_t file_key[AGE_FILE_KEY_LEN], const uint8_t *p, size_t n,
                    uint8_t *out, size_t *out_len, attest_age_failure *why, err **e);

/* ---- the ASCII armor (age-armor.c) ---- */

/* True when p starts, after at most AGE_ARMOR_SPACE bytes of whitespace, with the BEGIN
 * line's text. */
bool age_armor_detect(const uint8_t *p, size_t n);
/* Decodes an armored file into out. 0, or -1 with *e (an armor failure). */
int age_armor_decode(const uint8_t *p, size_t n, buf *out, err **e);
/* Appends the armored form of p[0..n). */
void age_armor_encode(const uint8_t *p, size_t n, buf *out);
