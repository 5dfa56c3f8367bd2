/* The agent's side of the program's process: who it runs as (the program's user, entered and
 * left only through agent_as_program()), forking and exec'ing it with its pipes and limits,
 * reaping and killing it, and SIGCHLD as a self-pipe for the agent's poll loop. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "sandbox/agent/agent.h"

/* Who runs what. In a sandbox the agent is started as uid 0 holding only CAP_SETUID,
 * CAP_SETGID, CAP_SETPCAP and CAP_KILL (config.json), and the program runs as agent_prog_uid
 * with no capability at all: a different user from the agent, so it can neither open the
 * agent's pipes through /proc/1/fd (gVisor ignores the non-dumpable flag) nor signal it.
 * Whenever the agent touches /workspace it acts as the program's user (effective ids only), so
 * what it writes belongs to the program and what it reads is what the program could read.
 * Without --user (tests on the host) everything runs as the caller. */
uid_t agent_prog_uid = (uid_t)-1;

static bool split(void)
{
	return agent_prog_uid != (uid_t)-1;
}

/* Effective (and with real: also real) ids become the program's; the saved ids stay 0, which
 * is what lets as_agent() come back. Only agent_as_program() calls these two. */
static int as_program(bool real)
{
	if (!split())
		return 0;
	uid_t r = real ? agent_prog_uid : (uid_t)-1;
	if (setresgid(r, agent_prog_uid, (gid_t)-1) < 0 ||
	    setresuid(r, agent_prog_uid, (uid_t)-1) < 0)
		return -1;
	return 0;
}

static void as_agent(void)
{
	if (!split())
		return;
	if (setresuid(0, 0, (uid_t)-1) < 0 || setresgid(0, 0, (gid_t)-1) < 0)
		_exit(3);          /* never run on with the wrong identity */
	prctl(PR_SET_DUMPABLE, 0); /* an id change resets it */
}

int agent_as_program(bool real, int (*fn)(void *arg), void *arg, char *msg, size_t msz)
{
	int r = as_program(real);
	if (r < 0)
		snprintf(msg, msz, "cannot act as uid %u: %s", (unsigned)agent_prog_uid,
		         strerror(errno));
	else
		r = fn(arg);
	int saved = errno;
	as_agent(); /* also after a half-done switch */
	errno = saved;
	return r;
}

/* No capability can ever come back to anything the agent starts: its bounding set is emptied
 * once, at start (agent_drop_bounding), and children inherit it empty. */
int agent_drop_bounding(void)
{
	if (!split())
		return 0;
	for (int cap = 0; cap <= 63; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			return -1;
	return 0;
}

/* In the program's child, before exec: every id becomes the program's, which clears the
 * permitted and effective sets (the bounding set is empty already). */
static int drop_to_program(void)
{
	if (!split())
		return 0;
	gid_t g = agent_prog_uid;
	if (setgroups(1, &g) < 0 || setresgid(g, g, g) < 0 ||
	    setresuid(agent_prog_uid, agent_prog_uid, agent_prog_uid) < 0)
		return -1;
	return 0;
}
static int sigchld_pipe[2] = {-1, -1};

static void on_sigchld(int sig)
{
	int saved = errno;
	(void)sig;
	ssize_t r = write(sigchld_pipe[1], "c", 1);
	(void)r;
	errno = saved;
}

int agent_sigchld_setup(void)
{
	if (pipe2(sigchld_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	struct sigaction sa = {.sa_handler = on_sigchld, .sa_flags = SA_RESTART | SA_NOCLDSTOP};
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGCHLD, &sa, NULL);
}

int agent_sigchld_fd(void)
{
	return sigchld_pipe[0];
}

void agent_sigchld_drain(void)
{
	char drain[64];
	while (read(sigchld_pipe[0], drain, sizeof(drain)) > 0)
		;
}

void agent_close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Ends every process of the task: the program's process group and, as PID 1 of the sandbox,
 * everything else too (a process that left the group with setsid). As PID 1 once is enough:
 * after kill(-1) nothing but the agent is left. */
bool agent_is_pid1(void)
{
	static int pid1 = -1;
	if (pid1 < 0)
		pid1 = getpid() == 1;
	return pid1;
}

void agent_kill_task(agent_child *c)
{
	bool pid1 = agent_is_pid1();
	if (c->killed && pid1)
		return;
	if (c->pid > 0)
		kill(-c->pid, SIGKILL);
	if (pid1)
		kill(-1, SIGKILL);
	c->killed = true;
}

/* Stops every process of the task (SIGSTOP: nothing of it runs any more, and nothing is torn
 * down yet): as PID 1 everything but the agent, else the program's process group. */
void agent_stop_task(const agent_child *c)
{
	if (agent_is_pid1())
		kill(-1, SIGSTOP);
	else if (c->pid > 0)
		kill(-c->pid, SIGSTOP);
}

/* Reaps every finished child (as PID 1 or subreaper, orphans too); records the program's. */
void agent_reap(agent_child *c)
{
	int st;
	pid_t p;
	while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
		if (p == c->pid && !c->exited) {
			c->exited = true;
			c->status = st;
		}
	}
}
void agent_child_nonblock(agent_child *c)
{
	int fds[] = {c->in, c->out, c->err, c->task, c->res, c->px_req, c->px_resp, c->fin};
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		if (fds[i] >= 0)
			fcntl(fds[i], F_SETFL, O_NONBLOCK);
}

int agent_apply_rlimits(pid_t pid, const agent_rlimits *l)
{
	static const int res[] = {RLIMIT_FSIZE, RLIMIT_NOFILE, RLIMIT_NPROC};
	uint64_t v[] = {l->fsize, l->nofile, l->nproc};
	for (size_t i = 0; i < ARRAY_SIZE(res); i++) {
		if (!v[i])
			continue;
		struct rlimit rl = {.rlim_cur = v[i], .rlim_max = v[i]};
		if (prlimit(pid, res[i], &rl, NULL) < 0)
			return -1;
	}
	return 0;
}
/* Closes every fd >= from, listing /proc/self/fd (gVisor 2022 has no close_range, and a blind
 * loop over 65536 fds costs seconds under its ptrace platform). No allocation: safe after
 * fork. */
static void close_from(int from)
{
	int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0) {
		for (int fd = from; fd < 4096; fd++)
			close(fd);
		return;
	}
	char b[4096];
	for (;;) {
		long n = syscall(SYS_getdents64, dir, b, sizeof(b));
		if (n <= 0)
			break;
		for (long off = 0; off < n;) {
			struct {
				uint64_t ino;
				int64_t off;
				unsigned short reclen;
				unsigned char type;
				char name[];
			} *d = (void *)(b + off);
			int fd = 0;
			const char *c = d->name;
			for (; *c >= '0' && *c <= '9'; c++)
				fd = fd * 10 + (*c - '0');
			if (c != d->name && *c == 0 && fd >= from && fd != dir)
				close(fd);
			off += d->reclen;
		}
	}
	close(dir);
}
/* Why a child could not become the program: the step and its errno, written by the child to
 * its close-on-exec report pipe (nothing arrives there when execve succeeds). */
typedef struct start_failure {
	int step; /* a start_step */
	int err;
} start_failure;

enum start_step { STEP_EXEC, STEP_PIPES, STEP_IDS, STEP_LIMITS };
static const char *const start_steps[] = {[STEP_EXEC] = "",
                                          [STEP_PIPES] = "move its pipes",
                                          [STEP_IDS] = "take the program's ids",
                                          [STEP_LIMITS] = "set its limits"};

/* In the child: reports the failed step on fd rep and exits 127. */
_Noreturn static void child_fail(int rep, int step)
{
	start_failure f = {step, errno};
	ssize_t w = write(rep, &f, sizeof(f));
	(void)w;
	_exit(127);
}

/* The pipes of a bootstrap: the program's fds 0 to BOOT_FDS - 1 (stdin, stdout, stderr, task,
 * result, proxy request, proxy response, exit status); a plain program has the first three. */
#define BOOT_FDS 8

/* In the forked child: becomes the program's process: own group, default signals, empty mask,
 * pipes on fds 0-2 (a bootstrap: 0 to BOOT_FDS - 1), every other fd closed but the report pipe
 * rep (close-on-exec). Never returns. */
static void child_exec(const char *const argv[], char *const envp[], int fds[BOOT_FDS], int rep,
                       const agent_rlimits *l)
{
	setpgid(0, 0);
	/* the only dispositions the agent changed (agent.c reset the rest at start) */
	signal(SIGPIPE, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Move the pipes above the report pipe's place first, so that the dup2s below cannot
	 * clobber each other. */
	if ((rep = fcntl(rep, F_DUPFD_CLOEXEC, BOOT_FDS + 1)) < 0)
		_exit(127);
	for (int i = 0; i < BOOT_FDS; i++)
		if (fds[i] >= 0 && (fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, BOOT_FDS + 1)) < 0)
			child_fail(rep, STEP_PIPES);
	unsigned keep = fds[3] >= 0 ? BOOT_FDS : 3; /* fds 3 and up only for a bootstrap */
	for (unsigned i = 0; i < keep; i++)
		if (dup2(fds[i], (int)i) < 0)
			child_fail(rep, STEP_PIPES);
	if ((rep = dup3(rep, (int)keep, O_CLOEXEC)) < 0)
		_exit(127);
	if (syscall(SYS_close_range, keep + 1, ~0u, 0u) < 0)
		close_from((int)keep + 1);
	if (drop_to_program() < 0)
		child_fail(rep, STEP_IDS);
	if (l && agent_apply_rlimits(0, l) < 0)
		child_fail(rep, STEP_LIMITS);
	execve(argv[0], (char *const *)argv, envp);
	child_fail(rep, STEP_EXEC);
}

static void close_pipes(int p[][2], int n)
{
	for (int i = 0; i < n; i++)
		close(p[i][0]), close(p[i][1]);
}

/* The parent's end of the report pipe: 0 once the child has exec'd; -1 with errno and
 * c->start_step when it could not, after reaping it. */
static int start_result(agent_child *c, pid_t pid, int rep)
{
	start_failure f;
	ssize_t r;
	while ((r = read(rep, &f, sizeof(f))) < 0 && errno == EINTR)
		;
	close(rep);
	if (r != (ssize_t)sizeof(f))
		return 0; /* EOF: execve closed the pipe */
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	c->start_step =
	    f.step >= 0 && f.step < (int)ARRAY_SIZE(start_steps) ? start_steps[f.step] : "";
	errno = f.err;
	return -1;
}

void agent_start_why(const agent_child *c, const char *what, char *msg, size_t msz)
{
	int saved = errno;
	const char *step = c->start_step ? c->start_step : "";
	snprintf(msg, msz, "start %s: %s%s%s", what, step, *step ? ": " : "", strerror(saved));
	errno = saved;
}

int agent_start_child(agent_child *c, const char *const argv[], char *const envp[], bool bootstrap,
                      const agent_rlimits *l)
{
	/* stdin, stdout, stderr, task, result, proxy request, proxy response, exit status: [0]
	 * read end, [1] write end */
	int p[BOOT_FDS][2];
	int n = bootstrap ? BOOT_FDS : 3;
	c->start_step = "";
	for (int i = 0; i < n; i++) {
		if (pipe2(p[i], O_CLOEXEC) < 0) {
			int saved = errno;
			close_pipes(p, i);
			errno = saved;
			return -1;
		}
	}
	int rep[2]; /* the child's report of a failed start */
	if (pipe2(rep, O_CLOEXEC) < 0) {
		int saved = errno;
		close_pipes(p, n);
		errno = saved;
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		int saved = errno;
		close_pipes(p, n);
		close(rep[0]), close(rep[1]);
		errno = saved;
		return -1;
	}
	if (pid == 0) {
		int fds[BOOT_FDS] = {p[0][0], p[1][1], p[2][1], -1, -1, -1, -1, -1};
		if (bootstrap)
			fds[3] = p[3][0], fds[4] = p[4][1], fds[5] = p[5][1], fds[6] = p[6][0],
			fds[7] = p[7][1];
		child_exec(argv, envp, fds, rep[1], l);
	}
	close(rep[1]);
	setpgid(pid, pid); /* also in the child: whichever runs first */
	if (start_result(c, pid, rep[0]) < 0) {
		int saved = errno;
		close_pipes(p, n);
		errno = saved;
		return -1;
	}
	c->pid = pid;
	c->in = p[0][1], c->out = p[1][0], c->err = p[2][0];
	close(p[0][0]), close(p[1][1]), close(p[2][1]);
	if (bootstrap) {
		c->task = p[3][1], c->res = p[4][0];
		c->px_req = p[5][0], c->px_resp = p[6][1], c->fin = p[7][0];
		close(p[3][0]), close(p[4][1]), close(p[5][1]), close(p[6][0]), close(p[7][1]);
	}
	return 0;
}
