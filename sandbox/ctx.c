/* The node's sandbox context: the state directory (bundles, the agent's read-only copy), the
 * user-namespace probe, and the cgroup backend detected at start. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "sandbox/lifecycle.h"

/* Copies the agent into <state>/agent, which every bundle bind-mounts read-only at /.aisp. */
static int install_agent(sandbox_ctx *ctx, const char *agent_path, err **e)
{
	buf bin = BUF_INIT;
	if (read_file_at(AT_FDCWD, agent_path, 64u << 20, &bin, e) < 0)
		return err_prefix(e, "agent");
	if (mkdir_p(ctx->agent_dir, 0755, e) < 0)
		return -1;
	_cleanup_close_ int dfd = open(ctx->agent_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = dfd < 0 ? err_set(e, errno, "open %s", ctx->agent_dir)
	                : write_file_at(dfd, SANDBOX_AGENT_NAME, bin.data, bin.len, 0555, e);
	buf_deinit(&bin);
	return r;
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
	chmod(ctx->state_dir, 0711);
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
	ctx->id_prefix = xstrdup(o->id_prefix ? o->id_prefix : "aisp-");
	if (ctx_setup(ctx, o, e) < 0) {
		err_prefix(e, "sandbox state dir %s", ctx->state_dir);
		sandbox_ctx_free(ctx);
		return -1;
	}
	*out = ctx;
	return 0;
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
	free(ctx->id_prefix);
	free(ctx);
	return NULL;
}

struct event_base *sandbox_ctx_base(const sandbox_ctx *ctx)
{
	return ctx->base;
}

size_t sandbox_ctx_live(const sandbox_ctx *ctx)
{
	return ctx->live;
}

const char *sandbox_ctx_cgroup(const sandbox_ctx *ctx)
{
	return sandbox_cgroup_name(ctx->cg);
}
