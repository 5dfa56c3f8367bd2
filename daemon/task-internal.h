/* A task's insides, shared by the files that make its life (internal to daemon/):
 *
 *   task.c        the states and the table, admission, leases, the plain run, publishing,
 *                 faults and retries, shutdown and cancel
 *   task-skill.c  skills, secrets and blobs: resolved and fetched before the lease, redacted
 *                 and stored after the run (states TS_BLOBS, TS_STORE)
 *   task-chain.c  a chain's steps (proto/CHAINS.md): llm steps through the node's llm client,
 *                 script steps in the chain's one sandbox, their records and cost
 *
 * Every callback becomes a task_ev handed to task_step(); only the handler the table names for
 * the task's state acts on it. */
#pragma once

#include "attest/attest.h"
#include "common/cleanup.h"
#include "daemon/live.h"
#include "daemon/llm.h"
#include "daemon/task.h"

DEFINE_CLEANUP_FUNC(proto_cost *, proto_cost_free)

typedef enum tstate {
	TS_NEW = 0, /* created; START parses, validates and admits it */
	TS_TRUST,   /* the revocation store is asked about the task's parties (trust decision) */
	TS_HANDOFF, /* this node cannot serve it: the HANDOFF script is in flight */
	TS_LEASE,   /* the LEASE script is in flight */
	TS_BLOBS,   /* the task's input blobs are read from Redis (task-skill.c) */
	TS_ACQUIRE, /* waiting for a sandbox from the pool */
	TS_RUN,     /* the program runs in the sandbox */
	/* a chain (task-chain.c): one state per kind of step, between acquire and publish */
	TS_STEP_LLM,    /* an llm step's call is in flight (t->call) */
	TS_STEP_SCRIPT, /* a script step runs in the chain's sandbox */
	TS_STORE,       /* the run's output blobs are written to Redis (task-skill.c) */
	TS_SAVE,        /* signed: waiting for the chain state of its number on disk */
	TS_PUBLISH,     /* the PUBLISH (or DEAD) script is in flight, or waiting to be resent */
	TS_FAULT,   /* a sandbox error: XPENDING reads the delivery count (or waits to resend) */
	TS_BACKOFF, /* waiting to retry after a sandbox error */
	TS_RECLAIM, /* XCLAIM (which counts the delivery) is in flight before the retry */
	TS_DONE,    /* finished: gone from the node; only late callbacks remain */
	TS__COUNT,
} tstate;

typedef enum tevent {
	TE_START = 0, /* task_start() */
	TE_REPLY,     /* a Redis reply (reply NULL: the request failed) */
	TE_SANDBOX,   /* the pool's answer (sb NULL: creating one failed) */
	TE_RAN,       /* the sandbox reported the run */
	TE_TIMER,     /* the task's timer fired */
	TE_RELEASE,   /* shutdown: give the entry back */
	TE_CANCEL,    /* a client asked to cancel the task (aisp:cancel:<id>), or a party of it
	               * was revoked (stop_status says which) */
	TE_LLM,       /* an llm step's call ended (e NULL: answered) */
	TE_DURABLE,   /* WAIT after the publish came back (durability.h) */
	TE_TRUST,     /* the revocation store's answer about the task's parties */
	TE_SAVED,     /* the chain state was saved up to the task's number (e: it failed) */
	TE__COUNT,
} tevent;

typedef struct task_ev {
	tevent kind;
	redisReply *reply;         /* TE_REPLY */
	const char *redis_error;   /* TE_REPLY without a reply: why */
	sandbox *sb;               /* TE_SANDBOX, TE_RAN */
	const err *e;              /* TE_SANDBOX without a sandbox, TE_LLM, TE_SAVED: why */
	llm_result *llm;           /* TE_LLM */
	const proto_output *out;   /* TE_RAN */
	const proto_usage *usage;  /* TE_RAN */
	rconn_reply_fn release_cb; /* TE_RELEASE */
	void *release_arg;
	proto_status stop_status;      /* TE_CANCEL: cancelled or revoked */
	const char *stop_why;          /* TE_CANCEL: the result's error */
	const attest_revocations *rev; /* TE_TRUST: what the store said */
	const char *trust_error;       /* TE_TRUST without an answer: why */
} task_ev;

typedef struct task_skills task_skills;

/* The stages of a task's path through the node, in order, each stamped when it ends (the read
 * is the start): admitted (parsed, trusted, planned: the lease is asked for), leased, acquired
 * (a sandbox in hand), dispatched (the TASK frame written), ran (the agent's EXIT frame read),
 * signed (the result signed and serialised, the chain state saved), published (the PUBLISH
 * script answered, and WAIT when asked for). */
typedef enum task_stage {
	TASK_STAGE_ADMITTED = 0,
	TASK_STAGE_LEASED,
	TASK_STAGE_ACQUIRED,
	TASK_STAGE_DISPATCHED,
	TASK_STAGE_RAN,
	TASK_STAGE_SIGNED,
	TASK_STAGE_PUBLISHED,
	TASK_STAGE__COUNT,
} task_stage;

struct task {
	const task_host *h;
	task_skills *sk; /* skills, secrets and blobs (task-skill.c), or NULL */
	int refs;
	tstate state;
	bool fresh;
	bool leased;
	bool parsed;  /* t holds a parsed task */
	bool planned; /* plan holds a resolved plan */
	bool dead;    /* publishing an internal result after max_deliveries */
	/* A client cancelled it, or a party of it was revoked: it never starts a program, and a
	 * running one is stopped. stop: PROTO_STATUS_CANCELLED or _REVOKED (0: neither). */
	proto_status stop;
	char *stop_why;
	attest_task_auth auth; /* its signature and passport, checked (parsed tasks) */
	bool trusted;          /* the trust decision admitted it */

	char *entry;
	char *bad_entry;
	char *payload;
	size_t len;
	char *id;
	char *reply;       /* the reply stream, once it could be read (also of a bad task) */
	bool client_id;    /* id is the client's own, not entry-<entry> */
	char *running_key; /* aisp:running:<id> */
	proto_task t;
	task_plan plan;
	sandbox *sb;
	char *sandbox_name; /* the sandbox it ran in (for the log), once it had one */
	bool warm;          /* that sandbox came from the warm pool */

	int64_t received_ms, started_ms, finished_ms;
	int64_t t_acquire_us, t_run_us, t_publish_us;
	/* Monotonic stamps of the stages of this delivery (task_stage()), for the published line's
	 * stages_us= (daemon/README.md, "Logs"): 0 until reached. */
	int64_t t_read_us, stage_us[TASK_STAGE__COUNT];
	int deliveries;
	int attempt;       /* of the request being retried in this state */
	int script_errors; /* error replies of the PUBLISH script (not connection failures) */
	char *fault;
	char *why_not_here;    /* TS_HANDOFF: why this node does not serve it */
	bool fault_if_none;    /* TS_HANDOFF: no other node -> this node's fault, not a rejection */
	bool sealed_elsewhere; /* a sealed task for an age identity this node does not hold */
	proto_status status;
	uint64_t sequence; /* the signed result's number in the node's chain; 0: unsigned */
	char *result_json;
	size_t result_len;

	struct event *timer;
	live *live; /* TS_RUN with a reply stream: its live output events (daemon/live.h) */

	/* a chain (task-chain.c) */
	size_t step;          /* the step running, or next */
	proto_chain_run *run; /* the steps that ran */
	proto_cost *cost;     /* their cost, item by item */
	llm_call *call;       /* TS_STEP_LLM: the call in flight (holds a reference) */
	int64_t t_step_us;    /* when the step started */
	size_t outputs_len;   /* the steps' outputs so far, as JSON bytes */

	/* the credential proxy (daemon/proxy.h) */
	proxy_session *px;              /* TS_RUN of a task with services */
	proto_proxy_audit *proxy_audit; /* its trail once the run ended, for the result */
};

/* ---- task.c, for task-chain.c ---- */

/* The log: one key=value line per event of a task (daemon/README.md, "Logs"): task=, entry=,
 * event=, then the key, value pairs (NULL-terminated; a NULL value leaves its key out), then
 * sandbox= and runtime= once known, and ms=, the time since the node read the entry. Every
 * value goes through log_kv(). */
void task_log(const task *t, int level, const char *event, ...) __attribute__((sentinel));
/* A number as a log value, in storage that lives as long as the full expression it is in. */
#define NUM(v) task_fmt_num((char[24]){0}, (long long)(v))
const char *task_fmt_num(char *s, long long v);

/* Stamps the end of a stage of this delivery (the last stamp of a stage wins: a retry's). */
void task_stage_mark(task *t, task_stage s);

/* Hands ev to the task's table. */
void task_step(task *t, const task_ev *ev);
/* A reference for a request in flight, and its end (the last one frees the task). */
task *task_hold(task *t);
void task_drop(task *t);
/* Enters a state (resetting the retry count of the state left). */
void task_enter(task *t, tstate s);
/* The sandbox's done callback: a TE_RAN event (it drops the reference the run held). */
void task_on_ran(sandbox *sb, const proto_output *out, const proto_usage *usage, void *arg);
/* Signs and serialises the result around out and usage (borrowed); t->cost, when set, is its
 * cost. 0, or -1 when the node cannot sign now (then task_give_back()). */
int task_make_result(task *t, const proto_output *out, const proto_usage *usage);
void task_publish(task *t);
void task_give_back(task *t);
/* A sandbox error: read the delivery count, retry or dead-letter. */
void task_fault(task *t, const char *reason);
/* What the log and a fault may show of text that can quote a task's input (an agent's or a
 * step's error, a step's model): for an opened sealed task that is plaintext, so the fixed
 * text `sealed` stands for it. */
const char *task_shown(const task *t, const char *s, const char *sealed);
#define TASK_SEALED_SANDBOX_ERROR                                                                  \
	"the sandbox failed while it ran the sealed task (the agent's reason is not shown: it "    \
	"may quote the task)"
/* Shutdown in any state: the entry is released (the caller has dealt with its requests). */
void task_release_entry(task *t, const task_ev *ev);
/* A cancel (or a revocation) noted: the task never starts anything new; t->stop and
 * t->stop_why say which and why. */
void task_note_cancel(task *t, const task_ev *ev);
/* Why a running task was stopped, for its result: "revoked while it ran: <why>" or "cancelled
 * by request while it ran". Caller frees. */
char *task_stop_reason(const task *t);
/* True when the task runs in a sandbox: a plain task, or a chain with a script step. */
bool task_sandboxed(const task *t);

/* ---- task-chain.c ---- */

/* Starts a chain's first step; sb is its sandbox, or NULL for a chain of llm steps only. */
void chain_start(task *t, sandbox *sb);
/* The table's cells for the chain's states. */
void chain_on_llm(task *t, const task_ev *ev);
void chain_on_script(task *t, const task_ev *ev);
void chain_cancel_llm(task *t, const task_ev *ev);
void chain_release_llm(task *t, const task_ev *ev);
/* What a task's run costs from host-side usage (plain tasks; script steps). */
proto_cost_item *chain_cost_usage(const task_host *h, proto_cost *c, proto_cost_kind kind, int step,
                                  const proto_usage *u);

/* ---- task-skill.c ---- */

/* True when the task names a skill, mounts skills or lists blobs. */
bool skill_used(const task *t);
void skill_free(task *t);
/* True when the task's sandbox receives secrets: its output is redacted as a whole after the
 * run, so it shows no live output (a secret can straddle two chunks). */
bool skill_has_secrets(const task *t);
/* Resolves and loads the task's skills and their secrets (a skill task's lang and loader
 * set). Returns 0, or -1 with *msg (caller frees) for the rejection. */
int skill_prepare(task *t, char **msg);
/* Hands the skill files, blobs and secrets to sb for the run. */
void skill_attach(task *t, sandbox *sb);
/* TS_BLOBS: reads the input blobs; ends in task_blobs_done() or task_blobs_pending(). */
void skill_fetch_blobs(task *t);
void skill_on_blob(task *t, const task_ev *ev);
/* After the run: the output the result carries (redacted; a copy owned by the task), or out
 * itself for a run without skills, blobs or runtime output. */
const proto_output *skill_finish(task *t, const proto_output *out, const proto_usage *usage);
/* TS_STORE: writes the output blobs; ends in task_stored(). */
void skill_store_blobs(task *t);
void skill_on_stored(task *t, const task_ev *ev);
/* The output and usage skill_finish() kept. */
const proto_output *skill_output(const task *t, const proto_usage **usage);

/* ---- task.c, for task-skill.c ---- */

/* The blobs are there (why NULL), or the task is rejected with why. */
void task_blobs_done(task *t, const char *why);
/* Redis did not answer: the entry stays pending and is read again. */
void task_blobs_pending(task *t);
/* The output blobs are stored (why NULL: the result is made and published), or a fault. */
void task_stored(task *t, const char *why);
