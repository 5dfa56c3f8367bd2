/* The inside of a sandbox, shared by the files that make it (internal to sandbox/):
 *
 *   sandbox.c    the public calls (sandbox.h): create, watch, run, destroy, accessors, specs
 *   lifecycle.c  the state machine: one table of (state, event) -> action, sandbox_step()
 *   container.c  the runtime commands for one sandbox: bundle, `run --detach`, `delete`
 *   io.c         frame I/O with the agent over the container's stdin and stdout
 *   ctx.c        the node context: state dirs, the agent's copy, user namespaces, cgroups
 *   userns.c     a runc sandbox's own user namespace, made before `run` (agent-userns.c)
 *   cgroup*.c    the cgroup backends (cgroup.h)
 *
 * Everything that happens to a sandbox (a runtime command ending, a frame, EOF, a timer, a
 * call from its owner) becomes one sandbox_event handed to sandbox_step(); only the action the
 * table names for the sandbox's state changes the state. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/spawn.h"
#include "proto/proto.h"
#include "sandbox/agent/frame.h"
#include "sandbox/cgroup.h"
#include "sandbox/runtime-out.h"
#include "sandbox/sandbox.h"

struct event;

/* A file compiled into the node (runtime-embed.c, from sandbox/agent/runtime/embed.py). */
typedef struct sandbox_embedded_file {
	const char *name;
	const unsigned char *data;
	size_t len;
} sandbox_embedded_file;
/* The runtime module's files, installed at <agent dir>/runtime/ (NULL name last). */
extern const sandbox_embedded_file sandbox_runtime_files[];

#define SANDBOX_AGENT_NAME "aisp-agent"
/* Under runc, container ids 0..65535 map to host ids SANDBOX_USERNS_BASE.. (the sandbox user
 * 65534 is host uid 165534, which owns nothing on the host). */
#define SANDBOX_USERNS_BASE 100000u
#define SANDBOX_USERNS_SIZE 65536u
/* How much of a failed runtime command's stderr a sandbox keeps (sandbox_runtime_log()). */
#define SANDBOX_LOG_MAX 4096
/* How long `run --detach` and the agent's warm-up may take together. */
#define SANDBOX_CREATE_TIMEOUT_MS 60000

struct sandbox_ctx {
	struct event_base *base;
	char *state_dir;
	char *bundles_dir;
	int bundles_fd;
	char *agent_dir;
	char *agent_bin; /* <agent_dir>/aisp-agent: also the host's helper (--userns, --cgexec) */
	char *id_prefix;
	sandbox_cgroup *cg;
	uint64_t seq;
	size_t live;
	bool userns;    /* the kernel allows user namespaces: runc sandboxes get one */
	char **reached; /* paths made reachable for runc's user namespace (sandbox_ctx_reach) */
	size_t n_reached;
	struct sandbox_cpu_account { /* sandbox_ctx_cpu, per runtime */
		const sandbox_runtime *rt;
		uint64_t ns[SANDBOX_CPU_PHASES];
	} * cpu;
	size_t n_cpu;
};

/* Adds ns of host CPU to rt's phase ph (sandbox_ctx_cpu). */
void sandbox_ctx_account(sandbox_ctx *ctx, const sandbox_runtime *rt, sandbox_cpu_phase ph,
                         uint64_t ns);

/* Puts a runtime command that is not on a task's path into the plumbing cgroup, joined by
 * `aisp-agent --cgexec` after the spawn (spawn_opts.cgroup_exec says why). */
void sandbox_ctx_plumbing(const sandbox_ctx *ctx, spawn_opts *o);

/* Makes path reachable by a runc sandbox's user namespace root: o+x on every directory along
 * it that lacks it (ctx.c says why); remembered, so each path is walked once. Returns 0, or -1
 * with *e naming the directory that cannot be made searchable. */
int sandbox_ctx_reach(sandbox_ctx *ctx, const char *path, err **e);

struct sandbox {
	sandbox_ctx *ctx;
	uint64_t seq; /* the context's creation sequence number */
	char id[96];
	sandbox_spec spec; /* strings owned (copies) */
	sandbox_state state;
	/* the container (container.c) */
	pid_t init_pid;
	bool spawning;     /* the user namespace (runc) or `run --detach` not finished yet */
	int userns_hold;   /* the holder's stdin (it exits when this closes), or -1 */
	int userns_fd;     /* the sandbox's user namespace until runc has joined it, or -1 */
	bool got_ready;    /* READY frame seen */
	bool early_eof;    /* the agent's stdout closed before READY, while `run` had not ended */
	char *runtime_log; /* stderr of the last runtime command that failed, bounded, or NULL */
	int64_t ready_at;
	/* I/O with the agent (io.c) */
	int in_fd, out_fd; /* host -> agent, agent -> host */
	struct event *rd_ev, *wr_ev;
	sandbox_frame_reader fr;
	sandbox_frame_buf wbuf;
	size_t woff;
	/* the state's deadline (creation, the task's wall time) and the usage sampling tick */
	struct event *timer, *sample_ev;
	/* the owner */
	sandbox_ready_fn ready_cb;
	sandbox_died_fn died_cb;
	sandbox_done_fn done_cb;
	sandbox_gone_fn gone_cb;
	void *ready_arg, *died_arg, *done_arg, *gone_arg;
	/* the run */
	proto_output out;
	proto_usage usage;
	int64_t run_start_us;
	uint64_t cpu_start_ns;
	uint64_t cpu_accounted;  /* the cgroup's CPU time already given to a phase */
	uint64_t memory_sampled; /* highest memory.current seen (cgroup v2 without memory.peak) */
	char *return_error;      /* why the RETURN frame's value was refused, or NULL */
	uint64_t stdout_max, stderr_max; /* the run's caps, which the host keeps too */
	sandbox_output_fn output_cb;     /* the owner's live output, or NULL */
	const sandbox_payload *payload;  /* skill files and blobs for the next TASK, or NULL */
	void *output_arg;
	sandbox_proxy_fn proxy_cb; /* the owner's credential proxy, or NULL (io.c) */
	void *proxy_arg;
	bool proxy_pending; /* a PROXY_REQUEST is waiting for its answer */
	/* a chain's script steps (steps.c) */
	bool step_mode;  /* the run is a step */
	bool step_idle;  /* the last step ended normally: another one may run */
	buf step_output; /* the STEP_RESULT payload */
	bool step_over;  /* it was above PROTO_STEP_OUTPUT_MAX */
};

/* ---- the state machine (lifecycle.c) ---- */

typedef enum sandbox_event_type {
	SANDBOX_EV_SPAWNED = 0,  /* `run --detach` exited 0 */
	SANDBOX_EV_SPAWN_FAILED, /* `run --detach` failed; why */
	SANDBOX_EV_READY_FRAME,  /* the agent's READY */
	SANDBOX_EV_OUTPUT_FRAME, /* a chunk of STDOUT or STDERR: frame, p, n */
	SANDBOX_EV_RESULT_FRAME, /* FILE or RETURN: frame, p, n */
	SANDBOX_EV_EXIT_FRAME,   /* EXIT: p, n */
	SANDBOX_EV_BAD_FRAME, /* a frame the agent may not send (frame), or a broken stream (0) */
	SANDBOX_EV_AGENT_EOF, /* the agent closed its end; why: NULL (stdout EOF) or the cause */
	SANDBOX_EV_TIMER,     /* the state's deadline passed */
	SANDBOX_EV_SAMPLE,    /* the usage sampling tick */
	SANDBOX_EV_RUN,       /* sandbox_run(): task, limits, done, arg, e, rc */
	SANDBOX_EV_DESTROY,   /* sandbox_destroy(): gone, arg */
	SANDBOX_EV_DELETED,   /* `delete` finished (or could not start) */
	SANDBOX_EV_STOP,      /* sandbox_stop(): status, why */
	SANDBOX_EV_RUN_STEP,  /* sandbox_run_step(): step, limits, done, arg, e, rc */
	SANDBOX_EV_COUNT,
} sandbox_event_type;

typedef struct sandbox_event {
	sandbox_event_type type;
	uint8_t frame;    /* *_FRAME: the frame's type */
	const uint8_t *p; /* *_FRAME: its payload, borrowed for the call */
	size_t n;
	const char *why;
	proto_status status;            /* STOP */
	const proto_task *task;         /* RUN */
	const sandbox_chain_step *step; /* RUN_STEP */
	const proto_limits *limits;
	sandbox_done_fn done;
	sandbox_gone_fn gone; /* DESTROY */
	void *arg;            /* RUN, DESTROY: the callback's argument */
	err **e;              /* RUN: why it was refused */
	int *rc;              /* RUN: 0, or -1 when refused */
} sandbox_event;

/* Hands ev to sb's state machine. Returns false when sb may be gone (its owner's callback ran,
 * or it was freed): the caller must not touch it again. */
bool sandbox_step(sandbox *sb, const sandbox_event *ev);
/* Shorthand for an event with nothing but its type. */
bool sandbox_step_type(sandbox *sb, sandbox_event_type type);
/* Arms the creation deadline and counts the sandbox as live: sandbox_create(), once the
 * container is starting. */
void sandbox_lifecycle_begin(sandbox *sb);

/* Frees sb's memory: a sandbox that never started (sandbox.c), or one that is gone. */
void sandbox_release(sandbox *sb);

/* ---- the container (container.c) ---- */

/* Writes the bundle and spawns `run --detach` with the agent's pipes; its end becomes
 * SPAWNED or SPAWN_FAILED. Returns -1 with *e when nothing was started. */
int sandbox_container_start(sandbox *sb, err **e);
/* The reason a runtime command (what: "runc run") failed, for a sandbox_error text: how it
 * ended and the first meaningful line of its stderr, which is kept (bounded) in
 * sb->runtime_log. Owned by the caller. */
char *sandbox_container_why(sandbox *sb, const char *what, const spawn_result *r);
/* Goes on once the user namespace is there (e NULL; taken) or could not be made: the config
 * and `run --detach`, or SPAWN_FAILED. */
void sandbox_container_continue(sandbox *sb, err *e);
/* Reads the runtime's pid file into sb->init_pid (0 when it cannot). */
void sandbox_container_read_pid(sandbox *sb);
/* SIGKILLs the container's init (the agent), when known. */
void sandbox_container_kill(sandbox *sb);
/* Kills the container and spawns `delete --force` in the plumbing cgroup; its end becomes
 * DELETED (at once when it cannot start). */
void sandbox_container_delete(sandbox *sb);
/* Removes the bundle directory and the cgroup. */
void sandbox_container_cleanup(sandbox *sb);

/* ---- the user namespace of a runc sandbox (userns.c) ---- */

/* Starts making it; its end calls sandbox_container_continue(). Returns -1 with *e when nothing
 * was started. */
int sandbox_userns_start(sandbox *sb, err **e);
/* The host uid that owns sb's user namespace. */
uid_t sandbox_userns_owner(const sandbox *sb);
/* "/proc/<our pid>/fd/<fd>" for config.json once it is made, else NULL. Owned by the caller. */
char *sandbox_userns_path(const sandbox *sb);
/* Lets the holder go and drops the reference (idempotent). */
void sandbox_userns_close(sandbox *sb);

/* ---- frame I/O (io.c) ---- */

/* Takes the host's ends of the agent's pipes and starts reading frames: each becomes an
 * event. */
void sandbox_io_start(sandbox *sb, int in_fd, int out_fd);
/* Stops reading and writing (the pipes stay open). */
void sandbox_io_pause(sandbox *sb);
/* Frees the events and closes the pipes. */
void sandbox_io_close(sandbox *sb);
/* Encodes the TASK frame and starts writing it; a broken pipe becomes AGENT_EOF. */
void sandbox_io_send_task(sandbox *sb, const proto_task *t, const proto_limits *l);
/* Adds a chunk of STDOUT or STDERR to sb->out within the run's cap (past it: cut, and the
 * stream's truncated flag), and hands what it added to the owner's output callback. */
void sandbox_io_add_output(sandbox *sb, uint8_t type, const uint8_t *p, size_t n);
/* Reads what the agent already wrote (without waiting) and adds its output chunks. */
void sandbox_io_drain_output(sandbox *sb);
/* Adds a RESULT frame (FILE, RETURN) to sb->out, within the protocol's caps (a return value a
 * result cannot carry becomes sb->return_error). */
void sandbox_io_add_result(sandbox *sb, uint8_t type, const uint8_t *p, size_t n);
/* The start of the bytes from the agent that did not decode, quoted for a message ("..."
 * with bytes outside printable ASCII as \xNN, at most 80). Owned by the caller. */
char *sandbox_io_quote_stream(const sandbox *sb);
/* Puts one frame of this type and payload on the agent's pipe (a broken pipe becomes
 * AGENT_EOF). */
void sandbox_io_send(sandbox *sb, uint8_t type, const void *p, size_t n);

/* ---- a chain's script steps (steps.c) ---- */

/* RUN_STEP, in READY or in DONE after a step: encodes and sends the STEP frame. */
void sandbox_steps_send(sandbox *sb, const sandbox_chain_step *st, const proto_limits *l);
/* A STEP_RESULT frame: kept in sb->step_output, within PROTO_STEP_OUTPUT_MAX. */
void sandbox_steps_take_output(sandbox *sb, const uint8_t *p, size_t n);

/* Decodes an EXIT payload into o (exit code or signal, truncation, message) and *flags.
 * Returns 0, or -1 when it is malformed. */
int sandbox_io_take_exit(proto_output *o, const uint8_t *p, size_t n, uint8_t *flags);
