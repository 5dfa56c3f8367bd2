/* JSON helpers over yajl, for every module: cleanup macros, a generator configured the house
 * way, a strict bounded parser that builds a yajl_tree, and typed getters.
 *
 * Parsing is stricter than yajl_tree_parse(): no comments, one value, UTF-8 validated, nesting
 * at most PROTO_JSON_MAX_DEPTH, at most PROTO_TASK_MAX_BYTES of text and PROTO_JSON_MAX_VALUES
 * values, duplicate keys in any object rejected, and strings containing U+0000 rejected (yajl_tree strings are C strings, so
 * such a string would be cut short silently). The result is an ordinary yajl_val tree: read it
 * with the YAJL_GET_* macros or the getters below, free it with yajl_tree_free(). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "common/buf.h"
#include "common/cleanup.h"
#include "common/err.h"
#include "proto/caps.h"

/* Values and keys in one document (a task's args are at most 64 KiB of JSON): bounds the
 * memory of the tree, tens of bytes per value, before anything is built. */
#define PROTO_JSON_MAX_VALUES 100000u

DEFINE_CLEANUP_FUNC(yajl_val, yajl_tree_free)
DEFINE_CLEANUP_FUNC(yajl_gen, yajl_gen_free)
#define _cleanup_yajl_val_ _cleanup_(yajl_tree_freep)
#define _cleanup_yajl_gen_ _cleanup_(yajl_gen_freep)

/* A generator: compact output, no UTF-8 validation (callers only hand it valid UTF-8), "/" not
 * escaped. Never NULL (aborts on allocation failure). Free with yajl_gen_free(). */
yajl_gen proto_json_gen_new(void);

/* Emitters; they ignore yajl's status (only misuse of the generator can fail, a bug). */
void proto_json_gen_strn(yajl_gen g, const char *s, size_t n);
void proto_json_gen_str(yajl_gen g, const char *s); /* NUL-terminated */
/* Emits bytes that may not be valid UTF-8 (messages that quote a program's output, paths from
 * a sandbox) as a string: invalid sequences and NUL bytes become U+FFFD, so the document
 * stays valid and parseable by proto_json_parse(). */
void proto_json_gen_text(yajl_gen g, const char *s, size_t n);
void proto_json_gen_int(yajl_gen g, int64_t v);
void proto_json_gen_bool(yajl_gen g, bool v);
void proto_json_gen_null(yajl_gen g);
/* A key and its value, for maps: "k": "v" / "k": 1 / "k": true / "k": ["a", "b"] (the array
 * from a NULL-terminated list). */
void proto_json_gen_kstr(yajl_gen g, const char *k, const char *v);
/* "k": "v", or "k": null when v is NULL. */
void proto_json_gen_kstr_or_null(yajl_gen g, const char *k, const char *v);
void proto_json_gen_kint(yajl_gen g, const char *k, int64_t v);
void proto_json_gen_kbool(yajl_gen g, const char *k, bool v);
void proto_json_gen_kstrs(yajl_gen g, const char *k, const char *const *v);
/* Emits a number from its JSON text as is ("1.5"); the caller guarantees it is valid. */
void proto_json_gen_number(yajl_gen g, const char *text);
/* Emits a parsed tree (objects keep their key order, numbers their original text). */
void proto_json_gen_value(yajl_gen g, yajl_val v);
/* Parses JSON text and emits it as a value (for embedding a JSON document, e.g. an
 * attestation envelope). Returns 0, or -1 with *e (nothing emitted) when it is not JSON. */
int proto_json_gen_json(yajl_gen g, const char *text, size_t len, err **e);
/* Appends the generated text to out and resets the generator (buffer and state) for reuse. */
void proto_json_gen_take(yajl_gen g, buf *out);

/* Parses len bytes of JSON text (no NUL terminator needed) into *out (owned by the caller:
 * yajl_tree_free()). Returns 0; -1 when the text is not JSON (the message is yajl's, e.g.
 * "parse error: premature EOF", without any prefix); -2 when it is JSON but outside our bounds
 * (the message is complete: "duplicate key \"x\"", "JSON nesting deeper than 32 levels",
 * "JSON text is N bytes, above the M-byte limit", "string contains U+0000 (\u0000)").
 * *out is NULL on error. Numbers keep their text in u.number.r; YAJL_IS_INTEGER only for
 * integer text within int64. */
int proto_json_parse(const char *text, size_t len, yajl_val *out, err **e);

/* The value of key in obj, or NULL when obj is not an object or has no such key. Borrowed. */
yajl_val proto_json_get(yajl_val obj, const char *key);
/* The string value of key, or NULL when missing or not a string. Borrowed. */
const char *proto_json_get_str(yajl_val obj, const char *key);
/* The integer value of key: 0, or -1 when missing or not an integer (out untouched). */
int proto_json_get_int(yajl_val obj, const char *key, int64_t *out);
/* The boolean value of key: 0, or -1 when missing or not true/false (out untouched). */
int proto_json_get_bool(yajl_val obj, const char *key, bool *out);
