/* The runtime commands for one sandbox: write its OCI bundle, `run --detach` it with the
 * agent's pipes as the container's stdin and stdout, read its init's pid, and `delete --force`
 * it. Each command's end is an event for the state machine (lifecycle.c). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/spawn.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "sandbox/bundle.h"
#include "sandbox/lifecycle.h"
#include "sandbox/runtime.h"

#define DELETE_TIMEOUT_MS 60000

static bool with_userns(const sandbox *sb)
{
	return sb->ctx->userns && sandbox_runtime_get_kind(sb->spec.rt) == SANDBOX_RT_RUNC;
}

static int write_config(sandbox *sb, err **e)
{
	sandbox_ctx *ctx = sb->ctx;
	_cleanup_close_ int dfd =
	    openat(ctx->bundles_fd, sb->id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return err_set(e, errno, "open bundle %s", sb->id);
	_cleanup_free_ char *agent = xasprintf("/.aisp/%s", SANDBOX_AGENT_NAME);
	const char *args[] = {agent,    "--lang", proto_lang_name(sb->spec.lang),
	                      "--user", "65534",  NULL};
	sandbox_cgroup_config cg;
	sandbox_cgroup_config_for(ctx->cg, sb->id,
	                          sb->spec.urgent ? SANDBOX_CGROUP_RUNNING : SANDBOX_CGROUP_WARMING,
	                          &cg);
	sandbox_runtime_kind kind = sandbox_runtime_get_kind(sb->spec.rt);
	_cleanup_free_ char *userns = sandbox_userns_path(sb);
	sandbox_bundle_spec b = {
	    .kind = kind,
	    .rootfs = sb->spec.rootfs,
	    .agent_dir = ctx->agent_dir,
	    .args = args,
	    .env = sandbox_base_env,
	    .cgroups_path = cg.path,
	    .cpus_milli = sb->spec.cpus_milli,
	    .memory_bytes = sb->spec.memory_bytes,
	    .pids = sb->spec.pids,
	    .nofile = 4096,
	    .cpu_shares = cg.cpu_shares,
	    .cpu_weight = cg.cpu_weight,
	    .workspace_bytes = sb->spec.workspace_bytes,
	    .userns = with_userns(sb),
	    .userns_base = SANDBOX_USERNS_BASE,
	    .userns_path = userns,
	};
	int r = sandbox_bundle_write(dfd, &b, e);
	sandbox_cgroup_config_deinit(&cg);
	return r;
}

static void on_spawned(const spawn_result *r, void *arg)
{
	sandbox *sb = arg;
	sb->spawning = false;
	sandbox_ctx_account(sb->ctx, sb->spec.rt, SANDBOX_CPU_CREATE, r->cpu_ns);
	sandbox_userns_close(sb); /* runc has joined it, or never will */
	if (r->status == 0) {
		sandbox_step_type(sb, SANDBOX_EV_SPAWNED);
		return;
	}
	_cleanup_free_ char *what = xasprintf("%s run", sandbox_runtime_name(sb->spec.rt));
	_cleanup_free_ char *why = sandbox_container_why(sb, what, r);
	sandbox_step(sb, &(sandbox_event){.type = SANDBOX_EV_SPAWN_FAILED, .why = why});
}

char *sandbox_container_why(sandbox *sb, const char *what, const spawn_result *r)
{
	free(sb->runtime_log);
	sb->runtime_log = r->err_len ? xstrndup(r->errout, SANDBOX_LOG_MAX) : NULL;
	_cleanup_free_ char *reason = sandbox_runtime_reason(r->errout);
	const char *sep = reason ? ": " : "";
	if (!reason)
		reason = xstrdup(" (nothing on stderr)");
	if (r->timed_out)
		return xasprintf("%s: timed out%s%s", what, sep, reason);
	if (r->status > 128)
		return xasprintf("%s: killed by signal %d%s%s", what, r->status - 128, sep, reason);
	return xasprintf("%s: exited %d%s%s", what, r->status, sep, reason);
}

static void close_pair(int p[2])
{
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
}

/* `run --detach`: the container's stdin reads in[0], its stdout writes out[1]. */
static int spawn_container(sandbox *sb, const int in[2], const int out[2], err **e)
{
	_cleanup_free_ char *bdir = xasprintf("%s/%s", sb->ctx->bundles_dir, sb->id);
	_cleanup_free_ char *pidf = xasprintf("%s/pid", bdir);
	const char *cmd[] = {"run", "--detach", "--bundle", bdir, "--pid-file", pidf, sb->id, NULL};
	_cleanup_free_ const char **argv = sandbox_runtime_argv(sb->spec.rt, cmd);
	spawn_opts o = SPAWN_OPTS_INIT;
	o.argv = argv;
	o.stdin_fd = in[0];
	o.stdout_fd = out[1];
	o.stderr_fd = SPAWN_CAPTURE; /* also the container's fd 2: the agent closes it at once */
	o.timeout_ms = SANDBOX_CREATE_TIMEOUT_MS;
	if (!sb->spec.urgent)
		sandbox_ctx_plumbing(sb->ctx, &o);
	return spawn_start(&o, on_spawned, sb, NULL, e);
}

static int start_container(sandbox *sb, err **e)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1};
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
		int saved = errno;
		close_pair(in);
		return err_set(e, saved, "pipe");
	}
	int r = spawn_container(sb, in, out, e);
	close(in[0]);
	close(out[1]);
	if (r < 0) {
		close(in[1]);
		close(out[0]);
		return -1;
	}
	sb->spawning = true;
	sandbox_io_start(sb, in[1], out[0]);
	return 0;
}

/* The config and `run --detach`; on failure the bundle goes. */
static int config_and_run(sandbox *sb, err **e)
{
	if (write_config(sb, e) < 0 || start_container(sb, e) < 0) {
		rm_rf_at(sb->ctx->bundles_fd, sb->id, NULL);
		return -1;
	}
	return 0;
}

int sandbox_container_start(sandbox *sb, err **e)
{
	if (with_userns(sb) && sandbox_ctx_reach(sb->ctx, sb->spec.rootfs, e) < 0)
		return -1;
	if (mkdirat(sb->ctx->bundles_fd, sb->id, 0700) < 0)
		return err_set(e, errno, "mkdir bundle %s", sb->id);
	if (!with_userns(sb))
		return config_and_run(sb, e);
	if (sandbox_userns_start(sb, e) < 0) {
		rm_rf_at(sb->ctx->bundles_fd, sb->id, NULL);
		return -1;
	}
	sb->spawning = true; /* the user namespace first, then `run` */
	return 0;
}

void sandbox_container_continue(sandbox *sb, err *e)
{
	if (!e && sb->state != SANDBOX_CREATING)
		err_set(&e, 0, "the sandbox was given up while its user namespace was made");
	if (!e && config_and_run(sb, &e) == 0)
		return; /* its end is the run's */
	sandbox_userns_close(sb);
	sb->spawning = false;
	sandbox_step(sb, &(sandbox_event){.type = SANDBOX_EV_SPAWN_FAILED, .why = err_msg(e)});
	err_free(e);
}

void sandbox_container_read_pid(sandbox *sb)
{
	char pidfile[160];
	snprintf(pidfile, sizeof(pidfile), "%s/pid", sb->id);
	buf b = BUF_INIT;
	if (read_file_at(sb->ctx->bundles_fd, pidfile, 64, &b, NULL) == 0)
		sb->init_pid = (pid_t)strtol(buf_str(&b), NULL, 10);
	buf_deinit(&b);
}

void sandbox_container_kill(sandbox *sb)
{
	if (sb->init_pid > 0)
		kill(sb->init_pid, SIGKILL);
}

static void on_deleted(const spawn_result *r, void *arg)
{
	sandbox *sb = arg;
	sandbox_ctx_account(sb->ctx, sb->spec.rt, SANDBOX_CPU_TEARDOWN, r->cpu_ns);
	sandbox_step_type(sb, SANDBOX_EV_DELETED);
}

void sandbox_container_delete(sandbox *sb)
{
	sandbox_container_kill(sb);
	const char *cmd[] = {"delete", "--force", sb->id, NULL};
	_cleanup_free_ const char **argv = sandbox_runtime_argv(sb->spec.rt, cmd);
	spawn_opts o = SPAWN_OPTS_INIT;
	o.argv = argv;
	o.stdout_fd = SPAWN_NULL;
	o.timeout_ms = DELETE_TIMEOUT_MS;
	sandbox_ctx_plumbing(sb->ctx, &o);
	if (spawn_start(&o, on_deleted, sb, NULL, NULL) < 0)
		sandbox_step_type(sb, SANDBOX_EV_DELETED);
}

void sandbox_container_cleanup(sandbox *sb)
{
	rm_rf_at(sb->ctx->bundles_fd, sb->id, NULL);
	sandbox_cgroup_remove(sb->ctx->cg, sb->id);
}
