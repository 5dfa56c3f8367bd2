/* The spawn helper (see spawn.h): vfork + exec with an exec-error pipe, captured output in
 * memfds, deadlines ending in SIGKILL, and one SIGCHLD reaper for the event loop. */
#include "common/spawn.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"

#define CAPTURE_DEFAULT (64 * 1024)

struct spawn_child {
	pid_t pid;
	int out_fd, err_fd; /* memfds, or -1 */
	int exec_fd;        /* the exec-error pipe, read when the child is reaped */
	char *what;         /* argv[0], for an exec error's message */
	size_t capture_max;
	struct event *timer;
	bool timed_out;
	spawn_done_fn cb;
	void *arg;
	struct spawn_child *next;
};

static struct event_base *loop_base;
static struct event *sigchld_ev;
static spawn_child *children;
static size_t n_children;

void spawn_result_deinit(spawn_result *r)
{
	free(r->out);
	free(r->errout);
	r->out = r->errout = NULL;
	r->out_len = r->err_len = 0;
}

static int status_code(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return 255;
}

/* Runs in the vfork child, on the parent's memory, until it execs or _exits: nothing here may
 * allocate, take a lock or return. The parent blocked every signal before vfork, so no handler
 * of the parent's (libevent's, writing to its socketpair) can run here: the handlers are reset
 * first, then the mask is cleared. Never inlined: its frame must lie below start_child's,
 * which the parent uses again. */
static __attribute__((noinline, noreturn)) void
child_exec(const spawn_opts *o, const char *const *helper, int in, int out, int errfd, int errpipe)
{
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	setpgid(0, 0);
	int fds[3] = {in, out, errfd};
	/* Move the sources above 2 first so dup2 cannot clobber one with another. */
	for (int i = 0; i < 3; i++) {
		fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
		if (fds[i] < 0)
			goto fail;
	}
	for (int i = 0; i < 3; i++)
		if (dup2(fds[i], i) < 0)
			goto fail;
	/* Everything above 2 goes, except the exec-error pipe, which closes on exec. */
	if (errpipe > 3)
		syscall(SYS_close_range, 3, errpipe - 1, 0);
	syscall(SYS_close_range, errpipe + 1, ~0U, 0);
	if (o->cwd && chdir(o->cwd) < 0)
		goto fail;
	if (helper) {
		/* the helper joins the cgroup and execs argv; it reports through the same pipe */
		if (fcntl(errpipe, F_SETFD, 0) < 0)
			goto fail;
		execve(helper[0], (char *const *)helper,
		       o->envp ? (char *const *)o->envp : (char *const *)environ);
		goto fail;
	}
	if (o->cgroup_procs) {
		/* best effort: a missing cgroup only costs the priority, never the command */
		int cg = open(o->cgroup_procs, O_WRONLY | O_CLOEXEC);
		if (cg >= 0) {
			(void)!write(cg, "0", 1);
			close(cg);
		}
	}
	if (o->envp)
		execvpe(o->argv[0], (char *const *)o->argv, (char *const *)o->envp);
	else
		execvp(o->argv[0], (char *const *)o->argv);
fail:;
	int code = errno;
	(void)!write(errpipe, &code, sizeof(code));
	_exit(127);
}

static int open_std(int want, int *owned, const char *name, err **e)
{
	if (want >= 0)
		return want;
	if (want == SPAWN_CAPTURE) {
		*owned = memfd_create(name, MFD_CLOEXEC);
		if (*owned < 0)
			return err_set(e, errno, "memfd_create");
		return *owned;
	}
	*owned = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (*owned < 0)
		return err_set(e, errno, "open /dev/null");
	return *owned;
}

/* vfork: no copy of the daemon's page tables and no copy-on-write faults after it (a fork was
 * about 0.5 ms of the loop per runtime command); the caller waits only until the child has
 * exec'd. Its own function, so that no caller's variable lives across the vfork. */
static __attribute__((noinline)) pid_t start_child(const spawn_opts *o, const char *const *helper,
                                                   int in, int out, int er, int errpipe,
                                                   int *fork_errno)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid_t pid = vfork();
	if (pid == 0)
		child_exec(o, helper, in, out, er, errpipe);
	*fork_errno = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return pid;
}

/* Does the child join its cgroup through the helper (spawn_opts.cgroup_exec)? */
static bool via_helper(const spawn_opts *o)
{
	return o->cgroup_procs && o->cgroup_exec;
}

/* `<cgroup_exec> --cgexec <cgroup_procs> <fd> argv...` (spawn.h), or NULL without a helper. */
static const char **helper_argv(const spawn_opts *o, const char *fdnum)
{
	if (!via_helper(o))
		return NULL;
	size_t n = 0;
	while (o->argv[n])
		n++;
	const char **h = xcalloc(n + 5, sizeof(*h));
	h[0] = o->cgroup_exec;
	h[1] = "--cgexec";
	h[2] = o->cgroup_procs;
	h[3] = fdnum;
	memcpy(h + 4, o->argv, n * sizeof(*h));
	return h;
}

/* vforks and execs; on success returns the pid and leaves the capture memfds in *out_fd and
 * *err_fd (or -1). With exec_fd NULL it waits until the child has exec'd (or failed to: then
 * -1); otherwise it returns at once and *exec_fd is the exec-error pipe's read end: EOF once
 * the exec succeeded, the errno when it did not (read it when the child has exited). */
static pid_t do_spawn(const spawn_opts *o, int *out_fd, int *err_fd, int *exec_fd, err **e)
{
	_cleanup_close_ int null_in = -1, cap_out = -1, cap_err = -1;
	int in = open_std(o->stdin_fd, &null_in, "stdin", e);
	int out = in < 0 ? -1 : open_std(o->stdout_fd, &cap_out, "spawn-stdout", e);
	int er = out < 0 ? -1 : open_std(o->stderr_fd, &cap_err, "spawn-stderr", e);
	if (er < 0)
		return err_prefix(e, "spawn %s", o->argv[0]);
	int ep[2];
	if (pipe2(ep, O_CLOEXEC) < 0)
		return err_set(e, errno, "spawn %s: pipe", o->argv[0]);
	/* made here: the vfork child may not allocate */
	char fdnum[16];
	snprintf(fdnum, sizeof(fdnum), "%d", ep[1]);
	_cleanup_free_ const char **helper = helper_argv(o, fdnum);
	int fork_errno = 0;
	pid_t pid = start_child(o, helper, in, out, er, ep[1], &fork_errno);
	if (pid < 0) {
		close(ep[0]);
		close(ep[1]);
		return err_set(e, fork_errno, "spawn %s: vfork", o->argv[0]);
	}
	close(ep[1]);
	if (!exec_fd) {
		int code = 0;
		ssize_t n;
		do
			n = read(ep[0], &code, sizeof(code));
		while (n < 0 && errno == EINTR);
		close(ep[0]);
		if (n > 0) {
			waitpid(pid, NULL, 0);
			return err_set(e, code, "exec %s", o->argv[0]);
		}
	} else {
		*exec_fd = ep[0];
	}
	*out_fd = o->stdout_fd == SPAWN_CAPTURE ? steal_fd(&cap_out) : -1;
	*err_fd = o->stderr_fd == SPAWN_CAPTURE ? steal_fd(&cap_err) : -1;
	return pid;
}

static char *read_capture(int fd, size_t max, size_t *len, bool trim)
{
	buf b = BUF_INIT;
	if (fd >= 0) {
		lseek(fd, 0, SEEK_SET);
		(void)read_all(fd, &b, max);
	}
	if (trim)
		while (b.len > 0 && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == ' ' ||
		                     b.data[b.len - 1] == '\r' || b.data[b.len - 1] == '\t'))
			b.data[--b.len] = 0;
	return buf_steal(&b, len);
}

/* user + system CPU of a reaped child and the descendants it reaped, as wait4 reports it */
static uint64_t rusage_cpu_ns(const struct rusage *ru)
{
	return ((uint64_t)ru->ru_utime.tv_sec + (uint64_t)ru->ru_stime.tv_sec) * 1000000000u +
	       ((uint64_t)ru->ru_utime.tv_usec + (uint64_t)ru->ru_stime.tv_usec) * 1000u;
}

static void fill_result(spawn_result *r, pid_t pid, int st, bool timed_out, int out_fd, int err_fd,
                        size_t max)
{
	r->pid = pid;
	r->status = status_code(st);
	r->timed_out = timed_out;
	r->out = read_capture(out_fd, max, &r->out_len, false);
	r->errout = read_capture(err_fd, max, &r->err_len, true);
}

int spawn_run(const spawn_opts *o, spawn_result *r, err **e)
{
	memset(r, 0, sizeof(*r));
	_cleanup_close_ int out_fd = -1, err_fd = -1;
	pid_t pid = do_spawn(o, &out_fd, &err_fd, NULL, e);
	if (pid < 0)
		return -1;
	_cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	int64_t deadline = o->timeout_ms > 0 ? now_mono_ms() + o->timeout_ms : 0;
	bool timed_out = false;
	while (pidfd >= 0 && !timed_out) {
		int wait_ms = -1;
		if (deadline) {
			int64_t left = deadline - now_mono_ms();
			wait_ms = left > 0 ? (int)left : 0;
		}
		struct pollfd p = {.fd = pidfd, .events = POLLIN};
		int n = poll(&p, 1, wait_ms);
		if (n > 0)
			break;
		if (n == 0) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			timed_out = true;
		}
	}
	int st = 0;
	struct rusage ru = {0};
	while (wait4(pid, &st, 0, &ru) < 0 && errno == EINTR)
		;
	fill_result(r, pid, st, timed_out, out_fd, err_fd,
	            o->capture_max ? o->capture_max : CAPTURE_DEFAULT);
	r->cpu_ns = rusage_cpu_ns(&ru);
	return 0;
}

char *spawn_describe(const spawn_result *r)
{
	const char *sep = r->err_len ? ": " : "";
	if (r->timed_out)
		return xasprintf("timed out and was killed%s%s", sep, r->errout);
	if (r->status > 128)
		return xasprintf("killed by signal %d%s%s", r->status - 128, sep, r->errout);
	return xasprintf("exited %d%s%s", r->status, sep, r->errout);
}

/* --- the event-loop side --- */

static void child_free(spawn_child *c)
{
	if (c->timer)
		event_free(c->timer);
	if (c->out_fd >= 0)
		close(c->out_fd);
	if (c->err_fd >= 0)
		close(c->err_fd);
	if (c->exec_fd >= 0)
		close(c->exec_fd);
	free(c->what);
	free(c);
}

/* An exited child that never ran its program: status 127, and why as its stderr. */
static void exec_failed(spawn_child *c, spawn_result *r)
{
	int code = 0;
	ssize_t n;
	do
		n = read(c->exec_fd, &code, sizeof(code));
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(code))
		return;
	free(r->errout);
	r->errout = xasprintf("exec %s: %s", c->what, strerror(code));
	r->err_len = strlen(r->errout);
	r->status = 127;
}

static void on_sigchld(evutil_socket_t sig, short what, void *arg)
{
	for (;;) {
		int st;
		struct rusage ru = {0};
		pid_t pid = wait4(-1, &st, WNOHANG, &ru);
		if (pid <= 0)
			break;
		spawn_child **pp = &children;
		while (*pp && (*pp)->pid != pid)
			pp = &(*pp)->next;
		spawn_child *c = *pp;
		if (!c)
			continue; /* an orphan re-parented to us: reaped, nothing to tell */
		*pp = c->next;
		n_children--;
		spawn_result r;
		fill_result(&r, pid, st, c->timed_out, c->out_fd, c->err_fd, c->capture_max);
		r.cpu_ns = rusage_cpu_ns(&ru);
		exec_failed(c, &r);
		c->cb(&r, c->arg);
		spawn_result_deinit(&r);
		child_free(c);
	}
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	spawn_child *c = arg;
	c->timed_out = true;
	kill(-c->pid, SIGKILL);
	kill(c->pid, SIGKILL);
}

int spawn_loop_init(struct event_base *base, err **e)
{
	loop_base = base;
	sigchld_ev = evsignal_new(base, SIGCHLD, on_sigchld, NULL);
	if (!sigchld_ev || evsignal_add(sigchld_ev, NULL) < 0)
		return err_set(e, 0, "cannot watch SIGCHLD");
	return 0;
}

void spawn_loop_deinit(void)
{
	if (sigchld_ev)
		event_free(sigchld_ev);
	sigchld_ev = NULL;
	while (children) {
		spawn_child *c = children;
		children = c->next;
		kill(-c->pid, SIGKILL);
		kill(c->pid, SIGKILL);
		waitpid(c->pid, NULL, 0);
		child_free(c);
	}
	n_children = 0;
	loop_base = NULL;
}

int spawn_start(const spawn_opts *o, spawn_done_fn cb, void *arg, spawn_child **out, err **e)
{
	if (!loop_base)
		return err_set(e, 0, "spawn %s: spawn_loop_init() was not called", o->argv[0]);
	/* A program named by its path that cannot be executed is an error now; any other exec
	 * failure is the child's exit status 127 (the loop does not wait for the exec). */
	if (strchr(o->argv[0], '/') && access(o->argv[0], X_OK) < 0)
		return err_set(e, errno, "exec %s", o->argv[0]);
	if (via_helper(o) && access(o->cgroup_exec, X_OK) < 0)
		return err_set(e, errno, "exec %s (the cgroup helper of %s)", o->cgroup_exec,
		               o->argv[0]);
	spawn_child *c = xzalloc(sizeof(*c));
	c->cb = cb;
	c->arg = arg;
	c->capture_max = o->capture_max ? o->capture_max : CAPTURE_DEFAULT;
	c->exec_fd = -1;
	c->pid = do_spawn(o, &c->out_fd, &c->err_fd, &c->exec_fd, e);
	if (c->pid < 0) {
		free(c);
		return -1;
	}
	c->what = xstrdup(o->argv[0]);
	if (o->timeout_ms > 0) {
		c->timer = evtimer_new(loop_base, on_deadline, c);
		struct timeval tv = {o->timeout_ms / 1000, (o->timeout_ms % 1000) * 1000};
		evtimer_add(c->timer, &tv);
	}
	c->next = children;
	children = c;
	n_children++;
	if (out)
		*out = c;
	return 0;
}

pid_t spawn_child_pid(const spawn_child *c)
{
	return c->pid;
}

size_t spawn_active(void)
{
	return n_children;
}
