/* agent-syscalls: runs one task in a warm sandbox and pauses between READY and the TASK frame
 * so that a tracer can attach (issue 17 item 3: count the syscalls of the warm path, from the
 * TASK frame to the last result frame). Used by tests/bench/agent-syscalls.sh; not a test.
 *
 *   agent-syscalls --runtime runc|runsc --lang L --code CODE [--function] [--args JSON]
 *                  [--flag RUNTIME_FLAG]... [--before CMD] [--after CMD]
 *
 * CMD runs through /bin/sh with AISP_SB_PID (the container's init on the host: the agent under
 * runc, the sandbox process under runsc) and AISP_SB_ID (the container id) in its environment;
 * --before runs once the sandbox is READY (and must return once the tracer is attached),
 * --after once the result is in. The result document goes to stdout. */
#include <event2/event.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/spawn.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "proto/json.h"
#include "proto/proto.h"
#include "sandbox/sandbox.h"

typedef struct trace_run {
	struct event_base *base;
	proto_task task;
	proto_limits lim;
	const char *before, *after;
	bool ready, done, failed;
	proto_result res;
} trace_run;

static int hook(const char *cmd, sandbox *sb)
{
	if (!cmd)
		return 0;
	char pid[32];
	snprintf(pid, sizeof(pid), "%d", sandbox_pid(sb));
	setenv("AISP_SB_PID", pid, 1);
	setenv("AISP_SB_ID", sandbox_id(sb), 1);
	return system(cmd);
}

static void on_done(sandbox *sb, const proto_output *o, const proto_usage *u, void *arg)
{
	trace_run *r = arg;
	hook(r->after, sb);
	r->res.output = *o;
	r->res.usage = *u;
	buf out = BUF_INIT;
	r->res.id = r->task.id;
	proto_result_to_json(&r->res, &out);
	printf("%s\n", buf_str(&out));
	buf_deinit(&out);
	r->res.id = NULL;
	proto_output_init(&r->res.output);
	r->done = true;
	event_base_loopbreak(r->base);
}

static void on_ready(sandbox *sb, const err *e, void *arg)
{
	trace_run *r = arg;
	r->ready = true;
	if (e) {
		fprintf(stderr, "agent-syscalls: %s\n", err_msg(e));
		r->failed = true;
		event_base_loopbreak(r->base);
		return;
	}
	if (hook(r->before, sb) != 0) {
		fprintf(stderr, "agent-syscalls: --before failed\n");
		r->failed = true;
		event_base_loopbreak(r->base);
		return;
	}
	err *e2 = NULL;
	if (sandbox_run(sb, &r->task, &r->lim, on_done, r, &e2) < 0) {
		fprintf(stderr, "agent-syscalls: %s\n", err_msg(e2));
		r->failed = true;
		event_base_loopbreak(r->base);
	}
}

static void on_gone(void *arg)
{
	*(bool *)arg = true;
}

static int usage(void)
{
	fprintf(stderr, "usage: agent-syscalls --runtime runc|runsc --lang L --code CODE "
	                "[--function] [--args JSON] [--flag F]... [--before CMD] [--after CMD]\n");
	return 2;
}

static char *task_json(const char *lang, const char *code, bool fn, const char *args)
{
	_cleanup_json_gen_ proto_gen *g = proto_json_gen_new();
	proto_json_gen_open(g, true);
	proto_json_gen_kstr(g, "id", "trace");
	proto_json_gen_kstr(g, "lang", lang);
	proto_json_gen_kstr(g, "mode", fn ? "function" : "script");
	proto_json_gen_kstr(g, "code", code);
	if (args) {
		proto_json_gen_str(g, "args");
		if (proto_json_gen_json(g, args, strlen(args), NULL) < 0)
			return NULL;
	}
	proto_json_gen_close(g, true);
	buf b = BUF_INIT;
	proto_json_gen_take_valid(g, &b);
	return buf_steal(&b, NULL);
}

int main(int argc, char **argv)
{
	const char *rt_name = "runc", *lang = "python", *code = NULL, *args = NULL;
	const char *flags[16] = {NULL};
	size_t nflags = 0;
	bool fn = false;
	trace_run r = {0};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--function")) {
			fn = true;
			continue;
		}
		if (!v)
			return usage();
		i++;
		if (!strcmp(a, "--runtime"))
			rt_name = v;
		else if (!strcmp(a, "--lang"))
			lang = v;
		else if (!strcmp(a, "--code"))
			code = v;
		else if (!strcmp(a, "--args"))
			args = v;
		else if (!strcmp(a, "--before"))
			r.before = v;
		else if (!strcmp(a, "--after"))
			r.after = v;
		else if (!strcmp(a, "--flag") && nflags < ARRAY_SIZE(flags) - 1)
			flags[nflags++] = v;
		else
			return usage();
	}
	if (!code)
		return usage();
	err *e = NULL;
	_cleanup_free_ char *json = task_json(lang, code, fn, args);
	proto_task_init(&r.task);
	if (!json || proto_task_parse(json, strlen(json), &r.task, NULL, &e) < 0) {
		fprintf(stderr, "agent-syscalls: task: %s\n", err_msg(e));
		return 2;
	}
	proto_limits_default(&r.lim);
	r.lim.timeout_ms = 60000;
	char state[] = "/tmp/aisp-trace.XXXXXX";
	if (!mkdtemp(state) || chmod(state, 0711) < 0)
		return perror("mkdtemp"), 1;
	r.base = event_base_new();
	sandbox_ctx *ctx = NULL;
	sandbox_runtime *rt = NULL;
	sandbox_image img = SANDBOX_IMAGE_INIT;
	_cleanup_free_ char *agent = sandbox_agent_default_path();
	sandbox_ctx_opts co = {.state_dir = state, .agent_path = agent, .id_prefix = "aisp-trace-"};
	sandbox_runtime_opts ro = {
	    .name = rt_name, .kind = sandbox_runtime_kind_for(rt_name), .extra_flags = flags};
	const char *store = getenv("AISP_IMAGE_STORE");
	if (spawn_loop_init(r.base, &e) < 0 || sandbox_ctx_new(&ctx, r.base, &co, &e) < 0 ||
	    sandbox_runtime_new(&rt, &ro, state, &e) < 0 ||
	    sandbox_image_resolve(store ? store : SANDBOX_IMAGE_STORE_DEFAULT, "default", &img,
	                          &e) < 0) {
		fprintf(stderr, "agent-syscalls: %s\n", err_msg(e));
		return 1;
	}
	sandbox_spec spec = {.rt = rt, .rootfs = img.rootfs, .image_digest = img.digest};
	proto_lang_parse(lang, &spec.lang);
	sandbox_spec_set_limits(&spec, &r.lim);
	sandbox *sb = NULL;
	if (sandbox_create(ctx, &spec, on_ready, &r, &sb, &e) < 0) {
		fprintf(stderr, "agent-syscalls: %s\n", err_msg(e));
		return 1;
	}
	while (!r.done && !r.failed)
		event_base_dispatch(r.base);
	bool gone = false;
	sandbox_destroy(sb, on_gone, &gone);
	while (!gone)
		event_base_loop(r.base, EVLOOP_ONCE);
	sandbox_image_deinit(&img);
	sandbox_runtime_free(rt);
	sandbox_ctx_free(ctx);
	proto_task_deinit(&r.task);
	rm_rf_at(AT_FDCWD, state, NULL);
	return r.done ? 0 : 1;
}
