#!/usr/bin/env bash
# Least privilege, proven (issue 23, item 4): the ACL users of the shipped deploy/redis.conf.
#   1. each user may run what the protocol needs (ACL DRYRUN, on the keys it needs them on)
#   2. and nothing else: a scheduler cannot read or delete other key spaces, XACK/XDEL the
#      task stream, write results or the registry; a node cannot FLUSHALL, CONFIG, KEYS,
#      SCRIPT LOAD, add tasks, read reply streams or delete the task stream; the gateway reads
#      only its own reply streams
#   3. EVAL cannot be limited to the published scripts, but a script runs with its caller's
#      grants: a node's arbitrary script cannot reach past them
#   4. the protocol end to end as these users (nodes as aisp-node, aisp as aisp-scheduler):
#      submit --wait, result, wait, nodes, verify --redis, a rejected task, a duplicate id, a
#      reply stream, a dead letter, a release at shutdown, a takeover; then Redis's ACL LOG
#      holds no denial of the node user (every command of every path was granted), and the
#      scheduler's only denial is aisp nodes' SREM of an expired id, which is the operator's
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/node.sh"
need_nodes
REDIS_ACL=1 redis_start

# ---------------------------------------------------------------- 1, 2. the matrix
# may USER CMD...: ACL DRYRUN says OK; mayn't USER CMD...: it refuses
dry() { R ACL DRYRUN "$@" 2>&1; }
may() {
	local u=$1 out
	shift
	out=$(dry "$u" "$@")
	if [ "$out" = OK ]; then ok "$u may: $*"; else not_ok "$u may: $*" "$out"; fi
}
mayn() {
	local u=$1 out
	shift
	out=$(dry "$u" "$@")
	if [ "$out" != OK ] && [[ "$out" == *"no permissions"* ]]; then
		ok "$u may not: $*"
	else
		not_ok "$u may not: $*" "$out"
	fi
}
N=aisp-node
may $N XREADGROUP GROUP aisp n COUNT 2 BLOCK 100 STREAMS aisp:tasks '>'
may $N XPENDING aisp:tasks aisp 1-0 1-0 1
may $N XRANGE aisp:tasks 1-0 1-0
may $N XACK aisp:tasks aisp 1-0
may $N XDEL aisp:tasks 1-0
may $N XCLAIM aisp:tasks aisp n 0 1-0 JUSTID
may $N XAUTOCLAIM aisp:tasks aisp n 30000 0-0 COUNT 2
may $N XGROUP CREATE aisp:tasks aisp 0 MKSTREAM
may $N SET aisp:result:t1 '{}' NX PX 1000
may $N EXISTS aisp:result:t1
may $N XADD aisp:results MAXLEN '~' 100000 '*' id t1 status ok node n
may $N XADD aisp:reply:abc MAXLEN '~' 1000 '*' id t1 result '{}'
may $N PEXPIRE aisp:reply:abc 1000
may $N XADD aisp:dead '*' id t1
may $N SET aisp:running:t1 n PX 3000
may $N GET aisp:running:t1
may $N EXISTS aisp:running:t1
may $N DEL aisp:running:t1
may $N HSET aisp:node:n slots 2
may $N HDEL aisp:node:n age age_recipient
may $N PEXPIRE aisp:node:n 6000
may $N DEL aisp:node:n
may $N SADD aisp:nodes n
may $N SREM aisp:nodes n
may $N EVALSHA 0000000000000000000000000000000000000000 2 aisp:result:t1 aisp:running:t1
may $N EVALSHA 0000000000000000000000000000000000000000 5 aisp:result:t1 aisp:results aisp:tasks '' aisp:running:t1
may $N XADD aisp:audit:n MAXLEN '~' 100000 '*' id t1 sequence 3 result '{}'
may $N PEXPIRE aisp:audit:n 1000
may $N HSET aisp:key:sha256:k pubkey pem node.n 1
may $N PEXPIRE aisp:key:sha256:k 1000
may $N MGET aisp:cancel:t1 aisp:cancel:t2
may $N EXISTS aisp:cancel:t1
may $N WAIT 1 1000
may $N ROLE
may $N HMGET aisp:revoked passport:pp_1 key:sha256:k
may $N SET aisp:lock:n owner NX PX 6000
may $N GET aisp:lock:n
may $N DEL aisp:lock:n
may $N PEXPIRE aisp:lock:n 6000
mayn $N HSET aisp:revoked passport:pp_1 '{}'
mayn $N HDEL aisp:revoked passport:pp_1
mayn $N FLUSHALL
mayn $N FLUSHDB
mayn $N CONFIG GET '*'
mayn $N KEYS '*'
mayn $N SCAN 0
mayn $N SCRIPT LOAD 'return 1'
mayn $N SCRIPT FLUSH
mayn $N FUNCTION LOAD 'x'
mayn $N ACL LIST
mayn $N MONITOR
mayn $N CLIENT LIST
mayn $N SHUTDOWN
mayn $N XADD aisp:tasks '*' task '{}'
mayn $N DEL aisp:tasks
mayn $N XTRIM aisp:tasks MAXLEN 0
mayn $N XGROUP DESTROY aisp:tasks aisp
mayn $N XREAD STREAMS aisp:reply:abc 0
mayn $N XRANGE aisp:results - +
mayn $N DEL aisp:result:t1
mayn $N SET aisp:cancel:t1 1
mayn $N XRANGE aisp:audit:n - +
may $N GETRANGE aisp:blob:sha256:b 0 100
may $N SET aisp:blob:sha256:n data NX EX 3600
mayn $N DEL aisp:blob:sha256:b
mayn $N EXPIRE aisp:blob:sha256:b 1
mayn $N GET other:key
mayn $N SET other:key x

S=aisp-scheduler
may $S XADD aisp:tasks '*' task '{}'
may $S GET aisp:result:t1
may $S XREVRANGE aisp:results + - COUNT 1
may $S XREAD COUNT 100 BLOCK 1000 STREAMS aisp:results 0-0
may $S XREAD COUNT 100 BLOCK 1000 STREAMS aisp:reply:abc 0-0
may $S DEL aisp:reply:abc
may $S SMEMBERS aisp:nodes
may $S HGETALL aisp:node:n
may $S HGET aisp:node:n pubkey
may $S WAIT 1 1000
may $S EXISTS aisp:node:n
may $S HGET aisp:key:sha256:k pubkey
may $S XRANGE aisp:audit:n - +
may $S SET aisp:cancel:t1 1700000000000 PX 86400000
may $S SET aisp:blob:sha256:b data NX EX 3600
may $S GETRANGE aisp:blob:sha256:b 0 100
may $S EXPIRE aisp:blob:sha256:b 3600 GT
may $S HMGET aisp:node:n age_recipient pubkey
mayn $S HSET aisp:revoked passport:pp_1 '{}'
mayn $S HMGET aisp:revoked passport:pp_1
V=aisp-revoker
may $V HSET aisp:revoked passport:pp_1 '{"reason":"lost"}'
may $V HGET aisp:revoked passport:pp_1
may $V HDEL aisp:revoked passport:pp_1
mayn $V XADD aisp:tasks '*' task '{}'
mayn $V GET aisp:result:t1
mayn $V HSET aisp:node:n pubkey forged
mayn $S XACK aisp:tasks aisp 1-0
mayn $S XDEL aisp:tasks 1-0
mayn $S XRANGE aisp:tasks - +
mayn $S XREADGROUP GROUP aisp s STREAMS aisp:tasks '>'
mayn $S XCLAIM aisp:tasks aisp s 0 1-0
mayn $S XAUTOCLAIM aisp:tasks aisp s 0 0-0
mayn $S XTRIM aisp:tasks MAXLEN 0
mayn $S DEL aisp:tasks
mayn $S SET aisp:result:t1 forged
mayn $S DEL aisp:result:t1
mayn $S XADD aisp:results '*' id t1
mayn $S XADD aisp:reply:abc '*' id t1 result forged
mayn $S HSET aisp:node:n pubkey forged
mayn $S DEL aisp:node:n
mayn $S SADD aisp:nodes fake
mayn $S SREM aisp:nodes n
mayn $S GET aisp:running:t1
mayn $S SET aisp:running:t1 s
mayn $S XRANGE aisp:dead - +
mayn $S XADD aisp:audit:n '*' id t1
mayn $S HSET aisp:key:sha256:k pubkey forged
mayn $S GET aisp:cancel:t1
mayn $S GET other:key
mayn $S KEYS '*'
mayn $S FLUSHALL
mayn $S CONFIG GET '*'
mayn $S EVAL 'return 1' 0

G=aisp-gateway
may $G XADD aisp:tasks '*' task '{}'
may $G GET aisp:result:t1
may $G GET aisp:running:t1
may $G XREAD COUNT 100 BLOCK 1000 STREAMS aisp:reply:gw:g1 0-0
may $G HMGET aisp:key:sha256:k pubkey node.n
may $G DEL aisp:reply:gw:g1
may $G XADD aisp:gw:calls '*' call '{}'
may $G XREADGROUP GROUP gw g1 COUNT 10 STREAMS aisp:gw:calls '>'
may $G XACK aisp:gw:calls gw 1-0
may $G SMEMBERS aisp:nodes
may $G HGETALL aisp:node:n
mayn $G XREAD STREAMS aisp:reply:abc 0
mayn $G DEL aisp:reply:abc
mayn $G XACK aisp:tasks aisp 1-0
mayn $G SET aisp:result:t1 forged
mayn $G SET aisp:running:t1 g
mayn $G HSET aisp:node:n pubkey forged
mayn $G FLUSHALL

# ---------------------------------------------------------------- 3. scripts run with the caller's grants
NR() { redis-cli -p "$REDIS_PORT" --user aisp-node --pass change-me-node --no-auth-warning "$@" 2>&1; }
script_denied() {
	local what=$1 out
	shift
	out=$(NR EVAL "$@")
	# refused by the ACL, or (CONFIG and other admin commands) by scripting itself
	if [[ "$out" == *"The user executing the script can't"* ]] ||
		[[ "$out" == *"This Redis command is not allowed from script"* ]]; then
		ok "a node's own script cannot $what"
	else
		not_ok "a node's own script cannot $what" "$out"
	fi
}
R XADD aisp:tasks '*' task '{"id":"keep"}' >/dev/null
script_denied "delete the task stream" "return redis.call('DEL', KEYS[1])" 1 aisp:tasks
script_denied "FLUSHALL" "return redis.call('FLUSHALL')" 0
script_denied "add a task" "return redis.call('XADD', KEYS[1], '*', 'task', '{}')" 1 aisp:tasks
script_denied "read a key it does not name" "return redis.call('GET', 'other:key')" 0
script_denied "read a key it names outside its grants" "return redis.call('GET', KEYS[1])" 1 other:key
script_denied "read a reply stream" "return redis.call('XRANGE', KEYS[1], '-', '+')" 1 aisp:reply:abc
script_denied "run CONFIG" "return redis.call('CONFIG', 'GET', 'maxmemory')" 0
is "the task stream is still there" "$(R XLEN aisp:tasks)" 1
is "a node's script may do what the node may (a run lease)" \
	"$(NR EVAL "return redis.call('SET', KEYS[1], 'n', 'PX', 1000)" 1 aisp:running:x)" OK
R DEL aisp:tasks >/dev/null
R ACL LOG RESET >/dev/null

# ---------------------------------------------------------------- 4. the protocol as these users
code() { printf '%s\n' "$2" >"$TEST_TMP/$1" && echo "$TEST_TMP/$1"; }
# both nodes have a runtime that refuses every container: a task for it is a real node fault
broken_runtime "$TEST_TMP/broken-runtime"
BROKEN=$'[runtime.broken]\nkind = runc\npath = '"$TEST_TMP/broken-runtime"
MAX_DELIVERIES=2 SLOTS=2 POOL="runc/default/python = 1" RT_ENABLED="runc, runsc, broken" \
	EXTRA_SECTIONS=$BROKEN node_conf a
MAX_DELIVERIES=2 SLOTS=2 RT_ENABLED="runc, runsc, broken" EXTRA_SECTIONS=$BROKEN node_conf b
node_start a
node_start b
wait_for 60 node_registered a || bail "node a did not register as aisp-node: $(node_log a | tail -5)"
wait_for 60 node_registered b || bail "node b did not register as aisp-node: $(node_log b | tail -5)"
ok "two nodes register as aisp-node"
out=$("$AISP" submit --wait --wait-timeout 90 --id acl-1 --runtime runc -c 'print("as a scheduler")' 2>&1)
is "aisp submit --wait as aisp-scheduler" "$out" "as a scheduler"
is "aisp result as aisp-scheduler" "$("$AISP" result acl-1 | jq -r .stdout)" "as a scheduler"
is "aisp wait as aisp-scheduler" "$("$AISP" wait acl-1 --timeout 10)" "as a scheduler"
verified() { "$AISP" verify --redis "$AISP_REDIS" "$1" >/dev/null 2>&1; }
check "aisp verify --redis as aisp-scheduler" verified acl-1
R SADD aisp:nodes ghost-node >/dev/null
out=$("$AISP" nodes 2>&1)
rc=$?
if [ $rc = 0 ] && [[ "$out" == *"$(node_id a)"* ]] && [[ "$out" != *ghost-node* ]]; then
	ok "aisp nodes as aisp-scheduler lists the live nodes (the expired id is skipped)"
else
	not_ok "aisp nodes as aisp-scheduler" "exit $rc" "$out"
fi
is "the scheduler could not drop the expired id (the registry is not its to write)" \
	"$(R SISMEMBER aisp:nodes ghost-node)" 1
R SREM aisp:nodes ghost-node >/dev/null
submit_json '{"id":"acl-bad","lang":"cobol","code":"x"}' >/dev/null
out=$("$AISP" wait acl-bad --timeout 60 --json 2>/dev/null | jq -r .status)
is "a rejected task as these users" "$out" rejected
"$AISP" submit --id acl-dup --runtime runc --lang shell -c 'sleep 2; echo first' >/dev/null
"$AISP" submit --id acl-dup --runtime runc --lang shell -c 'echo second' >/dev/null
wait_result acl-dup 60
sleep 3
is "a duplicate id: one result, the first" "$(rfield acl-dup .stdout)" "first"
is "a duplicate id: one aisp:results event" "$(events acl-dup)" 1
out=$("$AISP" submit --wait --wait-timeout 120 --json --id acl-poison --runtime broken -c 'print(1)' 2>/dev/null | jq -r .status)
is "a dead letter (sandbox errors until max_deliveries) as aisp-node" "$out" internal
check "the dead letter is in aisp:dead" bash -c "redis-cli -p $REDIS_PORT ${NL_REDIS_AUTH[*]} XRANGE aisp:dead - + | grep -q acl-poison"
# a release at shutdown (drain_s 5) and a takeover (SIGKILL), each finished by the other node
submit_json "$(jq -nc '{id:"acl-long", lang:"shell", runtime:"runc", code:"sleep 12; echo long"}')" >/dev/null
wait_for 60 bash -c "grep -q 'task=acl-long .*event=started' '$(node_dir a)/log' '$(node_dir b)/log'" || diag "acl-long did not start"
runs_on() { node_log "$1" | grep -q "task=$2 .*event=started"; }
if runs_on a acl-long; then holder=a other=b; else holder=b other=a; fi
node_stop "$holder" >/dev/null
check "the draining node released its task as aisp-node" grep -q "task=acl-long .*event=released" "$(node_dir $holder)/log"
wait_for 90 has_result acl-long
is "the released task finishes on the other node" "$(rfield acl-long '.stdout + .node')" "long
$(node_id $other)"
node_start "$holder"
wait_for 60 node_registered "$holder" || diag "node $holder did not come back"
submit_json "$(jq -nc '{id:"acl-kill", lang:"shell", runtime:"runc", code:"sleep 8; echo survived"}')" >/dev/null
wait_for 60 bash -c "grep -q 'task=acl-kill .*event=started' '$(node_dir a)/log' '$(node_dir b)/log'" || diag "acl-kill did not start"
if runs_on a acl-kill; then victim=a; else victim=b; fi
node_kill "$victim"
wait_for 120 has_result acl-kill
is "a SIGKILLed node's task is taken over (XAUTOCLAIM, lease) as aisp-node" "$(rfield acl-kill .stdout)" survived
printf 'print("reply")\n' >"$TEST_TMP/reply.py"
submit_json "$(task_json acl-reply python "$TEST_TMP/reply.py" runc null '{"reply_stream":"aisp:reply:acl-test"}')" >/dev/null
wait_result acl-reply 60
out=$(redis-cli -p "$REDIS_PORT" --user aisp-scheduler --pass change-me-scheduler --no-auth-warning \
	XREAD COUNT 1 STREAMS aisp:reply:acl-test 0-0 2>&1)
check "the node wrote the reply stream, the scheduler reads it" grep -q acl-reply <<<"$out"

# Every denial Redis saw (ACL LOG: user, command, key or reason)
log=$(R ACL LOG 100 | awk '/^username$/ {getline; u=$0} /^object$/ {getline; o=$0} /^reason$/ {getline; r=$0} /^client-info$/ {print u, r, o}')
diag "ACL LOG: ${log:-empty}"
is "no command of any path above was denied to aisp-node" "$(grep -c '^aisp-node ' <<<"$log")" 0
is "the scheduler's only denials were aisp nodes' SREM of the expired id" \
	"$(grep '^aisp-scheduler ' <<<"$log" | grep -vc '^aisp-scheduler command srem$')" 0
for n in a b; do [ -n "$(node_pid "$n")" ] && node_stop "$n" >/dev/null; done
done_testing
