#!/bin/bash
# Integration test of aispd and `aisp submit/wait/result/nodes` against a real redis-server
# (its own, on a free loopback port, its own dir) and real runc / runsc sandboxes. TAP output.
#
# Part 1 needs no sandbox: bad tasks -> rejected results with precise messages, duplicates,
# the registry, /metrics and /healthz, Redis down at start, Redis restarted under the node, the
# ACL user of deploy/redis.conf. Part 2 runs real tasks: every language and mode, one id twice,
# 100 tasks through 2 nodes, a node SIGKILLed mid-task, redis-server restarted mid-run, SIGTERM
# with tasks in flight, and runsc.
#
# Nothing here depends on timing for correctness: every wait is a bounded polling loop.
# Everything started is stopped by pid on exit (trap), including sandboxes left by a node that
# was SIGKILLed.
#
# Environment (meson passes them): AISPD_BIN, AISP_BIN, AISP_AGENT, AISP_SOURCE_ROOT;
# AISP_IMAGE_STORE (default /var/lib/aisp/images, image "default" must be there).
# AISP_TEST_UMASK=077 (the daemon-umask test): every aispd runs under that umask, as the unit's
# UMask=0077 makes it, and reaches the store through a 0700 directory, as StateDirectoryMode=0700
# makes /var/lib/aisp (issue 15 item 2).
# No `set -e`: a TAP suite goes on past a failing step (that test point says "not ok" and the
# remaining ones still run), and many steps test a command's exit status.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/node.sh"
SRC=${AISP_SOURCE_ROOT:-$(cd "$here/../.." && pwd)}
need_nodes
if [ -n "${AISP_TEST_UMASK:-}" ]; then # host_cleanup unmounts it before it removes TEST_TMP
	mkdir -m 0700 "$TEST_TMP/private" "$TEST_TMP/private/images"
	mount --bind "$STORE" "$TEST_TMP/private/images" &&
		mount -o remount,bind,ro "$TEST_TMP/private/images" || bail "cannot bind the store below $TEST_TMP"
	STORE=$TEST_TMP/private/images
fi

# This suite's node and Redis settings (node.sh's knobs): a long drain (tasks in flight finish),
# a short request timeout (DEBUG SLEEP stalls the server past it).
DRAIN_S=20
REDIS_TIMEOUT_MS=1000
REDIS_ARGS=(--enable-debug-command local)
HTTP_PORT=$(free_port)
N1=$(node_id n1)

# ---------------------------------------------------------------- part 1: no sandbox needed

# Startup checks: each failure names what to do; --check runs them and exits.
# startup_fails DESCRIPTION EXPECTED-MESSAGE SED-EXPRESSION: edits the config, expects exit 1.
startup_fails() {
	local what=$1 want=$2 out rc
	sed "$3" "$(node_dir chk)/aispd.conf" >"$(node_dir chk)/bad.conf"
	out=$("$AISPD" --config "$(node_dir chk)/bad.conf" --check 2>&1)
	rc=$?
	if [ $rc = 1 ] && [[ "$out" == *"$want"* ]]; then
		ok "startup check: $what"
	else
		not_ok "startup check: $what" "exit $rc: $out" "want: $want"
	fi
}
HTTP_PORT= node_conf chk
check "aispd --check passes with a good config" "$AISPD" --config "$(node_dir chk)/aispd.conf" --check
startup_fails "missing key" "no node key at $TEST_TMP/nokey/private.pem: run \`aisp keygen --out $TEST_TMP/nokey\` or set create_key = true" "s|^key = .*|key = $TEST_TMP/nokey/private.pem|"
startup_fails "runtime missing" "runtime runc is not usable (is it installed?): exec /nonexistent/runc" "s|^\[runtimes\]|[runtime.runc]\npath = /nonexistent/runc\n[runtimes]|"
startup_fails "image missing" "image nope" "s|^store = .*|store = $STORE\ndefault = nope|"
startup_fails "agent missing" "agent /nonexistent/agent is missing" "s|^agent = .*|agent = /nonexistent/agent|"
startup_fails "config error names file:line" "$(node_dir chk)/bad.conf:3: [node] slots = \"many\": not an integer" "s|^slots = .*|slots = many|"
startup_fails "state dir not writable" "state dir /proc/aisp-state is not usable" "s|^state_dir = .*|state_dir = /proc/aisp-state|"
sed "s|^key = .*|key = $TEST_TMP/newkey/private.pem\ncreate_key = true|" "$(node_dir chk)/aispd.conf" >"$(node_dir chk)/ck.conf"
if "$AISPD" --config "$(node_dir chk)/ck.conf" --check >/dev/null 2>&1 &&
	[ "$(stat -c %a "$TEST_TMP/newkey/private.pem")" = 600 ] && [ -f "$TEST_TMP/newkey/public.pem" ]; then
	ok "create_key = true creates the key pair (private.pem 0600)"
else
	not_ok "create_key = true creates the key pair"
fi

# Redis down at start: the node says so, keeps retrying, and registers once Redis is up.
node_conf n1
node_start n1
if wait_for 10 grep -q "redis 127.0.0.1:$REDIS_PORT .*unreachable (.*), retrying in" "$(node_dir n1)/log"; then
	ok "redis down at start: the node logs that it is unreachable and retries"
else
	not_ok "redis down at start: the node logs that it is unreachable and retries" "$(node_log n1 | tail -5)"
fi
redis_start
if wait_for 20 node_registered n1; then
	ok "redis down at start: the node connects once redis is up and registers"
else
	not_ok "redis down at start: the node connects once redis is up and registers" "$(node_log n1 | tail -5)"
fi
check "node still running after waiting for redis" node_alive n1

# Bad tasks: each gets a rejected result with a precise message.
# bad ID-OR-"" JSON EXPECTED-SUBSTRING DESCRIPTION
bad() {
	local id=$1 json=$2 want=$3 what=$4 entry key
	entry=$(R XADD aisp:tasks '*' task "$json")
	[ -n "$id" ] || id=entry-$entry
	if ! wait_for 10 has_result "$id"; then
		not_ok "rejected: $what" "no result for $id" "$(node_log n1 | tail -3)"
		return
	fi
	local st err
	st=$(rfield "$id" .status)
	err=$(rfield "$id" .error)
	if [ "$st" = rejected ] && [[ "$err" == *"$want"* ]]; then
		ok "rejected: $what ($err)"
	else
		not_ok "rejected: $what" "status $st, error: $err" "expected: $want"
	fi
}
bad "" 'not json' "not valid JSON" "not JSON"
bad "" '[1,2]' "must be a JSON object" "not an object"
bad "" '{"lang":"python","code":"x"}' 'missing field "id"' "missing id"
bad b1 '{"id":"b1","lang":"python"}' 'missing field "code"' "missing code"
bad b2 '{"id":"b2","lang":"python","code":5}' 'field "code" must be a string' "wrong type"
bad "" '{"id":"bad id!","lang":"python","code":"x"}' 'field "id" must match' "invalid id"
bad b3 '{"id":"b3","lang":"cobol","code":"x"}' 'field "lang" must be one of' "unknown language"
bad b4 '{"id":"b4","lang":"python","code":"x","image":"no-such-image"}' 'unknown image "no-such-image"' "unknown image"
bad b5 '{"id":"b5","lang":"python","code":"x","runtime":"crun"}' 'runtime "crun" is not enabled on this node (enabled: runc, runsc)' "runtime not enabled"
bad b6 '{"id":"b6","lang":"python","code":"x","limits":{"memory_mb":999999}}' 'limits.memory_mb 999999 is above the node maximum 4096' "limits above maximum"
bad b7 '{"id":"b7","lang":"python","code":"x","files":[{"path":"a","content_b64":"!!!"}]}' 'files[0].content_b64 is not valid base64' "bad base64"
bad b8 '{"id":"b8","lang":"python","code":"x","files":[{"path":"../etc/passwd","content_b64":"eA=="}]}' 'files[0].path' "path traversal"
bad b9 '{"id":"b9","lang":"python","code":"x","code":"y"}' 'duplicate key "code"' "duplicate keys"
bad b10 '{"id":"b10","lang":"python","code":"x","bogus":1}' 'unknown field "bogus"' "unknown field"
bad b11 '{"id":"b11","lang":"shell","mode":"function","code":"x"}' 'function mode is not supported for shell' "function mode for shell"
bad b12 '{"id":"b12","lang":"python","code":"x","env":{"PATH":"/x"}}' 'env name "PATH" is reserved' "reserved env var"
# oversized code: 1 MiB + 10 bytes
python3 -c "print('{\"id\":\"b13\",\"lang\":\"python\",\"code\":\"' + 'a'*(1024*1024+10) + '\"}', end='')" >"$TEST_TMP/big.json"
R -x XADD aisp:tasks '*' task <"$TEST_TMP/big.json" >/dev/null
if wait_for 10 has_result b13 && [ "$(rfield b13 .status)" = rejected ] &&
	[[ "$(rfield b13 .error)" == *'field "code" is 1048586 bytes, above the 1048576-byte limit'* ]]; then
	ok "rejected: oversized code"
else
	not_ok "rejected: oversized code" "$(rfield b13 .error)"
fi
entry=$(R XADD aisp:tasks '*' other x)
if wait_for 10 has_result "entry-$entry" && [[ "$(rfield "entry-$entry" .error)" == *'no "task" field'* ]]; then
	ok "rejected: stream entry without a task field"
else
	not_ok "rejected: stream entry without a task field"
fi
check "rejected results are acknowledged and deleted from aisp:tasks" wait_for 5 prints 0 R XLEN aisp:tasks
is "rejected results announced on aisp:results" "$(events b6)" 1
check "node still serving after bad tasks" node_alive n1

# Duplicates: the same id twice -> one result, one event, both entries acknowledged.
R XADD aisp:tasks '*' task '{"id":"d1","lang":"python","code":"x","image":"nope1"}' >/dev/null
R XADD aisp:tasks '*' task '{"id":"d1","lang":"python","code":"x","image":"nope2"}' >/dev/null
wait_for 10 has_result d1
sleep 0.5 # the second entry is handled right after the first; the checks below poll anyway
if wait_for 10 prints 0 R XLEN aisp:tasks && [ "$(events d1)" = 1 ] && [[ "$(rfield d1 .error)" == *nope1* ]]; then
	ok "duplicate id: one result (the first), one event, both entries acknowledged"
else
	not_ok "duplicate id: one result, one event" "events $(events d1), XLEN $(R XLEN aisp:tasks), error $(rfield d1 .error)"
fi

# The registry.
h=$(R HGETALL "aisp:node:$N1")
if [[ "$h" == *"BEGIN PUBLIC KEY"* ]] && [[ "$h" == *runc,runsc* ]] && [[ "$h" == *sha256:* ]] &&
	[ "$(R HGET "aisp:node:$N1" slots)" = 2 ] && [ "$(R PTTL "aisp:node:$N1")" -gt 0 ]; then
	ok "registry: aisp:node:$N1 has pubkey, key_id, runtimes, slots and a TTL"
else
	not_ok "registry: aisp:node:$N1" "$h"
fi
out=$("$AISP" nodes 2>&1)
if [[ "$out" == *"$N1 "*"0.1"*runc,runsc* ]]; then ok "aisp nodes lists $N1"; else not_ok "aisp nodes lists $N1" "$out"; fi
R SADD aisp:nodes ghost >/dev/null
"$AISP" nodes >/dev/null 2>&1
is "aisp nodes drops ids whose hash expired" "$(R SISMEMBER aisp:nodes ghost)" 0

# HTTP.
m=$(curl -sf "http://127.0.0.1:$HTTP_PORT/metrics")
if [[ "$m" == *'aisp_tasks_total{status="rejected"}'* ]] && [[ "$m" == *aisp_acquire_seconds_bucket* ]] &&
	[[ "$m" == *aisp_execute_seconds_count* ]] && [[ "$m" == *aisp_publish_seconds_sum* ]] &&
	[[ "$m" == *aisp_redis_reconnects_total* ]] && [[ "$m" == *aisp_sandbox_creations_total* ]] &&
	[[ "$m" == *aisp_queue_lag_seconds* ]]; then
	ok "/metrics has tasks, histograms, pool, redis counters"
else
	not_ok "/metrics" "$(echo "$m" | head -20)"
fi
rejected=$(echo "$m" | sed -n 's/^aisp_tasks_total{status="rejected"} //p')
check "/metrics counts every rejected result (>= 17: $rejected)" test "${rejected:-0}" -ge 17
is "/healthz is 200 ok" "$(curl -s "http://127.0.0.1:$HTTP_PORT/healthz")" ok
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/nope")
is "unknown path is 404" "$code" 404

# Redis restarted under a running node: /healthz says so, the node reconnects and serves.
redis_stop
check "/healthz is 503 while redis is down" wait_for 10 prints 503 healthz "$HTTP_PORT"
redis_start
check "node reconnects after a redis restart (/healthz 200)" wait_for 20 prints 200 healthz "$HTTP_PORT"
m=$(curl -sf "http://127.0.0.1:$HTTP_PORT/metrics")
rc=$(echo "$m" | sed -n 's/^aisp_redis_reconnects_total //p')
check "aisp_redis_reconnects_total counts it ($rc)" test "${rc:-0}" -ge 1
R XADD aisp:tasks '*' task '{"id":"after-restart","lang":"python","code":"x","image":"nope"}' >/dev/null
check "node serves after the redis restart" wait_for 10 has_result after-restart
check "results written before the restart survived (AOF)" has_result b1

# The ACL user from deploy/redis.conf: a node authenticating as aisp-node can do its job.
acl=$(grep '^user aisp-node ' "$SRC/deploy/redis.conf" | sed 's/^user aisp-node //; s/>change-me-node/>test-pass/')
# shellcheck disable=SC2086
if R ACL SETUSER aisp-node reset $acl >/dev/null && REDIS_EXTRA=$'user = aisp-node\npassword = test-pass' HTTP_PORT= node_conf acl1; then
	node_start acl1
	R XADD aisp:tasks '*' task '{"id":"acl-1","lang":"python","code":"x","image":"nope"}' >/dev/null
	if wait_for 20 node_registered acl1 && wait_for 10 has_result acl-1 && ! grep -q NOPERM "$(node_dir acl1)/log"; then
		ok "ACL user aisp-node of deploy/redis.conf: registers, publishes, no NOPERM"
	else
		not_ok "ACL user aisp-node" "$(grep -i 'error\|warn' "$(node_dir acl1)/log" | tail -5)"
	fi
	node_stop acl1
else
	not_ok "ACL user aisp-node: ACL SETUSER from deploy/redis.conf failed"
fi

# ---------------------------------------------------------------- part 2: real sandboxes

submit() { "$AISP" submit --wait --wait-timeout 120 "$@"; }
# run_case DESCRIPTION EXPECTED-STDOUT EXPECTED-STATUS AISP-SUBMIT-ARGS...
run_case() {
	local what=$1 want=$2 want_rc=$3 out rc
	shift 3
	out=$(submit "$@" 2>"$TEST_TMP/stderr")
	rc=$?
	if [ "$out" = "$want" ] && [ $rc = "$want_rc" ]; then
		ok "$what"
	else
		not_ok "$what" "stdout: $out" "exit: $rc (want $want_rc)" "stderr: $(head -c 600 "$TEST_TMP/stderr")"
	fi
}
run_case "python script" "2" 0 --lang python -c 'print(1+1)'
run_case "python function" "3" 0 --lang python --function --args '[1,2]' -c 'def main(a): return a[0]+a[1]'
run_case "javascript script" "hi" 0 --lang javascript -c 'console.log("hi")'
run_case "javascript function" '"ab"' 0 --lang javascript --function --args '["a","b"]' -c 'function main(a) { return a.join(""); }
module.exports = main;'
run_case "shell script, exit code passed through" "x" 7 --lang shell -c 'echo x; exit 7'
printf 'abc' >"$TEST_TMP/in.txt"
run_case "stdin and input files" "abc abc" 0 --lang shell --stdin "$TEST_TMP/in.txt" --file data/f.txt="$TEST_TMP/in.txt" -c 'read l; printf "%s %s\n" "$l" "$(cat data/f.txt)"'
run_case "runsc: python" "runsc" 0 --runtime runsc --lang python -c 'print("runsc")'
run_case "runsc: shell" "ok" 0 --runtime runsc --lang shell -c 'echo ok'
run_case "timeout -> 124" "" 124 --lang shell --timeout 1 -c 'sleep 30'
doc=$(submit --json --lang python -c 'print(5)')
if echo "$doc" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["status"]=="ok" and d["stdout"]=="5\n" and d["node"]==sys.argv[1] and d["attestation"]["signatures"] and d["execution_digest"].startswith("sha256:")' "$N1"; then
	ok "--json: the result document, signed"
else
	not_ok "--json: the result document, signed" "$(echo "$doc" | head -c 800)"
fi

# The same id twice: one execution, one result.
R DEL aisp:result:twice >/dev/null
code='import random; print(random.SystemRandom().random())'
R XADD aisp:tasks '*' task "{\"id\":\"twice\",\"lang\":\"python\",\"code\":\"$code\"}" >/dev/null
R XADD aisp:tasks '*' task "{\"id\":\"twice\",\"lang\":\"python\",\"code\":\"$code\"}" >/dev/null
wait_for 60 has_result twice
wait_for 20 prints 0 R XLEN aisp:tasks
runs=$(grep -c "task=twice .*event=started" "$(node_dir n1)/log")
if [ "$(events twice)" = 1 ] && [ "$runs" = 1 ] && [ "$(R XLEN aisp:tasks)" = 0 ]; then
	ok "same id twice: one execution, one result, both entries acknowledged"
else
	not_ok "same id twice" "events $(events twice), runs $runs, XLEN $(R XLEN aisp:tasks)"
fi
"$AISP" submit --id twice --wait --wait-timeout 30 -c 'print("never runs")' >"$TEST_TMP/out" 2>&1
is "a third submit of the id gets the first result" "$(head -1 "$TEST_TMP/out")" "$(rfield twice .stdout | head -1)"

# 100 tasks through 2 nodes.
POOL='runc/default/shell = 1' HTTP_PORT= node_conf n2
node_start n2
wait_for 20 node_registered n2
pool_warm() { "$AISP" nodes 2>/dev/null | grep "^$(node_id n2) " | grep -q 'runc/[0-9a-f]*/shell 1/1 warm'; }
if wait_for 60 pool_warm; then
	ok "warm pool target runc/default/shell = 1: aisp nodes shows it warm"
else
	not_ok "warm pool target: aisp nodes shows it warm" "$("$AISP" nodes 2>&1)"
fi
shell_tasks bulk- 100
if wait_for 300 all_results bulk- 100; then
	wrong=$(wrong_results bulk- 100)
	dup=$(R XRANGE aisp:results - + | grep '^bulk-' | sort | uniq -d | wc -l)
	cnt=$(R XRANGE aisp:results - + | grep -c '^bulk-')
	# One publish outcome per task: "published", or (when the reply to a publish was lost to a
	# Redis timeout and the script ran again) "a result already existed". A task run twice
	# would show two.
	pat='task=bulk-[0-9]* .*event=\(published\|duplicate reason="a result already existed"\)'
	by1=$(grep -c "$pat" "$(node_dir n1)/log")
	by2=$(grep -c "$pat" "$(node_dir n2)/log")
	if [ $wrong = 0 ] && [ "$dup" = 0 ] && [ "$cnt" = 100 ] && [ $((by1 + by2)) = 100 ]; then
		ok "100 tasks through 2 nodes: 100 results, none twice (n1 $by1, n2 $by2)"
	else
		not_ok "100 tasks through 2 nodes" "wrong $wrong, duplicate events $dup, events $cnt, n1 $by1, n2 $by2"
	fi
	[ "$by1" -gt 0 ] && [ "$by2" -gt 0 ] && ok "both nodes served" || not_ok "both nodes served" "n1 $by1 n2 $by2"
else
	not_ok "100 tasks through 2 nodes: all results" "missing results"
fi

# /metrics against the tasks sent: n1 has run since part 1, so its aisp_tasks_total, read with
# the Prometheus text parser (python3-prometheus-client), equals the results in Redis that
# name n1, status by status (a counter moves when its publish is acknowledged: polled).
metrics_match() {
	curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" >"$TEST_TMP/metrics.txt" || return 1
	R --scan --pattern 'aisp:result:*' | while read -r k; do R GET "$k"; done >"$TEST_TMP/results.jsonl"
	/usr/bin/python3 - "$TEST_TMP/metrics.txt" "$TEST_TMP/results.jsonl" "$(node_id n1)" >"$TEST_TMP/metrics.cmp" 2>&1 <<'PY'
import collections, json, sys
from prometheus_client.parser import text_string_to_metric_families
got, want = collections.Counter(), collections.Counter()
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in fam.samples:
        if s.name == "aisp_tasks_total" and s.value:
            got[s.labels["status"]] = int(s.value)
for line in open(sys.argv[2]):
    if line.strip():
        doc = json.loads(line)
        if doc.get("node") == sys.argv[3]:
            want[doc["status"]] += 1
print("metrics", dict(got), "results", dict(want))
sys.exit(0 if got == want and want else 1)
PY
}
if wait_for 10 metrics_match; then
	ok "/metrics aisp_tasks_total equals n1's results in Redis ($(cat "$TEST_TMP/metrics.cmp"))"
else
	not_ok "/metrics aisp_tasks_total equals n1's results in Redis" "$(cat "$TEST_TMP/metrics.cmp")"
fi

# Host CPU by runtime and sandbox phase: n1 has created, run and torn down sandboxes of both
# runtimes (a used sandbox is destroyed after its task), so every phase but idle has counted.
cpu_phases() {
	curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" | /usr/bin/python3 -c '
import sys
from prometheus_client.parser import text_string_to_metric_families
v = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        if s.name == "aisp_sandbox_cpu_seconds_total":
            v[s.labels["runtime"] + "/" + s.labels["phase"]] = s.value
print(" ".join("%s=%.3f" % kv for kv in sorted(v.items())))
sys.exit(0 if len(v) == 8 and all(v[r + "/" + p] > 0 for r in ("runc", "runsc")
                                  for p in ("create", "run", "teardown")) else 1)'
}
wait_for 10 cpu_phases >/dev/null
if out=$(cpu_phases); then
	ok "/metrics aisp_sandbox_cpu_seconds_total: create, run and teardown counted for runc and runsc ($out)"
else
	not_ok "/metrics aisp_sandbox_cpu_seconds_total by runtime and phase" "$out"
fi

# A node SIGKILLed mid-task: the other node finishes it, exactly one result.
running_on() { # prints the node whose log shows task $1 running
	local name
	for name in n1 n2; do
		grep -q "task=$1 .*event=started" "$(node_dir $name)/log" && echo $name && return 0
	done
	return 1
}
R XADD aisp:tasks '*' task '{"id":"killed","lang":"shell","code":"sleep 4; echo survived"}' >/dev/null
if wait_for 60 running_on killed >/dev/null; then
	victim=$(running_on killed)
	other=$([ "$victim" = n1 ] && echo n2 || echo n1)
	node_kill "$victim"
	if wait_for 90 has_result killed && [ "$(rfield killed .stdout)" = survived ] &&
		[ "$(rfield killed .node)" = "$(node_id "$other")" ] && [ "$(events killed)" = 1 ]; then
		ok "node $victim SIGKILLed mid-task: $other finished it, exactly one result"
	else
		not_ok "node SIGKILLed mid-task" "result node $(rfield killed .node), events $(events killed)" "$(grep killed "$(node_dir "$other")/log" | tail -5)"
	fi
	node_start "$victim" # same id: reads its own pending entries first
	wait_for 20 node_registered "$victim"
else
	not_ok "node SIGKILLed mid-task: the task never started"
fi

# redis-server restarted mid-run: every task exactly one result.
redis_restart_mid_run "redis restarted (SIGTERM) mid-run" redis_stop rr- 20 "sleep 0.3; "

# SIGTERM with tasks in flight: they finish, or another node finishes them; the node exits 0.
shell_tasks term- 4 "sleep 2; "
wait_for 60 grep -q "task=term-[0-9] .*event=started" "$(node_dir n1)/log"
node_stop n1
rc=$?
is "SIGTERM: n1 drained and exited 0" "$rc" 0
is "SIGTERM: n1 deregistered" "$(R SISMEMBER aisp:nodes "$N1")" 0
if wait_for 120 all_results term- 4; then
	wrong=$(wrong_results term- 4)
	is "SIGTERM with tasks in flight: all 4 finished, one result each" "$wrong" 0
else
	not_ok "SIGTERM with tasks in flight: all finished"
fi

# SIGTERM with a drain shorter than the task: the task is released and n2 finishes it at once.
DRAIN_S=1 HTTP_PORT= node_conf n1
node_start n1
wait_for 20 node_registered n1
node_stop n2
R XADD aisp:tasks '*' task '{"id":"released","lang":"shell","code":"sleep 3; echo released"}' >/dev/null
wait_for 60 grep -q "task=released .*event=started" "$(node_dir n1)/log"
HTTP_PORT= node_conf n2
node_start n2
wait_for 20 node_registered n2
node_stop n1
rc=$?
is "SIGTERM past drain_s: exit 0" "$rc" 0
check "SIGTERM past drain_s: the task was released" grep -q "task=released .*event=released" "$(node_dir n1)/log"
if wait_for 60 has_result released && [ "$(rfield released .node)" = "$(node_id n2)" ] && [ "$(events released)" = 1 ]; then
	ok "released task finished by n2, one result"
else
	not_ok "released task finished by n2" "node $(rfield released .node)"
fi
node_stop n2

# Sandbox errors: retried with backoff, then dead-lettered with an internal result. The agent
# of this node exits at once, so every sandbox dies while starting.
printf '#!/bin/sh\nexit 1\n' >"$TEST_TMP/broken-agent"
chmod 755 "$TEST_TMP/broken-agent"
NODE_AGENT=$TEST_TMP/broken-agent MAX_DELIVERIES=2 HTTP_PORT= node_conf broken
node_start broken
wait_for 20 node_registered broken
R XADD aisp:tasks '*' task '{"id":"doomed","lang":"shell","code":"echo never"}' >/dev/null
if wait_for 60 has_result doomed && [ "$(rfield doomed .status)" = internal ] &&
	[ "$(rfield doomed .attempts)" = 2 ] && [[ "$(rfield doomed .error)" == "gave up after 2 deliveries: "* ]]; then
	reason=$(rfield doomed .error)
	ok "sandbox error: retried, then an internal result after max_deliveries (${reason:0:120})"
else
	not_ok "sandbox error: internal result after max_deliveries" "status $(rfield doomed .status), attempts $(rfield doomed .attempts), error $(rfield doomed .error)"
fi
dead=$(R XRANGE aisp:dead - +)
if [[ "$dead" == *doomed* ]] && [[ "$dead" == *deliveries* ]] && [[ "$dead" == *'"code":"echo never"'* ]]; then
	ok "aisp:dead holds the entry with its reason, deliveries and task"
else
	not_ok "aisp:dead holds the entry" "$dead"
fi
check "the dead entry is acknowledged and deleted" wait_for 10 prints 0 R XLEN aisp:tasks
check "retry logged with backoff" grep -q "task=doomed .*event=sandbox_error error=.* retry=1 retry_in_ms=[0-9]" "$(node_dir broken)/log"
node_stop broken

# A request that times out (the server stalls longer than timeout_ms): the connection is
# dropped and re-made, and the node serves again.
HTTP_PORT= node_conf n1
node_start n1
wait_for 20 node_registered n1
R DEBUG SLEEP 2.5 >/dev/null
if wait_for 20 grep -q "connection lost: request timed out" "$(node_dir n1)/log"; then
	ok "a Redis request past timeout_ms drops the connection"
else
	not_ok "a Redis request past timeout_ms drops the connection" "$(node_log n1 | tail -5)"
fi
R XADD aisp:tasks '*' task '{"id":"after-stall","lang":"shell","code":"echo back"}' >/dev/null
if wait_for 60 has_result after-stall && [ "$(rfield after-stall .stdout)" = back ]; then
	ok "the node reconnects and serves after the stall"
else
	not_ok "the node reconnects and serves after the stall" "$(node_log n1 | tail -5)"
fi
node_stop n1

done_testing
