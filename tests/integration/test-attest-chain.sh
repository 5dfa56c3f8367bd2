#!/usr/bin/env bash
# Issue 12, items 4, 9 and 10, end to end with aispd, a real redis-server and runc:
# - a node's published chain has no unexplained gap under a duplicate and a SIGSTOP/SIGCONT
#   past the reclaim time (the discarded late result is in aisp:audit:<node id>);
# - a chain state that cannot be saved (fdatasync fails with EIO, from
#   tests/faults/fault-fdatasync.c; a full state directory no longer is a failure, the file's
#   room is made at start) stops the node from taking tasks and makes /healthz 503 with the
#   reason, publishes no result under a number a restart would reuse, and the node goes on once
#   it can save again, also across a restart;
# - results of a stopped node still verify through Redis (its key by key id, kept at least as
#   long as its results).
# No `set -e`: a TAP suite goes on past a failing step (that test point says "not ok" and the
# remaining ones still run), and many steps test a command's exit status.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/node.sh"
need_nodes
redis_start
A=$AISP

# results_of NAME DIR: every signed result of node NAME, published (aisp:result:*) or discarded
# (aisp:audit:<id>), into DIR/<sequence>.json; prints the sequences, sorted, one a line.
results_of() {
	local id k doc seq
	id=$(node_id "$1")
	rm -rf "$2"
	mkdir -p "$2"
	{
		for k in $(R --scan --pattern 'aisp:result:*'); do R GET "$k"; done
		R --raw XRANGE "aisp:audit:$id" - + | awk 'p == "result" { print } { p = $0 }'
	} | while IFS= read -r doc; do
		[ "$(printf '%s' "$doc" | jq -r .node)" = "$id" ] || continue
		seq=$(printf '%s' "$doc" | jq -r .attestation.payload | base64 -d |
			jq -r .predicate.metadata.sequence)
		[ -e "$2/$seq.json" ] && echo "duplicate-$seq"
		printf '%s\n' "$doc" >"$2/$seq.json"
		echo "$seq"
	done | sort -n
}
# chain_ok NAME DIR COUNT: the node's results are sequences 1..COUNT and verify as one chain
chain_ok() {
	local got want files=()
	got=$(results_of "$1" "$2" | tr '\n' ' ')
	want=$(seq -s ' ' 1 "$3")
	is "$1: the signed results are sequences 1..$3, each once" "$got" "$want "
	for s in $(seq 1 "$3"); do files+=("$2/$s.json"); done
	"$A" verify --pubkey "$TEST_TMP/key/public.pem" "${files[@]}" >"$2/verify" 2>&1
	is "$1: they verify as one chain" "$?" 0
	is "$1: every link checked" "$(grep -c '^PASS chain' "$2/verify")" "$(($3 - 1))"
	grep '^FAIL' "$2/verify" | head -5 | sed 's/^/# /'
}
py() { printf '%s\n' "$1" >"$TEST_TMP/code.py"; echo "$TEST_TMP/code.py"; }
entry_pending() { R XPENDING aisp:tasks aisp - + 100 | grep -qx -- "$1"; }
leased() { [ "$(R EXISTS "aisp:running:$1")" = 1 ]; }

# ---- item 9: a duplicate and a node stopped past the reclaim time ----
RECLAIM_MS=1500 POOL="runc/default/python = 1" node_conf a
RECLAIM_MS=1500 POOL="runc/default/python = 1" node_conf b
node_start a
wait_for 60 node_registered a || bail "node a did not register"
check "a: first task" run_task one python "$(py 'print(1)')" runc
submit_json "$(task_json one python "$(py 'print(1)')" runc)" >/dev/null
check "a: the duplicate is acknowledged without a result" wait_for 30 prints 0 R XLEN aisp:tasks
submit_json "$(task_json slow python "$(py 'import time; time.sleep(4); print("slow")')" runc)" >/dev/null
check "a: the slow task is running" wait_for 60 leased slow
kill -STOP "$(node_pid a)"
node_start b
check "b: takes the task over past the reclaim time and publishes it" wait_result slow 120
is "b: published by b" "$(rfield slow .node)" "$(node_id b)"
node_stop b
kill -CONT "$(node_pid a)"
check "a: finishes late; its signed result is kept in its audit stream" \
	wait_for 60 prints 1 R XLEN "aisp:audit:$(node_id a)"
is "a: the audit entry names the task" "$(R --raw XRANGE "aisp:audit:$(node_id a)" - + | sed -n 3p)" slow
check "a: a task after that" run_task three python "$(py 'print(3)')" runc
chain_ok a "$TEST_TMP/chain-a" 3
node_stop a

# ---- item 10: the chain state cannot be saved ----
state=$TEST_TMP/state-c
fail=$TEST_TMP/fail-fdatasync-c
mkdir -p "$state"
port=$(free_port)
STATE_DIR=$state HTTP_PORT=$port POOL="runc/default/python = 1" node_conf c
node_start_faulty c "$fail"
wait_for 60 node_registered c || bail "node c did not register"
check "c: a task while the state saves" run_task c1 python "$(py 'print(1)')" runc
touch "$fail"
submit_json "$(task_json c2 python "$(py 'print(2)')" runc)" >/dev/null
check "c: /healthz answers 503 when the chain state cannot be saved" wait_for 60 prints 503 healthz "$port"
body=$(curl -s -m 5 "http://127.0.0.1:$port/healthz")
check "c: /healthz says why ($body)" grep -q "chain state.*fdatasync: Input/output error" <<<"$body"
check "c: the task whose result could not be signed is given back, unpublished" \
	sh -c "! redis-cli -p $REDIS_PORT EXISTS aisp:result:c2 | grep -qx 1"
c3=$(submit_json "$(task_json c3 python "$(py 'print(3)')" runc)")
sleep 3
check "c: takes no task while it cannot save" sh -c "! redis-cli -p $REDIS_PORT EXISTS aisp:result:c3 | grep -qx 1"
check "c: the new entry's program did not run" sh -c "! grep -q 'task=c3 .*event=started' '$(node_dir c)/log'"
diag "c3 is entry $c3"
is "c: still unhealthy" "$(healthz "$port")" 503
rm -f "$fail"
check "c: healthy again once the state saves" wait_for 60 prints 200 healthz "$port"
check "c: the given-back task runs and is published" wait_result c2 120
check "c: and the waiting one" wait_result c3 120
node_stop c
node_start c
wait_for 60 node_registered c || bail "node c did not restart"
check "c: a task after the restart" run_task c4 python "$(py 'print(4)')" runc
chain_ok c "$TEST_TMP/chain-c" 4
node_stop c

# ---- item 4: results of stopped nodes verify through Redis ----
for id in one c4; do
	"$A" verify --redis "127.0.0.1:$REDIS_PORT" "$id" >"$TEST_TMP/v-$id" 2>&1
	is "$id: verifies through Redis after its node stopped" "$?" 0
	grep '^FAIL' "$TEST_TMP/v-$id" | sed 's/^/# /'
done
is "the node registry entries are gone" "$(R EXISTS "aisp:node:$(node_id a)" "aisp:node:$(node_id c)")" 0
kid=$(rfield one .attestation.signatures[0].keyid)
ttl_key=$(R PTTL "aisp:key:$kid")
ttl_result=$(R PTTL aisp:result:c4)
check "the key by key id outlives the results it signed ($ttl_key ms >= $ttl_result ms)" \
	test "$ttl_key" -ge "$ttl_result"
is "it names the nodes that used it" "$(R HEXISTS "aisp:key:$kid" "node.$(node_id a)") $(R HEXISTS "aisp:key:$kid" "node.$(node_id c)")" "1 1"
done_testing
