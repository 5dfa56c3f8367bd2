/* aisp-agent: the in-sandbox agent, PID 1 of every sandbox (see frame.h for the protocol and
 * DESIGN.md "The agent"). It warms up the interpreter, reports READY, takes one TASK, runs the
 * program with its stdin, argv, environment and files, captures stdout and stderr up to their
 * caps, collects /workspace/out and reports EXIT. Static and libc only.
 *
 * The program never sees the agent's fds: its stdio and the bootstrap's task and result pipes
 * are pipes the agent created, everything else is close-on-exec or closed before exec, and
 * the agent is non-dumpable so /proc/1/fd is closed to the program too. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "sandbox/agent/agent.h"

extern char **environ;

/* Frames go to fd 1 (the host); nothing else is ever written there. */
void agent_send(sandbox_frame_buf *b)
{
	if (write_all(STDOUT_FILENO, b->data, b->len) < 0)
		_exit(1); /* the host is gone */
	b->len = 0;
}

void agent_send_exit(uint8_t flags, int32_t code, const char *msg)
{
	sandbox_frame_buf b = {0};
	sandbox_frame_put_exit(&b, flags, code, msg);
	agent_send(&b);
	sandbox_frame_buf_free(&b);
}
/* Warm-up: starts the interpreter with its bootstrap and waits for its ready byte. */
int agent_warm_up(agent_child *c, enum agent_lang lang, char *msg, size_t msz)
{
	const char *py[] = {"/usr/bin/python3", "-s", "-c", agent_boot_python, NULL};
	const char *js[] = {"/usr/bin/node", "-e", agent_boot_node, NULL};
	const char *const *argv = lang == AGENT_LANG_PYTHON ? py : js;
	if (agent_start_child(c, argv, environ, true, NULL) < 0) {
		char why[512];
		agent_start_why(c, argv[0], why, sizeof(why));
		snprintf(msg, msz, "warm-up: %s", why);
		return -1;
	}
	char ready;
	ssize_t r;
	while ((r = read(c->res, &ready, 1)) < 0 && errno == EINTR)
		;
	if (r == 1 && ready == 'r') {
		agent_child_nonblock(c); /* here, not on the task's path */
		return 0;
	}
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

int agent_next_frame(sandbox_frame_reader *r, uint8_t *type, const uint8_t **p, size_t *n)
{
	for (;;) {
		int k = sandbox_frame_reader_next(r, type, p, n);
		if (k == 1 && *type == FRAME_PROXY_RESPONSE)
			continue; /* the answer to a call whose program has ended: nobody waits */
		if (k != 0)
			return k;
		uint8_t chunk[65536];
		ssize_t got = read(STDIN_FILENO, chunk, sizeof(chunk));
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return 0;
		sandbox_frame_reader_feed(r, chunk, (size_t)got);
	}
}

/* The environment moves to the heap and its original copy, which /proc/1/environ shows, is
 * zeroed: gVisor lets the program read that file whatever the agent's dumpable flag and uid
 * (issue 14 item 4), and the agent's environment is its own business even when it holds
 * nothing secret (it is the sandbox's fixed base environment, sandbox/env.c). */
static void hide_environment(void)
{
	size_t n = 0;
	while (environ[n])
		n++;
	char **copy = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		copy[i] = xstrdup(environ[i]);
		memset(environ[i], 0, strlen(environ[i]));
	}
	environ = copy;
}

/* Reads frames from the host until the TASK (or a chain's first STEP: *p, *n); returns 1 with
 * *t parsed, 2 for a STEP, 0 on EOF, -1 after reporting a malformed frame. */
static int read_task(sandbox_frame_reader *r, agent_task *t, const uint8_t **p, size_t *n,
                     char *msg, size_t msz)
{
	uint8_t type;
	int k;
	/* a task's skills and input blobs come first */
	while ((k = agent_next_frame(r, &type, p, n)) == 1 &&
	       (type == FRAME_SKILL_FILE || type == FRAME_BLOB_IN))
		if ((type == FRAME_SKILL_FILE ? agent_put_skill_file : agent_put_blob)(*p, *n, msg,
		                                                                       msz) < 0)
			return -1;
	if (k == 1 && type == FRAME_TASK)
		return agent_task_parse(t, *p, *n, msg, msz) < 0 ? -1 : 1;
	if (k == 1 && type == FRAME_STEP)
		return 2;
	if (k != 0)
		snprintf(msg, msz,
		         k < 0 ? "malformed frame from the host"
		               : "unexpected frame from the host");
	return k == 0 ? 0 : -1;
}

/* Reads (and drops) what the host sends until it hangs up, or for at most ms (-1: no limit). */
static void wait_hangup(int ms)
{
	int64_t end = ms < 0 ? -1 : now_mono_ms() + ms;
	uint8_t chunk[4096];
	for (;;) {
		int left = end < 0 ? -1 : (int)(end - now_mono_ms());
		if (end >= 0 && left <= 0)
			return;
		struct pollfd p = {STDIN_FILENO, POLLIN, 0};
		int k = poll(&p, 1, left);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return;
		ssize_t got = read(STDIN_FILENO, chunk, sizeof(chunk));
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return;
	}
}

static void usage(void)
{
	agent_send_exit(
	    EXIT_F_SETUP_ERROR, -1,
	    "usage: aisp-agent --lang python|javascript|shell [--workspace DIR] [--user UID]");
	exit(2);
}

/* The process setup of DESIGN.md: non-dumpable, stderr closed to us, SIGPIPE ignored, SIGCHLD
 * to a self-pipe, reaper of orphans, cwd the workspace, umask 022. */
static int setup_process(const char *ws)
{
	prctl(PR_SET_DUMPABLE, 0);
	/* every disposition at its default but the two set below, so that a child need reset no
	 * more than those two before exec (agent-child.c) */
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
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
	/* what config.json asks of the runtime, also where it cannot (bundle.c): no core dumps,
	 * and the agent's fd limit (only ever lowered) */
	struct rlimit core = {0, 0}, nofile;
	setrlimit(RLIMIT_CORE, &core);
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_max > AGENT_NOFILE) {
		nofile.rlim_cur = nofile.rlim_max = AGENT_NOFILE;
		setrlimit(RLIMIT_NOFILE, &nofile);
	}
	if (agent_sigchld_setup() < 0)
		return -1;
	umask(022);
	if (agent_drop_bounding() < 0)
		return -1;
	return chdir(ws);
}

/* In a sandbox (--user) the workspace is the bundle's tmpfs, asked for with mode=1777 (bundle.c)
 * so that the program's user may write it. runc 1.1 does not keep that mode: it chmods a tmpfs
 * mount back to the mode of the directory it was mounted on (libcontainer's mountToRootfs), so
 * an image whose /workspace is 0755 gave a workspace the program cannot write ("mkdir
 * /workspace/out: Permission denied", and that before the warm-up). The agent, the owner of
 * that tmpfs, sets the mode the bundle asked for, whatever the image holds. (/tmp, the other
 * tmpfs, has the same quirk; the agent leaves it to the image, which has it 1777.) */
static int open_workspace(int wsfd, const char *ws, char *msg, size_t msz)
{
	if (wsfd < 0) {
		snprintf(msg, msz, "workspace %s: %s", ws, strerror(errno));
		return -1;
	}
	if (agent_prog_uid != (uid_t)-1 && fchmod(wsfd, 01777) < 0) {
		snprintf(msg, msz, "workspace %s: chmod 1777: %s", ws, strerror(errno));
		return -1;
	}
	return 0;
}

/* --lang L [--workspace DIR] [--user UID]: the language; exits through usage() otherwise. */
static enum agent_lang parse_args(int argc, char **argv, const char **ws)
{
	const char *lang_s = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--lang") && i + 1 < argc)
			lang_s = argv[++i];
		else if (!strcmp(argv[i], "--workspace") && i + 1 < argc)
			*ws = argv[++i];
		else if (!strcmp(argv[i], "--user") && i + 1 < argc)
			agent_prog_uid = (uid_t)strtoul(argv[++i], NULL, 10);
		else
			usage();
	}
	if (lang_s && !strcmp(lang_s, "python"))
		return AGENT_LANG_PYTHON;
	if (lang_s && !strcmp(lang_s, "javascript"))
		return AGENT_LANG_JAVASCRIPT;
	if (lang_s && !strcmp(lang_s, "shell"))
		return AGENT_LANG_SHELL;
	usage();
	return AGENT_LANG_SHELL; /* not reached */
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--userns"))
		return agent_userns_main(argc, argv); /* on the host, for runc: agent-userns.c */
	if (argc > 1 && !strcmp(argv[1], "--cgexec"))
		return agent_cgexec_main(argc, argv); /* on the host: agent-cgexec.c */
	hide_environment();
	const char *ws = "/workspace";
	enum agent_lang lang = parse_args(argc, argv, &ws);

	char msg[4096];
	if (setup_process(ws) < 0) {
		snprintf(msg, sizeof(msg), "workspace %s: %s", ws, strerror(errno));
		agent_send_exit(EXIT_F_SETUP_ERROR, -1, msg);
		return 1;
	}
	_cleanup_close_ int wsfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	msg[0] = '\0';
	if (open_workspace(wsfd, ws, msg, sizeof(msg)) < 0 ||
	    agent_make_out(wsfd, msg, sizeof(msg)) < 0) {
		agent_send_exit(EXIT_F_SETUP_ERROR, -1, msg);
		return 1;
	}
	agent_child c = AGENT_CHILD_INIT;
	if (lang != AGENT_LANG_SHELL && agent_warm_up(&c, lang, msg, sizeof(msg)) < 0) {
		agent_send_exit(EXIT_F_SETUP_ERROR, -1, msg);
		return 1;
	}
	sandbox_frame_buf b = {0};
	sandbox_frame_put(&b, FRAME_READY, AGENT_VERSION, strlen(AGENT_VERSION));
	agent_send(&b);
	sandbox_frame_buf_free(&b);

	sandbox_frame_reader r;
	sandbox_frame_reader_init(&r);
	agent_host_reader = &r;
	agent_task t = {0};
	const uint8_t *p;
	size_t n;
	int k = read_task(&r, &t, &p, &n, msg, sizeof(msg));
	if (k == 1)
		agent_run_task(&c, lang, wsfd, &t);
	else if (k == 2)
		agent_run_steps(&c, lang, wsfd, &r, p, n);
	else if (k < 0)
		agent_send_exit(EXIT_F_SETUP_ERROR, -1, msg);
	/* Reported: the sandbox lives on, idle, until the host hangs up (EOF) as it destroys it,
	 * once the result is signed and published, so that the sandbox's wind-down (runsc's: a
	 * few ms of CPU on each core) does not compete with that. The stopped interpreter of a
	 * normal end (agent-run.c) is killed then too, or AGENT_PARKED_MS after EXIT at the
	 * latest: that bounds what a program that wrote the exit byte itself and ran on can take. */
	if (k != 0 && c.parked && !c.killed)
		wait_hangup(AGENT_PARKED_MS);
	agent_kill_task(&c);
	if (k != 0)
		wait_hangup(-1);
	agent_task_deinit(&t);
	sandbox_frame_reader_deinit(&r);
	return k == 0 ? 1 : 0;
}
