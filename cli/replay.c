/* Replaying a result's task (see replay.h). The expected parts come from the signed statement
 * (the verifier has already checked the signature and that the result matches it), read with
 * attest_claims_read(), which also refuses limits that disagree with the environment: a
 * replay runs under the limits that were signed, and names a mismatch instead of running. */
#include "cli/replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/local.h"
#include "common/cleanup.h"
#include "common/xalloc.h"

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
static char *env_diff(const attest_claims *c, const proto_env *local, size_t n)
{
	buf d = BUF_INIT;
	for (size_t i = 0; i < c->n_env; i++) {
		const char *k = c->env[i].name, *v = c->env[i].value, *mine = NULL;
		for (size_t j = 0; j < n && !mine; j++)
			if (!strcmp(local[j].name, k))
				mine = local[j].value;
		if (!mine || strcmp(mine, v))
			buf_appendf(&d, "%s%s (claimed \"%s\", here \"%s\")", d.len ? ", " : "", k,
			            v, mine ? mine : "absent");
	}
	for (size_t j = 0; j < n; j++) {
		bool claimed = false;
		for (size_t i = 0; i < c->n_env && !claimed; i++)
			claimed = !strcmp(local[j].name, c->env[i].name);
		if (!claimed)
			buf_appendf(&d, "%s%s (not claimed, here \"%s\")", d.len ? ", " : "",
			            local[j].name, local[j].value);
	}
	return buf_steal(&d, NULL);
}

typedef struct replay_ctx {
	const proto_task *t;
	const attest_claims *c;
	const proto_result *r;
	const cli_local_result *lr;
	attest_check_fn check;
	void *ud;
} replay_ctx;

static void compare_output(const replay_ctx *x, bool *differs)
{
	const attest_claims *c = x->c;
	*differs = strcmp(c->output_digest, x->lr->digests.output) != 0;
	if (!*differs)
		return x->check(x->ud, "replay.output", ATTEST_PASS, NULL);
	_cleanup_free_ char *od = output_diff(&x->r->output, &x->lr->out);
	_cleanup_free_ char *m =
	    xasprintf("output differs: %s%s", od,
	              c->nondeterministic ? " (the task declared itself nondeterministic)" : "");
	x->check(x->ud, "replay.output", c->nondeterministic ? ATTEST_EXPECTED : ATTEST_FAIL, m);
}

/* Reports one deterministic part: PASS when equal, else FAIL with the message. */
static bool same(const replay_ctx *x, const char *name, bool eq, const char *msg)
{
	x->check(x->ud, name, eq ? ATTEST_PASS : ATTEST_FAIL, eq ? NULL : msg);
	return eq;
}

/* Input, exit and environment must match even for a nondeterministic task; the output (and so
 * the execution digest) may then differ. */
static void compare(const replay_ctx *x)
{
	const attest_claims *c = x->c;
	const cli_local_result *lr = x->lr;
	bool ok = same(x, "replay.input", !strcmp(c->input_digest, lr->digests.input),
	               "the task given is not the task that was attested");
	bool out_differs;
	compare_output(x, &out_differs);
	const char *st = proto_status_name(lr->out.status);
	_cleanup_free_ char *xm = xasprintf(
	    "exit differs: claimed %s/%lld/%lld, here %s/%d/%d (status/exit code/signal, -1: none)",
	    c->status, (long long)c->exit_code, (long long)c->signal, st, lr->out.exit_code,
	    lr->out.signal);
	bool exit_eq = !strcmp(c->status, st) && c->exit_code == lr->out.exit_code &&
	               c->signal == lr->out.signal;
	if (!exit_eq && x->t->n_services) { /* proto/PROTOCOL.md, "The credential proxy" */
		_cleanup_free_ char *why =
		    xasprintf("%s: the task may call the credential proxy, whose responses are not "
		              "recorded (a replay's calls fail)",
		              xm);
		x->check(x->ud, "replay.exit", ATTEST_EXPECTED, why);
	} else {
		ok &= same(x, "replay.exit", exit_eq, xm);
	}
	bool env_eq = !strcmp(c->environment_digest, lr->digests.environment);
	_cleanup_free_ char *ed = env_eq ? NULL : env_diff(c, lr->env, lr->n_env);
	_cleanup_free_ char *edm = xasprintf("environment differs: %s", ed ? ed : "");
	ok &= same(x, "replay.environment", env_eq, edm);
	bool exec_eq = !strcmp(c->execution_digest, lr->digests.execution);
	_cleanup_free_ char *m = xasprintf("execution digest differs (claimed %s, here %s)",
	                                   c->execution_digest, lr->digests.execution);
	if (!exec_eq && ok && out_differs && c->nondeterministic) {
		_cleanup_free_ char *why = xasprintf(
		    "%s: only the output differs, as the task declared (nondeterministic)", m);
		x->check(x->ud, "replay.execution", ATTEST_EXPECTED, why);
		return;
	}
	same(x, "replay.execution", exec_eq, m);
}

static void replay_run(const proto_task *task, const proto_result *r, const attest_claims *c,
                       const char *store, attest_check_fn check, void *ud)
{
	err *e = NULL;
	cli_local_opts lo = {.runtime = c->runtime, .image = c->image_digest, .store = store};
	cli_local_result lr;
	if (cli_local_run(&lo, task, &c->limits, &lr, &e) < 0) {
		_cleanup_free_ char *m = xasprintf("could not re-execute here: %s", err_msg(e));
		check(ud, "replay", ATTEST_ERROR, m);
	} else {
		check(ud, "replay", ATTEST_PASS, NULL);
		replay_ctx x = {.t = task, .c = c, .r = r, .lr = &lr, .check = check, .ud = ud};
		compare(&x);
	}
	cli_local_result_deinit(&lr);
	err_free(e);
}

void cli_replay(const proto_task *task, const proto_result *r, const char *store,
                attest_check_fn check, void *ud)
{
	attest_claims c;
	_cleanup_err_ err *e = NULL;
	if (proto_task_sealed_pending(task))
		return check(
		    ud, "replay", ATTEST_FAIL,
		    "the task's parts are sealed: a replay needs them in the clear (the buyer "
		    "checks a sealed result with aisp unseal --verify --input PLAIN.json)");
	if (task->n_steps)
		return cli_replay_chain(task, r, store, check, ud);
	if (!r->attestation)
		return check(ud, "replay", ATTEST_FAIL, "the result has no attestation");
	if (attest_claims_read(r->attestation, &c, &e) < 0)
		return check(ud, "replay", ATTEST_FAIL, err_msg(e));
	replay_run(task, r, &c, store, check, ud);
	attest_claims_deinit(&c);
}
