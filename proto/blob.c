/* Blob ids, keys and checks (proto/SKILLS.md, "Blobs"): a blob is named by the SHA-256 of its
 * bytes, so any reader can check what it got, whoever wrote the key. */
#include <string.h>

#include <openssl/evp.h>

#include "common/util.h"
#include "common/xalloc.h"
#include "proto/proto.h"

#define BLOB_PREFIX "sha256:"
#define BLOB_HEX    64

bool proto_blob_id_valid(const char *id)
{
	if (!id || strncmp(id, BLOB_PREFIX, strlen(BLOB_PREFIX)) != 0)
		return false;
	const char *hex = id + strlen(BLOB_PREFIX);
	for (size_t i = 0; i < BLOB_HEX; i++)
		if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
			return false;
	return hex[BLOB_HEX] == '\0';
}

void proto_blob_id_of(const void *p, size_t n, char out[PROTO_BLOB_ID_LEN + 1])
{
	uint8_t md[32];
	unsigned int mdlen = 0;
	EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL);
	memcpy(out, BLOB_PREFIX, strlen(BLOB_PREFIX));
	hex_encode(md, sizeof(md), out + strlen(BLOB_PREFIX));
}

char *proto_blob_key(const char *id)
{
	return xasprintf("%s%s", PROTO_KEY_BLOB_PREFIX, id);
}

int proto_blob_check(const char *id, const void *data, size_t n, err **e)
{
	if (!proto_blob_id_valid(id))
		return err_set(e, 0,
		               "blob \"%.80s\": not a blob id (expected sha256: and 64 lower-case "
		               "hex digits)",
		               id ? id : "");
	if (n > PROTO_BLOB_MAX)
		return err_set(e, 0, "blob %s: %zu bytes, over the cap of %u", id, n,
		               PROTO_BLOB_MAX);
	char got[PROTO_BLOB_ID_LEN + 1];
	proto_blob_id_of(data, n, got);
	if (strcmp(got, id) != 0)
		return err_set(e, 0, "blob %s: the bytes do not match the digest (they hash to %s)",
		               id, got);
	return 0;
}
