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

#include <yajl/yajl_tree.h>

#include "common/buf.h"
#include "common/cleanup.h"
#include "common/err.h"
#include "proto/caps.h"

/* Values and keys in one document (a task's args are at most 64 KiB of JSON): bounds the
 * memory of the tree, tens of bytes per value, before anything is built. */
#define PROTO_JSON_MAX_VALUES 100000u

DEFINE_CLEANUP_FUNC(yajl_val, yajl_tree_free)
#define _cleanup_yajl_val_ _cleanup_(yajl_tree_freep)

/* ---- Generation ----
 * One generator for every module, with one policy: compact output, "/" not escaped, every
 * string checked as UTF-8 (a string that is not is a failure, never an invalid document: text
 * that may not be UTF-8 goes through proto_json_gen_text()), and the first failure remembered
 * so generation code stays linear. proto_json_gen_take() reports that failure, or a container
 * left open, and then hands out nothing. */
typedef struct proto_gen proto_gen;

/* Never NULL (aborts on allocation failure). */
proto_gen *proto_json_gen_new(void);
void proto_json_gen_free(proto_gen *g);
DEFINE_CLEANUP_FUNC(proto_gen *, proto_json_gen_free)
#define _cleanup_json_gen_ _cleanup_(proto_json_gen_freep)

void proto_json_gen_strn(proto_gen *g, const char *s, size_t n);
void proto_json_gen_str(proto_gen *g, const char *s); /* NUL-terminated; NULL emits "" */
/* Emits bytes that may not be valid UTF-8 (messages that quote a program's output, paths from
 * a sandbox) as a string: invalid sequences and NUL bytes become U+FFFD, so the document
 * stays valid and parseable by proto_json_parse(). */
void proto_json_gen_text(proto_gen *g, const char *s, size_t n);
void proto_json_gen_int(proto_gen *g, int64_t v);
void proto_json_gen_double(proto_gen *g, double v); /* not finite: a failure */
void proto_json_gen_bool(proto_gen *g, bool v);
void proto_json_gen_null(proto_gen *g);
/* Emits a number from its JSON text as is ("1.5"); the caller guarantees it is valid. */
void proto_json_gen_number(proto_gen *g, const char *text);
/* Opens or closes an object (map) or an array. */
void proto_json_gen_open(proto_gen *g, bool map);
void proto_json_gen_close(proto_gen *g, bool map);
/* A key and its value, for objects: "k": "v" / "k": 1 / "k": true / "k": ["a", "b"] (the
 * array from a NULL-terminated list). */
void proto_json_gen_kstr(proto_gen *g, const char *k, const char *v);
/* "k": "v", or "k": null when v is NULL. */
void proto_json_gen_kstr_or_null(proto_gen *g, const char *k, const char *v);
void proto_json_gen_kint(proto_gen *g, const char *k, int64_t v);
void proto_json_gen_kbool(proto_gen *g, const char *k, bool v);
void proto_json_gen_kstrs(proto_gen *g, const char *k, const char *const *v);
/* Emits a parsed tree (objects keep their key order, numbers their original text). */
void proto_json_gen_value(proto_gen *g, yajl_val v);
/* Parses JSON text and emits it as a value (for embedding a JSON document, e.g. an
 * attestation envelope). Returns 0, or -1 with *e (nothing emitted) when it is not JSON. */
int proto_json_gen_json(proto_gen *g, const char *text, size_t len, err **e);
/* Appends the generated text to out and resets the generator for reuse, wiping its own copy
 * (a document may hold the plaintext of a sealed part). Returns 0, or -1 with
 * *e ("generating JSON: a string is not valid UTF-8 ...") and nothing appended. */
__attribute__((warn_unused_result)) int proto_json_gen_take(proto_gen *g, buf *out, err **e);
/* For a document built only from text this process made valid (strings parsed by
 * proto_json_parse(), emitted by proto_json_gen_text(), base64, digests, fixed names): a
 * failure there is a bug in the caller, so it is reported on stderr and the process aborts,
 * instead of an invalid or empty document being handed on. */
void proto_json_gen_take_valid(proto_gen *g, buf *out);
/* The same as an owned NUL-terminated string (length in *len if len), or NULL with *e. */
__attribute__((warn_unused_result)) char *proto_json_gen_steal(proto_gen *g, size_t *len, err **e);

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
