/* What the sandbox-level integration tests share (test-pool.c, test-sandbox-live.c): a libevent
 * loop with the spawn helper on it, a sandbox context in a state dir of their own below
 * /run/aisp, runc and runsc, and the default image of the store. */
#pragma once

#include "sandbox/sandbox.h"

struct event_base;

typedef struct sandbox_fixture {
	struct event_base *base;
	sandbox_ctx *ctx;
	sandbox_runtime *runc, *runsc;
	sandbox_image img;
	char state_dir[128];
} sandbox_fixture;

/* Sets f up: the state dir /run/aisp/test-<name>-<pid>, container ids starting with prefix.
 * Returns 0, or -1 after saying why on stderr. */
int sandbox_fixture_setup(sandbox_fixture *f, const char *name, const char *prefix);
/* Frees everything of f and removes its state dir. */
void sandbox_fixture_teardown(sandbox_fixture *f);
