/* The one way this project starts a child process.
 *
 * Children are made with vfork: the caller waits until the child has exec'd (a fraction of a
 * millisecond), not for a copy of its page tables (fork: about 0.5 ms for the daemon, growing
 * with its memory, and copy-on-write faults after it).
 *
 * Every child gets: fds 0/1/2 as asked (everything above 2 closed), a reset signal mask and
 * default handlers, PR_SET_PDEATHSIG(SIGKILL), its own process group, and an exec-error pipe
 * so that "binary missing" (spawn fails, err says so) is told apart from "exited 1" (status 1).
 * Output that is captured goes to anonymous memory files (memfd), not pipes: a runtime that
 * leaves a daemon holding its stdio (runsc, runc -d) can never make a reader wait for EOF.
 * A deadline ends in SIGKILL to the child's process group, then reaping.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

struct event_base;

enum {
	SPAWN_NULL = -1,    /* /dev/null */
	SPAWN_CAPTURE = -2, /* captured into spawn_result (up to capture_max bytes) */
};

typedef struct spawn_opts {
	const char *const *argv;  /* argv[0]: a path, or a name looked up in PATH */
	const char *const *envp;  /* NULL: inherit the caller's environment */
	const char *cwd;          /* NULL: inherit */
	int stdin_fd;             /* an fd, or SPAWN_NULL */
	int stdout_fd;            /* an fd, SPAWN_NULL or SPAWN_CAPTURE */
	int stderr_fd;            /* an fd, SPAWN_NULL or SPAWN_CAPTURE */
	int64_t timeout_ms;       /* 0: no deadline */
	size_t capture_max;       /* 0: 64 KiB */
	const char *cgroup_procs; /* a cgroup.procs file the child joins before exec, or NULL */
	/* With cgroup_procs: a program the child execs instead, as `<it> --cgexec <cgroup_procs>
	 * <fd> argv...`, that joins the cgroup and execs argv (`aisp-agent --cgexec`), reporting an
	 * exec error to fd. spawn_start() then waits only for the helper's exec (spawn_run() waits
	 * for argv's, so for the move too): moving a process
	 * into a v1 cgroup waits for an RCU grace period (0.7-5 ms, 20 ms seen) and, once moved, a
	 * child of low priority may wait for a CPU, with the vfork parent waiting on it. NULL: the
	 * child joins before its exec (argv[0] is then looked up in the caller's PATH; through the
	 * helper, in envp's). */
	const char *cgroup_exec;
} spawn_opts;

#define SPAWN_OPTS_INIT                                                                            \
	{                                                                                          \
		.stdin_fd = SPAWN_NULL, .stdout_fd = SPAWN_CAPTURE, .stderr_fd = SPAWN_CAPTURE     \
	}

typedef struct spawn_result {
	pid_t pid;
	int status;     /* exit code, or 128 + signal */
	bool timed_out; /* killed at the deadline */
	char *out;      /* captured stdout, NUL-terminated (empty when not captured); owned */
	size_t out_len;
	char *errout; /* captured stderr, NUL-terminated, trailing whitespace trimmed; owned */
	size_t err_len;
	uint64_t cpu_ns; /* user + system CPU of the child and of the descendants it reaped */
} spawn_result;

void spawn_result_deinit(spawn_result *r);

/* Runs a child to completion (blocking). Returns 0 when it ran, whatever its exit status; -1
 * with *e when it could not be started (exec error included). */
int spawn_run(const spawn_opts *o, spawn_result *r, err **e);

/* A short description of a finished command for error messages: "exited 1: <stderr>",
 * "killed by signal 9", "timed out after N ms". Owned by the caller. */
char *spawn_describe(const spawn_result *r);

/* Asynchronous children on a libevent loop. spawn_loop_init() installs the SIGCHLD handler that
 * reaps every child (also orphans re-parented to a subreaper) and dispatches by pid. */
typedef struct spawn_child spawn_child;
/* Called once when the child has exited; r is borrowed for the call. The child handle is
 * freed right after the callback returns. */
typedef void (*spawn_done_fn)(const spawn_result *r, void *arg);

int spawn_loop_init(struct event_base *base, err **e);
void spawn_loop_deinit(void);
/* Starts a child; cb runs from the loop when it has exited. Returns 0 or -1 with *e (nothing
 * will be called then). *out (optional) is borrowed until the callback. It does not wait for
 * the child's exec (a busy host makes that milliseconds of a blocked loop): a program named by
 * a path that cannot be executed is refused at once, any other exec failure is reported to cb
 * as status 127 with errout "exec <argv[0]>: <reason>". */
int spawn_start(const spawn_opts *o, spawn_done_fn cb, void *arg, spawn_child **out, err **e);
pid_t spawn_child_pid(const spawn_child *c);
/* Number of children started with spawn_start() that have not finished yet. */
size_t spawn_active(void);
