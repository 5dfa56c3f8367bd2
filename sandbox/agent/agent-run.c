/* One task in the agent, in four steps: prepare (the input files, written as the program's
 * user), launch (the shell with the task, or the warm interpreter given its limits and the task
 * payload), collect (stdin in; stdout, stderr and the bootstrap's result out, up to their caps,
 * until the program and everything it started is gone) and report (STDOUT, STDERR, FILE*,
 * RETURN?, EXIT). Every step that acts as the program's user goes through agent_as_program(),
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

/* Drain time after the program exited, for pipes still held by processes the agent could not
 * kill (only possible when it is not PID 1, i.e. in tests). */
#define DRAIN_MS 2000

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
	agent_close_fd(fd);
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
			agent_close_fd(fd);
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

/* collect: runs the program to its end: feeds stdin and the task payload, captures the streams,
 * reaps. Kills the task when a stream goes over its cap. */
static void collect(agent_child *c, task_io *io)
{
	int sig = agent_sigchld_fd();
	int *fds[] = {&c->in, &c->task, &c->out, &c->err, &c->res, &sig};
	int64_t deadline = -1;
	for (size_t i = 0; i < 5; i++)
		if (*fds[i] >= 0)
			fcntl(*fds[i], F_SETFL, O_NONBLOCK);
	if (!io->in.n)
		agent_close_fd(&c->in);
	for (;;) {
		agent_reap(c);
		if (c->exited && deadline < 0) {
			agent_kill_task(c);
			agent_close_fd(&c->in);
			agent_close_fd(&c->task);
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
			agent_close_fd(&c->res); /* too long: judged below */
		if (over)
			agent_kill_task(c);
		if (io->out.over)
			agent_close_fd(&c->out);
		if (io->err.over)
			agent_close_fd(&c->err);
		if (pfd[5].revents)
			agent_sigchld_drain();
	}
	agent_close_fd(&c->out);
	agent_close_fd(&c->err);
	agent_close_fd(&c->res);
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
	sandbox_frame_buf frames; /* report: what goes to the host */
	bool files_trunc;
	char msg[4096]; /* a setup error, or the EXIT message */
} run;

/* ---- prepare ---- */

/* As the program's user: what the task brings, and out/ for what it leaves. */
static int write_inputs(void *arg)
{
	run *r = arg;
	if (agent_write_inputs(r->wsfd, r->t, r->msg, sizeof(r->msg)) < 0)
		return -1;
	if (mkdirat(r->wsfd, "out", 0755) < 0 && errno != EEXIST)
		return snprintf(r->msg, sizeof(r->msg), "mkdir out: %s", strerror(errno)), -1;
	return 0;
}

static int prepare(run *r)
{
	if (r->lang == AGENT_LANG_SHELL && r->t->mode == 1)
		return snprintf(r->msg, sizeof(r->msg), "function mode is not supported for shell"),
		       -1;
	if (agent_as_program(false, write_inputs, r, r->msg, sizeof(r->msg)) < 0)
		return -1;
	r->env = agent_task_env(r->t);
	r->io = (task_io){.out.max = r->t->stdout_max,
	                  .err.max = r->t->stderr_max,
	                  .res.max = 1 + agent_return_cap(r->t) + 4096,
	                  .in = {r->t->stdin_data.p, r->t->stdin_data.n}};
	return 0;
}

/* ---- launch ---- */

static agent_rlimits limits_of(const agent_task *t)
{
	return (agent_rlimits){t->fsize_max, t->nofile_max, t->nproc_max};
}

/* sh -c CODE sh ARG...: a fresh process, which applies the limits itself before exec */
static int launch_shell(run *r)
{
	const agent_task *t = r->t;
	if (agent_has_nul(&t->code))
		return snprintf(r->msg, sizeof(r->msg), "shell code contains a NUL byte"), -1;
	_cleanup_free_ char *code = xstrndup((const char *)t->code.p, t->code.n);
	const char **argv = xcalloc(t->nargv + 5, sizeof(char *));
	size_t k = 0;
	argv[k++] = "/bin/sh", argv[k++] = "-c", argv[k++] = code, argv[k++] = "sh";
	for (size_t i = 0; i < t->nargv; i++)
		argv[k++] = xstrndup((const char *)t->argv[i].p, t->argv[i].n);
	agent_rlimits lim = limits_of(t);
	int rc = agent_start_child(r->c, argv, r->env, false, &lim);
	for (size_t i = 4; i < k; i++)
		free((char *)argv[i]);
	free(argv);
	if (rc < 0)
		return snprintf(r->msg, sizeof(r->msg), "cannot start /bin/sh"), -1;
	return 0;
}

/* As the program's user, real ids too: prlimit on another process needs the target's ids to
 * match the caller's real ones. */
static int limit_interpreter(void *arg)
{
	run *r = arg;
	agent_rlimits lim = limits_of(r->t);
	if (agent_apply_rlimits(r->c->pid, &lim) < 0)
		return snprintf(r->msg, sizeof(r->msg), "prlimit: %s", strerror(errno)), -1;
	return 0;
}

/* the warm interpreter: its limits now, the task through its bootstrap's task pipe */
static int launch_warm(run *r)
{
	agent_reap(r->c);
	if (r->c->exited)
		return snprintf(r->msg, sizeof(r->msg), "the interpreter died before the task"), -1;
	if (agent_as_program(true, limit_interpreter, r, r->msg, sizeof(r->msg)) < 0)
		return -1;
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
	agent_collect_outputs(r->wsfd, r->t->out_files_max, r->t->out_bytes_max, &r->frames,
	                      &r->files_trunc);
	return 0;
}

static void report(run *r)
{
	uint8_t flags;
	int32_t code;
	bool send_return;
	judge(r->c, r->t, &r->io, &flags, &code, r->msg, sizeof(r->msg), &send_return);
	sandbox_frame_put(&r->frames, FRAME_STDOUT, r->io.out.b.data, r->io.out.b.len);
	sandbox_frame_put(&r->frames, FRAME_STDERR, r->io.err.b.data, r->io.err.b.len);
	agent_send(&r->frames);
	char unused[128];    /* not as the program's user: no output files, but the result stands */
	if (r->t->mode != 2) /* a chain's step has no output files */
		agent_as_program(false, take_outputs, r, unused, sizeof(unused));
	if (send_return)
		sandbox_frame_put(&r->frames, r->t->mode == 2 ? FRAME_STEP_RESULT : FRAME_RETURN,
		                  r->io.res.b.data + 1, r->io.res.b.len - 1);
	sandbox_frame_put_exit(&r->frames, flags | (r->files_trunc ? EXIT_F_FILES_TRUNC : 0), code,
	                       r->msg);
	agent_send(&r->frames);
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
	sandbox_frame_buf_free(&r.frames);
	sandbox_frame_buf_free(&r.io.out.b);
	sandbox_frame_buf_free(&r.io.err.b);
	sandbox_frame_buf_free(&r.io.res.b);
	sandbox_frame_buf_free(&r.payload);
	agent_strv_free(r.env);
}
