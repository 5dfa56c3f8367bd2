#!/usr/bin/env bash
# Issue 6 end to end: results published by aispd verify with `aisp verify --redis`;
# `aisp verify --replay` passes on a deterministic task and names the differing part on a
# task that prints the time; a tampered result fails and names the part.
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
