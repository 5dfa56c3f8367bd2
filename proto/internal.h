/* Helpers shared by the proto/ sources; not part of the module's API. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/err.h"
#include "proto/proto.h"

/* proto_utf8_seq() and proto_utf8_valid() are in proto.h. */
/* True when bytes of a result (stdout, stderr) go as text: valid UTF-8 without NUL; otherwise
 * they go as base64. */
static inline bool proto_bytes_are_text(const uint8_t *p, size_t n)
{
	return !memchr(p, 0, n) && proto_utf8_valid(p, n);
}

#include <yajl/yajl_tree.h>
/* proto_json_parse(), but when the only fault is a duplicate key or a U+0000 in a string,
 * returns -2 with the tree in *out anyway (so that a rejected task's id can still be read). */
int proto_json_parse_ex(const char *text, size_t len, yajl_val *out, bool keep_soft, err **e);

/* An exact decimal from JSON number text (digits, optional fraction and exponent; no sign)
 * scaled by 10^frac: 0 with *out; -1 when negative, zero, not a number or with more than frac
 * decimals; -2 when too large for int64. "1e0", "1.0" and "100e-2" are 1. */
int proto_number_scaled(const char *s, int frac, int64_t *out);

#include "proto/json.h"
/* A task from a tree parsed with proto_json_parse_ex(keep_soft) (rc its return value); the
 * body of proto_task_parse(), shared with proto_task_parse_entry(). */
int proto_task_parse_tree(yajl_val root, int rc, proto_task *t, proto_task_head *head, err **e);
/* The sealed and trust fields (proto/sealed.c): parsing, serialisation, and freeing (with the
 * plaintext of sealed parts wiped), called from task.c and proto.c. */
bool proto_task_ext_field(const char *key);
int proto_task_ext_parse(yajl_val root, proto_task *t, err **e);
void proto_task_ext_gen(proto_gen *g, const proto_task *t);
void proto_task_ext_deinit(proto_task *t);
/* Chains (chain.c): the "steps" and "input" fields of a task (root has "steps"), their
 * serialisation, a value as it sits in a document, and freeing steps. */
int proto_chain_parse(yajl_val root, proto_task *t, err **e);
/* The decrypted "steps_age" / "input_age" of a chain, as {"steps": ...} / {"input": ...}. */
int proto_chain_open_steps(yajl_val root, proto_task *t, err **e);
int proto_chain_open_input(yajl_val root, proto_task *t, err **e);
void proto_chain_steps_gen(proto_gen *g, const proto_task *t);
void proto_chain_gen(proto_gen *g, const proto_task *t);
void proto_value_gen(proto_gen *g, const proto_value *v);
/* A value from a parsed tree: a string, or a JSON value's compact text. */
void proto_value_from_tree(yajl_val v, proto_value *out);
void proto_steps_free(proto_step *s, size_t n);
/* The steps, output and failed_step of a chain's result, and a result's cost (chain-result.c). */
void proto_chain_run_gen(proto_gen *g, const proto_chain_run *c);
int proto_chain_run_parse(yajl_val root, proto_output *o, err **e);
void proto_cost_gen(proto_gen *g, const proto_cost *c);
int proto_cost_parse(yajl_val root, proto_cost **out, err **e);
/* A result's byte strings, "key": text or "key_b64": base64 (result.c). */
void proto_result_gen_bytes(proto_gen *g, const char *key, const buf *b);
int proto_result_get_bytes(yajl_val obj, const char *key, buf *out, err **e);
/* The skill and blob fields of a task (task-skill.c): parsing, serialisation, freeing. */
bool proto_task_skill_field(const char *key);
int proto_task_skill_parse(yajl_val root, proto_task *t, err **e);
void proto_task_skill_gen(proto_gen *g, const proto_task *t);
void proto_task_skill_deinit(proto_task *t);
/* The runtime fields of a result (task-skill.c): logs_preview, logs, output_blobs. */
void proto_output_skill_gen(proto_gen *g, const proto_output *o);
int proto_output_skill_parse(yajl_val root, proto_output *o, err **e);

/* The task's "services" and the result's "proxy" (proxy.c). */
int proto_services_parse(yajl_val root, proto_task *t, err **e);
void proto_proxy_audit_gen(proto_gen *g, const proto_proxy_audit *a);
int proto_proxy_audit_parse(yajl_val root, proto_proxy_audit **out, err **e);
