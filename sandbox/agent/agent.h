/* Internals of the in-sandbox agent (aisp-agent), shared between its source files. Not used by
 * the host: the host speaks to the agent only through frame.h.
 *
 *   agent.c        main: process setup, warm-up, READY, reading the TASK
 *   agent-task.c   the TASK payload: parsing, the program's environment, the bootstrap payload
 *   agent-child.c  the program's process and identity: fork/exec, limits, reaping, killing,
 *                  acting as the program's user
 *   agent-run.c    one task: prepare, launch, collect, report
 *   agent-fs.c     input files into /workspace, output files out of /workspace/out
 *   agent-boot.c   the interpreters' bootstrap programs
 *   agent-userns.c `aisp-agent --userns`: a runc sandbox's user namespace, made on the host
 *   agent-steps.c  a chain's script steps: STEP frames, one fresh interpreter per step */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <poll.h>

#include "proto/caps.h"
#include "sandbox/agent/frame.h"

/* Bytes borrowed from the TASK payload. */
typedef struct agent_bytes {
	const uint8_t *p;
	size_t n;
} agent_bytes;

/* A parsed TASK. Every pointer is borrowed from the TASK frame's payload. */
typedef struct agent_task {
	uint8_t mode; /* 0 script, 1 function, 2 a chain's step (from a STEP frame) */
	agent_bytes code;
	agent_bytes stdin_data;
	agent_bytes args_json;           /* p NULL when absent */
	agent_bytes *argv, *env, *files; /* owned arrays */
	size_t nargv, nenv, nfiles;
	uint64_t stdout_max, stderr_max, fsize_max, nofile_max, nproc_max;
	uint64_t out_files_max, out_bytes_max;
	/* STEP frames (agent-steps.c) */
	uint8_t step_lang, next_lang; /* 0 python, 1 javascript */
	bool has_next;                /* next_lang is set: another script step follows */
	agent_bytes input;
	uint64_t output_max;
} agent_task;

/* Defaults when the TASK leaves a cap out; the output files' and the return value's are the
 * protocol's (proto/caps.h), and a TASK cannot raise them. */
#define AGENT_STREAM_MAX_DEFAULT    (1u * 1024 * 1024)
#define AGENT_OUT_FILES_MAX_DEFAULT PROTO_OUT_FILES_MAX
#define AGENT_OUT_BYTES_MAX_DEFAULT PROTO_OUT_FILES_TOTAL
#define AGENT_RETURN_MAX            PROTO_RETURN_MAX
#define AGENT_PATH_MAX              4095u
/* The agent's own fd limit (config.json's RLIMIT_NOFILE, sandbox/container.c). */
#define AGENT_NOFILE 4096u
/* How long after EXIT a stopped interpreter of a normal end may wait for the host to hang up
 * before the agent kills it (agent.c). */
#define AGENT_PARKED_MS 250

/* Parses a TASK payload into *t (borrowing from payload). Returns 0, or -1 with a message. */
int agent_task_parse(agent_task *t, const uint8_t *payload, size_t len, char *msg, size_t msz);
void agent_task_deinit(agent_task *t);

/* True when p[0..n) is a relative path of non-empty components other than "." and "..", no
 * NUL or control bytes, valid UTF-8, at most AGENT_PATH_MAX bytes. */
bool agent_path_valid(const char *p, size_t n);

/* Makes wsfd/out as the program's user (at warm-up: it is there before the program starts).
 * Returns 0, or -1 with a message. */
int agent_make_out(int wsfd, char *msg, size_t msz);
/* Writes the task's input files below the directory wsfd, never following links. Returns 0,
 * or -1 with a message. */
int agent_write_inputs(int wsfd, const agent_task *t, char *msg, size_t msz);

/* Appends FILE frames for the regular files below wsfd/out (the first by path, at most
 * max_files files and max_bytes bytes of contents; agent-fs.c says which exactly) to b; sets
 * *trunc when a regular file was left out. */
void agent_collect_outputs(int wsfd, uint64_t max_files, uint64_t max_bytes, sandbox_frame_buf *b,
                           bool *trunc);

/* True when wsfd/out holds nothing the agent could return (read as the agent: no switch of
 * identity for an empty out/); false when it holds entries or cannot be read as the agent. */
bool agent_out_empty(int wsfd);

/* The interpreters' bootstrap programs (agent-boot.c). */
extern const char agent_boot_python[];
extern const char agent_boot_node[];

/* ---- the program's identity (agent-child.c) ---- */

/* The program's uid and gid (--user), or (uid_t)-1 without one (tests on the host: everything
 * runs as the caller). */
extern uid_t agent_prog_uid;

/* Runs fn(arg) as the program's user (effective ids; with real, the real ids too) and switches
 * back to the agent's before it returns, on every path: the agent never runs on with the
 * program's ids (it ends itself, exit status 3, when it cannot switch back). Returns fn's
 * result with fn's errno, or -1 with msg set when the agent could not become the program's
 * user (fn not run). */
int agent_as_program(bool real, int (*fn)(void *arg), void *arg, char *msg, size_t msz);

/* ---- the program's process (agent-child.c) ---- */

/* The program: its pid (also its process group) and the agent's ends of its pipes. */
typedef struct agent_child {
	pid_t pid;
	int in, out, err; /* the program's stdin (write end), stdout and stderr (read ends) */
	int task, res;    /* bootstrap: task payload (write end, fd 3), result (read end, fd 4) */
	int px_req, px_resp; /* bootstrap: the proxy's requests (read end of the program's fd 5)
	                      * and responses (write end of its fd 6); agent-proxy.c */
	int fin; /* bootstrap: its exit status, one byte, written as it exits (read end of fd 7) */
	bool exited;
	bool parked; /* the bootstrap gave its exit status (fd 7) and waits to be killed */
	bool killed; /* agent_kill_task() ran */
	int status;
	const char *start_step; /* what agent_start_child() failed at ("" for execve); static */
} agent_child;

#define AGENT_CHILD_INIT                                                                           \
	{                                                                                          \
		.pid = -1, .in = -1, .out = -1, .err = -1, .task = -1, .res = -1, .px_req = -1,    \
		.px_resp = -1, .fin = -1                                                           \
	}

typedef struct agent_rlimits {
	uint64_t fsize, nofile, nproc; /* 0: leave as is */
} agent_rlimits;

/* Forks the program with fresh pipes; with bootstrap also the task and result pipes (fds 3,
 * 4), the proxy's (5, 6) and the exit status's (7); l (or NULL) is applied in the child. Returns 0 once the child has exec'd argv[0], or -1
 * with errno and c->start_step when the fork, the child's set-up or its execve failed (the
 * child is reaped then: nothing of it is left). */
int agent_start_child(agent_child *c, const char *const argv[], char *const envp[], bool bootstrap,
                      const agent_rlimits *l);
/* After agent_start_child() failed: "start WHAT: [STEP: ]STRERROR" into msg. Keeps errno. */
void agent_start_why(const agent_child *c, const char *what, char *msg, size_t msz);
/* Makes the agent's ends of c's pipes non-blocking (for the collect loop's poll()). */
void agent_child_nonblock(agent_child *c);
/* Sets pid's limits (0: the calling process). Returns 0 or -1 with errno. */
int agent_apply_rlimits(pid_t pid, const agent_rlimits *l);
/* True when the agent is PID 1 (of a sandbox), not a process on the host (tests). */
bool agent_is_pid1(void);
/* Ends every process of the task: the program's group and, as PID 1, everything else. */
void agent_kill_task(agent_child *c);
/* Stops (SIGSTOP) every process of the task, the same ones; agent_kill_task() ends them. */
void agent_stop_task(const agent_child *c);
/* Empties the agent's capability bounding set (with --user), once, at start. Returns 0, or -1
 * with errno. */
int agent_drop_bounding(void);
/* Reaps every finished child (orphans too); records the program's status. */
void agent_reap(agent_child *c);
void agent_close_fd(int *fd);
/* SIGCHLD becomes a byte on a non-blocking self-pipe: its read end, for poll(). */
int agent_sigchld_setup(void);
int agent_sigchld_fd(void);
void agent_sigchld_drain(void);

/* ---- the task (agent-task.c) ---- */

bool agent_has_nul(const agent_bytes *b);
/* The program's environment: the agent's own (the sandbox's fixed base) plus the task's
 * variables, which win. NULL-terminated, owned: agent_strv_free(). */
char **agent_task_env(const agent_task *t);
void agent_strv_free(char **v);
/* A field of the bootstrap's payload only (not one the host sends): present (empty) when the
 * agent is PID 1 of a sandbox and the program has its own user, so that at its end the
 * bootstrap kills every other process of that user, i.e. everything the program left running
 * (agent-boot.c, "The exit"). Never sent on the host, where kill(-1) would reach far more. */
#define BOOT_FIELD_SANDBOXED 32

/* The bootstrap's task payload: MODE, CODE, ARG*, ARGS_JSON, ENV* (the whole environment),
 * and BOOT_FIELD_SANDBOXED when it applies. */
void agent_boot_payload(sandbox_frame_buf *b, const agent_task *t, char *const *env);

/* ---- skills and blobs (agent-skills.c) ---- */

#define AGENT_SKILLS_DIR "/.aisp/skills"
/* below AGENT_SKILLS_DIR: present when a sealed skill is in the tree (the bootstraps read it) */
#define AGENT_SKILLS_SEALED_MARK ".sealed"
#define AGENT_BLOBS_DIR          "/.aisp/blobs"
#define AGENT_SKILL_ENTRIES_MAX  (8u * 1000)         /* PROTO_SKILLS_MAX skills' entries */
#define AGENT_SKILL_BYTES_MAX    (64u * 1024 * 1024) /* the skills tmpfs's size */
/* proto/proto.h's caps (the agent includes only proto/caps.h): unit-tested to be equal */
#define AGENT_BLOB_MAX        (8u * 1024 * 1024)  /* PROTO_BLOB_MAX */
#define AGENT_BLOBS_MAX       16                  /* PROTO_BLOBS_MAX */
#define AGENT_BLOBS_TOTAL     (32u * 1024 * 1024) /* PROTO_BLOBS_TOTAL */
#define AGENT_OUT_BLOBS_MAX   16                  /* PROTO_OUT_BLOBS_MAX */
#define AGENT_OUT_BLOBS_TOTAL (32u * 1024 * 1024) /* PROTO_OUT_BLOBS_TOTAL */
#define AGENT_LOG_MAX         (64u * 1024 + 4096) /* PROTO_LOG_MAX and a margin */

/* Writes one SKILL_FILE or BLOB_IN frame's entry (frame.h) as root. Returns 0, or -1 with a
 * message. */
int agent_put_skill_file(const uint8_t *p, size_t n, char *msg, size_t msz);
int agent_put_blob(const uint8_t *p, size_t n, char *msg, size_t msz);
/* Appends OUT_BLOB frames and one LOGS frame for what the run left in wsfd/.aisp (nothing
 * when it has none), read as the program's user. */
void agent_collect_runtime(int wsfd, sandbox_frame_buf *b);
/* agent-fs.c: opens the directory path[0..n) below dfd, one component at a time, never
 * following links; with create, missing components are made. A new fd or -1 with errno. */
int agent_open_dir_below(int dfd, const char *path, size_t n, bool create);

/* ---- frames to the host (agent.c) ---- */

/* Writes b to fd 1 (the host) and empties it; ends the agent when the host is gone. */
void agent_send(sandbox_frame_buf *b);
void agent_send_exit(uint8_t flags, int32_t code, const char *msg);

/* ---- the user namespace of a runc sandbox (agent-userns.c) ---- */

/* aisp-agent --userns OWNER BASE SIZE, run by the host before `runc run`. */
int agent_userns_main(int argc, char **argv);
/* aisp-agent --cgexec PROCS FD PROGRAM [ARG...], on the host (agent-cgexec.c). */
int agent_cgexec_main(int argc, char **argv);

/* ---- one task (agent-run.c) ---- */

enum agent_lang { AGENT_LANG_PYTHON, AGENT_LANG_JAVASCRIPT, AGENT_LANG_SHELL };

/* The most bytes of JSON the bootstrap may hand back: a function's return value, or a step's
 * output (its output_max). */
uint64_t agent_return_cap(const agent_task *t);

/* ---- the host's frames and the interpreters (agent.c) ---- */

/* Reads frames from the host (fd 0) until a whole one is there: 1 with *type, *p, *n (borrowed
 * until the next call), 0 at EOF, -1 on a malformed stream. */
int agent_next_frame(sandbox_frame_reader *r, uint8_t *type, const uint8_t **p, size_t *n);
/* Starts lang's interpreter with its bootstrap in c and waits for its ready byte. Returns 0,
 * or -1 with msg. */
int agent_warm_up(agent_child *c, enum agent_lang lang, char *msg, size_t msz);

/* ---- a chain's script steps (agent-steps.c) ---- */

/* Serves STEP frames, the first one p[0..n), until the host closes its end: each step runs in
 * a fresh interpreter (warm is the one c holds warm, of lang), reported like a function (its
 * output in a STEP_RESULT frame) and followed by EXIT. */
void agent_run_steps(agent_child *c, enum agent_lang lang, int wsfd, sandbox_frame_reader *r,
                     const uint8_t *p, size_t n);

/* ---- the credential proxy's relay (agent-proxy.c) ---- */

/* The host's frames (fd 0), read by main and, while a task waits for a proxy answer, by the
 * relay. */
extern sandbox_frame_reader *agent_host_reader;

typedef struct agent_proxy {
	agent_child *c;         /* its px_req and px_resp */
	uint8_t *req;           /* the request being read: header and payload */
	size_t req_len;         /* bytes of it read */
	bool pending;           /* forwarded; the host has not answered yet */
	bool host_gone;         /* fd 0 ended or broke: every call gets an error */
	bool closing;           /* the framing broke: after this answer, no channel */
	sandbox_frame_buf resp; /* the answer being written to the program */
	size_t roff;
} agent_proxy;

void agent_proxy_init(agent_proxy *px, agent_child *c);
void agent_proxy_deinit(agent_proxy *px);
/* The relay's three poll entries: the request pipe (when no call is in flight), the host
 * (while one is) and the response pipe (while an answer is being written); fd -1 when not
 * wanted. */
void agent_proxy_poll(const agent_proxy *px, struct pollfd pfd[3]);
/* Handles what poll() reported for those entries; a forwarded request goes into frames. */
void agent_proxy_events(agent_proxy *px, const struct pollfd pfd[3], sandbox_frame_buf *frames);

/* Runs the task and reports it (frames up to EXIT). lang's interpreter (not shell's) is already
 * warm in c. */
void agent_run_task(agent_child *c, enum agent_lang lang, int wsfd, const agent_task *t);
