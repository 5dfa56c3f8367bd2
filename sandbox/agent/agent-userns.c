/* aisp-agent --userns OWNER BASE SIZE: the user namespace of a runc sandbox, made before the
 * runtime starts (sandbox/userns.c runs it on the host, as root; it never runs in a sandbox).
 *
 * Why: the kernel keeps per-user counts (inotify instances and watches, fanotify groups and
 * marks, POSIX message queue bytes, pending signals, namespaces) for every user namespace level
 * and charges a namespace's use, at the level above, to the namespace's owner. runc makes the
 * namespace as host root, so a sandbox's inotify instances or message queues counted against
 * host root's own quotas (issue 14 item 1). A namespace made here is owned by OWNER, a host uid
 * of the sandbox's own (inside its mapping, unused inside it), so its use is charged to OWNER:
 * never to host root, nor to another live sandbox. Its own limits are set low on top:
 *   user.max_inotify_instances 128, user.max_inotify_watches 8192, user.max_fanotify_groups 16,
 *   user.max_fanotify_marks 8192, user.max_user_namespaces 0 (none can be made inside; seccomp
 *   denies it too), RLIMIT_MSGQUEUE 819200 bytes and RLIMIT_SIGPENDING 4096 signals for the
 *   whole namespace (the kernel takes them from its creator's limits).
 *
 * How: a child keeps the capabilities of root while it becomes OWNER (so that it needs no
 * unprivileged user namespaces, which distributions may restrict), unshares its user namespace
 * (owned by OWNER: its effective uid), waits for the parent to write the id maps (only a process
 * outside the namespace with CAP_SETUID there may map host root's range), sets the limits from
 * inside (CAP_SYS_RESOURCE in its own namespace), and then holds the namespace until its stdin
 * closes. The parent prints the child's pid on stdout and exits 0; the host opens
 * /proc/<pid>/ns/user, checks its owner, keeps that fd for runc to join, and closes the child's
 * stdin. Any failure: the reason on stderr, exit 1, the child killed. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "sandbox/agent/agent.h"

static const struct {
	const char *name;
	const char *value;
} ns_limits[] = {
    {"max_inotify_instances", "128"}, {"max_inotify_watches", "8192"},
    {"max_fanotify_groups", "16"},    {"max_fanotify_marks", "8192"},
    {"max_user_namespaces", "0"},
};

/* Writes v to /proc/sys/user/<name>: the calling process's user namespace's limit. A limit
 * this kernel does not know (fanotify before 5.13) is fine. */
static int set_ns_limit(const char *name, const char *v)
{
	char path[96];
	snprintf(path, sizeof(path), "/proc/sys/user/%s", name);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	int r = write_all(fd, v, strlen(v));
	close(fd);
	return r;
}

/* Effective capabilities back to the permitted set kept across the uid change. */
static int raise_effective(void)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &h, d) < 0)
		return -1;
	d[0].effective = d[0].permitted;
	d[1].effective = d[1].permitted;
	return (int)syscall(SYS_capset, &h, d);
}

/* Tells the parent why, and ends. */
static void holder_fail(int up, const char *what)
{
	char m[256];
	int n = snprintf(m, sizeof(m), "E%s: %s", what, strerror(errno));
	ssize_t w = write(up, m, (size_t)n);
	(void)w;
	_exit(1);
}

static void holder(uid_t owner, int up, int down)
{
	struct rlimit mq = {819200, 819200}, sig = {4096, 4096};
	gid_t g = owner;
	if (prctl(PR_SET_KEEPCAPS, 1) < 0 || setgroups(1, &g) < 0 || setresgid(g, g, g) < 0 ||
	    setresuid(owner, owner, owner) < 0 || raise_effective() < 0)
		holder_fail(up, "become the owner");
	if (setrlimit(RLIMIT_MSGQUEUE, &mq) < 0 || setrlimit(RLIMIT_SIGPENDING, &sig) < 0)
		holder_fail(up, "setrlimit");
	if (unshare(CLONE_NEWUSER) < 0)
		holder_fail(up, "unshare(CLONE_NEWUSER)");
	char b;
	if (write(up, "u", 1) != 1 || read(down, &b, 1) != 1 || b != 'm')
		_exit(1); /* the parent failed and says why */
	for (size_t i = 0; i < ARRAY_SIZE(ns_limits); i++)
		if (set_ns_limit(ns_limits[i].name, ns_limits[i].value) < 0)
			holder_fail(up, ns_limits[i].name);
	if (write(up, "r", 1) != 1)
		_exit(1);
	close(up);
	close(down);
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	dup2(null, STDOUT_FILENO);
	dup2(null, STDERR_FILENO);
	/* hold the namespace until the host has its own reference and closes our stdin */
	while (read(STDIN_FILENO, &b, 1) > 0 || errno == EINTR)
		;
	_exit(0);
}

static int write_map(pid_t pid, const char *which, unsigned long base, unsigned long size)
{
	char path[64], map[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, which);
	int n = snprintf(map, sizeof(map), "0 %lu %lu\n", base, size);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = write(fd, map, (size_t)n) == n ? 0 : -1;
	close(fd);
	return r;
}

/* The holder's report: want ('u': unshared, 'r': ready), or "E<why>", or EOF. */
static int expect(int up, char want, char *why, size_t wsz)
{
	char b[256];
	ssize_t n;
	while ((n = read(up, b, sizeof(b) - 1)) < 0 && errno == EINTR)
		;
	if (n == 1 && b[0] == want)
		return 0;
	b[n > 0 ? n : 0] = 0;
	snprintf(why, wsz, "%s", n > 1 && b[0] == 'E' ? b + 1 : "the holder ended");
	return -1;
}

static int parse_ul(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

int agent_userns_main(int argc, char **argv)
{
	unsigned long owner, base, size;
	if (argc != 5 || parse_ul(argv[2], 0xfffffffeul, &owner) < 0 ||
	    parse_ul(argv[3], 0xfffffffeul, &base) < 0 ||
	    parse_ul(argv[4], 0xfffffffful, &size) < 0 || !owner || !size ||
	    base + size > 0xfffffffful) {
		fprintf(stderr, "usage: aisp-agent --userns OWNER BASE SIZE (host uids, not 0)\n");
		return 2;
	}
	int up[2], down[2];
	if (pipe2(up, O_CLOEXEC) < 0 || pipe2(down, O_CLOEXEC) < 0)
		return perror("aisp-agent --userns: pipe"), 1;
	pid_t pid = fork();
	if (pid < 0)
		return perror("aisp-agent --userns: fork"), 1;
	if (pid == 0) {
		close(up[0]);
		close(down[1]);
		holder((uid_t)owner, up[1], down[0]);
	}
	close(up[1]);
	close(down[0]);
	char why[256] = "";
	const char *step = "unshare";
	if (expect(up[0], 'u', why, sizeof(why)) == 0) {
		step = "write the id maps";
		if (write_map(pid, "uid_map", base, size) == 0 &&
		    write_map(pid, "gid_map", base, size) == 0 && write(down[1], "m", 1) == 1) {
			step = "set the namespace's limits";
			if (expect(up[0], 'r', why, sizeof(why)) == 0) {
				printf("%d\n", (int)pid);
				return fflush(stdout) == 0 ? 0 : 1;
			}
		} else {
			snprintf(why, sizeof(why), "%s", strerror(errno));
		}
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	fprintf(stderr, "aisp-agent --userns: %s: %s\n", step, why);
	return 1;
}
