/* aisp-agent: the in-sandbox agent, PID 1 of every sandbox (see frame.h for the protocol and
 * DESIGN.md "The agent"). It warms up the interpreter, reports READY, takes one TASK, runs the
 * program with its stdin, argv, environment and files, captures stdout and stderr up to their
 * caps, collects /workspace/out and reports EXIT. Static and libc only.
 *
 * The program never sees the agent's fds: its stdio and the bootstrap's task and result pipes
 * are pipes the agent created, everything else is close-on-exec or closed before exec, and
 * the agent is non-dumpable so /proc/1/fd is closed to the program too. */
#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "sandbox/agent/agent.h"

extern char **environ;

enum lang { LANG_PYTHON, LANG_JAVASCRIPT, LANG_SHELL };

/* Drain time after the program exited, for pipes still held by processes the agent could not
 * kill (only possible when it is not PID 1, i.e. in tests). */
#define DRAIN_MS 2000

/* The program: its pid (also its process group) and the agent's ends of its pipes. */
typedef struct child {
	pid_t pid;
	int in, out, err; /* the program's stdin (write end), stdout and stderr (read ends) */
	int task, res;    /* bootstrap: task payload (write end, fd 3), result (read end, fd 4) */
	bool exited;
	int status;
} child;

#define CHILD_INIT                                                                                 \
	{                                                                                          \
		.pid = -1, .in = -1, .out = -1, .err = -1, .task = -1, .res = -1                   \
	}

/* Who runs what. In a sandbox the agent is started as uid 0 holding only CAP_SETUID,
 * CAP_SETGID, CAP_SETPCAP and CAP_KILL (config.json), and the program runs as prog_uid with no
 * capability at all: a different user from the agent, so it can neither open the agent's pipes
 * through /proc/1/fd (gVisor ignores the non-dumpable flag) nor signal it. Whenever the agent
 * touches /workspace it acts as the program's user (effective ids only), so what it writes
 * belongs to the program and what it reads is what the program could read. Without --user
 * (tests on the host) everything runs as the caller. */
static uid_t prog_uid = (uid_t)-1;

static bool split(void)
{
	return prog_uid != (uid_t)-1;
}

/* Effective (and with real: also real) ids become the program's; the saved ids stay 0, which
 * is what lets as_agent() come back. */
static int as_program(bool real)
{
	if (!split())
		return 0;
	uid_t r = real ? prog_uid : (uid_t)-1;
	if (setresgid(r, prog_uid, (gid_t)-1) < 0 || setresuid(r, prog_uid, (uid_t)-1) < 0)
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

/* In the program's child, before exec: no capability can ever come back (empty bounding set),
 * then every id becomes the program's, which clears the permitted and effective sets. */
static int drop_to_program(void)
{
	if (!split())
		return 0;
	for (int cap = 0; cap <= 63; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			return -1;
	gid_t g = prog_uid;
	if (setgroups(1, &g) < 0 || setresgid(g, g, g) < 0 ||
	    setresuid(prog_uid, prog_uid, prog_uid) < 0)
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

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Frames go to fd 1 (the host); nothing else is ever written there. */
static void send_buf(sandbox_frame_buf *b)
{
	if (write_all(STDOUT_FILENO, b->data, b->len) < 0)
		_exit(1); /* the host is gone */
	b->len = 0;
}

static void send_exit(uint8_t flags, int32_t code, const char *msg)
{
	sandbox_frame_buf b = {0};
	sandbox_frame_put_exit(&b, flags, code, msg);
	send_buf(&b);
	sandbox_frame_buf_free(&b);
}

/* Ends every process of the task: the program's process group and, as PID 1 of the sandbox,
 * everything else too (a process that left the group with setsid). */
static void kill_task(const child *c)
{
	if (c->pid > 0)
		kill(-c->pid, SIGKILL);
	if (getpid() == 1)
		kill(-1, SIGKILL);
}

/* Reaps every finished child (as PID 1 or subreaper, orphans too); records the program's. */
static void reap(child *c)
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

typedef struct rlimits {
	uint64_t fsize, nofile, nproc; /* 0: leave as is */
} rlimits;

static int apply_rlimits(pid_t pid, const rlimits *l)
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

/* In the forked child: becomes the program's process: own group, default signals, empty mask,
 * pipes on fds 0-4, every other fd closed. Never returns. */
static void child_exec(const char *const argv[], char *const envp[], int fds[5], const rlimits *l)
{
	setpgid(0, 0);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Move the pipes above 4 first, so that the dup2s below cannot clobber each other. */
	for (int i = 0; i < 5; i++)
		if (fds[i] >= 0 && (fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 5)) < 0)
			_exit(127);
	unsigned keep = fds[3] >= 0 ? 5 : 3; /* fds 3 and 4 only for a bootstrap */
	for (unsigned i = 0; i < keep; i++)
		if (dup2(fds[i], (int)i) < 0)
			_exit(127);
	if (syscall(SYS_close_range, keep, ~0u, 0u) < 0)
		close_from((int)keep);
	if (drop_to_program() < 0)
		_exit(127);
	if (l && apply_rlimits(0, l) < 0)
		_exit(127);
	execve(argv[0], (char *const *)argv, envp);
	_exit(127);
}

/* Forks the program with fresh pipes. bootstrap: also the task and result pipes (fds 3, 4).
 * Returns 0 or -1 with errno. */
static int start_child(child *c, const char *const argv[], char *const envp[], bool bootstrap,
                       const rlimits *l)
{
	int p[5][2]; /* stdin, stdout, stderr, task, result: [0] read end, [1] write end */
	int n = bootstrap ? 5 : 3;
	for (int i = 0; i < n; i++)
		if (pipe2(p[i], O_CLOEXEC) < 0)
			return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fds[5] = {p[0][0], p[1][1], p[2][1], bootstrap ? p[3][0] : -1,
		              bootstrap ? p[4][1] : -1};
		child_exec(argv, envp, fds, l);
	}
	setpgid(pid, pid); /* also in the child: whichever runs first */
	c->pid = pid;
	c->in = p[0][1], c->out = p[1][0], c->err = p[2][0];
	close(p[0][0]), close(p[1][1]), close(p[2][1]);
	if (bootstrap) {
		c->task = p[3][1], c->res = p[4][0];
		close(p[3][0]), close(p[4][1]);
	}
	return 0;
}

/* Warm-up: starts the interpreter with its bootstrap and waits for its ready byte. */
static int warm_up(child *c, enum lang lang, char *msg, size_t msz)
{
	const char *py[] = {"/usr/bin/python3", "-s", "-c", agent_boot_python, NULL};
	const char *js[] = {"/usr/bin/node", "-e", agent_boot_node, NULL};
	const char *const *argv = lang == LANG_PYTHON ? py : js;
	if (start_child(c, argv, environ, true, NULL) < 0) {
		snprintf(msg, msz, "warm-up: start %s: %s", argv[0], strerror(errno));
		return -1;
	}
	char ready;
	ssize_t r;
	while ((r = read(c->res, &ready, 1)) < 0 && errno == EINTR)
		;
	if (r == 1 && ready == 'r')
		return 0;
	/* It died: say how, with the start of what it printed. */
	char text[512] = "";
	fcntl(c->err, F_SETFL, O_NONBLOCK);
	ssize_t n = read(c->err, text, sizeof(text) - 1);
	text[n > 0 ? n : 0] = '\0';
	int st = 0;
	waitpid(c->pid, &st, 0);
	c->exited = true;
	snprintf(msg, msz, "warm-up: %s %s %d: %s", argv[0],
	         WIFSIGNALED(st) ? "killed by signal" : "exited",
	         WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), text);
	return -1;
}

static bool has_nul(const agent_bytes *b)
{
	return memchr(b->p, '\0', b->n) != NULL;
}

static void push(agent_bytes **arr, size_t *n, const uint8_t *p, size_t len)
{
	*arr = xreallocarray(*arr, *n + 1, sizeof(**arr));
	(*arr)[(*n)++] = (agent_bytes){p, len};
}

int agent_task_parse(agent_task *t, const uint8_t *payload, size_t len, char *msg, size_t msz)
{
	memset(t, 0, sizeof(*t));
	size_t off = 0, n;
	uint8_t tag;
	const uint8_t *p;
	int r;
	while ((r = sandbox_frame_next_field(payload, len, &off, &tag, &p, &n)) == 1) {
		bool u64 = tag >= FIELD_STDOUT_MAX && tag <= FIELD_NPROC_MAX;
		if (u64 && n != 8) {
			snprintf(msg, msz, "malformed TASK: field %u is not a u64", tag);
			return -1;
		}
		uint64_t v = u64 ? sandbox_frame_get_u64(p, n) : 0;
		switch (tag) {
		case FIELD_MODE:
			if (n != 1 || p[0] > 1) {
				snprintf(msg, msz, "malformed TASK: bad mode");
				return -1;
			}
			t->mode = p[0];
			break;
		case FIELD_CODE:
			t->code = (agent_bytes){p, n};
			break;
		case FIELD_STDIN:
			t->stdin_data = (agent_bytes){p, n};
			break;
		case FIELD_ARG:
			push(&t->argv, &t->nargv, p, n);
			break;
		case FIELD_ARGS_JSON:
			t->args_json = (agent_bytes){p, n};
			break;
		case FIELD_ENV:
			push(&t->env, &t->nenv, p, n);
			break;
		case FIELD_FILE:
			push(&t->files, &t->nfiles, p, n);
			break;
		case FIELD_STDOUT_MAX:
			t->stdout_max = v;
			break;
		case FIELD_STDERR_MAX:
			t->stderr_max = v;
			break;
		case FIELD_FSIZE_MAX:
			t->fsize_max = v;
			break;
		case FIELD_NOFILE_MAX:
			t->nofile_max = v;
			break;
		case FIELD_OUT_FILES_MAX:
			t->out_files_max = v;
			break;
		case FIELD_OUT_BYTES_MAX:
			t->out_bytes_max = v;
			break;
		case FIELD_NPROC_MAX:
			t->nproc_max = v;
			break;
		default:
			snprintf(msg, msz, "malformed TASK: unknown field %u", tag);
			return -1;
		}
	}
	if (r < 0) {
		snprintf(msg, msz, "malformed TASK: a field runs past the end");
		return -1;
	}
	for (size_t i = 0; i < t->nargv; i++)
		if (has_nul(&t->argv[i])) {
			snprintf(msg, msz, "argument %zu contains a NUL byte", i);
			return -1;
		}
	for (size_t i = 0; i < t->nenv; i++) {
		const uint8_t *eq = memchr(t->env[i].p, '=', t->env[i].n);
		if (!eq || eq == t->env[i].p || has_nul(&t->env[i])) {
			snprintf(msg, msz, "environment entry %zu is not NAME=VALUE", i);
			return -1;
		}
	}
	/* Caps: defaults when absent; never more than a frame can carry. */
	uint64_t fmax = FRAME_MAX - AGENT_PATH_MAX - 1;
	if (!t->stdout_max || t->stdout_max > FRAME_MAX)
		t->stdout_max = t->stdout_max ? FRAME_MAX : AGENT_STREAM_MAX_DEFAULT;
	if (!t->stderr_max || t->stderr_max > FRAME_MAX)
		t->stderr_max = t->stderr_max ? FRAME_MAX : AGENT_STREAM_MAX_DEFAULT;
	if (!t->out_files_max)
		t->out_files_max = AGENT_OUT_FILES_MAX_DEFAULT;
	if (!t->out_bytes_max || t->out_bytes_max > fmax)
		t->out_bytes_max = t->out_bytes_max ? fmax : AGENT_OUT_BYTES_MAX_DEFAULT;
	return 0;
}

void agent_task_deinit(agent_task *t)
{
	free(t->argv);
	free(t->env);
	free(t->files);
	memset(t, 0, sizeof(*t));
}

static size_t name_len(const char *e, size_t n)
{
	const char *eq = memchr(e, '=', n);
	return eq ? (size_t)(eq - e) : n;
}

/* True when entry e (NAME=...) is set again by a task entry from index from on. */
static bool overridden(const char *e, size_t n, const agent_task *t, size_t from)
{
	size_t nl = name_len(e, n);
	for (size_t j = from; j < t->nenv; j++) {
		const char *o = (const char *)t->env[j].p;
		if (name_len(o, t->env[j].n) == nl && !memcmp(o, e, nl))
			return true;
	}
	return false;
}

/* The program's environment: the agent's own (the sandbox's fixed base) plus the task's
 * variables, which win. A NULL-terminated array of owned strings. */
static char **task_env(const agent_task *t)
{
	size_t nbase = 0, k = 0;
	while (environ[nbase])
		nbase++;
	char **env = xcalloc(nbase + t->nenv + 1, sizeof(char *));
	for (size_t i = 0; i < nbase; i++)
		if (!overridden(environ[i], strlen(environ[i]), t, 0))
			env[k++] = xstrdup(environ[i]);
	for (size_t i = 0; i < t->nenv; i++)
		if (!overridden((const char *)t->env[i].p, t->env[i].n, t, i + 1))
			env[k++] = xstrndup((const char *)t->env[i].p, t->env[i].n);
	return env;
}

static void free_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* The bootstrap's task payload: MODE, CODE, ARG*, ARGS_JSON, ENV* (the whole environment). */
static void boot_payload(sandbox_frame_buf *b, const agent_task *t, char **env)
{
	sandbox_frame_put_field(b, FIELD_MODE, &t->mode, 1);
	sandbox_frame_put_field(b, FIELD_CODE, t->code.p, t->code.n);
	for (size_t i = 0; i < t->nargv; i++)
		sandbox_frame_put_field(b, FIELD_ARG, t->argv[i].p, t->argv[i].n);
	if (t->args_json.p)
		sandbox_frame_put_field(b, FIELD_ARGS_JSON, t->args_json.p, t->args_json.n);
	for (size_t i = 0; env[i]; i++)
		sandbox_frame_put_field(b, FIELD_ENV, env[i], strlen(env[i]));
}

/* A captured stream, kept up to max bytes. */
typedef struct capture {
	sandbox_frame_buf b;
	uint64_t max;
	bool over;
} capture;

/* Bytes still to be written into a pipe. */
typedef struct feed {
	const uint8_t *p;
	size_t n;
} feed;

/* Writes what the pipe takes now; closes it when done or when the reader is gone. */
static void feed_some(int *fd, feed *f)
{
	while (f->n) {
		ssize_t w = write(*fd, f->p, f->n > 65536 ? 65536 : f->n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return;
		if (w < 0)
			break; /* EPIPE: the program does not read it; that is its choice */
		f->p += w;
		f->n -= (size_t)w;
	}
	close_fd(fd);
}

/* Reads what is there; returns true when the stream went over its cap. */
static bool capture_some(int *fd, capture *c)
{
	uint8_t chunk[65536];
	for (;;) {
		ssize_t r = read(*fd, chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return false;
		if (r <= 0) {
			close_fd(fd);
			return false;
		}
		size_t room = (size_t)(c->max - c->b.len);
		size_t take = (size_t)r < room ? (size_t)r : room;
		if (take) {
			if (c->b.len + take > c->b.cap) {
				size_t cap = c->b.cap ? c->b.cap : 65536;
				while (cap < c->b.len + take)
					cap *= 2;
				c->b.data = xrealloc(c->b.data, cap);
				c->b.cap = cap;
			}
			memcpy(c->b.data + c->b.len, chunk, take);
			c->b.len += take;
		}
		if ((size_t)r > room) {
			/* The caller kills the task before closing the pipe, so that the
			 * program dies of SIGKILL, not of SIGPIPE. */
			c->over = true;
			return true;
		}
	}
}

typedef struct io {
	capture out, err, res;
	feed in, task;
} task_io;

/* Runs the program to its end: feeds stdin and the task payload, captures the streams, reaps.
 * Kills the task when a stream goes over its cap. */
static void run_io(child *c, task_io *io)
{
	int *fds[] = {&c->in, &c->task, &c->out, &c->err, &c->res, &sigchld_pipe[0]};
	int64_t deadline = -1;
	for (size_t i = 0; i < 5; i++)
		if (*fds[i] >= 0)
			fcntl(*fds[i], F_SETFL, O_NONBLOCK);
	if (!io->in.n)
		close_fd(&c->in);
	for (;;) {
		reap(c);
		if (c->exited && deadline < 0) {
			kill_task(c);
			close_fd(&c->in);
			close_fd(&c->task);
			deadline = now_mono_ms() + DRAIN_MS;
		}
		if (c->exited && c->out < 0 && c->err < 0 && c->res < 0)
			break;
		if (deadline >= 0 && now_mono_ms() >= deadline)
			break;
		struct pollfd pfd[6];
		for (size_t i = 0; i < 6; i++)
			pfd[i] = (struct pollfd){*fds[i], i < 2 ? POLLOUT : POLLIN, 0};
		int timeout = deadline < 0 ? -1 : (int)(deadline - now_mono_ms());
		if (poll(pfd, 6, timeout < 0 && deadline >= 0 ? 0 : timeout) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents)
			feed_some(&c->in, &io->in);
		if (pfd[1].revents)
			feed_some(&c->task, &io->task);
		bool over = false;
		if (pfd[2].revents)
			over |= capture_some(&c->out, &io->out);
		if (pfd[3].revents)
			over |= capture_some(&c->err, &io->err);
		if (pfd[4].revents && capture_some(&c->res, &io->res))
			close_fd(&c->res); /* too long: judged below */
		if (over)
			kill_task(c);
		if (io->out.over)
			close_fd(&c->out);
		if (io->err.over)
			close_fd(&c->err);
		if (pfd[5].revents) {
			char drain[64];
			while (read(sigchld_pipe[0], drain, sizeof(drain)) > 0)
				;
		}
	}
	close_fd(&c->out);
	close_fd(&c->err);
	close_fd(&c->res);
	kill_task(c);
	reap(c);
}

/* Builds the EXIT flags, code and message from the program's end and the captures. */
static void judge(const child *c, const agent_task *t, task_io *io, uint8_t *flags, int32_t *code,
                  char *msg, size_t msz, bool *send_return)
{
	*flags = 0;
	*code = 0;
	*send_return = false;
	if (WIFSIGNALED(c->status)) {
		*flags |= EXIT_F_SIGNALED;
		*code = WTERMSIG(c->status);
	} else {
		*code = WEXITSTATUS(c->status);
	}
	if (io->out.over || io->err.over) {
		*flags |= EXIT_F_OUTPUT_LIMIT;
		*flags |= io->out.over ? EXIT_F_STDOUT_TRUNC : 0;
		*flags |= io->err.over ? EXIT_F_STDERR_TRUNC : 0;
		snprintf(msg, msz, "%s over its cap of %llu bytes",
		         io->out.over ? "stdout" : "stderr",
		         (unsigned long long)(io->out.over ? io->out.max : io->err.max));
		return;
	}
	if (t->mode != 1)
		return;
	const sandbox_frame_buf *r = &io->res.b;
	if (r->len && r->data[0] == 'V' && r->len - 1 <= AGENT_RETURN_MAX && !io->res.over &&
	    !(*flags & EXIT_F_SIGNALED)) {
		*send_return = true;
		return;
	}
	*flags |= EXIT_F_FUNCTION_ERROR;
	if (r->len && r->data[0] == 'E' && !io->res.over)
		snprintf(msg, msz, "%.*s", (int)(r->len - 1), (const char *)r->data + 1);
	else if (r->len && r->data[0] == 'V')
		snprintf(msg, msz, "return value over %u bytes", AGENT_RETURN_MAX);
	else
		snprintf(msg, msz, "the program ended before main returned");
}

/* Runs the task and reports it. lang's interpreter (not shell) is already warm in c. */
static void run_task(child *c, enum lang lang, int wsfd, const agent_task *t)
{
	char msg[4096] = "";
	if (lang == LANG_SHELL && t->mode == 1) {
		send_exit(EXIT_F_SETUP_ERROR, -1, "function mode is not supported for shell");
		return;
	}
	int wr = as_program(false);
	if (wr == 0)
		wr = agent_write_inputs(wsfd, t, msg, sizeof(msg));
	else
		snprintf(msg, sizeof(msg), "cannot act as uid %u: %s", (unsigned)prog_uid,
		         strerror(errno));
	if (wr == 0 && mkdirat(wsfd, "out", 0755) < 0 && errno != EEXIST) {
		snprintf(msg, sizeof(msg), "mkdir out: %s", strerror(errno));
		wr = -1;
	}
	as_agent();
	if (wr < 0) {
		send_exit(EXIT_F_SETUP_ERROR, -1, msg);
		return;
	}
	rlimits lim = {t->fsize_max, t->nofile_max, t->nproc_max};
	char **env = task_env(t);
	sandbox_frame_buf payload = {0};
	task_io io = {.out.max = t->stdout_max,
	              .err.max = t->stderr_max,
	              .res.max = 1 + AGENT_RETURN_MAX + 4096,
	              .in = {t->stdin_data.p, t->stdin_data.n}};
	if (lang == LANG_SHELL) {
		_cleanup_free_ char *code = xstrndup((const char *)t->code.p, t->code.n);
		const char **argv = xcalloc(t->nargv + 5, sizeof(char *));
		size_t k = 0;
		argv[k++] = "/bin/sh", argv[k++] = "-c", argv[k++] = code, argv[k++] = "sh";
		for (size_t i = 0; i < t->nargv; i++)
			argv[k++] = xstrndup((const char *)t->argv[i].p, t->argv[i].n);
		int r = start_child(c, argv, env, false, &lim);
		for (size_t i = 4; i < k; i++)
			free((char *)argv[i]);
		free(argv);
		if (r < 0 || has_nul(&t->code)) {
			snprintf(msg, sizeof(msg), "%s",
			         r < 0 ? "cannot start /bin/sh" : "shell code contains a NUL byte");
			kill_task(c);
			goto setup_error;
		}
	} else {
		reap(c);
		if (c->exited) {
			snprintf(msg, sizeof(msg), "the interpreter died before the task");
			goto setup_error;
		}
		/* prlimit on another process needs the target's ids to match our real ones */
		int rl = as_program(true);
		if (rl == 0)
			rl = apply_rlimits(c->pid, &lim);
		int saved = errno;
		as_agent();
		if (rl < 0) {
			snprintf(msg, sizeof(msg), "prlimit: %s", strerror(saved));
			kill_task(c);
			goto setup_error;
		}
		boot_payload(&payload, t, env);
		io.task = (feed){payload.data, payload.len};
	}
	run_io(c, &io);

	uint8_t flags;
	int32_t code;
	bool send_return, files_trunc = false;
	judge(c, t, &io, &flags, &code, msg, sizeof(msg), &send_return);
	sandbox_frame_buf out = {0};
	sandbox_frame_put(&out, FRAME_STDOUT, io.out.b.data, io.out.b.len);
	sandbox_frame_put(&out, FRAME_STDERR, io.err.b.data, io.err.b.len);
	send_buf(&out);
	if (as_program(false) == 0)
		agent_collect_outputs(wsfd, t->out_files_max, t->out_bytes_max, &out, &files_trunc);
	as_agent();
	if (send_return)
		sandbox_frame_put(&out, FRAME_RETURN, io.res.b.data + 1, io.res.b.len - 1);
	sandbox_frame_put_exit(&out, flags | (files_trunc ? EXIT_F_FILES_TRUNC : 0), code, msg);
	send_buf(&out);
	sandbox_frame_buf_free(&out);
	sandbox_frame_buf_free(&io.out.b);
	sandbox_frame_buf_free(&io.err.b);
	sandbox_frame_buf_free(&io.res.b);
	sandbox_frame_buf_free(&payload);
	free_strv(env);
	return;
setup_error:
	send_exit(EXIT_F_SETUP_ERROR, -1, msg);
	sandbox_frame_buf_free(&payload);
	free_strv(env);
}

/* Reads frames from the host until the TASK; returns 1 with *t parsed, 0 on EOF, -1 after
 * reporting a malformed frame. */
static int read_task(sandbox_frame_reader *r, agent_task *t, char *msg, size_t msz)
{
	for (;;) {
		uint8_t type;
		const uint8_t *p;
		size_t n;
		int k = sandbox_frame_reader_next(r, &type, &p, &n);
		if (k == 1 && type == FRAME_TASK)
			return agent_task_parse(t, p, n, msg, msz) < 0 ? -1 : 1;
		if (k == 1 || k < 0) {
			snprintf(msg, msz,
			         k < 0 ? "malformed frame from the host"
			               : "unexpected frame from the host");
			return -1;
		}
		uint8_t chunk[65536];
		ssize_t got = read(STDIN_FILENO, chunk, sizeof(chunk));
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return 0;
		sandbox_frame_reader_feed(r, chunk, (size_t)got);
	}
}

static void usage(void)
{
	send_exit(
	    EXIT_F_SETUP_ERROR, -1,
	    "usage: aisp-agent --lang python|javascript|shell [--workspace DIR] [--user UID]");
	exit(2);
}

/* The process setup of DESIGN.md: non-dumpable, stderr closed to us, SIGPIPE ignored, SIGCHLD
 * to a self-pipe, reaper of orphans, cwd the workspace, umask 022. */
static int setup_process(const char *ws)
{
	prctl(PR_SET_DUMPABLE, 0);
	prctl(PR_SET_CHILD_SUBREAPER, 1); /* PID 1 already is; makes tests on the host alike */
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, STDERR_FILENO);
		close(null);
	}
	fcntl(STDIN_FILENO, F_SETFD, FD_CLOEXEC);
	fcntl(STDOUT_FILENO, F_SETFD, FD_CLOEXEC);
	fcntl(STDERR_FILENO, F_SETFD, FD_CLOEXEC);
	signal(SIGPIPE, SIG_IGN);
	if (pipe2(sigchld_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	struct sigaction sa = {.sa_handler = on_sigchld, .sa_flags = SA_RESTART | SA_NOCLDSTOP};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGCHLD, &sa, NULL);
	umask(022);
	return chdir(ws);
}

int main(int argc, char **argv)
{
	const char *lang_s = NULL, *ws = "/workspace";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--lang") && i + 1 < argc)
			lang_s = argv[++i];
		else if (!strcmp(argv[i], "--workspace") && i + 1 < argc)
			ws = argv[++i];
		else if (!strcmp(argv[i], "--user") && i + 1 < argc)
			prog_uid = (uid_t)strtoul(argv[++i], NULL, 10);
		else
			usage();
	}
	enum lang lang;
	if (lang_s && !strcmp(lang_s, "python"))
		lang = LANG_PYTHON;
	else if (lang_s && !strcmp(lang_s, "javascript"))
		lang = LANG_JAVASCRIPT;
	else if (lang_s && !strcmp(lang_s, "shell"))
		lang = LANG_SHELL;
	else
		usage();

	char msg[4096];
	if (setup_process(ws) < 0) {
		snprintf(msg, sizeof(msg), "workspace %s: %s", ws, strerror(errno));
		send_exit(EXIT_F_SETUP_ERROR, -1, msg);
		return 1;
	}
	_cleanup_close_ int wsfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	child c = CHILD_INIT;
	if (lang != LANG_SHELL && warm_up(&c, lang, msg, sizeof(msg)) < 0) {
		send_exit(EXIT_F_SETUP_ERROR, -1, msg);
		return 1;
	}
	sandbox_frame_buf b = {0};
	sandbox_frame_put(&b, FRAME_READY, AGENT_VERSION, strlen(AGENT_VERSION));
	send_buf(&b);
	sandbox_frame_buf_free(&b);

	sandbox_frame_reader r;
	sandbox_frame_reader_init(&r);
	agent_task t;
	int k = read_task(&r, &t, msg, sizeof(msg));
	if (k == 1)
		run_task(&c, lang, wsfd, &t);
	else if (k < 0)
		send_exit(EXIT_F_SETUP_ERROR, -1, msg);
	kill_task(&c);
	agent_task_deinit(&t);
	sandbox_frame_reader_deinit(&r);
	return k == 0 ? 1 : 0;
}
