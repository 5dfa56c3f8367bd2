/* aisp verify --replay: re-executes a result's task locally, in the same image (by digest),
 * on the same runtime with the same limits, and compares every part of the execution digest. */
#pragma once

#include "attest/attest.h"
#include "proto/proto.h"

/* Reports through check(ud, name, ok, detail): "replay" (the run itself), then
 * "replay.input", "replay.output", "replay.exit", "replay.environment", "replay.execution".
 * A mismatch names what differs (stdout, stderr, files, return value; the exit status; the
 * environment keys). */
void cli_replay(const proto_task *task, const proto_result *r, const char *store,
                attest_check_fn check, void *ud);
