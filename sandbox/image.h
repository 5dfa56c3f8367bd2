/* The image store (images/README.md): one read-only rootfs per manifest digest, and a
 * name -> digest index.
 *   <store>/oci/                     an OCI image layout holding every image (tag = name)
 *   <store>/rootfs/<hex>/rootfs/     the unpacked rootfs of manifest sha256:<hex>
 *   <store>/names/<name>             "sha256:<hex>\n"
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

#define SANDBOX_IMAGE_STORE_DEFAULT "/var/lib/aisp/images"
#define SANDBOX_IMAGE_INIT                                                                         \
	{                                                                                          \
		NULL, NULL, NULL                                                                   \
	}

typedef struct sandbox_image {
	char *name;   /* may be NULL when resolved by digest with no name */
	char *digest; /* "sha256:<64 hex>" */
	char *rootfs; /* absolute path of the unpacked rootfs */
} sandbox_image;

/* Resolves a name or "sha256:<hex>" to an unpacked rootfs in the store. Fails with "image X
 * is not in the store at S" when it is missing. Names are read through a directory fd with
 * O_NOFOLLOW. Returns 0 and fills *out (owned; release with sandbox_image_deinit()), or -1. */
int sandbox_image_resolve(const char *store, const char *name_or_digest, sandbox_image *out,
                          err **e);
void sandbox_image_deinit(sandbox_image *img);

/* Image names: [a-z0-9][a-z0-9._-]{0,63}. */
bool sandbox_image_name_valid(const char *name);
/* Manifest digests: "sha256:" and 64 lower-case hex digits. */
bool sandbox_image_digest_valid(const char *digest);
