/* The image store (images/README.md): one read-only rootfs per manifest digest, and a
 * name -> digest index.
 *   <store>/oci/                     an OCI image layout holding every image (tag = name)
 *   <store>/rootfs/<hex>/rootfs/     the unpacked rootfs of manifest sha256:<hex>
 *   <store>/names/<name>             "sha256:<hex>\n"
 */
#pragma once

#include "common/err.h"

#define SANDBOX_IMAGE_STORE_DEFAULT "/var/lib/aisp/images"

typedef struct sandbox_image {
	char *name;   /* may be NULL when resolved by digest with no name */
	char *digest; /* "sha256:<64 hex>" */
	char *rootfs; /* absolute path of the unpacked rootfs */
} sandbox_image;

/* Resolves a name or "sha256:<hex>" to an unpacked rootfs in the store. Fails with "image X
 * is not in the store at S" when it is missing. */
int sandbox_image_resolve(const char *store, const char *name_or_digest, sandbox_image *out,
			  err **e);
void sandbox_image_deinit(sandbox_image *img);
