/* The age payload: a 16-byte nonce, then the plaintext in 64 KiB chunks, each sealed with
 * ChaCha20-Poly1305 under HKDF(file key, nonce, "payload") and a 12-byte nonce of an 11-byte
 * big-endian counter and a last-chunk flag. Decryption follows the reference reader exactly
 * (C2SP age, "Payload"; filippo.io/age internal/stream), including which plaintext it has
 * released when it fails part way, which the test vectors check. */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "attest/age-internal.h"

static void chunk_nonce(uint8_t nonce[12], uint64_t index, bool last)
{
	memset(nonce, 0, 3);
	for (int i = 0; i < 8; i++)
		nonce[3 + i] = (uint8_t)(index >> (56 - 8 * i));
	nonce[11] = last ? 1 : 0;
}

static int payload_key(const uint8_t file_key[AGE_FILE_KEY_LEN], const uint8_t *nonce,
                       uint8_t key[AGE_KEY_LEN], err **e)
{
	return age_hkdf(file_key, AGE_FILE_KEY_LEN, nonce, AGE_NONCE_LEN, "payload", key, e);
}

size_t age_stream_len(size_t n)
{
	size_t chunks = n ? (n + AGE_CHUNK - 1) / AGE_CHUNK : 1;
	if (chunks > (SIZE_MAX - AGE_NONCE_LEN - n) / AGE_TAG_LEN)
		return 0;
	return AGE_NONCE_LEN + n + chunks * AGE_TAG_LEN;
}

int age_stream_seal(const uint8_t file_key[AGE_FILE_KEY_LEN], const uint8_t *p, size_t n, buf *out,
                    err **e)
{
	uint8_t nonce[AGE_NONCE_LEN], key[AGE_KEY_LEN], cn[12];
	size_t total = age_stream_len(n);
	if (!total)
		return err_set(e, 0, "payload: %zu bytes is too large", n);
	if (RAND_bytes(nonce, sizeof(nonce)) != 1)
		return err_set(e, 0, "payload: random nonce: no entropy");
	if (payload_key(file_key, nonce, key, e) < 0)
		return -1;
	EVP_CIPHER_CTX *c = age_aead_new(key, true, e);
	OPENSSL_cleanse(key, sizeof(key));
	if (!c)
		return -1;
	buf_reserve(out, total);
	buf_append(out, nonce, sizeof(nonce));
	int r = 0;
	uint64_t index = 0;
	do {
		size_t len = n > AGE_CHUNK ? AGE_CHUNK : n;
		chunk_nonce(cn, index++, len == n);
		r = age_aead_seal(c, cn, p, len, out->data + out->len, e);
		out->len += len + AGE_TAG_LEN;
		p += len;
		n -= len;
	} while (r == 0 && n > 0);
	out->data[out->len] = '\0';
	EVP_CIPHER_CTX_free(c);
	return r;
}

/* The decryption state: where the next chunk starts and how much has been released. */
struct reader {
	EVP_CIPHER_CTX *c;
	const uint8_t *p;
	size_t n, off;
	uint64_t index; /* of the next chunk, from 0 (messages count from 1) */
	uint8_t *out;
	size_t released;
};

/* Opens the next chunk. Returns 1 after the final chunk, 0 after another, -1 with *e. */
static int read_chunk(struct reader *r, err **e)
{
	uint8_t nonce[12];
	size_t left = r->n - r->off, len = left < AGE_ENC_CHUNK ? left : AGE_ENC_CHUNK;
	const uint8_t *in = r->p + r->off;
	uint8_t *out = r->out + r->released;
	uint64_t no = r->index + 1;
	if (left == 0 && r->index == 0)
		return err_set(e, 0, "payload: truncated (no chunks)");
	if (left == 0)
		return err_set(e, 0, "payload: truncated (no final chunk after chunk %llu)",
		               (unsigned long long)r->index);
	bool last = len < AGE_ENC_CHUNK; /* a short chunk can only be the final one */
	if (last && r->index && len == AGE_TAG_LEN)
		return err_set(e, 0,
		               "payload: final chunk %llu is empty (only an empty payload has "
		               "an empty chunk)",
		               (unsigned long long)no);
	if (len < AGE_TAG_LEN)
		return err_set(e, 0, "payload: chunk %llu truncated (%zu bytes, less than its tag)",
		               (unsigned long long)no, len);
	chunk_nonce(nonce, r->index, last);
	bool ok = age_aead_open(r->c, nonce, in, len, out);
	if (!ok && !last) { /* a full-size chunk may be the final one */
		last = true;
		chunk_nonce(nonce, r->index, true);
		ok = age_aead_open(r->c, nonce, in, len, out);
	}
	if (!ok)
		return err_set(e, 0, "payload: chunk %llu failed authentication",
		               (unsigned long long)no);
	r->released += len - AGE_TAG_LEN;
	r->off += len;
	r->index++;
	if (last && r->off < r->n)
		return err_set(
		    e, 0, "payload: %zu byte%s of trailing data after the final chunk %llu",
		    r->n - r->off, r->n - r->off == 1 ? "" : "s", (unsigned long long)no);
	return last ? 1 : 0;
}

int age_stream_open(const uint8_t file_key[AGE_FILE_KEY_LEN], const uint8_t *p, size_t n,
                    uint8_t *out, size_t *out_len, attest_age_failure *why, err **e)
{
	uint8_t key[AGE_KEY_LEN];
	*out_len = 0;
	*why = ATTEST_AGE_FAIL_HEADER;
	if (n < AGE_NONCE_LEN)
		return err_set(e, 0, "payload: nonce truncated (%zu of %d bytes)", n,
		               AGE_NONCE_LEN);
	if (payload_key(file_key, p, key, e) < 0)
		return -1;
	struct reader r = {.c = age_aead_new(key, false, e),
	                   .p = p + AGE_NONCE_LEN,
	                   .n = n - AGE_NONCE_LEN,
	                   .out = out};
	OPENSSL_cleanse(key, sizeof(key));
	if (!r.c)
		return -1;
	*why = ATTEST_AGE_FAIL_PAYLOAD;
	int rc;
	while ((rc = read_chunk(&r, e)) == 0)
		;
	EVP_CIPHER_CTX_free(r.c);
	*out_len = r.released;
	if (rc < 0)
		return -1;
	*why = ATTEST_AGE_OK;
	return 0;
}
