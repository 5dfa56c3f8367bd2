/* The keyed digest of a secret value (ATTESTATION.md, "Secrets"): what an attestation records
 * about a secret a task received, so that the node's operator (who holds the key and the
 * value) can show which version was used, and two results show whether they used the same
 * one, while nobody can test guesses of the value against it (proto/SKILLS.md, "Secrets"). */
#include <string.h>

#include "attest/age-internal.h"
#include "attest/attest.h"
#include "common/buf.h"
#include "common/util.h"

int attest_secret_digest(const uint8_t key[ATTEST_SECRET_KEY_LEN], const char *name,
                         const uint8_t *value, size_t len, char out[ATTEST_SECRET_DIGEST_LEN],
                         err **e)
{
	buf msg = BUF_INIT;
	buf_append(&msg, "aisp-secret-v1", sizeof("aisp-secret-v1")); /* with its NUL */
	buf_append(&msg, name, strlen(name) + 1);
	buf_append(&msg, value, len);
	uint8_t mac[AGE_KEY_LEN];
	int r = age_hmac(key, msg.data, msg.len, mac, e);
	memset(msg.data, 0, msg.cap);
	buf_deinit(&msg);
	if (r < 0)
		return err_prefix(e, "secret digest");
	memcpy(out, "hmac-sha256:", 12);
	hex_encode(mac, sizeof(mac), out + 12);
	return 0;
}
