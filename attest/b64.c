/* Base64 for the DSSE envelope (RFC 4648 standard alphabet, padded), over OpenSSL's block
 * coder with the strictness it lacks. */
#include <string.h>

#include <openssl/evp.h>

#include "attest/internal.h"
#include "common/xalloc.h"

char *attest_b64_encode(const void *p, size_t n)
{
	char *out = xmalloc(4 * ((n + 2) / 3) + 1);
	int len = EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	out[len] = '\0';
	return out;
}

static bool b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

uint8_t *attest_b64_decode(const char *s, size_t *n)
{
	size_t len = strlen(s);
	if (len % 4 || len > (size_t)0x7ffffff0)
		return NULL;
	size_t pad = 0;
	if (len && s[len - 1] == '=')
		pad = (len >= 2 && s[len - 2] == '=') ? 2 : 1;
	for (size_t i = 0; i < len - pad; i++)
		if (!b64_char(s[i]))
			return NULL;
	uint8_t *out = xmalloc(len / 4 * 3 + 1);
	int got = EVP_DecodeBlock(out, (const unsigned char *)s, (int)len);
	if (got < 0 || (size_t)got < pad) {
		free(out);
		return NULL;
	}
	*n = (size_t)got - pad;
	out[*n] = '\0';
	return out;
}
