/* A runc sandbox's own user namespace (sandbox/agent/agent-userns.c says why and how): the host
 * runs `aisp-agent --userns OWNER BASE SIZE`, takes a reference to the namespace it made (an fd
 * of its own, so that no pid can be reused in between), checks that the namespace is owned by
 * OWNER, lets the holder go, and hands the fd's path to runc, which joins the namespace instead
 * of making one. The fd is closed once `run --detach` has returned.
 *
 * Owners: host uids USERNS_BASE + 65000 + (sequence % 500), i.e. container ids 65000-65499,
 * which no process in a sandbox has (the agent is 0, the program 65534). Each live sandbox
 * gets its own (unless 500 were created while it lived), so one sandbox's per-user counts
 * cannot starve another's either. */
#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/spawn.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "sandbox/lifecycle.h"

#define USERNS_OWNER_FIRST 65000u
#define USERNS_OWNERS      500u
#define USERNS_TIMEOUT_MS  10000

uid_t sandbox_userns_owner(const sandbox *sb)
{
	return (uid_t)(SANDBOX_USERNS_BASE + USERNS_OWNER_FIRST + sb->seq % USERNS_OWNERS);
}

void sandbox_userns_close(sandbox *sb)
{
	if (sb->userns_hold >= 0)
		close(sb->userns_hold);
	if (sb->userns_fd >= 0)
		close(sb->userns_fd);
	sb->userns_hold = sb->userns_fd = -1;
}

/* The namespace the holder pid is in, as an fd of ours, checked to be owned by owner. */
static int take_ns(sandbox *sb, const char *out, err **e)
{
	int64_t pid;
	char line[32];
	snprintf(line, sizeof(line), "%.*s", (int)strcspn(out, "\n"), out);
	if (parse_i64(line, 2, INT32_MAX, &pid) < 0)
		return err_set(e, 0, "user namespace: the holder printed \"%s\", not a pid", line);
	char path[64];
	snprintf(path, sizeof(path), "/proc/%lld/ns/user", (long long)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, errno, "user namespace: open %s", path);
	uid_t owner = (uid_t)-1;
	if (ioctl(fd, NS_GET_OWNER_UID, &owner) < 0 || owner != sandbox_userns_owner(sb)) {
		close(fd);
		return err_set(e, 0, "user namespace: %s is owned by uid %d, not %u", path,
		               (int)owner, (unsigned)sandbox_userns_owner(sb));
	}
	sb->userns_fd = fd;
	return 0;
}

static void on_holder(const spawn_result *r, void *arg)
{
	sandbox *sb = arg;
	err *e = NULL;
	sandbox_ctx_account(sb->ctx, sb->spec.rt, SANDBOX_CPU_CREATE, r->cpu_ns);
	if (r->status != 0) {
		_cleanup_free_ char *d = sandbox_container_why(sb, "user namespace", r);
		err_set(&e, 0, "%s", d);
	} else if (take_ns(sb, r->out, &e) == 0) {
		close(sb->userns_hold); /* the holder goes; our fd keeps the namespace */
		sb->userns_hold = -1;
	}
	sandbox_container_continue(sb, e);
}

int sandbox_userns_start(sandbox *sb, err **e)
{
	int hold[2];
	if (pipe2(hold, O_CLOEXEC) < 0)
		return err_set(e, errno, "pipe");
	char owner[16], base[16], size[16];
	snprintf(owner, sizeof(owner), "%u", (unsigned)sandbox_userns_owner(sb));
	snprintf(base, sizeof(base), "%u", SANDBOX_USERNS_BASE);
	snprintf(size, sizeof(size), "%u", SANDBOX_USERNS_SIZE);
	const char *argv[] = {sb->ctx->agent_bin, "--userns", owner, base, size, NULL};
	spawn_opts o = SPAWN_OPTS_INIT;
	o.argv = argv;
	o.stdin_fd = hold[0];
	o.timeout_ms = USERNS_TIMEOUT_MS;
	int r = spawn_start(&o, on_holder, sb, NULL, e);
	close(hold[0]);
	if (r < 0) {
		close(hold[1]);
		return err_prefix(e, "user namespace");
	}
	sb->userns_hold = hold[1];
	return 0;
}

char *sandbox_userns_path(const sandbox *sb)
{
	return sb->userns_fd >= 0 ? xasprintf("/proc/%d/fd/%d", (int)getpid(), sb->userns_fd)
	                          : NULL;
}
