/* Helpers shared by the proto/ sources; not part of the module's API. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "proto/proto.h"

/* A client string quoted for an error message: "..." with control bytes, '"', '\\' and bytes
 * >= 0x80 that are not valid UTF-8 escaped, cut at 80 bytes with "...". Caller frees. */
char *proto_quote(const char *s, size_t n);

/* Length of the valid UTF-8 sequence at p (1..4; n > 0), or 0 when invalid. */
size_t proto_utf8_seq(const uint8_t *p, size_t n);
/* True when p[0..n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool proto_utf8_valid(const uint8_t *p, size_t n);

/* Standard base64 (RFC 4648 section 4, with padding, no line breaks). Caller frees. */
char *proto_b64_encode(const uint8_t *p, size_t n);
/* Strict decode: length a multiple of 4, only the alphabet, '=' only as 1-2 final padding
 * characters, unused bits zero. Returns 0 (*out owned by the caller, NUL-terminated for
 * convenience, *out_len the byte count) or -1. */
int proto_b64_decode(const char *s, size_t n, uint8_t **out, size_t *out_len);
/* The decoded size of n base64 characters (an upper bound for invalid input). */
size_t proto_b64_decoded_max(size_t n);

/* Formats thousandths as a decimal without trailing zeros: 1500 -> "1.5". Caller frees. */
char *proto_milli_str(int64_t milli);

#include <yajl/yajl_tree.h>
/* proto_json_parse(), but when the only fault is a duplicate key or a U+0000 in a string,
 * returns -2 with the tree in *out anyway (so that a rejected task's id can still be read). */
int proto_json_parse_ex(const char *text, size_t len, yajl_val *out, bool keep_soft, err **e);

/* The limits as they appear on the wire ("limits.<name>"), one table for parsing and
 * resolving. unit: internal units per wire unit; 0: a decimal with up to 3 places, stored in
 * thousandths (cpus, timeout_s). */
typedef struct proto_limit_field {
	size_t offset;
	const char *name;
	int64_t unit;
} proto_limit_field;

#define PROTO_LIMIT_FIELDS 9
extern const proto_limit_field proto_limit_fields[PROTO_LIMIT_FIELDS];

static inline int64_t *proto_limit_at(proto_limits *l, size_t offset)
{
	return (int64_t *)(void *)((char *)l + offset);
}
