/* Helpers shared by the proto/ sources; not part of the module's API. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "proto/proto.h"

/* proto_utf8_seq() and proto_utf8_valid() are in proto.h. */

#include <yajl/yajl_tree.h>
/* proto_json_parse(), but when the only fault is a duplicate key or a U+0000 in a string,
 * returns -2 with the tree in *out anyway (so that a rejected task's id can still be read). */
int proto_json_parse_ex(const char *text, size_t len, yajl_val *out, bool keep_soft, err **e);
