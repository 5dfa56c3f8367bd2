/* aisp-agent --cgexec PROCS FD PROGRAM [ARG...]: on the host, never in a sandbox. common/spawn.c
 * runs it for a child that must live in a cgroup (spawn_opts.cgroup_exec: the node's runtime
 * commands, in the low-priority plumbing cgroup). It writes 0 to PROCS, a cgroup.procs file
 * (best effort: a cgroup that cannot be joined costs the priority, never the command), and
 * execs PROGRAM, looked up in PATH. FD is the spawner's exec-error pipe: it closes on that
 * exec, and when the exec fails it carries the errno, then the helper exits 127.
 *
 * Why a helper: the spawner uses vfork, whose parent (the node's event loop) waits until the
 * child execs. Moving a process into a v1 cgroup waits for an RCU grace period (0.7-5 ms here,
 * 20 ms seen), and a child that already joined a cgroup of low priority may then wait for a
 * CPU while the loop waits for it. Exec'd first, the move happens in this process, after the
 * loop has gone on. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sandbox/agent/agent.h"

int agent_cgexec_main(int argc, char **argv)
{
	char *end = NULL;
	long fd = argc > 4 ? strtol(argv[3], &end, 10) : -1;
	if (argc < 5 || !end || *end || fd < 3 || fd > INT_MAX) {
		fputs("usage: aisp-agent --cgexec PROCS FD PROGRAM [ARG...]\n", stderr);
		return 2;
	}
	int cg = open(argv[2], O_WRONLY | O_CLOEXEC);
	if (cg >= 0) {
		(void)!write(cg, "0", 1);
		close(cg);
	}
	if (fcntl((int)fd, F_SETFD, FD_CLOEXEC) == 0)
		execvp(argv[4], argv + 4);
	int code = errno;
	(void)!write((int)fd, &code, sizeof(code));
	return 127;
}
