#!/usr/bin/env bash
# Issue 6 end to end: results published by aispd verify with `aisp verify --redis`;
# `aisp verify --replay` passes on a deterministic task and names the differing part on a
# task that prints the time; a tampered result fails and names the part.
# Issue 12: a task submitted with `aisp submit --nondeterministic --task-out` replays with
# exit 0 when only its output differs, and fails when its exit differs; a statement whose
# limits disagree with its environment is named, not run; results of a stopped node still
# verify through Redis (its key by key id).
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
need_image
A=$AISP_BIN
port=$(free_port)
mkdir -p "$TMP/redis"
redis-server --bind 127.0.0.1 --port "$port" --dir "$TMP/redis" --save "" --appendonly no >"$TMP/redis.log" 2>&1 &
PIDS+=($!)
R() { redis-cli -p "$port" "$@"; }
for _ in $(seq 100); do [ "$(R ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
"$A" keygen --out "$TMP/key" >/dev/null
cat >"$TMP/aispd.conf" <<CONF
[node]
id = replay-node
slots = 2
state_dir = $TMP/state
run_dir = /run/aisp-replay-$$
key = $TMP/key/private.pem
agent = $AISP_AGENT
[redis]
address = 127.0.0.1:$port
[runtimes]
default = runc
enabled = runc, runsc
[pool]
runc/default/python = 1
[http]
listen =
CONF
trap 'cleanup; rm -rf /run/aisp-replay-$$' EXIT
"$AISPD_BIN" --config "$TMP/aispd.conf" 2>"$TMP/aispd.log" &
node=$!
PIDS+=($node)

submit() { # submit ID TASKFILE: XADD the task, wait for its result (bounded)
	R XADD aisp:tasks '*' task "$(cat "$2")" >/dev/null
	for _ in $(seq 600); do
		[ "$(R EXISTS "aisp:result:$1")" = 1 ] && return 0
		sleep 0.1
	done
	return 1
}
task() { # task ID RUNTIME CODE
	jq -nc --arg id "$1" --arg rt "$2" --arg code "$3" '{id:$id, lang:"python", runtime:$rt, code:$code}'
}

for rt in runc runsc; do
	task "det-$rt" $rt 'import hashlib; print(hashlib.sha256(b"aisp").hexdigest()); print(sorted([3,1,2]))' >"$TMP/det-$rt.json"
	check "$rt deterministic task published" submit "det-$rt" "$TMP/det-$rt.json"
	"$A" verify --redis "127.0.0.1:$port" "det-$rt" >"$TMP/v1" 2>&1
	is "$rt published result verifies with --redis" "$?" 0
	check "$rt without --task: a SKIP line says so" grep -qx "SKIP input_digest (no --task)" "$TMP/v1"
	"$A" verify --redis "127.0.0.1:$port" "det-$rt" --task "$TMP/det-$rt.json" --replay >"$TMP/v2" 2>&1
	rc=$?
	is "$rt replay of a deterministic task passes" "$rc" 0
	check "$rt replay re-executed and compared every part" grep -q "PASS replay.execution" "$TMP/v2"
	[ $rc = 0 ] || sed 's/^/# /' "$TMP/v2"
done

task clock runc 'import time; print(time.time_ns())' >"$TMP/clock.json"
check "time-printing task published" submit clock "$TMP/clock.json"
"$A" verify --redis "127.0.0.1:$port" clock --task "$TMP/clock.json" --replay >"$TMP/v3" 2>&1
is "replay of a time-printing task fails" "$?" 1
check "the signature itself still passes" grep -q "^PASS signature" "$TMP/v3"
check "replay names the output (stdout) as the differing part" grep -q "^FAIL replay.output: output differs: stdout" "$TMP/v3"
check "replay says exit and environment match" grep -q "^PASS replay.environment" "$TMP/v3"

# Declared nondeterminism is a pass: submitted with the CLI, replayed from its --task-out.
"$A" submit --redis "127.0.0.1:$port" --id nd-clock --runtime runc --nondeterministic \
	--task-out "$TMP/nd.json" --wait --wait-timeout 120 --json \
	-c 'import time; print(time.time_ns())' >"$TMP/nd-result.json" 2>&1
is "nondeterministic task submitted with aisp submit ran" "$?" 0
"$A" verify --redis "127.0.0.1:$port" nd-clock --task "$TMP/nd.json" --replay >"$TMP/v6" 2>&1
rc=$?
is "replay of a nondeterministic task whose output differs exits 0" "$rc" 0
check "the differing output is EXPECTED" grep -q "^EXPECTED replay.output: output differs: stdout" "$TMP/v6"
check "the execution digest differs as EXPECTED" grep -q "^EXPECTED replay.execution:" "$TMP/v6"
check "input, exit and environment still PASS" sh -c "grep -q '^PASS replay.input' '$TMP/v6' &&
	grep -q '^PASS replay.exit' '$TMP/v6' && grep -q '^PASS replay.environment' '$TMP/v6'"
[ $rc = 0 ] || sed 's/^/# /' "$TMP/v6"

# ...but not when a deterministic part differs: this program exits 0 before a deadline and 3
# after it; the node runs it before, the replay after.
deadline=$(($(date +%s) + 15))
"$A" submit --redis "127.0.0.1:$port" --id nd-exit --runtime runc --nondeterministic \
	--task-out "$TMP/nd-exit.json" --wait --wait-timeout 120 --json \
	-c "import sys, time; print(time.time_ns()); sys.exit(0 if time.time() < $deadline else 3)" \
	>"$TMP/nd-exit-result.json" 2>&1
is "the deadline program exited 0 on the node" "$(jq -r .exit_code "$TMP/nd-exit-result.json")" 0
while [ "$(date +%s)" -le "$deadline" ]; do sleep 1; done
"$A" verify --redis "127.0.0.1:$port" nd-exit --task "$TMP/nd-exit.json" --replay >"$TMP/v7" 2>&1
is "replay of a nondeterministic task whose exit differs exits 1" "$?" 1
check "the exit is named" grep -q "^FAIL replay.exit: exit differs: claimed ok/0/0, here ok/3/0" "$TMP/v7"
check "and the execution digest fails too" grep -q "^FAIL replay.execution" "$TMP/v7"

# A statement whose limits disagree with its environment (here re-signed with the node's key, as
# a buggy node would): verify names the limit; the replay refuses to run under it (it used to
# run with the bad limit and fail with an opaque sandbox error).
R GET aisp:result:det-runc >"$TMP/det.json"
jq -r .attestation.payload "$TMP/det.json" | base64 -d | jq -jc '.predicate.limits.memory_bytes = 0' >"$TMP/stmt"
{ printf 'DSSEv1 28 application/vnd.in-toto+json %d ' "$(wc -c <"$TMP/stmt")"; cat "$TMP/stmt"; } >"$TMP/pae"
openssl pkeyutl -sign -inkey "$TMP/key/private.pem" -rawin -in "$TMP/pae" -out "$TMP/sig"
jq -c --arg p "$(base64 -w0 "$TMP/stmt")" --arg s "$(base64 -w0 "$TMP/sig")" \
	'.attestation.payload = $p | .attestation.signatures[0].sig = $s' "$TMP/det.json" >"$TMP/limits.json"
"$A" verify "$TMP/limits.json" --pubkey "$TMP/key/public.pem" --task "$TMP/det-runc.json" --replay >"$TMP/v8" 2>&1
is "a statement with disagreeing limits fails" "$?" 1
check "the signature over it still passes" grep -q "^PASS signature" "$TMP/v8"
check "verify names the limit" grep -q "^FAIL limits: limits.memory_bytes is 0 in predicate.limits, [0-9]* in the environment" "$TMP/v8"
check "the replay names the mismatch instead of running" grep -q "^FAIL replay: the statement's limits disagree with its environment: limits.memory_bytes is 0" "$TMP/v8"

# the wrong task for a result: the input digest names it
task clock runc 'print("something else")' >"$TMP/other.json"
"$A" verify --redis "127.0.0.1:$port" clock --task "$TMP/other.json" >"$TMP/v4" 2>&1
check "a different task fails input_digest" grep -q "^FAIL input_digest" "$TMP/v4"

# a tampered stdout in the published document fails and names the part
R GET aisp:result:det-runc >"$TMP/r.json"
jq -c '.stdout = "forged\n"' "$TMP/r.json" >"$TMP/forged.json"
"$A" verify --redis "127.0.0.1:$port" "$TMP/forged.json" >"$TMP/v5" 2>&1
is "tampered result fails" "$?" 1
check "tampered stdout named (output_digest)" grep -q "^FAIL output_digest" "$TMP/v5"

kill -TERM $node
wait $node
is "aispd exits 0 on SIGTERM" "$?" 0
done_testing
