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

/* Formats thousandths as a decimal without trailing zeros: 1500 -> "1.5". Caller frees. */
char *proto_milli_str(int64_t milli);

#include <yajl/yajl_tree.h>
/* proto_json_parse(), but when the only fault is a duplicate key or a U+0000 in a string,
 * returns -2 with the tree in *out anyway (so that a rejected task's id can still be read). */
int proto_json_parse_ex(const char *text, size_t len, yajl_val *out, bool keep_soft, err **e);
