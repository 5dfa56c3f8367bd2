/* aisp verify --replay: re-executes a result's task locally, in the same image (by digest),
 * on the same runtime with the same limits, and compares every part of the execution digest. */
#pragma once

#include "attest/attest.h"
#include "proto/proto.h"

/* Reports through check(ud, name, verdict, detail): "replay" (the run itself: FAIL when the
 * statement cannot be replayed, e.g. its limits disagree with its environment; ERROR when it
 * could not run here), then "replay.input", "replay.output", "replay.exit",
 * "replay.environment", "replay.execution". A mismatch names what differs (stdout, stderr,
 * files, return value; the exit status; the environment keys). For a task that declared itself
 * nondeterministic, a differing output, and the execution digest when only the output differs,
 * are ATTEST_EXPECTED. task is required (not NULL). */
void cli_replay(const proto_task *task, const proto_result *r, const char *store,
                attest_check_fn check, void *ud);

/* A chain (cli/replay-chain.c; attest/CHAINS.md, "Replay"): its script steps re-executed, fed
 * the recorded answers of its llm steps. Reports "replay", "replay.step.N" for every attested
 * step (the first that differs is named: "step 0 (llm): the recorded answer differs ..."),
 * "replay.environment" (with a sandbox), "replay.input" and "replay.execution". cli_replay()
 * calls it for a chain task. */
void cli_replay_chain(const proto_task *task, const proto_result *r, const char *store,
                      attest_check_fn check, void *ud);
