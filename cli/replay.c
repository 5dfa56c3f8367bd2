/* Replaying a result's task (see replay.h). The expected parts come from the signed statement
 * (the verifier has already checked the signature and that the result matches it). */
#include "cli/replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/local.h"
#include "common/cleanup.h"
#include "common/xalloc.h"
#include "proto/json.h"
#include "sandbox/sandbox.h"

typedef struct claimed {
	yajl_val stmt; /* owned */
	const char *runtime, *image, *input, *output, *environment, *execution, *status;
	int64_t exit_code, signal;
	bool nondeterministic;
	proto_limits limits;
	yajl_val env; /* array of {key, value} */
} claimed;

static const char *str_at(yajl_val obj, const char *k)
{
	yajl_val v = proto_json_get(obj, k);
	return v && YAJL_IS_STRING(v) ? v->u.string : "";
}

static int64_t int_at(yajl_val obj, const char *k)
{
	yajl_val v = proto_json_get(obj, k);
	return v && YAJL_IS_INTEGER(v) ? v->u.number.i : 0;
}

static int load_claimed(const proto_result *r, claimed *c, err **e)
{
	if (!r->attestation)
		return err_set(e, 0, "the result has no attestation");
	_cleanup_(yajl_tree_freep) yajl_val env = NULL;
	if (proto_json_parse(r->attestation, strlen(r->attestation), &env, e) < 0)
		return err_prefix(e, "envelope");
	const char *payload = str_at(env, "payload");
	_cleanup_free_ uint8_t *raw = NULL;
	size_t len = 0;
	if (proto_b64_decode(payload, strlen(payload), &raw, &len) < 0)
		return err_set(e, 0, "envelope payload is not base64");
	if (proto_json_parse((const char *)raw, len, &c->stmt, e) < 0)
		return err_prefix(e, "statement");
	yajl_val p = proto_json_get(c->stmt, "predicate");
	yajl_val res = proto_json_get(p, "result");
	yajl_val lim = proto_json_get(p, "limits");
	c->runtime = str_at(p, "runtime");
	c->image = str_at(p, "image_digest");
	c->input = str_at(p, "input_digest");
	c->environment = str_at(p, "environment_digest");
	c->execution = str_at(p, "execution_digest");
	c->output = str_at(res, "output_digest");
	c->status = str_at(res, "status");
	c->exit_code = int_at(res, "exit_code");
	c->signal = int_at(res, "signal");
	yajl_val nd = proto_json_get(p, "nondeterministic");
	c->nondeterministic = nd && YAJL_IS_TRUE(nd);
	c->env = proto_json_get(p, "environment");
	for (size_t i = 0; i < PROTO_LIMIT_COUNT; i++)
		*proto_limit_at(&c->limits, &proto_limit_fields[i]) =
		    int_at(lim, proto_limit_fields[i].field);
	if (!*c->runtime || !*c->image || !c->env || !YAJL_IS_ARRAY(c->env))
		return err_set(e, 0, "the statement lacks runtime, image or environment");
	return 0;
}

/* Which parts of the output differ, e.g. "stdout, files". */
static char *output_diff(const proto_output *a, const proto_output *b)
{
	buf d = BUF_INIT;
	if (a->out.len != b->out.len || memcmp(buf_str(&a->out), buf_str(&b->out), a->out.len))
		buf_append_str(&d, "stdout, ");
	if (a->err.len != b->err.len || memcmp(buf_str(&a->err), buf_str(&b->err), a->err.len))
		buf_append_str(&d, "stderr, ");
	bool files = a->n_files != b->n_files;
	for (size_t i = 0; !files && i < a->n_files; i++)
		files = strcmp(a->files[i].path, b->files[i].path) ||
		        a->files[i].len != b->files[i].len ||
		        memcmp(a->files[i].data, b->files[i].data, a->files[i].len);
	if (files)
		buf_append_str(&d, "files, ");
	if (!a->return_value != !b->return_value ||
	    (a->return_value && strcmp(a->return_value, b->return_value)))
		buf_append_str(&d, "return value, ");
	if (a->stdout_truncated != b->stdout_truncated ||
	    a->stderr_truncated != b->stderr_truncated || a->files_truncated != b->files_truncated)
		buf_append_str(&d, "truncation flags, ");
	if (d.len >= 2)
		d.data[d.len -= 2] = 0;
	return buf_steal(&d, NULL);
}

/* The environment keys whose values differ between the claim and the local run. */
static char *env_diff(yajl_val claimed_env, const proto_env *local, size_t n)
{
	buf d = BUF_INIT;
	for (size_t i = 0; i < claimed_env->u.array.len; i++) {
		yajl_val kv = claimed_env->u.array.values[i];
		const char *k = str_at(kv, "key"), *v = str_at(kv, "value");
		const char *mine = NULL;
		for (size_t j = 0; j < n && !mine; j++)
			if (!strcmp(local[j].name, k))
				mine = local[j].value;
		if (!mine || strcmp(mine, v))
			buf_appendf(&d, "%s%s (claimed \"%s\", here \"%s\")", d.len ? ", " : "", k,
			            v, mine ? mine : "absent");
	}
	return buf_steal(&d, NULL);
}

static void compare(const claimed *c, const proto_result *r, const cli_local_result *lr,
                    attest_check_fn check, void *ud)
{
	bool ok = !strcmp(c->input, lr->digests.input);
	check(ud, "replay.input", ok, ok ? "" : "the task given is not the task that was attested");
	ok = !strcmp(c->output, lr->digests.output);
	_cleanup_free_ char *od = ok ? NULL : output_diff(&r->output, &lr->out);
	_cleanup_free_ char *odm = ok ? NULL : xasprintf("output differs: %s", od);
	check(ud, "replay.output", ok, ok ? "" : odm);
	const char *st = proto_status_name(lr->out.status);
	int64_t code = lr->out.exit_code < 0 ? 0 : lr->out.exit_code;
	ok = !strcmp(c->status, st) && c->exit_code == code && c->signal == lr->out.signal;
	_cleanup_free_ char *xm = xasprintf(
	    "exit differs: claimed %s/%lld/%lld, here %s/%lld/%d", c->status,
	    (long long)c->exit_code, (long long)c->signal, st, (long long)code, lr->out.signal);
	check(ud, "replay.exit", ok, ok ? "" : xm);
	ok = !strcmp(c->environment, lr->digests.environment);
	_cleanup_free_ char *ed = ok ? NULL : env_diff(c->env, lr->env, lr->n_env);
	_cleanup_free_ char *edm = ok ? NULL : xasprintf("environment differs: %s", ed);
	check(ud, "replay.environment", ok, ok ? "" : edm);
	ok = !strcmp(c->execution, lr->digests.execution);
	_cleanup_free_ char *m = xasprintf("execution digest differs (claimed %s, here %s)%s",
	                                   c->execution, lr->digests.execution,
	                                   c->nondeterministic ? "; the task declared itself "
	                                                         "nondeterministic"
	                                                       : "");
	check(ud, "replay.execution", ok, ok ? "" : m);
}

static void replay_run(const proto_task *task, const proto_result *r, const claimed *c,
                       const char *store, attest_check_fn check, void *ud)
{
	err *e = NULL;
	cli_local_opts lo = {.runtime = c->runtime, .image = c->image, .store = store};
	cli_local_result lr;
	if (cli_local_run(&lo, task, &c->limits, &lr, &e) < 0) {
		_cleanup_free_ char *m = xasprintf("could not re-execute: %s", err_msg(e));
		check(ud, "replay", false, m);
	} else {
		_cleanup_free_ char *m = xasprintf("re-executed on %s in %s", c->runtime, c->image);
		check(ud, "replay", true, m);
		compare(c, r, &lr, check, ud);
	}
	cli_local_result_deinit(&lr);
	err_free(e);
}

void cli_replay(const proto_task *task, const proto_result *r, const char *store,
                attest_check_fn check, void *ud)
{
	claimed c = {0};
	err *e = NULL;
	if (!task)
		check(ud, "replay", false, "--replay needs the task: --task TASK.json");
	else if (load_claimed(r, &c, &e) < 0)
		check(ud, "replay", false, err_msg(e));
	else
		replay_run(task, r, &c, store, check, ud);
	err_free(e);
	yajl_tree_free(c.stmt);
}
