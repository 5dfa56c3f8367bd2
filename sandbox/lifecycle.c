/* The sandbox lifecycle as one state x event table (lifecycle.h names the events).
 *
 *   CREATING --spawned + READY frame (either order)--> READY --run--> RUNNING --EXIT frame,
 *   EOF, bad frame, wall time--> DONE;  CREATING --any failure--> DEAD;  READY --EOF--> DEAD;
 *   every state --destroy--> DESTROYING --deleted--> (freed);  a chain's script steps (steps.c):
 *   READY, or DONE after a step that ended with its EXIT frame --run_step--> RUNNING
 *
 * Every (state, event) pair has one cell in the table below, and only the cell's action
 * changes the state. Two actions do nothing, and say why: `never` for an event that cannot
 * happen in that state (the timer is not armed, the pipes are closed, the spawn has ended),
 * `ignore` for one that can and needs nothing (an agent talking out of turn while READY; the
 * owner was told already). The owner's callbacks (ready, died, done, gone) are called last in
 * an action, because they may destroy the sandbox; an action returns false when it called one,
 * and nothing touches the sandbox after that. */
#include <event2/event.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "sandbox/lifecycle.h"
#include "sandbox/runtime.h"

/* How often memory.current is sampled while a task runs, when the hierarchy keeps no peak. */
#define SAMPLE_MS 50

typedef bool (*action)(sandbox *sb, const sandbox_event *ev);

static void set_timer(struct event *ev, int64_t ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(ev, &tv);
}

static void stop_timers(sandbox *sb)
{
	if (sb->timer)
		event_del(sb->timer);
	if (sb->sample_ev)
		event_del(sb->sample_ev);
}

/* Stops everything that could produce another event, short of closing the pipes. */
static void stop_watching(sandbox *sb)
{
	sandbox_io_pause(sb);
	stop_timers(sb);
}

static bool never(sandbox *sb, const sandbox_event *ev)
{
	return true;
}

static bool ignore(sandbox *sb, const sandbox_event *ev)
{
	return true;
}

/* ---- CREATING ---- */

/* The cgroup's CPU time not yet accounted (now_ns is its reading) goes to phase ph. */
static void account_cgroup(sandbox *sb, sandbox_cpu_phase ph, uint64_t now_ns)
{
	if (now_ns <= sb->cpu_accounted)
		return;
	sandbox_ctx_account(sb->ctx, sb->spec.rt, ph, now_ns - sb->cpu_accounted);
	sb->cpu_accounted = now_ns;
}

static bool become_ready(sandbox *sb)
{
	event_del(sb->timer);
	account_cgroup(sb, SANDBOX_CPU_CREATE, sandbox_cgroup_cpu_ns(sb->ctx->cg, sb->id));
	sandbox_cgroup_set_prio(sb->ctx->cg, sb->id, SANDBOX_CGROUP_RUNNING);
	sb->state = SANDBOX_READY;
	sb->ready_at = now_mono_ms();
	sb->ready_cb(sb, NULL, sb->ready_arg);
	return false;
}

/* -> DEAD; the owner hears why and must destroy the sandbox. Takes e. */
static bool creation_failed(sandbox *sb, err *e)
{
	stop_watching(sb);
	sb->state = SANDBOX_DEAD;
	err_prefix(&e, "sandbox %s (%s)", sb->id, sandbox_runtime_name(sb->spec.rt));
	sb->ready_cb(sb, e, sb->ready_arg);
	err_free(e);
	return false;
}

static bool fail_creation(sandbox *sb, const char *why)
{
	err *e = NULL;
	err_set(&e, 0, "%s", why);
	return creation_failed(sb, e);
}

/* The agent went away before READY without a word: a sandbox that hit its process limit says
 * so instead. Under runsc the host's pids limit counts gVisor's own processes and threads too
 * (the sentry, the gofer, the ptrace platform's stubs: some 45 for a warm Python sandbox), and
 * the sentry panics when it cannot make one ("error initializing first thread: resource
 * temporarily unavailable"), so below that a runsc sandbox never gets ready. */
static bool fail_silently_gone(sandbox *sb, const char *why)
{
	sandbox_cgroup_usage u;
	sandbox_cgroup_read(sb->ctx->cg, sb->id, 0, &u);
	if (u.pids_max_hits == 0)
		return fail_creation(sb, why);
	_cleanup_free_ char *lim =
	    xasprintf("the sandbox reached its process limit of %lld before it was ready%s",
	              (long long)sb->spec.pids,
	              sandbox_runtime_get_kind(sb->spec.rt) == SANDBOX_RT_RUNSC
	                  ? " (on the host that limit counts gVisor's own processes too)"
	                  : "");
	return fail_creation(sb, lim);
}

/* spawned: the runtime started the container; READY once the agent said so too */
static bool created(sandbox *sb, const sandbox_event *ev)
{
	sandbox_container_read_pid(sb);
	if (sb->early_eof)
		return fail_silently_gone(sb, "the agent exited before it was ready (the runtime "
		                              "reported no error)");
	return sb->got_ready ? become_ready(sb) : true;
}

/* ready_frame: the agent is warm; READY once `run --detach` has returned too */
static bool got_ready(sandbox *sb, const sandbox_event *ev)
{
	sb->got_ready = true;
	return sb->spawning ? true : become_ready(sb);
}

static bool spawn_failed(sandbox *sb, const sandbox_event *ev)
{
	return fail_creation(sb, ev->why);
}

static bool early_frame(sandbox *sb, const sandbox_event *ev)
{
	err *e = NULL;
	err_set(&e, 0, "agent sent frame '%c' before READY", ev->frame);
	return creation_failed(sb, e);
}

/* exit_frame: the agent could not get ready (warm-up failed) and says why */
static bool early_exit(sandbox *sb, const sandbox_event *ev)
{
	sandbox_frame_exit x;
	if (sandbox_frame_parse_exit(ev->p, ev->n, &x) < 0)
		return early_frame(sb, ev);
	err *e = NULL;
	err_set(&e, 0, "agent failed before READY: %.*s", (int)x.msg_len, x.msg);
	return creation_failed(sb, e);
}

/* agent_eof: while `run` has not ended its report says why (a container that could not start
 * closes the agent's pipe first), so it decides; after that, nothing else will say more. */
static bool early_eof(sandbox *sb, const sandbox_event *ev)
{
	if (sb->spawning) {
		sb->early_eof = true;
		sandbox_io_pause(sb);
		return true;
	}
	return ev->why ? fail_creation(sb, ev->why)
	               : fail_silently_gone(sb, "the agent exited before it was ready");
}

/* bad_frame: a frame the agent may not send, or a stream that does not decode (what came
 * instead of the agent's frames is quoted: a runtime that writes to the container's stdout) */
static bool early_bad(sandbox *sb, const sandbox_event *ev)
{
	if (ev->frame)
		return early_frame(sb, ev);
	_cleanup_free_ char *q = sandbox_io_quote_stream(sb);
	err *e = NULL;
	err_set(&e, 0, "the agent's stream is not frames before READY (it began with %s)", q);
	return creation_failed(sb, e);
}

static bool create_timeout(sandbox *sb, const sandbox_event *ev)
{
	err *e = NULL;
	err_set(&e, 0, "not ready after %d ms", SANDBOX_CREATE_TIMEOUT_MS);
	return creation_failed(sb, e);
}

/* ---- READY ---- */

/* agent_eof, bad_frame: the sandbox died on its own while waiting for a task */
static bool died(sandbox *sb, const sandbox_event *ev)
{
	stop_watching(sb);
	sb->state = SANDBOX_DEAD;
	if (sb->died_cb)
		sb->died_cb(sb, sb->died_arg);
	return false; /* nothing more is read from a dead sandbox */
}

/* RUNNING from now, for the owner's done callback: the timer, usage from here. */
static void begin_run(sandbox *sb, const sandbox_event *ev, int64_t timeout_ms)
{
	sb->state = SANDBOX_RUNNING;
	sb->done_cb = ev->done;
	sb->done_arg = ev->arg;
	sb->stdout_max = (uint64_t)ev->limits->stdout_bytes;
	sb->stderr_max = (uint64_t)ev->limits->stderr_bytes;
	sb->run_start_us = now_mono_us();
	sb->cpu_start_ns = sandbox_cgroup_cpu_ns(sb->ctx->cg, sb->id);
	account_cgroup(sb, SANDBOX_CPU_IDLE, sb->cpu_start_ns);
	set_timer(sb->timer, timeout_ms > 0 ? timeout_ms : 600000);
	if (sandbox_cgroup_sample(sb->ctx->cg, sb->id, &sb->memory_sampled))
		set_timer(sb->sample_ev, SAMPLE_MS);
	*ev->rc = 0;
}

static bool run(sandbox *sb, const sandbox_event *ev)
{
	begin_run(sb, ev, ev->limits->timeout_ms);
	sandbox_io_send_task(sb, ev->task, ev->limits);
	return false; /* a broken pipe ends the run, and the owner's callback, at once */
}

/* run_step, in READY or after a step that ended normally: the chain's next script step */
static bool run_step(sandbox *sb, const sandbox_event *ev)
{
	if (sb->state == SANDBOX_DONE && !sb->step_idle) {
		*ev->rc = err_set(ev->e, 0, "sandbox %s cannot run another step", sb->id);
		return true;
	}
	proto_output_deinit(&sb->out);
	buf_reset(&sb->step_output);
	sb->step_mode = true;
	sb->step_idle = sb->step_over = false;
	if (sb->rd_ev) /* the last step's end paused reading */
		event_add(sb->rd_ev, NULL);
	begin_run(sb, ev, ev->step->timeout_ms);
	sandbox_steps_send(sb, ev->step, ev->limits);
	return false;
}

static bool not_ready(sandbox *sb, const sandbox_event *ev)
{
	*ev->rc = err_set(ev->e, 0, "sandbox %s is not ready", sb->id);
	return true;
}

/* ---- RUNNING ---- */

static void read_usage(sandbox *sb, sandbox_cgroup_usage *u)
{
	sb->usage.wall_ms = (now_mono_us() - sb->run_start_us + 500) / 1000;
	sandbox_cgroup_read(sb->ctx->cg, sb->id, sb->memory_sampled, u);
	sb->usage.cpu_ms =
	    u->cpu_ns > sb->cpu_start_ns ? (int64_t)((u->cpu_ns - sb->cpu_start_ns) / 1000000) : 0;
	sb->usage.memory_peak_bytes = (int64_t)u->memory_peak_bytes;
	account_cgroup(sb, SANDBOX_CPU_RUN, u->cpu_ns);
}

/* -> DONE with the status decided; the owner gets the output and the usage. */
static bool finish_with(sandbox *sb, const sandbox_cgroup_usage *u, proto_status status,
                        const char *why)
{
	if (status == PROTO_STATUS_SANDBOX_ERROR && u->oom_kills > 0) {
		/* the OOM killer's SIGKILL took the sandbox down (runsc: the sentry); that is the
		 * reason, not "the sandbox died" */
		status = PROTO_STATUS_OOM;
		sb->out.exit_code = -1;
		sb->out.signal = SIGKILL;
		why = "the sandbox was killed: the program reached its memory limit";
	} else if (status == PROTO_STATUS_SANDBOX_ERROR && u->pids_max_hits > 0) {
		/* gVisor's ptrace platform spends host processes per task thread: a program that
		 * exhausts its pids limit takes the sandbox down with it. That is the program's
		 * doing, not the node's: killed, like a process killed by SIGKILL. */
		status = PROTO_STATUS_OK;
		sb->out.exit_code = -1;
		sb->out.signal = SIGKILL;
		why = "the sandbox was killed: the program reached its process limit";
	}
	sb->out.status = status;
	if (why && !sb->out.error)
		sb->out.error = xstrdup(why);
	/* every result a node publishes parses with its own tools (proto/caps.h) */
	proto_output_fit(&sb->out);
	sb->state = SANDBOX_DONE;
	sb->done_cb(sb, &sb->out, &sb->usage, sb->done_arg);
	return false;
}

/* Ends the run with a status decided on the host (timeout, sandbox death, bad frames). */
static bool finish(sandbox *sb, proto_status status, const char *why)
{
	stop_watching(sb);
	sandbox_cgroup_usage u;
	read_usage(sb, &u);
	return finish_with(sb, &u, status, why);
}

/* output_frame: a chunk of what the program printed, as it printed it */
static bool run_output(sandbox *sb, const sandbox_event *ev)
{
	sandbox_io_add_output(sb, ev->frame, ev->p, ev->n);
	return true;
}

static bool run_result(sandbox *sb, const sandbox_event *ev)
{
	if (ev->frame == FRAME_STEP_RESULT) {
		sandbox_steps_take_output(sb, ev->p, ev->n);
		return true;
	}
	sandbox_io_add_result(sb, ev->frame, ev->p, ev->n);
	return true;
}

/* exit_frame: the program ended; the agent's flags and the host's counters decide how */
static bool run_exit(sandbox *sb, const sandbox_event *ev)
{
	uint8_t flags;
	if (sandbox_io_take_exit(&sb->out, ev->p, ev->n, &flags) < 0)
		return finish(sb, PROTO_STATUS_SANDBOX_ERROR, "agent sent a malformed EXIT frame");
	stop_watching(sb);
	sandbox_cgroup_usage u;
	read_usage(sb, &u);
	proto_status st = PROTO_STATUS_OK;
	if (flags & EXIT_F_SETUP_ERROR)
		st = PROTO_STATUS_SANDBOX_ERROR;
	else if (flags & EXIT_F_OUTPUT_LIMIT)
		st = PROTO_STATUS_OUTPUT_LIMIT;
	else if (u.oom_kills > 0 && (flags & EXIT_F_SIGNALED))
		st = PROTO_STATUS_OOM;
	else if (flags & EXIT_F_FUNCTION_ERROR)
		st = PROTO_STATUS_ERROR;
	else if (sb->return_error)
		st = PROTO_STATUS_ERROR;
	else if (sb->step_over)
		st = PROTO_STATUS_OUTPUT_LIMIT;
	sb->step_idle = sb->step_mode && !(flags & EXIT_F_SETUP_ERROR);
	return finish_with(sb, &u, st, st == PROTO_STATUS_ERROR ? sb->return_error : NULL);
}

/* bad_frame, ready_frame: the agent broke the protocol */
static bool run_bad(sandbox *sb, const sandbox_event *ev)
{
	return finish(sb, PROTO_STATUS_SANDBOX_ERROR,
	              ev->frame ? "agent sent an unknown frame" : "agent protocol error");
}

static bool run_lost(sandbox *sb, const sandbox_event *ev)
{
	return finish(sb, PROTO_STATUS_SANDBOX_ERROR,
	              ev->why ? ev->why : "the sandbox died during the task");
}

/* timer: the wall limit is the host's: kill the whole container now, no grace; what the agent
 * had sent of the output until then is kept */
static bool run_timeout(sandbox *sb, const sandbox_event *ev)
{
	sandbox_container_kill(sb);
	sandbox_io_drain_output(sb);
	return finish(sb, PROTO_STATUS_TIMEOUT, NULL);
}

/* stop: the owner ends the run (a cancel, a revocation): kill now, report what was collected,
 * with the output the agent had sent until then */
static bool run_stop(sandbox *sb, const sandbox_event *ev)
{
	sandbox_container_kill(sb);
	sandbox_io_drain_output(sb);
	return finish(sb, ev->status, ev->why);
}

static bool sample(sandbox *sb, const sandbox_event *ev)
{
	if (!sandbox_cgroup_sample(sb->ctx->cg, sb->id, &sb->memory_sampled))
		event_del(sb->sample_ev);
	return true;
}

/* ---- DONE, DEAD ---- */

/* agent_eof, bad_frame after the end: stop reading */
static bool quiet(sandbox *sb, const sandbox_event *ev)
{
	sandbox_io_pause(sb);
	return true;
}

/* spawned after a failure: keep the pid, so that destroying kills the container at once */
static bool dead_pid(sandbox *sb, const sandbox_event *ev)
{
	sandbox_container_read_pid(sb);
	return true;
}

/* ---- DESTROYING ---- */

/* destroy: nothing more is read, written or timed; `delete` once `run` has returned */
static bool destroy(sandbox *sb, const sandbox_event *ev)
{
	sb->state = SANDBOX_DESTROYING;
	sb->gone_cb = ev->gone;
	sb->gone_arg = ev->arg;
	stop_watching(sb);
	if (sb->timer)
		event_free(sb->timer);
	if (sb->sample_ev)
		event_free(sb->sample_ev);
	sb->timer = sb->sample_ev = NULL;
	sandbox_io_close(sb);
	if (!sb->spawning)
		sandbox_container_delete(sb);
	return false;
}

/* spawned, spawn_failed while destroying: now `delete` can run */
static bool delete_now(sandbox *sb, const sandbox_event *ev)
{
	sandbox_container_delete(sb);
	return false;
}

/* deleted: the bundle and the cgroup go, then the sandbox itself */
static bool gone(sandbox *sb, const sandbox_event *ev)
{
	account_cgroup(sb, sb->ready_at ? SANDBOX_CPU_TEARDOWN : SANDBOX_CPU_CREATE,
	               sandbox_cgroup_cpu_ns(sb->ctx->cg, sb->id));
	sandbox_container_cleanup(sb);
	sb->ctx->live--;
	sandbox_gone_fn cb = sb->gone_cb;
	void *cb_arg = sb->gone_arg;
	sandbox_release(sb);
	if (cb)
		cb(cb_arg);
	return false;
}

/* ---- the table ---- */

/* One row per event, one column per state in sandbox_state order: a row that misses a state
 * does not compile, nor does a row given twice (-Woverride-init). */
#define ROW(creating, ready, running, done, dead, destroying)                                      \
	{                                                                                          \
		creating, ready, running, done, dead, destroying                                   \
	}
#define EV(name) [SANDBOX_EV_##name]

// clang-format off
static const action lifecycle[][SANDBOX_DESTROYING + 1] = {
/*                    CREATING        READY      RUNNING      DONE       DEAD       DESTROYING */
EV(SPAWNED)      = ROW(created,        never,     never,       never,     dead_pid,  delete_now),
EV(SPAWN_FAILED) = ROW(spawn_failed,   never,     never,       never,     ignore,    delete_now),
EV(READY_FRAME)  = ROW(got_ready,      ignore,    run_bad,     never,     never,     never),
EV(OUTPUT_FRAME) = ROW(early_frame,    ignore,    run_output,  never,     never,     never),
EV(RESULT_FRAME) = ROW(early_frame,    ignore,    run_result,  never,     never,     never),
EV(EXIT_FRAME)   = ROW(early_exit,     ignore,    run_exit,    never,     never,     never),
EV(BAD_FRAME)    = ROW(early_bad,      died,      run_bad,     quiet,     quiet,     never),
EV(AGENT_EOF)    = ROW(early_eof,      died,      run_lost,    quiet,     quiet,     never),
EV(TIMER)        = ROW(create_timeout, never,     run_timeout, never,     never,     never),
EV(SAMPLE)       = ROW(never,          never,     sample,      never,     never,     never),
EV(RUN)          = ROW(not_ready,      run,       not_ready,   not_ready, not_ready, not_ready),
EV(DESTROY)      = ROW(destroy,        destroy,   destroy,     destroy,   destroy,   ignore),
EV(DELETED)      = ROW(never,          never,     never,       never,     never,     gone),
EV(STOP)         = ROW(ignore,         ignore,    run_stop,    ignore,    ignore,    ignore),
EV(RUN_STEP)     = ROW(not_ready,      run_step,  not_ready,   run_step,  not_ready, not_ready),
};
// clang-format on
_Static_assert(ARRAY_SIZE(lifecycle) == SANDBOX_EV_COUNT, "every event is a row");
_Static_assert(SANDBOX_DESTROYING == 5, "every state is a column of ROW");

bool sandbox_step(sandbox *sb, const sandbox_event *ev)
{
	return lifecycle[ev->type][sb->state](sb, ev);
}

bool sandbox_step_type(sandbox *sb, sandbox_event_type type)
{
	return sandbox_step(sb, &(sandbox_event){.type = type});
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	sandbox_step_type(arg, SANDBOX_EV_TIMER);
}

static void on_sample(evutil_socket_t fd, short what, void *arg)
{
	sandbox_step_type(arg, SANDBOX_EV_SAMPLE);
}

void sandbox_lifecycle_begin(sandbox *sb)
{
	sb->timer = evtimer_new(sb->ctx->base, on_timer, sb);
	sb->sample_ev = event_new(sb->ctx->base, -1, EV_PERSIST, on_sample, sb);
	set_timer(sb->timer, SANDBOX_CREATE_TIMEOUT_MS);
	sb->ctx->live++;
}
