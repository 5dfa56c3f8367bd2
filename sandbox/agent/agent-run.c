/* One task in the agent, in four steps: prepare (the input files, written as the program's
 * user), launch (the shell with the task, or the warm interpreter given its limits and the task
 * payload), collect (stdin in; stdout and stderr out to the host as they are read, in STDOUT and
 * STDERR frames, and the bootstrap's result kept, each up to its cap, until the program and
 * everything it started is gone) and report (FILE*, RETURN?, EXIT, with the last output read,
 * in one write). Every step that acts as the program's user goes through agent_as_program(),
 * which always switches back. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "sandbox/agent/agent.h"

/* Drain time after the program ended: for pipes still held by processes the agent could not
 * kill (only possible when it is not PID 1, i.e. in tests), or, after the bootstrap's exit
 * byte, by processes the program left holding them (then killed). */
#define DRAIN_MS 2000

/* A stream of the program's: stdout and stderr are forwarded to the host as they are read, as
 * frames of at most FRAME_CHUNK_MAX bytes (frame is FRAME_STDOUT or FRAME_STDERR), so that the
 * host holds what was printed when the sandbox is killed; the bootstrap's result (frame 0) is
 * kept in b. Either way at most max bytes are taken. */
typedef struct capture {
	uint8_t frame;
	sandbox_frame_buf b;
	uint64_t len, max;
	bool over;
} capture;

/* Chunks read from one stream per wake-up, at most: what a flood adds before it is sent. */
#define CHUNKS_PER_WAKE 4

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
	agent_close_fd(fd);
}

static void take(capture *c, const uint8_t *p, size_t n, sandbox_frame_buf *frames)
{
	if (c->frame) {
		sandbox_frame_put(frames, c->frame, p, n);
	} else {
		if (c->b.len + n > c->b.cap) {
			size_t cap = c->b.cap ? c->b.cap : 4096;
			while (cap < c->b.len + n)
				cap *= 2;
			c->b.data = xrealloc(c->b.data, cap);
			c->b.cap = cap;
		}
		memcpy(c->b.data + c->b.len, p, n);
		c->b.len += n;
	}
	c->len += n;
}

/* Reads what is there (a few chunks at most; the rest on the next wake-up), forwarding it to
 * frames; returns true when the stream went over its cap. */
static bool capture_some(int *fd, capture *c, sandbox_frame_buf *frames)
{
	uint8_t chunk[FRAME_CHUNK_MAX];
	for (int i = 0; i < CHUNKS_PER_WAKE; i++) {
		ssize_t r = read(*fd, chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return false;
		if (r <= 0) {
			agent_close_fd(fd);
			return false;
		}
		size_t room = (size_t)(c->max - c->len);
		size_t n = (size_t)r < room ? (size_t)r : room;
		if (n)
			take(c, chunk, n, frames);
		if ((size_t)r > room) {
			/* The caller kills the task before closing the pipe, so that the
			 * program dies of SIGKILL, not of SIGPIPE. */
			c->over = true;
			return true;
		}
	}
	return false;
}

typedef struct io {
	capture out, err, res;
	feed in, task;
	sandbox_frame_buf frames; /* to the host, sent once per wake-up: one write */
} task_io;

/* The bootstrap's exit status (agent-boot.c, "The exit"): one byte on its fd 7, written once
 * it has flushed and closed its stdout and stderr; then it waits to be killed. Taken as the
 * program's end: the report goes out once the pipes are at EOF, with the interpreter still
 * alive and idle, and only then is it killed. Its exit (under gVisor's ptrace platform 1-2 ms
 * of tearing down its address space, which made every syscall of the agent's report wait) and
 * the reap are no longer on the task's path. The program could write that byte itself: that
 * ends it there, with that status, as its own _exit would, once it has let go of stdout and
 * stderr (or DRAIN_MS later, killed). Nothing (EOF) leaves it to the reap. */
static void take_exit_status(agent_child *c)
{
	uint8_t st;
	ssize_t r;
	while ((r = read(c->fin, &st, 1)) < 0 && errno == EINTR)
		;
	if (r < 0 && errno == EAGAIN)
		return;
	if (r == 1 && !c->exited) {
		c->exited = c->parked = true;
		c->status = st << 8; /* as wait() says "exited with st" */
	}
	agent_close_fd(&c->fin);
}

/* One wake-up's pipe events: stdin and the task payload fed, the streams captured (killing the
 * task when one goes over its cap). */
static void pipe_events(agent_child *c, task_io *io, const struct pollfd *pfd)
{
	if (pfd[0].revents)
		feed_some(&c->in, &io->in);
	if (pfd[1].revents)
		feed_some(&c->task, &io->task);
	bool over = false;
	if (pfd[2].revents)
		over |= capture_some(&c->out, &io->out, &io->frames);
	if (pfd[3].revents)
		over |= capture_some(&c->err, &io->err, &io->frames);
	if (pfd[4].revents && capture_some(&c->res, &io->res, &io->frames))
		agent_close_fd(&c->res); /* too long: judged below */
	if (over)
		agent_kill_task(c);
	if (io->out.over)
		agent_close_fd(&c->out);
	if (io->err.over)
		agent_close_fd(&c->err);
	if (pfd[6].revents)
		take_exit_status(c);
}

/* collect: runs the program to its end: feeds stdin and the task payload, captures the streams,
 * reaps. Kills the task when a stream goes over its cap. */
static void collect(agent_child *c, task_io *io)
{
	int sig = agent_sigchld_fd();
	int *fds[] = {&c->in, &c->task, &c->out, &c->err, &c->res, &sig, &c->fin};
	int64_t deadline = -1;
	bool reap = true; /* at first, then on SIGCHLD only */
	agent_proxy px;
	agent_proxy_init(&px, c);
	if (!io->in.n)
		agent_close_fd(&c->in);
	for (;;) {
		if (reap)
			agent_reap(c);
		reap = false;
		if (c->exited && deadline < 0) {
			if (!c->parked)
				agent_kill_task(c);
			agent_close_fd(&c->in);
			agent_close_fd(&c->task);
			deadline = now_mono_ms() + DRAIN_MS;
		}
		if (c->exited && c->out < 0 && c->err < 0 && c->res < 0)
			break;
		if (deadline >= 0 && now_mono_ms() >= deadline)
			break;
		if (io->frames.len)
			agent_send(&io->frames); /* what the last wake-up read, before sleeping */
		struct pollfd pfd[10];
		for (size_t i = 0; i < 7; i++)
			pfd[i] = (struct pollfd){*fds[i], i < 2 ? POLLOUT : POLLIN, 0};
		agent_proxy_poll(&px, pfd + 7);
		int timeout = deadline < 0 ? -1 : (int)(deadline - now_mono_ms());
		if (poll(pfd, 10, timeout < 0 && deadline >= 0 ? 0 : timeout) < 0 && errno != EINTR)
			break;
		agent_proxy_events(&px, pfd + 7, &io->frames);
		pipe_events(c, io, pfd);
		if (pfd[5].revents) {
			agent_sigchld_drain();
			reap = true;
		}
	}
	bool drained = c->out < 0 && c->err < 0 && c->res < 0;
	agent_close_fd(&c->out);
	agent_close_fd(&c->err);
	agent_close_fd(&c->res);
	agent_close_fd(&c->fin);
	agent_proxy_deinit(&px);
	if (c->parked && drained) {
		/* Killed after the report; stopped now. A normal end is stopped already and has
		 * nothing else left; a program that wrote the exit byte itself and runs on stops
		 * here, before its outputs are collected. */
		agent_stop_task(c);
		return;
	}
	agent_kill_task(c);
	agent_reap(c);
}

uint64_t agent_return_cap(const agent_task *t)
{
	return t->mode == 2 ? t->output_max : AGENT_RETURN_MAX;
}

/* Builds the EXIT flags, code and message from the program's end and the captures. */
static void judge(const agent_child *c, const agent_task *t, task_io *io, uint8_t *flags,
                  int32_t *code, char *msg, size_t msz, bool *send_return)
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
	if (t->mode == 0)
		return;
	const sandbox_frame_buf *r = &io->res.b;
	if (r->len && r->data[0] == 'V' && r->len - 1 <= agent_return_cap(t) && !io->res.over &&
	    !(*flags & EXIT_F_SIGNALED)) {
		*send_return = true;
		return;
	}
	*flags |= EXIT_F_FUNCTION_ERROR;
	if (r->len && r->data[0] == 'E' && !io->res.over)
		snprintf(msg, msz, "%.*s", (int)(r->len - 1), (const char *)r->data + 1);
	else if (r->len && r->data[0] == 'V')
		snprintf(msg, msz, "%s over %llu bytes", t->mode == 2 ? "output" : "return value",
		         (unsigned long long)agent_return_cap(t));
	else
		snprintf(msg, msz, "%s",
		         t->mode == 2 ? "the script ended before it returned its output"
		                      : "the program ended before main returned");
}

/* One task's run, from prepare to report. */
typedef struct run {
	agent_child *c;
	enum agent_lang lang;
	int wsfd;
	const agent_task *t;
	char **env;                /* the program's environment */
	sandbox_frame_buf payload; /* the bootstrap's task payload */
	task_io io;
	bool files_trunc;
	char msg[4096]; /* a setup error, or the EXIT message */
} run;

/* ---- prepare ---- */

/* The program's own file, /workspace/main.py (main.js, main.sh): tracebacks show its lines,
 * __file__ and $0 name it. An input file of that name is the task's choice and stays. */
static const char *const program_file[] = {[AGENT_LANG_PYTHON] = "main.py",
                                           [AGENT_LANG_JAVASCRIPT] = "main.js",
                                           [AGENT_LANG_SHELL] = "main.sh"};

/* True when the task brings an input file of this name. */
static bool is_input(const agent_task *t, const char *name)
{
	size_t n = strlen(name) + 1;
	for (size_t i = 0; i < t->nfiles; i++)
		if (t->files[i].n >= n && !memcmp(t->files[i].p, name, n))
			return true;
	return false;
}

static agent_rlimits limits_of(const agent_task *t)
{
	return (agent_rlimits){t->fsize_max, t->nofile_max, t->nproc_max};
}

/* As the program's user: what the task brings and the program's file; for the warm
 * interpreter also its limits, with the real ids too (prlimit on another process needs the
 * target's ids to match the caller's real ones). One switch for both. */
static int as_program(void *arg)
{
	run *r = arg;
	if (r->t->nfiles && agent_write_inputs(r->wsfd, r->t, r->msg, sizeof(r->msg)) < 0)
		return -1;
	const char *name = program_file[r->lang];
	if (!is_input(r->t, name)) {
		_cleanup_close_ int fd = openat(
		    r->wsfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd < 0 || write_all(fd, r->t->code.p, r->t->code.n) < 0)
			return snprintf(r->msg, sizeof(r->msg), "%s: %s", name, strerror(errno)),
			       -1;
	}
	agent_rlimits lim = limits_of(r->t);
	if (r->lang != AGENT_LANG_SHELL && agent_apply_rlimits(r->c->pid, &lim) < 0)
		return snprintf(r->msg, sizeof(r->msg), "prlimit: %s", strerror(errno)), -1;
	return 0;
}

static int prepare(run *r)
{
	bool warm = r->lang != AGENT_LANG_SHELL;
	if (!warm && r->t->mode == 1)
		return snprintf(r->msg, sizeof(r->msg), "function mode is not supported for shell"),
		       -1;
	if (warm) {
		agent_reap(r->c);
		if (r->c->exited)
			return snprintf(r->msg, sizeof(r->msg),
			                "the interpreter died before the task"),
			       -1;
	}
	if (agent_as_program(warm, as_program, r, r->msg, sizeof(r->msg)) < 0)
		return -1;
	r->env = agent_task_env(r->t);
	r->io = (task_io){.out = {.frame = FRAME_STDOUT, .max = r->t->stdout_max},
	                  .err = {.frame = FRAME_STDERR, .max = r->t->stderr_max},
	                  .res.max = 1 + agent_return_cap(r->t) + 4096,
	                  .in = {r->t->stdin_data.p, r->t->stdin_data.n}};
	return 0;
}

/* ---- launch ---- */

/* sh main.sh ARG...: a fresh process, which applies the limits itself before exec */
static int launch_shell(run *r)
{
	const agent_task *t = r->t;
	if (agent_has_nul(&t->code))
		return snprintf(r->msg, sizeof(r->msg), "shell code contains a NUL byte"), -1;
	const char **argv = xcalloc(t->nargv + 3, sizeof(char *));
	size_t k = 0;
	argv[k++] = "/bin/sh", argv[k++] = program_file[AGENT_LANG_SHELL];
	for (size_t i = 0; i < t->nargv; i++)
		argv[k++] = xstrndup((const char *)t->argv[i].p, t->argv[i].n);
	agent_rlimits lim = limits_of(t);
	int rc = agent_start_child(r->c, argv, r->env, false, &lim);
	for (size_t i = 2; i < k; i++)
		free((char *)argv[i]);
	free(argv);
	if (rc < 0)
		return agent_start_why(r->c, "/bin/sh", r->msg, sizeof(r->msg)), -1;
	agent_child_nonblock(r->c);
	return 0;
}

/* the warm interpreter (its limits are set): the task through its bootstrap's task pipe */
static int launch_warm(run *r)
{
	agent_boot_payload(&r->payload, r->t, r->env);
	r->io.task = (feed){r->payload.data, r->payload.len};
	return 0;
}

static int launch(run *r)
{
	return r->lang == AGENT_LANG_SHELL ? launch_shell(r) : launch_warm(r);
}

/* ---- report ---- */

/* As the program's user: what it left in out/ is what it could read. */
static int take_outputs(void *arg)
{
	run *r = arg;
	agent_collect_outputs(r->wsfd, r->t->out_files_max, r->t->out_bytes_max, &r->io.frames,
	                      &r->files_trunc);
	return 0;
}

static void report(run *r)
{
	uint8_t flags;
	int32_t code;
	bool send_return;
	judge(r->c, r->t, &r->io, &flags, &code, r->msg, sizeof(r->msg), &send_return);
	char unused[128]; /* not as the program's user: no output files, but the result stands */
	if (r->t->mode != 2 && !agent_out_empty(r->wsfd)) /* a chain's step has no output files */
		agent_as_program(false, take_outputs, r, unused, sizeof(unused));
	if (r->t->mode != 2)
		agent_collect_runtime(r->wsfd, &r->io.frames);
	if (send_return)
		sandbox_frame_put(&r->io.frames, r->t->mode == 2 ? FRAME_STEP_RESULT : FRAME_RETURN,
		                  r->io.res.b.data + 1, r->io.res.b.len - 1);
	sandbox_frame_put_exit(&r->io.frames, flags | (r->files_trunc ? EXIT_F_FILES_TRUNC : 0),
	                       code, r->msg);
	agent_send(&r->io.frames); /* the last output read, the files, the value and EXIT at once */
}

void agent_run_task(agent_child *c, enum agent_lang lang, int wsfd, const agent_task *t)
{
	run r = {.c = c, .lang = lang, .wsfd = wsfd, .t = t};
	if (prepare(&r) < 0) {
		agent_send_exit(EXIT_F_SETUP_ERROR, -1, r.msg);
	} else if (launch(&r) < 0) {
		agent_kill_task(c);
		agent_send_exit(EXIT_F_SETUP_ERROR, -1, r.msg);
	} else {
		collect(c, &r.io);
		report(&r);
	}
	sandbox_frame_buf_free(&r.io.frames);
	sandbox_frame_buf_free(&r.io.res.b);
	sandbox_frame_buf_free(&r.payload);
	agent_strv_free(r.env);
}
