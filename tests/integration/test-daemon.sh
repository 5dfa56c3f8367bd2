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
set -uo pipefail

AISPD=${AISPD_BIN:-aispd}
AISP=${AISP_BIN:-aisp}
AGENT=${AISP_AGENT:-/usr/libexec/aisp/aisp-agent}
SRC=${AISP_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
STORE=${AISP_IMAGE_STORE:-/var/lib/aisp/images}

n=0
failed=0
ok() {
	n=$((n + 1))
	echo "ok $n - $1"
}
not_ok() {
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $1"
	shift
	for line in "$@"; do printf '%s\n' "$line" | sed 's/^/#   /'; done
}
skip() {
	n=$((n + 1))
	echo "ok $n - $1 # SKIP $2"
}
# check DESCRIPTION CONDITION-COMMAND... [-- DIAGNOSTIC-COMMAND]
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}

if [ "$(id -u)" != 0 ]; then
	echo "1..0 # SKIP needs root (sandboxes, cgroups)"
	exit 0
fi
for b in redis-server redis-cli python3 curl; do
	if ! command -v $b >/dev/null; then
		echo "1..0 # SKIP $b is missing"
		exit 0
	fi
done

# The node refuses to start without its default image: build it once (cached in the store).
if [ ! -f "$STORE/names/default" ]; then
	echo "# building the default image into $STORE (once per machine)"
	if ! "$AISP" image build default --store "$STORE" >/dev/null 2>&1; then
		echo "1..0 # SKIP the default image is not in $STORE and could not be built"
		exit 0
	fi
fi

TMP=$(mktemp -d /tmp/aisp-test-daemon.XXXXXX)
declare -A NODE_PID=()
REDIS_PID=

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Kills the containers a node left behind (it was SIGKILLed, or its runtime state outlived it).
reap_containers() {
	local run=$1 rt ids
	for rt in runc runsc; do
		[ -d "$run/$rt" ] || continue
		ids=$($rt --root "$run/$rt" list -q 2>/dev/null) || continue
		for id in $ids; do
			$rt --root "$run/$rt" kill "$id" KILL >/dev/null 2>&1
			$rt --root "$run/$rt" delete -f "$id" >/dev/null 2>&1
		done
	done
}

cleanup() {
	local name
	for name in "${!NODE_PID[@]}"; do
		kill -KILL "${NODE_PID[$name]}" 2>/dev/null
		wait "${NODE_PID[$name]}" 2>/dev/null
	done
	[ -n "$REDIS_PID" ] && kill -KILL "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null
	for d in "$TMP"/node-*/run; do
		[ -d "$d" ] && reap_containers "$d"
	done
	# sandboxes may leave tmpfs mounts below run dirs
	grep -o " $TMP[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
	if [ -n "${KEEP_TMP:-}" ]; then echo "# kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

PORT=$(free_port)
R() { redis-cli -p "$PORT" "$@"; }
export AISP_REDIS=127.0.0.1:$PORT

start_redis() {
	mkdir -p "$TMP/redis"
	redis-server --port "$PORT" --bind 127.0.0.1 --dir "$TMP/redis" --save '' \
		--appendonly yes --appendfsync always --logfile "$TMP/redis/log" \
		--enable-debug-command local &
	REDIS_PID=$!
	wait_for 10 redis_up
}
stop_redis() { # SIGTERM: Redis writes its AOF and exits
	kill -TERM "$REDIS_PID" && wait "$REDIS_PID"
	REDIS_PID=
}
redis_up() { [ "$(R PING 2>/dev/null)" = PONG ]; }

# wait_for SECONDS COMMAND...: polls COMMAND every 0.1 s; fails after SECONDS.
wait_for() {
	local limit=$(($1 * 10)) i=0
	shift
	until "$@"; do
		i=$((i + 1))
		[ $i -ge $limit ] && return 1
		sleep 0.1
	done
}

# is VALUE COMMAND...: true when COMMAND prints VALUE (re-run on every poll of wait_for).
is() {
	local want=$1
	shift
	[ "$("$@" 2>/dev/null)" = "$want" ]
}

# node_conf NAME: writes the node's config (its own state and run dirs).
node_conf() {
	local name=$1 d=$TMP/node-$1
	mkdir -p "$d"
	[ -f "$TMP/key/private.pem" ] || "$AISP" keygen --out "$TMP/key" >/dev/null 2>&1
	cat >"$d/aispd.conf" <<EOF
[node]
id = $name
slots = ${SLOTS:-2}
state_dir = $d/state
run_dir = $d/run
key = $TMP/key/private.pem
agent = ${NODE_AGENT:-$AGENT}
log_level = debug
heartbeat_ms = 500
drain_s = ${DRAIN_S:-20}
[redis]
address = 127.0.0.1:$PORT
reclaim_ms = 3000
timeout_ms = 1000
block_ms = 500
${REDIS_EXTRA:-}
[images]
store = $STORE
[runtimes]
default = runc
enabled = runc, runsc
${POOL_EXTRA:-}
[http]
listen = ${HTTP_PORT:+127.0.0.1:$HTTP_PORT}
EOF
}

start_node() {
	local name=$1 d=$TMP/node-$1
	"$AISPD" --config "$d/aispd.conf" >>"$d/log" 2>&1 &
	NODE_PID[$name]=$!
}
stop_node() { # SIGTERM, then wait for the exit status
	local name=$1 pid=${NODE_PID[$1]}
	kill -TERM "$pid"
	wait "$pid"
	local rc=$?
	unset "NODE_PID[$name]"
	return $rc
}
node_log() { cat "$TMP/node-$1/log"; }
registered() { [ "$(R SISMEMBER aisp:nodes "$1")" = 1 ]; }
has_result() { [ "$(R EXISTS "aisp:result:$1")" = 1 ]; }
field() { # field ID NAME: a field of the result document
	R GET "aisp:result:$1" | python3 -c "import json,sys; d=json.load(sys.stdin); v=d.get('$2'); print(v if v is not None else '')"
}
# Number of aisp:results events naming id.
events() {
	R XRANGE aisp:results - + | grep -cx -- "$1"
}

HTTP_PORT=$(free_port)

# ---------------------------------------------------------------- part 1: no sandbox needed

# Startup checks: each failure names what to do; --check runs them and exits.
# startup_fails DESCRIPTION EXPECTED-MESSAGE SED-EXPRESSION: edits the config, expects exit 1.
startup_fails() {
	local what=$1 want=$2 out rc
	sed "$3" "$TMP/node-chk/aispd.conf" >"$TMP/node-chk/bad.conf"
	out=$("$AISPD" --config "$TMP/node-chk/bad.conf" --check 2>&1)
	rc=$?
	if [ $rc = 1 ] && [[ "$out" == *"$want"* ]]; then
		ok "startup check: $what"
	else
		not_ok "startup check: $what" "exit $rc: $out" "want: $want"
	fi
}
HTTP_PORT= node_conf chk
out=$("$AISPD" --config "$TMP/node-chk/aispd.conf" --check 2>&1)
check "aispd --check passes with a good config" test $? = 0
startup_fails "missing key" "no node key at $TMP/nokey/private.pem: run \`aisp keygen --out $TMP/nokey\` or set create_key = true" "s|^key = .*|key = $TMP/nokey/private.pem|"
startup_fails "runtime missing" "runtime runc is not usable (is it installed?): exec /nonexistent/runc" "s|^\[runtimes\]|[runtime.runc]\npath = /nonexistent/runc\n[runtimes]|"
startup_fails "image missing" "image nope" "s|^store = .*|store = $STORE\ndefault = nope|"
startup_fails "agent missing" "agent /nonexistent/agent is missing" "s|^agent = .*|agent = /nonexistent/agent|"
startup_fails "config error names file:line" "$TMP/node-chk/bad.conf:3: [node] slots = \"many\": not an integer" "s|^slots = .*|slots = many|"
startup_fails "state dir not writable" "state dir /proc/aisp-state is not usable" "s|^state_dir = .*|state_dir = /proc/aisp-state|"
sed "s|^key = .*|key = $TMP/newkey/private.pem\ncreate_key = true|" "$TMP/node-chk/aispd.conf" >"$TMP/node-chk/ck.conf"
if "$AISPD" --config "$TMP/node-chk/ck.conf" --check >/dev/null 2>&1 &&
	[ "$(stat -c %a "$TMP/newkey/private.pem")" = 600 ] && [ -f "$TMP/newkey/public.pem" ]; then
	ok "create_key = true creates the key pair (private.pem 0600)"
else
	not_ok "create_key = true creates the key pair"
fi

# Redis down at start: the node says so, keeps retrying, and registers once Redis is up.
node_conf n1
start_node n1
if wait_for 10 grep -q "redis 127.0.0.1:$PORT unreachable (.*), retrying in" "$TMP/node-n1/log"; then
	ok "redis down at start: the node logs that it is unreachable and retries"
else
	not_ok "redis down at start: the node logs that it is unreachable and retries" "$(node_log n1 | tail -5)"
fi
start_redis
if wait_for 20 registered n1; then
	ok "redis down at start: the node connects once redis is up and registers"
else
	not_ok "redis down at start: the node connects once redis is up and registers" "$(node_log n1 | tail -5)"
fi
kill -0 "${NODE_PID[n1]}" 2>/dev/null && ok "node still running after waiting for redis" ||
	not_ok "node still running after waiting for redis"

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
	st=$(field "$id" status)
	err=$(field "$id" error)
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
python3 -c "print('{\"id\":\"b13\",\"lang\":\"python\",\"code\":\"' + 'a'*(1024*1024+10) + '\"}', end='')" >"$TMP/big.json"
R -x XADD aisp:tasks '*' task <"$TMP/big.json" >/dev/null
if wait_for 10 has_result b13 && [ "$(field b13 status)" = rejected ] &&
	[[ "$(field b13 error)" == *'field "code" is 1048586 bytes, above the 1048576-byte limit'* ]]; then
	ok "rejected: oversized code"
else
	not_ok "rejected: oversized code" "$(field b13 error)"
fi
entry=$(R XADD aisp:tasks '*' other x)
if wait_for 10 has_result "entry-$entry" && [[ "$(field "entry-$entry" error)" == *'no "task" field'* ]]; then
	ok "rejected: stream entry without a task field"
else
	not_ok "rejected: stream entry without a task field"
fi
check "rejected results are acknowledged and deleted from aisp:tasks" wait_for 5 is 0 R XLEN aisp:tasks
check "rejected results announced on aisp:results" test "$(events b6)" = 1
kill -0 "${NODE_PID[n1]}" 2>/dev/null && ok "node still serving after bad tasks" || not_ok "node still serving after bad tasks"

# Duplicates: the same id twice -> one result, one event, both entries acknowledged.
R XADD aisp:tasks '*' task '{"id":"d1","lang":"python","code":"x","image":"nope1"}' >/dev/null
R XADD aisp:tasks '*' task '{"id":"d1","lang":"python","code":"x","image":"nope2"}' >/dev/null
wait_for 10 has_result d1
sleep 0.5 # the second entry is handled right after the first; the checks below poll anyway
if wait_for 10 is 0 R XLEN aisp:tasks && [ "$(events d1)" = 1 ] && [[ "$(field d1 error)" == *nope1* ]]; then
	ok "duplicate id: one result (the first), one event, both entries acknowledged"
else
	not_ok "duplicate id: one result, one event" "events $(events d1), XLEN $(R XLEN aisp:tasks), error $(field d1 error)"
fi

# The registry.
h=$(R HGETALL aisp:node:n1)
if [[ "$h" == *"BEGIN PUBLIC KEY"* ]] && [[ "$h" == *runc,runsc* ]] && [[ "$h" == *sha256:* ]] &&
	[ "$(R HGET aisp:node:n1 slots)" = 2 ] && [ "$(R PTTL aisp:node:n1)" -gt 0 ]; then
	ok "registry: aisp:node:n1 has pubkey, key_id, runtimes, slots and a TTL"
else
	not_ok "registry: aisp:node:n1" "$h"
fi
out=$("$AISP" nodes 2>&1)
if [[ "$out" == *"n1 "*"0.1"*runc,runsc* ]]; then ok "aisp nodes lists n1"; else not_ok "aisp nodes lists n1" "$out"; fi
R SADD aisp:nodes ghost >/dev/null
"$AISP" nodes >/dev/null 2>&1
check "aisp nodes drops ids whose hash expired" test "$(R SISMEMBER aisp:nodes ghost)" = 0

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
check "/healthz is 200 ok" test "$(curl -s "http://127.0.0.1:$HTTP_PORT/healthz")" = ok
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/nope")
check "unknown path is 404" test "$code" = 404

# Redis restarted under a running node: /healthz says so, the node reconnects and serves.
stop_redis
hz() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/healthz"; }
check "/healthz is 503 while redis is down" wait_for 10 is 503 hz
start_redis
check "node reconnects after a redis restart (/healthz 200)" wait_for 20 is 200 hz
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
	start_node acl1
	R XADD aisp:tasks '*' task '{"id":"acl-1","lang":"python","code":"x","image":"nope"}' >/dev/null
	if wait_for 20 registered acl1 && wait_for 10 has_result acl-1 && ! grep -q NOPERM "$TMP/node-acl1/log"; then
		ok "ACL user aisp-node of deploy/redis.conf: registers, publishes, no NOPERM"
	else
		not_ok "ACL user aisp-node" "$(grep -i 'error\|warn' "$TMP/node-acl1/log" | tail -5)"
	fi
	stop_node acl1
else
	not_ok "ACL user aisp-node: ACL SETUSER from deploy/redis.conf failed"
fi

# ---------------------------------------------------------------- part 2: real sandboxes

submit() { "$AISP" submit --wait --wait-timeout 120 "$@"; }
# run_case DESCRIPTION EXPECTED-STDOUT EXPECTED-STATUS AISP-SUBMIT-ARGS...
run_case() {
	local what=$1 want=$2 want_rc=$3 out rc
	shift 3
	out=$(submit "$@" 2>"$TMP/stderr")
	rc=$?
	if [ "$out" = "$want" ] && [ $rc = "$want_rc" ]; then
		ok "$what"
	else
		not_ok "$what" "stdout: $out" "exit: $rc (want $want_rc)" "stderr: $(head -c 600 "$TMP/stderr")"
	fi
}
run_case "python script" "2" 0 --lang python -c 'print(1+1)'
run_case "python function" "3" 0 --lang python --function --args '[1,2]' -c 'def main(a): return a[0]+a[1]'
run_case "javascript script" "hi" 0 --lang javascript -c 'console.log("hi")'
run_case "javascript function" '"ab"' 0 --lang javascript --function --args '["a","b"]' -c 'function main(a) { return a.join(""); }
module.exports = main;'
run_case "shell script, exit code passed through" "x" 7 --lang shell -c 'echo x; exit 7'
printf 'abc' >"$TMP/in.txt"
run_case "stdin and input files" "abc abc" 0 --lang shell --stdin "$TMP/in.txt" --file data/f.txt="$TMP/in.txt" -c 'read l; printf "%s %s\n" "$l" "$(cat data/f.txt)"'
run_case "runsc: python" "runsc" 0 --runtime runsc --lang python -c 'print("runsc")'
run_case "runsc: shell" "ok" 0 --runtime runsc --lang shell -c 'echo ok'
run_case "timeout -> 124" "" 124 --lang shell --timeout 1 -c 'sleep 30'
doc=$(submit --json --lang python -c 'print(5)')
if echo "$doc" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["status"]=="ok" and d["stdout"]=="5\n" and d["node"]=="n1" and d["attestation"]["signatures"] and d["execution_digest"].startswith("sha256:")'; then
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
wait_for 20 is 0 R XLEN aisp:tasks
runs=$(grep -c "task=twice .*event=started" "$TMP/node-n1/log")
if [ "$(events twice)" = 1 ] && [ "$runs" = 1 ] && [ "$(R XLEN aisp:tasks)" = 0 ]; then
	ok "same id twice: one execution, one result, both entries acknowledged"
else
	not_ok "same id twice" "events $(events twice), runs $runs, XLEN $(R XLEN aisp:tasks)"
fi
"$AISP" submit --id twice --wait --wait-timeout 30 -c 'print("never runs")' >"$TMP/out" 2>&1
check "a third submit of the id gets the first result" test "$(head -1 "$TMP/out")" = "$(field twice stdout | head -1)"

# 100 tasks through 2 nodes.
POOL_EXTRA=$'[pool]\nrunc/default/shell = 1' HTTP_PORT= node_conf n2
start_node n2
wait_for 20 registered n2
pool_warm() { "$AISP" nodes 2>/dev/null | grep '^n2 ' | grep -q 'runc/[0-9a-f]*/shell 1/1 warm'; }
if wait_for 60 pool_warm; then
	ok "warm pool target runc/default/shell = 1: aisp nodes shows it warm"
else
	not_ok "warm pool target: aisp nodes shows it warm" "$("$AISP" nodes 2>&1)"
fi
for i in $(seq 1 100); do
	printf "XADD aisp:tasks * task '{\"id\":\"bulk-%d\",\"lang\":\"shell\",\"code\":\"echo %d\"}'\n" "$i" "$i"
done | R >/dev/null
all_results() {
	local i
	for i in $(seq 1 100); do has_result "bulk-$i" || return 1; done
}
if wait_for 300 all_results; then
	wrong=0
	for i in $(seq 1 100); do
		[ "$(field "bulk-$i" stdout)" = "$i" ] || wrong=$((wrong + 1))
	done
	dup=$(R XRANGE aisp:results - + | grep '^bulk-' | sort | uniq -d | wc -l)
	cnt=$(R XRANGE aisp:results - + | grep -c '^bulk-')
	# One publish outcome per task: "published", or (when the reply to a publish was lost to a
	# Redis timeout and the script ran again) "a result already existed". A task run twice
	# would show two.
	pat='task=bulk-[0-9]* .*event=\(published\|duplicate reason="a result already existed"\)'
	by1=$(grep -c "$pat" "$TMP/node-n1/log")
	by2=$(grep -c "$pat" "$TMP/node-n2/log")
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
	curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" >"$TMP/metrics.txt" || return 1
	R --scan --pattern 'aisp:result:*' | while read -r k; do R GET "$k"; done >"$TMP/results.jsonl"
	/usr/bin/python3 - "$TMP/metrics.txt" "$TMP/results.jsonl" n1 >"$TMP/metrics.cmp" 2>&1 <<'PY'
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
	ok "/metrics aisp_tasks_total equals n1's results in Redis ($(cat "$TMP/metrics.cmp"))"
else
	not_ok "/metrics aisp_tasks_total equals n1's results in Redis" "$(cat "$TMP/metrics.cmp")"
fi

# A node SIGKILLed mid-task: the other node finishes it, exactly one result.
running_on() { # prints the node whose log shows task $1 running
	local name
	for name in n1 n2; do
		grep -q "task=$1 .*event=started" "$TMP/node-$name/log" && echo $name && return 0
	done
	return 1
}
R XADD aisp:tasks '*' task '{"id":"killed","lang":"shell","code":"sleep 4; echo survived"}' >/dev/null
if wait_for 60 running_on killed >/dev/null; then
	victim=$(running_on killed)
	other=$([ "$victim" = n1 ] && echo n2 || echo n1)
	kill -KILL "${NODE_PID[$victim]}"
	wait "${NODE_PID[$victim]}" 2>/dev/null
	unset "NODE_PID[$victim]"
	reap_containers "$TMP/node-$victim/run"
	if wait_for 90 has_result killed && [ "$(field killed stdout)" = survived ] &&
		[ "$(field killed node)" = "$other" ] && [ "$(events killed)" = 1 ]; then
		ok "node $victim SIGKILLed mid-task: $other finished it, exactly one result"
	else
		not_ok "node SIGKILLed mid-task" "result node $(field killed node), events $(events killed)" "$(grep killed "$TMP/node-$other/log" | tail -5)"
	fi
	start_node "$victim" # same id: reads its own pending entries first
	wait_for 20 registered "$victim"
else
	not_ok "node SIGKILLed mid-task: the task never started"
fi

# redis-server restarted mid-run: every task exactly one result.
for i in $(seq 1 20); do
	printf "XADD aisp:tasks * task '{\"id\":\"rr-%d\",\"lang\":\"shell\",\"code\":\"sleep 0.3; echo %d\"}'\n" "$i" "$i"
done | R >/dev/null
wait_for 60 has_result rr-2
stop_redis
sleep 1
start_redis
rr_all() {
	local i
	for i in $(seq 1 20); do has_result "rr-$i" || return 1; done
}
if wait_for 180 rr_all; then
	wrong=0
	for i in $(seq 1 20); do
		[ "$(field "rr-$i" stdout)" = "$i" ] && [ "$(events "rr-$i")" = 1 ] || wrong=$((wrong + 1))
	done
	check "redis restarted mid-run: 20 tasks, each exactly one result ($wrong wrong)" test $wrong = 0
else
	missing=$(for i in $(seq 1 20); do has_result "rr-$i" || echo "rr-$i"; done)
	not_ok "redis restarted mid-run: every task a result" "missing: $missing"
fi

# SIGTERM with tasks in flight: they finish, or another node finishes them; the node exits 0.
for i in 1 2 3 4; do
	R XADD aisp:tasks '*' task "{\"id\":\"term-$i\",\"lang\":\"shell\",\"code\":\"sleep 2; echo $i\"}" >/dev/null
done
wait_for 60 grep -q "task=term-[0-9] .*event=started" "$TMP/node-n1/log"
stop_node n1
rc=$?
check "SIGTERM: n1 drained and exited 0" test $rc = 0
check "SIGTERM: n1 deregistered" test "$(R SISMEMBER aisp:nodes n1)" = 0
term_all() { for i in 1 2 3 4; do has_result "term-$i" || return 1; done; }
if wait_for 120 term_all; then
	wrong=0
	for i in 1 2 3 4; do
		[ "$(field "term-$i" stdout)" = "$i" ] && [ "$(events "term-$i")" = 1 ] || wrong=$((wrong + 1))
	done
	check "SIGTERM with tasks in flight: all 4 finished, one result each" test $wrong = 0
else
	not_ok "SIGTERM with tasks in flight: all finished"
fi

# SIGTERM with a drain shorter than the task: the task is released and n2 finishes it at once.
DRAIN_S=1 HTTP_PORT= node_conf n1
start_node n1
wait_for 20 registered n1
stop_node n2
R XADD aisp:tasks '*' task '{"id":"released","lang":"shell","code":"sleep 3; echo released"}' >/dev/null
wait_for 60 grep -q "task=released .*event=started" "$TMP/node-n1/log"
HTTP_PORT= node_conf n2
start_node n2
wait_for 20 registered n2
stop_node n1
rc=$?
check "SIGTERM past drain_s: exit 0" test $rc = 0
check "SIGTERM past drain_s: the task was released" grep -q "task=released .*event=released" "$TMP/node-n1/log"
if wait_for 60 has_result released && [ "$(field released node)" = n2 ] && [ "$(events released)" = 1 ]; then
	ok "released task finished by n2, one result"
else
	not_ok "released task finished by n2" "node $(field released node)"
fi
stop_node n2

# Sandbox errors: retried with backoff, then dead-lettered with an internal result. The agent
# of this node exits at once, so every sandbox dies while starting.
printf '#!/bin/sh\nexit 1\n' >"$TMP/broken-agent"
chmod 755 "$TMP/broken-agent"
NODE_AGENT=$TMP/broken-agent REDIS_EXTRA="max_deliveries = 2" HTTP_PORT= node_conf broken
start_node broken
wait_for 20 registered broken
R XADD aisp:tasks '*' task '{"id":"doomed","lang":"shell","code":"echo never"}' >/dev/null
if wait_for 60 has_result doomed && [ "$(field doomed status)" = internal ] &&
	[ "$(field doomed attempts)" = 2 ] && [[ "$(field doomed error)" == "gave up after 2 deliveries: "* ]]; then
	reason=$(field doomed error)
	ok "sandbox error: retried, then an internal result after max_deliveries (${reason:0:120})"
else
	not_ok "sandbox error: internal result after max_deliveries" "status $(field doomed status), attempts $(field doomed attempts), error $(field doomed error)"
fi
dead=$(R XRANGE aisp:dead - +)
if [[ "$dead" == *doomed* ]] && [[ "$dead" == *deliveries* ]] && [[ "$dead" == *'"code":"echo never"'* ]]; then
	ok "aisp:dead holds the entry with its reason, deliveries and task"
else
	not_ok "aisp:dead holds the entry" "$dead"
fi
check "the dead entry is acknowledged and deleted" wait_for 10 is 0 R XLEN aisp:tasks
check "retry logged with backoff" grep -q "task=doomed .*event=sandbox_error error=.* retry=1 retry_in_ms=[0-9]" "$TMP/node-broken/log"
stop_node broken

# A request that times out (the server stalls longer than timeout_ms): the connection is
# dropped and re-made, and the node serves again.
HTTP_PORT= node_conf n1
start_node n1
wait_for 20 registered n1
R DEBUG SLEEP 2.5 >/dev/null
if wait_for 20 grep -q "connection lost: request timed out" "$TMP/node-n1/log"; then
	ok "a Redis request past timeout_ms drops the connection"
else
	not_ok "a Redis request past timeout_ms drops the connection" "$(tail -5 "$TMP/node-n1/log")"
fi
R XADD aisp:tasks '*' task '{"id":"after-stall","lang":"shell","code":"echo back"}' >/dev/null
if wait_for 60 has_result after-stall && [ "$(field after-stall stdout)" = back ]; then
	ok "the node reconnects and serves after the stall"
else
	not_ok "the node reconnects and serves after the stall" "$(tail -5 "$TMP/node-n1/log")"
fi
stop_node n1

echo "1..$n"
[ $failed = 0 ]
