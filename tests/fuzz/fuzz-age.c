/* libFuzzer target for the age parsers in attest/ (age files arrive from anyone who can submit
 * a sealed task). The first input byte picks what the rest goes to:
 *   0  attest_age_decrypt with the test vectors' X25519 identity (armor detected), streamed
 *      prefix or all-or-nothing by bit 4 of the byte;
 *   1  the header parser: whatever parses re-encodes to exactly the bytes the MAC covers (the
 *      canonical-encoding claim the MAC check rests on), then the identity tries its stanzas;
 *   2  the payload reader under the vectors' file key ("YELLOW SUBMARINE"), so that mutations
 *      of real payloads get past the MAC;
 *   3  the armor decoder: what decodes, re-armored, decodes to the same bytes.
 * Failures must come with a message and a class and leave nothing allocated (ASan/LSan).
 * The seed corpus (tests/fuzz/corpus/age/) is the uncompressed vectors of attest/testdata/age
 * in each mode that fits them: NAME.dec (mode 0: the file), NAME.hdr (1: the binary file),
 * NAME.str (2: the bytes after the MAC line), NAME.arm (3: the armored file). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attest/age-internal.h"
#include "attest/attest.h"
#include "common/buf.h"
#include "common/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char vector_identity[] =
    "AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0";
static const uint8_t vector_file_key[AGE_FILE_KEY_LEN] = "YELLOW SUBMARINE";

static attest_age_identity *fixed_identity(void)
{
	static attest_age_identity *id;
	if (!id && attest_age_identity_parse(&id, vector_identity, NULL) < 0)
		abort();
	return id;
}

/* An error iff a failure class; the public function's messages start with "age: ", the
 * internal ones' with the part that failed. */
static void check_error(int r, err *e, attest_age_failure why)
{
	static const char *const parts[] = {"age: ", "header",
	                                    "payload: ", "armor: ", "no identity "};
	bool named = false;
	if ((r < 0) != (e != NULL) || (r < 0) != (why != ATTEST_AGE_OK))
		abort();
	for (size_t i = 0; e && i < sizeof(parts) / sizeof(parts[0]); i++)
		named |= strncmp(err_msg(e), parts[i], strlen(parts[i])) == 0;
	if (e && !named)
		abort();
	err_free(e);
}

static void fuzz_decrypt(const uint8_t *p, size_t n, bool prefix)
{
	attest_age_identity *id = fixed_identity();
	attest_age_decrypt_opts o = {.max_size = 1u << 20, .release_prefix = prefix};
	uint8_t *out = NULL;
	size_t len = 0;
	attest_age_failure why = ATTEST_AGE_OK;
	err *e = NULL;
	int r = attest_age_decrypt(p, n, &id, 1, &o, &out, &len, &why, &e);
	if ((r < 0 && !prefix && out) || len > n || (r == 0 && out[len] != '\0'))
		abort(); /* all or nothing unless asked; plaintext NUL-terminated */
	if (r < 0 && why != ATTEST_AGE_FAIL_PAYLOAD && len)
		abort(); /* only a payload failure can have released anything */
	check_error(r, e, why);
	free(out);
}

static void fuzz_header(const uint8_t *p, size_t n)
{
	age_header h;
	err *e = NULL;
	if (age_header_parse(p, n, &h, &e) < 0) {
		check_error(-1, e, ATTEST_AGE_FAIL_HEADER);
		return;
	}
	buf b = BUF_INIT;
	age_header_marshal(&h, &b);
	if (b.len != h.mac_input_len || memcmp(b.data, p, b.len) != 0 ||
	    h.len != h.mac_input_len + 2 + 43 || h.len > n || h.n == 0 ||
	    h.n > ATTEST_AGE_STANZA_MAX)
		abort();
	buf_deinit(&b);
	attest_age_identity *id = fixed_identity();
	uint8_t file_key[AGE_FILE_KEY_LEN];
	attest_age_failure why = ATTEST_AGE_OK;
	int r = age_header_unwrap(&h, &id, 1, file_key, &why, &e);
	if (r == 0)
		why = ATTEST_AGE_OK;
	check_error(r, e, why);
	age_header_deinit(&h);
}

static void fuzz_stream(const uint8_t *p, size_t n)
{
	uint8_t *out = malloc(n + 1);
	size_t len = 0;
	attest_age_failure why = ATTEST_AGE_OK;
	err *e = NULL;
	int r = age_stream_open(vector_file_key, p, n, out, &len, &why, &e);
	if (len > n || (r == 0 && why != ATTEST_AGE_OK))
		abort();
	if (r == 0 &&
	    len + AGE_NONCE_LEN + AGE_TAG_LEN * (len ? (len + AGE_CHUNK - 1) / AGE_CHUNK : 1) != n)
		abort(); /* a complete payload is exactly its chunks */
	check_error(r, e, r < 0 ? why : ATTEST_AGE_OK);
	free(out);
}

static void fuzz_armor(const uint8_t *p, size_t n)
{
	buf dec = BUF_INIT, arm = BUF_INIT, again = BUF_INIT;
	err *e = NULL;
	if (age_armor_decode(p, n, &dec, &e) < 0) {
		check_error(-1, e, ATTEST_AGE_FAIL_ARMOR);
	} else {
		age_armor_encode(dec.data, dec.len, &arm);
		if (!age_armor_detect(arm.data, arm.len) ||
		    age_armor_decode(arm.data, arm.len, &again, NULL) < 0 || again.len != dec.len ||
		    (dec.len && memcmp(again.data, dec.data, dec.len) != 0))
			abort();
	}
	buf_deinit(&dec);
	buf_deinit(&arm);
	buf_deinit(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	switch (data[0] & 3) {
	case 0:
		fuzz_decrypt(p, n, data[0] & 0x10);
		break;
	case 1:
		fuzz_header(p, n);
		break;
	case 2:
		fuzz_stream(p, n);
		break;
	default:
		fuzz_armor(p, n);
	}
	return 0;
}
