/* The node's sandbox context: the state directory (bundles, the agent's read-only copy), the
 * user-namespace probe, and the cgroup backend detected at start.
 *
 * Modes never depend on the umask (a unit's UMask=0077, issue 15 item 2): every directory and
 * file made here is given its mode explicitly, and what a runc sandbox's user namespace must
 * reach by path as its root (host uid 100000, which owns nothing on the host) is made reachable
 * along its whole path: every image's rootfs, which runc mounts from inside the namespace (its
 * bind mounts, the agent's directory among them, runc 1.1 opens from the host). A directory on
 * that path that others may not search (a StateDirectoryMode=0700 parent) gets the search bit
 * for others (o+x), nothing more: traversable, not listable, as the state directory is. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "sandbox/lifecycle.h"

/* The runtime module at <agent dir>/runtime/ (the sandbox's /.aisp/runtime/), and the empty
 * mount points of the skills and blobs tmpfs trees (bundle.c). */
static int install_runtime(int dfd, err **e)
{
	const char *const dirs[] = {"runtime", "skills", "blobs"};
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
		if ((mkdirat(dfd, dirs[i], 0755) < 0 && errno != EEXIST) ||
		    fchmodat(dfd, dirs[i], 0755, 0) < 0)
			return err_set(e, errno, "mkdir %s", dirs[i]);
	_cleanup_close_ int rfd =
	    openat(dfd, "runtime", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rfd < 0)
		return err_set(e, errno, "open runtime");
	for (const sandbox_embedded_file *f = sandbox_runtime_files; f->name; f++)
		if (write_file_at(rfd, f->name, f->data, f->len, 0444, e) < 0)
			return -1;
	return 0;
}

/* Copies the agent into <state>/agent, which every bundle bind-mounts read-only at /.aisp. */
static int install_agent(sandbox_ctx *ctx, const char *agent_path, err **e)
{
	buf bin = BUF_INIT;
	if (read_file_at(AT_FDCWD, agent_path, 64u << 20, &bin, e) < 0)
		return err_prefix(e, "agent");
	if (mkdir_p(ctx->agent_dir, 0755, e) < 0)
		return -1;
	if (chmod(ctx->agent_dir, 0755) < 0)
		return err_set(e, errno, "chmod %s", ctx->agent_dir);
	_cleanup_close_ int dfd = open(ctx->agent_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = dfd < 0 ? err_set(e, errno, "open %s", ctx->agent_dir)
	                : write_file_at(dfd, SANDBOX_AGENT_NAME, bin.data, bin.len, 0555, e);
	buf_deinit(&bin);
	return r < 0 ? -1 : install_runtime(dfd, e);
}

/* user namespaces are usable when the kernel allows any (and the operator did not opt out) */
static bool userns_allowed(void)
{
	buf uns = BUF_INIT;
	int64_t max_uns = 0;
	if (read_file_at(AT_FDCWD, "/proc/sys/user/max_user_namespaces", 32, &uns, NULL) == 0) {
		uns.data[strcspn((char *)uns.data, "\n")] = 0;
		parse_i64(buf_str(&uns), 0, INT64_MAX, &max_uns);
	}
	buf_deinit(&uns);
	return max_uns > 0 && !getenv("AISP_NO_USERNS");
}

int sandbox_ctx_reach(sandbox_ctx *ctx, const char *path, err **e)
{
	for (size_t i = 0; i < ctx->n_reached; i++)
		if (!strcmp(ctx->reached[i], path))
			return 0;
	_cleanup_free_ char *p = xstrdup(path);
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		struct stat st;
		if (lstat(p, &st) < 0)
			return err_set(e, errno, "runc's user namespace must reach %s: %s", path,
			               p);
		if (S_ISDIR(st.st_mode) && !(st.st_mode & S_IXOTH) &&
		    chmod(p, (st.st_mode & 07777) | S_IXOTH) < 0)
			return err_set(
			    e, errno,
			    "runc's user namespace (host uid %u) cannot reach %s: %s is mode "
			    "%04o and cannot be made searchable",
			    SANDBOX_USERNS_BASE, path, p, (unsigned)(st.st_mode & 07777));
		*s = c;
		if (!c)
			break;
	}
	ctx->reached = xreallocarray(ctx->reached, ctx->n_reached + 1, sizeof(char *));
	ctx->reached[ctx->n_reached++] = xstrdup(path);
	return 0;
}

static int ctx_setup(sandbox_ctx *ctx, const sandbox_ctx_opts *o, err **e)
{
	if (!o->agent_path)
		return err_set(e, 0, "no agent binary configured");
	if (mkdir_p(ctx->bundles_dir, 0711, e) < 0 || install_agent(ctx, o->agent_path, e) < 0)
		return -1;
	sandbox_cgroup_opts co = {.root = o->cgroup_root, .parent = o->cgroup_parent};
	if (sandbox_cgroup_new(&ctx->cg, &co, e) < 0)
		return -1;
	/* Traversable, not listable: a user-namespaced runtime reaches the agent through it. */
	if (chmod(ctx->state_dir, 0711) < 0 || chmod(ctx->bundles_dir, 0711) < 0)
		return err_set(e, errno, "chmod %s", ctx->state_dir);
	ctx->userns = userns_allowed();
	ctx->bundles_fd = open(ctx->bundles_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ctx->bundles_fd < 0)
		return err_set(e, errno, "open %s", ctx->bundles_dir);
	return 0;
}

int sandbox_ctx_new(sandbox_ctx **out, struct event_base *base, const sandbox_ctx_opts *o, err **e)
{
	sandbox_ctx *ctx = xzalloc(sizeof(*ctx));
	ctx->base = base;
	ctx->bundles_fd = -1;
	ctx->state_dir = xstrdup(o->state_dir ? o->state_dir : "/run/aisp");
	ctx->bundles_dir = xasprintf("%s/bundles", ctx->state_dir);
	ctx->agent_dir = xasprintf("%s/agent", ctx->state_dir);
	ctx->agent_bin = xasprintf("%s/%s", ctx->agent_dir, SANDBOX_AGENT_NAME);
	ctx->id_prefix = xstrdup(o->id_prefix ? o->id_prefix : "aisp-");
	if (ctx_setup(ctx, o, e) < 0) {
		err_prefix(e, "sandbox state dir %s", ctx->state_dir);
		sandbox_ctx_free(ctx);
		return -1;
	}
	*out = ctx;
	return 0;
}

void sandbox_ctx_plumbing(const sandbox_ctx *ctx, spawn_opts *o)
{
	o->cgroup_procs = sandbox_cgroup_plumbing_procs(ctx->cg);
	o->cgroup_exec = ctx->agent_bin;
}

sandbox_ctx *sandbox_ctx_free(sandbox_ctx *ctx)
{
	if (!ctx)
		return NULL;
	if (ctx->bundles_fd >= 0)
		close(ctx->bundles_fd);
	sandbox_cgroup_free(ctx->cg);
	free(ctx->state_dir);
	free(ctx->bundles_dir);
	free(ctx->agent_dir);
	free(ctx->agent_bin);
	free(ctx->id_prefix);
	for (size_t i = 0; i < ctx->n_reached; i++)
		free(ctx->reached[i]);
	free(ctx->reached);
	free(ctx->cpu);
	free(ctx);
	return NULL;
}

struct event_base *sandbox_ctx_base(const sandbox_ctx *ctx)
{
	return ctx->base;
}

const char *sandbox_cpu_phase_name(sandbox_cpu_phase ph)
{
	static const char *const names[SANDBOX_CPU_PHASES] = {"create", "idle", "run", "teardown"};
	return ph < SANDBOX_CPU_PHASES ? names[ph] : "?";
}

void sandbox_ctx_account(sandbox_ctx *ctx, const sandbox_runtime *rt, sandbox_cpu_phase ph,
                         uint64_t ns)
{
	size_t i = 0;
	while (i < ctx->n_cpu && ctx->cpu[i].rt != rt)
		i++;
	if (i == ctx->n_cpu) { /* a runtime's first: a handful per node */
		ctx->cpu = xreallocarray(ctx->cpu, ctx->n_cpu + 1, sizeof(*ctx->cpu));
		ctx->cpu[ctx->n_cpu++] = (struct sandbox_cpu_account){.rt = rt};
	}
	ctx->cpu[i].ns[ph] += ns;
}

void sandbox_ctx_cpu(const sandbox_ctx *ctx, const sandbox_runtime *rt,
                     uint64_t ns[SANDBOX_CPU_PHASES])
{
	memset(ns, 0, SANDBOX_CPU_PHASES * sizeof(*ns));
	for (size_t i = 0; i < ctx->n_cpu; i++)
		if (ctx->cpu[i].rt == rt)
			memcpy(ns, ctx->cpu[i].ns, SANDBOX_CPU_PHASES * sizeof(*ns));
}

size_t sandbox_ctx_live(const sandbox_ctx *ctx)
{
	return ctx->live;
}

const char *sandbox_ctx_cgroup(const sandbox_ctx *ctx)
{
	return sandbox_cgroup_name(ctx->cg);
}
