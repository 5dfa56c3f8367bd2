/* Reading what a statement claims (ATTESTATION.md, "The Statement"): the environment list, the
 * limits and their agreement with the environment's limits.* pairs, and the claims a replay
 * re-executes under. Nothing here checks a signature: callers verify first. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest/attest.h"
#include "attest/internal.h"
#include "common/cleanup.h"
#include "common/xalloc.h"
#include "proto/json.h"

int attest_envelope_payload(const char *envelope_json, uint8_t **payload, size_t *len, err **e)
{
	_cleanup_yajl_val_ yajl_val env = NULL;
	if (proto_json_parse(envelope_json, strlen(envelope_json), &env, e) < 0)
		return err_prefix(e, "envelope");
	const char *p64 = proto_json_get_str(env, "payload");
	if (!p64 || proto_b64_decode(p64, strlen(p64), payload, len) < 0)
		return err_set(e, 0, "envelope has no base64 payload");
	return 0;
}

int attest_pred_env(yajl_val pred, proto_env **out, size_t *n, err **e)
{
	yajl_val arr = proto_json_get(pred, "environment");
	*out = NULL;
	*n = 0;
	if (!YAJL_IS_ARRAY(arr))
		return err_set(e, 0, "statement has no environment list");
	proto_env *pairs = xcalloc(arr->u.array.len + 1, sizeof(*pairs));
	for (size_t i = 0; i < arr->u.array.len; i++) {
		/* Borrowed from the tree; the encoder and the comparisons only read them. */
		pairs[i].name = (char *)proto_json_get_str(arr->u.array.values[i], "key");
		pairs[i].value = (char *)proto_json_get_str(arr->u.array.values[i], "value");
		if (!pairs[i].name || !pairs[i].value) {
			free(pairs);
			return err_set(e, 0, "environment entry %zu malformed", i);
		}
	}
	*out = pairs;
	*n = arr->u.array.len;
	return 0;
}

int attest_pred_limits(yajl_val pred, proto_limits *l, err **e)
{
	yajl_val obj = proto_json_get(pred, "limits");
	memset(l, 0, sizeof(*l));
	if (!YAJL_IS_OBJECT(obj))
		return err_set(e, 0, "statement has no limits object");
	for (size_t i = 0; i < obj->u.object.len; i++) {
		const char *k = obj->u.object.keys[i];
		const proto_limit_field *f = NULL;
		for (size_t j = 0; j < PROTO_LIMIT_COUNT && !f; j++)
			if (!strcmp(proto_limit_fields[j].field, k))
				f = &proto_limit_fields[j];
		yajl_val v = obj->u.object.values[i];
		if (!f)
			return err_set(e, 0, "predicate.limits has an unknown key \"%s\"", k);
		if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0)
			return err_set(e, 0, "predicate.limits.%s is not a non-negative integer",
			               k);
		*proto_limit_at(l, f) = YAJL_GET_INTEGER(v);
	}
	if (obj->u.object.len != PROTO_LIMIT_COUNT)
		return err_set(e, 0, "predicate.limits has %zu keys, expected the %d limits",
		               obj->u.object.len, PROTO_LIMIT_COUNT);
	return 0;
}

static const char *env_value(const proto_env *env, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(env[i].name, key))
			return env[i].value;
	return NULL;
}

int attest_limits_match(const proto_limits *l, const proto_env *env, size_t n, err **e)
{
	static const proto_limits zero;
	l = l ? l : &zero;
	bool any = false;
	for (size_t i = 0; i < n && !any; i++)
		any = !strncmp(env[i].name, "limits.", 7);
	buf why = BUF_INIT;
	for (size_t i = 0; i < PROTO_LIMIT_COUNT; i++) {
		const proto_limit_field *f = &proto_limit_fields[i];
		int64_t v = proto_limit_get(l, f);
		_cleanup_free_ char *key = xasprintf("limits.%s", f->field);
		_cleanup_free_ char *text = xasprintf("%" PRId64, v);
		const char *got = env_value(env, n, key);
		/* A result that never reached a sandbox (rejected) has no limits at all. */
		if ((!any && v == 0) || (got && !strcmp(got, text)))
			continue;
		buf_appendf(&why, "%s%s is %s in predicate.limits, %s in the environment",
		            why.len ? "; " : "", key, text, got ? got : "absent");
	}
	if (!why.len)
		return 0;
	err_set(e, 0, "%s", buf_str(&why));
	buf_deinit(&why);
	return -1;
}

void attest_claims_deinit(attest_claims *c)
{
	free(c->runtime);
	free(c->image_digest);
	free(c->input_digest);
	free(c->output_digest);
	free(c->environment_digest);
	free(c->execution_digest);
	free(c->status);
	proto_env_list_free(c->env, c->n_env);
	memset(c, 0, sizeof(*c));
}

static char *dup_str(yajl_val obj, const char *k)
{
	const char *s = proto_json_get_str(obj, k);
	return xstrdup(s ? s : "");
}

static void copy_env(attest_claims *c, const proto_env *env, size_t n)
{
	c->env = xcalloc(n + 1, sizeof(*c->env));
	for (size_t i = 0; i < n; i++)
		c->env[i] = (proto_env){xstrdup(env[i].name), xstrdup(env[i].value)};
	c->n_env = n;
}

static int claims_from(yajl_val p, attest_claims *c, err **e)
{
	yajl_val res = proto_json_get(p, "result");
	int64_t sig = 0;
	yajl_val code = proto_json_get(res, "exit_code");
	c->runtime = dup_str(p, "runtime");
	c->image_digest = dup_str(p, "image_digest");
	c->input_digest = dup_str(p, "input_digest");
	c->environment_digest = dup_str(p, "environment_digest");
	c->execution_digest = dup_str(p, "execution_digest");
	c->output_digest = dup_str(res, "output_digest");
	c->status = dup_str(res, "status");
	c->exit_code = YAJL_IS_INTEGER(code) ? YAJL_GET_INTEGER(code) : -1;
	proto_json_get_int(res, "signal", &sig);
	c->signal = sig;
	proto_json_get_bool(p, "nondeterministic", &c->nondeterministic);
	_cleanup_free_ proto_env *env = NULL;
	size_t n = 0;
	if (attest_pred_env(p, &env, &n, e) < 0 || attest_pred_limits(p, &c->limits, e) < 0)
		return -1;
	copy_env(c, env, n);
	if (attest_limits_match(&c->limits, env, n, e) < 0)
		return err_prefix(e, "the statement's limits disagree with its environment");
	if (!*c->runtime || !*c->image_digest)
		return err_set(e, 0,
		               "the statement names no runtime or image (the task never ran)");
	return 0;
}

int attest_claims_read(const char *envelope_json, attest_claims *c, err **e)
{
	memset(c, 0, sizeof(*c));
	_cleanup_free_ uint8_t *payload = NULL;
	size_t len = 0;
	_cleanup_yajl_val_ yajl_val st = NULL;
	if (attest_envelope_payload(envelope_json, &payload, &len, e) < 0)
		return -1;
	if (proto_json_parse((const char *)payload, len, &st, e) < 0)
		return err_prefix(e, "statement");
	if (claims_from(proto_json_get(st, "predicate"), c, e) < 0) {
		attest_claims_deinit(c);
		return -1;
	}
	return 0;
}
