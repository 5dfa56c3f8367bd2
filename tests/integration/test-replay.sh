#!/usr/bin/env bash
# Issue 6 end to end: results published by aispd verify with `aisp verify --redis`;
# `aisp verify --replay` passes on a deterministic task and names the differing part on a
# task that prints the time; a tampered result fails and names the part.
# No `set -e`: a TAP suite goes on past a failing step (that test point says "not ok" and the
# remaining ones still run), and many steps test a command's exit status.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/node.sh"
need_nodes
redis_start
POOL='runc/default/python = 1' node_conf replay
node_start replay

submit() { # submit ID TASKFILE: XADD the task, wait for its result (bounded)
	submit_json "$(cat "$2")" >/dev/null && wait_result "$1" 60
}
task() { # task ID RUNTIME CODE
	jq -nc --arg id "$1" --arg rt "$2" --arg code "$3" '{id:$id, lang:"python", runtime:$rt, code:$code}'
}

for rt in runc runsc; do
	task "det-$rt" $rt 'import hashlib; print(hashlib.sha256(b"aisp").hexdigest()); print(sorted([3,1,2]))' >"$TEST_TMP/det-$rt.json"
	check "$rt deterministic task published" submit "det-$rt" "$TEST_TMP/det-$rt.json"
	"$AISP" verify --redis "$AISP_REDIS" "det-$rt" >"$TEST_TMP/v1" 2>&1
	is "$rt published result verifies with --redis" "$?" 0
	"$AISP" verify --redis "$AISP_REDIS" "det-$rt" --task "$TEST_TMP/det-$rt.json" --replay >"$TEST_TMP/v2" 2>&1
	rc=$?
	is "$rt replay of a deterministic task passes" "$rc" 0
	check "$rt replay re-executed and compared every part" grep -q "PASS replay.execution" "$TEST_TMP/v2"
	[ $rc = 0 ] || sed 's/^/# /' "$TEST_TMP/v2"
done

task clock runc 'import time; print(time.time_ns())' >"$TEST_TMP/clock.json"
check "time-printing task published" submit clock "$TEST_TMP/clock.json"
"$AISP" verify --redis "$AISP_REDIS" clock --task "$TEST_TMP/clock.json" --replay >"$TEST_TMP/v3" 2>&1
is "replay of a time-printing task fails" "$?" 1
check "the signature itself still passes" grep -q "^PASS signature" "$TEST_TMP/v3"
check "replay names the output (stdout) as the differing part" grep -q "^FAIL replay.output: output differs: stdout" "$TEST_TMP/v3"
check "replay says exit and environment match" grep -q "^PASS replay.environment" "$TEST_TMP/v3"

# the wrong task for a result: the input digest names it
task clock runc 'print("something else")' >"$TEST_TMP/other.json"
"$AISP" verify --redis "$AISP_REDIS" clock --task "$TEST_TMP/other.json" >"$TEST_TMP/v4" 2>&1
check "a different task fails input_digest" grep -q "^FAIL input_digest" "$TEST_TMP/v4"

# a tampered stdout in the published document fails and names the part
R GET aisp:result:det-runc >"$TEST_TMP/r.json"
jq -c '.stdout = "forged\n"' "$TEST_TMP/r.json" >"$TEST_TMP/forged.json"
"$AISP" verify --redis "$AISP_REDIS" "$TEST_TMP/forged.json" >"$TEST_TMP/v5" 2>&1
is "tampered result fails" "$?" 1
check "tampered stdout named (output_digest)" grep -q "^FAIL output_digest" "$TEST_TMP/v5"

node_stop replay
is "aispd exits 0 on SIGTERM" "$?" 0
done_testing
