/* A chain's script steps in the agent (frame.h, "A chain's script steps"): STEP frames, one
 * after another, each run like a function-mode task (agent-run.c) by a fresh interpreter whose
 * bootstrap gives the code its `input` and hands back its output (agent-boot.c, step mode).
 * Between two steps everything the previous one started is killed; the next step's interpreter
 * is warmed as soon as the previous step is reported, while the host runs the chain's llm
 * steps. /workspace and /tmp stay: they belong to the invocation, not to a step. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sandbox/agent/agent.h"

static enum agent_lang lang_of(uint8_t l)
{
	return l == 0 ? AGENT_LANG_PYTHON : AGENT_LANG_JAVASCRIPT;
}

/* After a step (or a failed warm-up): nothing of it is left, c is ready for a new child. */
static void reset_child(agent_child *c)
{
	agent_kill_task(c);
	agent_reap(c);
	agent_close_fd(&c->in);
	agent_close_fd(&c->out);
	agent_close_fd(&c->err);
	agent_close_fd(&c->task);
	agent_close_fd(&c->res);
	agent_close_fd(&c->px_req);
	agent_close_fd(&c->px_resp);
	agent_close_fd(&c->fin);
	*c = (agent_child)AGENT_CHILD_INIT;
}

/* A STEP's own checks beyond the TASK field grammar. Returns 0, or -1 with msg. */
static int check_step(const agent_task *t, char *msg, size_t msz)
{
	if (!t->code.n)
		return snprintf(msg, msz, "malformed STEP: no code"), -1;
	if (!t->output_max)
		return snprintf(msg, msz, "malformed STEP: no output cap"), -1;
	if (t->nargv || t->nenv || t->nfiles || t->stdin_data.n)
		return snprintf(msg, msz,
		                "malformed STEP: a step takes no argv, env, files or stdin"),
		       -1;
	return 0;
}

/* Runs one step with an interpreter of its lang (the warm one in *have, or a fresh one);
 * afterwards *have is the next step's, warmed now, or -1. Returns -1 when the agent cannot go
 * on (a malformed STEP: it has said why). */
static int run_one(agent_child *c, int *have, int wsfd, const uint8_t *p, size_t n)
{
	agent_task t;
	char msg[4096];
	if (agent_task_parse(&t, p, n, msg, sizeof(msg)) < 0 || check_step(&t, msg, sizeof(msg))) {
		agent_send_exit(EXIT_F_SETUP_ERROR, -1, msg);
		agent_task_deinit(&t);
		return -1;
	}
	t.mode = 2;
	enum agent_lang lang = lang_of(t.step_lang);
	if (*have != (int)lang) {
		reset_child(c);
		*have = agent_warm_up(c, lang, msg, sizeof(msg)) < 0 ? -1 : (int)lang;
	}
	if (*have < 0)
		agent_send_exit(EXIT_F_SETUP_ERROR, -1, msg);
	else
		agent_run_task(c, lang, wsfd, &t);
	reset_child(c);
	*have = -1;
	if (t.has_next && agent_warm_up(c, lang_of(t.next_lang), msg, sizeof(msg)) == 0)
		*have = (int)lang_of(t.next_lang);
	agent_task_deinit(&t);
	return 0;
}

void agent_run_steps(agent_child *c, enum agent_lang lang, int wsfd, sandbox_frame_reader *r,
                     const uint8_t *p, size_t n)
{
	int have = lang == AGENT_LANG_SHELL ? -1 : (int)lang;
	for (;;) {
		if (run_one(c, &have, wsfd, p, n) < 0)
			return;
		uint8_t type;
		int k = agent_next_frame(r, &type, &p, &n);
		if (k == 0)
			return; /* the chain is over */
		if (k < 0 || type != FRAME_STEP) {
			agent_send_exit(EXIT_F_SETUP_ERROR, -1,
			                k < 0 ? "malformed frame from the host"
			                      : "unexpected frame from the host during a chain");
			return;
		}
	}
}
