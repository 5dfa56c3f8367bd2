/* Bech32 (BIP 173, without its 90-character limit, as age uses it) for age recipients
 * ("age1...") and identities ("AGE-SECRET-KEY-1..."). Small and not in OpenSSL, so written
 * here; checked against the BIP 173 examples and the age vectors in tests/unit/test-age.c. */
#include <string.h>

#include "attest/age-internal.h"
#include "common/buf.h"
#include "common/xalloc.h"

static const char charset[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

static uint32_t polymod_step(uint32_t chk, uint8_t v)
{
	static const uint32_t gen[5] = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3};
	uint32_t top = chk >> 25;
	chk = ((chk & 0x1ffffff) << 5) ^ v;
	for (int i = 0; i < 5; i++)
		if ((top >> i) & 1)
			chk ^= gen[i];
	return chk;
}

static char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* The checksum state after the expanded HRP (always over its lower-case form). */
static uint32_t polymod_hrp(const char *hrp, size_t n)
{
	uint32_t chk = 1;
	for (size_t i = 0; i < n; i++)
		chk = polymod_step(chk, (uint8_t)lower(hrp[i]) >> 5);
	chk = polymod_step(chk, 0);
	for (size_t i = 0; i < n; i++)
		chk = polymod_step(chk, (uint8_t)lower(hrp[i]) & 31);
	return chk;
}

char *attest_bech32_encode(const char *hrp, const uint8_t *data, size_t n, bool upper)
{
	size_t hrp_len = strlen(hrp);
	buf b = BUF_INIT;
	buf_reserve(&b, hrp_len + 1 + (n * 8 + 4) / 5 + 6);
	for (size_t i = 0; i < hrp_len; i++)
		buf_append(&b, &(char){lower(hrp[i])}, 1);
	buf_append(&b, "1", 1);
	uint32_t chk = polymod_hrp(hrp, hrp_len), acc = 0;
	unsigned bits = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n) {
			acc = (acc << 8) | data[i];
			bits += 8;
		} else if (bits) { /* pad the last group with zero bits */
			acc <<= 5 - bits;
			bits = 5;
		}
		while (bits >= 5) {
			bits -= 5;
			uint8_t v = (acc >> bits) & 31;
			chk = polymod_step(chk, v);
			buf_append(&b, &charset[v], 1);
		}
	}
	for (int i = 0; i < 6; i++)
		chk = polymod_step(chk, 0);
	chk ^= 1;
	for (int i = 0; i < 6; i++)
		buf_append(&b, &charset[(chk >> (5 * (5 - i))) & 31], 1);
	if (upper)
		for (size_t i = 0; i < b.len; i++)
			if (b.data[i] >= 'a' && b.data[i] <= 'z')
				b.data[i] = (uint8_t)(b.data[i] - 'a' + 'A');
	return buf_steal(&b, NULL);
}

/* Checks case and characters; returns the position of the separator (the last '1'). */
static int bech32_split(const char *s, size_t len, size_t *sep, err **e)
{
	bool has_lower = false, has_upper = false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < 33 || s[i] > 126)
			return err_set(e, 0, "character %zu is not printable ASCII", i + 1);
		has_lower |= s[i] >= 'a' && s[i] <= 'z';
		has_upper |= s[i] >= 'A' && s[i] <= 'Z';
	}
	if (has_lower && has_upper)
		return err_set(e, 0, "mixed upper and lower case");
	const char *one = memrchr(s, '1', len);
	if (!one || one == s || (size_t)(one - s) + 7 > len)
		return err_set(e, 0, "no separator '1' before a 6-character checksum");
	*sep = (size_t)(one - s);
	return 0;
}

int attest_bech32_decode(const char *s, char **hrp, uint8_t **data, size_t *n, err **e)
{
	size_t len = strnlen(s, ATTEST_BECH32_MAX + 1), sep = 0;
	if (len > ATTEST_BECH32_MAX)
		return err_set(e, 0, "longer than %d characters", ATTEST_BECH32_MAX);
	if (bech32_split(s, len, &sep, e) < 0)
		return -1;
	uint32_t chk = polymod_hrp(s, sep), acc = 0;
	unsigned bits = 0;
	size_t n_values = len - sep - 1, out_len = 0;
	uint8_t *out = xmalloc(n_values * 5 / 8 + 1);
	for (size_t i = 0; i < n_values; i++) {
		const char *c = strchr(charset, lower(s[sep + 1 + i]));
		if (!c || !*c) {
			free(out);
			return err_set(e, 0, "character '%c' is not in the bech32 alphabet",
			               s[sep + 1 + i]);
		}
		uint8_t v = (uint8_t)(c - charset);
		chk = polymod_step(chk, v);
		if (i >= n_values - 6)
			continue; /* the checksum itself carries no data */
		acc = ((acc << 5) | v) & 0xfff;
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			out[out_len++] = (uint8_t)(acc >> bits);
		}
	}
	const char *why = chk != 1                     ? "invalid checksum"
	                  : bits >= 5                  ? "too many padding bits"
	                  : (acc & ((1u << bits) - 1)) ? "non-zero padding bits"
	                                               : NULL;
	if (why) {
		free(out);
		return err_set(e, 0, "%s", why);
	}
	*hrp = xstrndup(s, sep);
	*data = out;
	*n = out_len;
	return 0;
}
