#!/usr/bin/env bash
# The protocol's promises under hostile input (issue 13), against a real redis-server and real
# aispd nodes (runc): an invalid duplicate never replaces a running task's result; reply streams
# cannot touch protocol keys and every waiter hears back; strict UTF-8; slots are a hard bound
# for every source of entries; attempts are the entry's delivery count; a fleet of unlike nodes
# routes every task to a node that serves it; /metrics is valid Prometheus text. TAP output.
# No `set -e`: a TAP suite goes on past a failing step (that test point says "not ok" and the
# remaining ones still run), and many steps test a command's exit status.
set -uo pipefail
. "$(dirname "$0")/../lib/node.sh"
need_nodes
redis_start

SRC=${AISP_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
printf 'sleep 3\necho real\n' >"$TEST_TMP/slow.sh"
printf 'echo hi\n' >"$TEST_TMP/hi.sh"
printf 'sleep 2\necho done\n' >"$TEST_TMP/two.sh"

# reply_entries STREAM: the number of entries of a reply stream
reply_entries() { R XLEN "$1"; }
# reply_status STREAM: the status of the last result on a reply stream
reply_status() { R XREVRANGE "$1" + - COUNT 1 | sed -n 5p | jq -r .status; }

HTTP_PORT=$(free_port)
SLOTS=4 RT_ENABLED=runc node_conf n1
node_start n1
wait_for 30 node_registered n1 || bail "node n1 did not register: $(node_log n1 | tail -5)"

# ---------------------------------------------------------------- 1. invalid duplicates
submit_json "$(task_json d1 shell "$TEST_TMP/slow.sh" runc)" >/dev/null
sleep 1
submit_json '{"id":"d1","lang":"cobol","code":"x","reply_stream":"aisp:reply:dup1"}' >/dev/null
wait_result d1 60
is "invalid duplicate of a running task: the result is the real run's" \
	"$(rfield d1 '.status + " " + .stdout')" "ok real"
is "invalid duplicate: one result event" "$(events d1)" 1
wait_for 10 prints 1 reply_entries aisp:reply:dup1
is "invalid duplicate: its reply stream gets the first result" "$(reply_status aisp:reply:dup1)" ok
# a valid duplicate on the same node, while the first runs
submit_json "$(task_json d2 shell "$TEST_TMP/slow.sh" runc)" >/dev/null
sleep 1
submit_json "$(task_json d2 shell "$TEST_TMP/hi.sh" runc null '{"reply_stream":"aisp:reply:dup2"}')" >/dev/null
wait_result d2 60
wait_for 10 prints 1 reply_entries aisp:reply:dup2
is "valid duplicate of a running task: the first run's result" "$(rfield d2 .stdout)" "real"
is "valid duplicate: its reply stream gets that result" "$(R XREVRANGE aisp:reply:dup2 + - COUNT 1 | sed -n 5p | jq -r .stdout)" "real"
# a duplicate of a finished id
submit_json "$(task_json d2 shell "$TEST_TMP/hi.sh" runc null '{"reply_stream":"aisp:reply:dup3"}')" >/dev/null
if wait_for 20 prints 1 reply_entries aisp:reply:dup3; then
	is "duplicate of a finished id: its reply stream gets the first result" \
		"$(R XREVRANGE aisp:reply:dup3 + - COUNT 1 | sed -n 5p | jq -r .stdout)" "real"
else
	not_ok "duplicate of a finished id: its reply stream gets the first result"
fi
is "duplicates: still one result event each" "$(events d2)" 1

# ---------------------------------------------------------------- 2. reply streams
for i in 1 2 3 4 5 6; do submit_json "$(task_json q$i shell "$TEST_TMP/hi.sh" runc)" >/dev/null; done
submit_json "$(task_json bad-reply1 shell "$TEST_TMP/hi.sh" runc null '{"reply_stream":"aisp:tasks"}')" >/dev/null
submit_json "$(task_json victim shell "$TEST_TMP/hi.sh" runc)" >/dev/null
submit_json "$(task_json bad-reply2 shell "$TEST_TMP/hi.sh" runc null '{"reply_stream":"aisp:result:victim"}')" >/dev/null
wait_result bad-reply1 30
wait_result bad-reply2 30
is "reply_stream aisp:tasks: rejected" "$(rfield bad-reply1 .error)" \
	'field "reply_stream" must be "aisp:reply:" followed by [A-Za-z0-9:._-]{1,117}'
is "reply_stream aisp:result:<other>: rejected" "$(rfield bad-reply2 .status)" rejected
ok_all=1
for i in 1 2 3 4 5 6; do wait_result q$i 60 || ok_all=0; done
check "queued tasks of other schedulers all get their results" [ $ok_all = 1 ]
wait_result victim 60
is "the other task's result key is still its result" "$(R TYPE aisp:result:victim)/$(rfield victim .status)" "string/ok"
submit_json "$(task_json ttl1 shell "$TEST_TMP/hi.sh" runc null '{"reply_stream":"aisp:reply:ttl"}')" >/dev/null
wait_for 30 prints 1 reply_entries aisp:reply:ttl
ttl=$(R PTTL aisp:reply:ttl)
check "reply streams get a TTL (PTTL $ttl ms)" [ "$ttl" -gt 0 ]
# one shared reply stream, more results than any MAXLEN a node used to apply: none trimmed
for i in $(seq 1 12); do
	submit_json "$(task_json sh$i shell "$TEST_TMP/hi.sh" runc null '{"reply_stream":"aisp:reply:shared"}')" >/dev/null
done
wait_for 60 prints 12 reply_entries aisp:reply:shared
is "a shared reply stream keeps every task's result" "$(reply_entries aisp:reply:shared)" 12

# ---------------------------------------------------------------- 3. every waiter hears back
submit_json '{"id":"w1","lang":"python","code":"1","bogus":1,"reply_stream":"aisp:reply:w1"}' >/dev/null
if wait_for 20 prints 1 reply_entries aisp:reply:w1; then
	is "a rejection reaches the task's reply stream" "$(reply_status aisp:reply:w1)" rejected
else
	not_ok "a rejection reaches the task's reply stream"
fi
submit_json '{"lang":"python","code":"1","reply_stream":"aisp:reply:w2"}' >/dev/null
if wait_for 20 prints 1 reply_entries aisp:reply:w2; then
	is "no id: the rejection still reaches the reply stream" \
		"$(R XREVRANGE aisp:reply:w2 + - COUNT 1 | sed -n 5p | jq -r '.status + " " + .error')" \
		'rejected missing field "id"'
else
	not_ok "no id: the rejection still reaches the reply stream"
fi
e=$(R XADD aisp:tasks '*' job x)
wait_result "entry-$e" 20
is "an entry without a task field: rejected under entry-<id>" "$(rfield "entry-$e" .error)" \
	'the stream entry has no "task" field'
R XADD aisp:tasks '*' task '{"id":"extra1","lang":"shell","code":"echo x"}' trace 42 >/dev/null
wait_result extra1 20
is "an entry with a field besides task: rejected, naming it" "$(rfield extra1 .error)" \
	'the stream entry has a field "trace" besides "task" (an entry has exactly one field, "task")'

# ---------------------------------------------------------------- 4. strict UTF-8
utf8_case() { # NAME BYTES-PRINTF-FORMAT: code with those raw bytes
	printf '{"id":"%s","lang":"shell","code":"echo '"$2"'"}' "$1" | R -x XADD aisp:tasks '*' task >/dev/null
	wait_result "$1" 20
	is "strict UTF-8: $1 rejected" "$(rfield "$1" '.status')" rejected
}
utf8_case overlong '\xc0\xaf'
utf8_case surrogate '\xed\xa0\x80'
utf8_case above-max '\xf4\x90\x80\x80'
printf '{"id":"lone","lang":"shell","code":"echo \\ud800"}' | R -x XADD aisp:tasks '*' task >/dev/null
wait_result lone 20
check "a lone surrogate escape is rejected, not replaced" \
	grep -qF 'string has a lone surrogate escape \ud800 at byte' <<<"$(rfield lone .error)"

# ---------------------------------------------------------------- 5. numbers
submit_json '{"id":"huge","lang":"shell","code":"echo","limits":{"memory_mb":99999999999999999999999}}' >/dev/null
wait_result huge 20
is "limits beyond int64: is too large" "$(rfield huge .error)" 'field "limits.memory_mb" is too large'
submit_json '{"id":"huget","lang":"shell","code":"echo","limits":{"timeout_s":1e30}}' >/dev/null
wait_result huget 20
is "a huge timeout: is too large" "$(rfield huget .error)" 'field "limits.timeout_s" is too large'

# ---------------------------------------------------------------- 6. a client's broken stream
# A reply stream at its maximum id (every XADD * fails) or of another type must not stop a
# result from being published, nor hold a slot.
R XADD aisp:reply:evil 18446744073709551615-18446744073709551615 a b >/dev/null
R SET aisp:reply:evil2 astring >/dev/null
submit_json "$(task_json br1 shell "$TEST_TMP/hi.sh" runc null '{"reply_stream":"aisp:reply:evil"}')" >/dev/null
submit_json "$(task_json br2 shell "$TEST_TMP/hi.sh" runc null '{"reply_stream":"aisp:reply:evil2"}')" >/dev/null
for i in 1 2 3 4; do
	submit_json '{"id":"br1","lang":"cobol","code":"1","reply_stream":"aisp:reply:evil"}' >/dev/null
done
submit_json "$(task_json br-probe shell "$TEST_TMP/hi.sh" runc)" >/dev/null
wait_result br1 30
wait_result br2 30
is "a broken reply stream does not stop the result" "$(rfield br1 .status)/$(rfield br2 .status)" ok/ok
check "... nor hold the node's slots (a task after them runs)" wait_result br-probe 30
is "... and the duplicates of it are acknowledged" "$(R XLEN aisp:tasks)" 0

# ---------------------------------------------------------------- 7. metrics
m=$(curl -s "http://127.0.0.1:$HTTP_PORT/metrics")
if printf '%s' "$m" | /usr/bin/python3 -c '
import sys
from prometheus_client.parser import text_string_to_metric_families
names = [f.name for f in text_string_to_metric_families(sys.stdin.read())]
dup = sorted({n for n in names if names.count(n) > 1})
if dup:
    print("families twice:", dup); sys.exit(1)
' >"$TEST_TMP/prom.out" 2>&1; then
	ok "/metrics is valid Prometheus text, one family each"
else
	not_ok "/metrics is valid Prometheus text, one family each" "$(cat "$TEST_TMP/prom.out")"
fi
# (In the sanitizer build a leak, e.g. of a task refused for its entry's extra field, makes
# aispd exit non-zero here.)
check "n1 drained and exited 0" node_stop n1

# ---------------------------------------------------------------- 8. slots are a hard bound
# Entries owned by a dead consumer (idle past reclaim_ms) meet new entries read by the
# outstanding blocking XREADGROUP: together they must never exceed the node's slots.
# (With no node running: a "dead" consumer reads them and never acknowledges.)
for i in $(seq 1 6); do submit_json "$(task_json old$i shell "$TEST_TMP/two.sh" runc)" >/dev/null; done
submit_json "$(task_json taken shell "$TEST_TMP/hi.sh" runc)" >/dev/null
R XREADGROUP GROUP aisp ghost COUNT 7 STREAMS aisp:tasks '>' >/dev/null
sleep 3.5 # past RECLAIM_MS
HTTP_PORT= SLOTS=3 RECLAIM_MS=3000 BLOCK_MS=5000 RT_ENABLED=runc node_conf s1
node_start s1
# New entries arrive while the taken-over ones run and a read for new entries is waiting.
wait_for 30 grep -q "reclaimed" "$(node_dir s1)/log"
for i in $(seq 1 6); do submit_json "$(task_json new$i shell "$TEST_TMP/two.sh" runc)" >/dev/null; done
all=1
for i in $(seq 1 6); do wait_result old$i 90 || all=0; wait_result new$i 90 || all=0; done
check "slots: every task finished" [ $all = 1 ]
peak=$(for i in $(seq 1 6); do result old$i; result new$i; done | jq -s '
	[.[] | {s: .started_at_ms, f: .finished_at_ms}] as $r
	| [$r[] | .s as $t | [$r[] | select(.s <= $t and .f > $t)] | length] | max')
check "slots = 3: never more than 3 tasks at once (peak $peak)" [ "${peak:-99}" -le 3 ]
# XAUTOCLAIM counted a delivery: attempts must say 2
wait_result taken 60
is "attempts after a takeover: the entry's delivery count" "$(rfield taken .attempts)" 2
node_stop s1

# ---------------------------------------------------------------- 8b. takeover behind live entries
# 30 entries held by a live consumer (refreshed, never idle) stand before 2 entries of a dead
# one: XAUTOCLAIM looks at COUNT x 10 entries per call, so takeover must go on from where it
# stopped, not start from 0-0 every time.
for i in $(seq 1 30); do submit_json "$(task_json live$i shell "$TEST_TMP/hi.sh" runc)" >/dev/null; done
R XREADGROUP GROUP aisp busy COUNT 30 STREAMS aisp:tasks '>' >/dev/null
for i in 1 2; do submit_json "$(task_json behind$i shell "$TEST_TMP/hi.sh" runc)" >/dev/null; done
R XREADGROUP GROUP aisp dead COUNT 2 STREAMS aisp:tasks '>' >/dev/null
ids=$(R XPENDING aisp:tasks aisp - + 100 busy | awk 'NR % 4 == 1')
( while :; do R XCLAIM aisp:tasks aisp busy 0 $ids JUSTID >/dev/null 2>&1; sleep 0.3; done ) &
refresher=$!
track_pid "$refresher"
sleep 3.5 # the dead consumer's entries are idle past reclaim_ms
HTTP_PORT= SLOTS=1 RECLAIM_MS=3000 RT_ENABLED=runc node_conf t1
node_start t1
if wait_for 60 has_result behind1 && wait_for 30 has_result behind2; then
	ok "takeover reaches a dead node's entries behind 30 live ones"
else
	not_ok "takeover reaches a dead node's entries behind 30 live ones" "$(node_log t1 | grep -i reclaim | tail -3)"
fi
kill "$refresher" 2>/dev/null
wait "$refresher" 2>/dev/null
node_stop t1
R DEL aisp:tasks >/dev/null
R XGROUP CREATE aisp:tasks aisp 0 MKSTREAM >/dev/null

# ---------------------------------------------------------------- 9. a fleet of unlike nodes
# f1: runc only; f2: runsc only, with an image name only its store has; f3: runc, at most
# 256 MiB of memory. Every task must find its node; an impossible one is rejected promptly.
digest=$(cat "$STORE/names/default")
FS=$TEST_TMP/fleet-store
mkdir -p "$FS/oci" "$FS/rootfs"
cp -a "$STORE/names" "$STORE/recipes" "$FS/" 2>/dev/null
cp -a "$STORE/oci/index.json" "$STORE/oci/oci-layout" "$FS/oci/" 2>/dev/null
cp -a "$STORE/oci/blobs" "$FS/oci/"
cp -al "$STORE/rootfs/${digest#sha256:}" "$FS/rootfs/"
printf '%s\n' "$digest" >"$FS/names/special"
HTTP_PORT=
RT_ENABLED=runc RT_DEFAULT=runc node_conf f1
RT_ENABLED=runsc RT_DEFAULT=runsc NODE_STORE=$FS node_conf f2
RT_ENABLED=runc RT_DEFAULT=runc LIMITS='max_memory_mb = 256
memory_mb = 256' node_conf f3
for f in f1 f2 f3; do node_start $f; done
for f in f1 f2 f3; do wait_for 30 node_registered $f || not_ok "fleet: $f registered" "$(node_log $f | tail -3)"; done
sleep 1 # a heartbeat with the max_* fields
submit_json "$(task_json fl-runsc1 shell "$TEST_TMP/hi.sh" runsc)" >/dev/null
submit_json "$(task_json fl-runsc2 shell "$TEST_TMP/hi.sh" runsc)" >/dev/null
submit_json "$(task_json fl-special shell "$TEST_TMP/hi.sh" "" null '{"image":"special"}')" >/dev/null
submit_json "$(task_json fl-runc shell "$TEST_TMP/hi.sh" runc)" >/dev/null
submit_json "$(task_json fl-mem shell "$TEST_TMP/hi.sh" runc '{"memory_mb":1024}')" >/dev/null
submit_json "$(task_json fl-plain shell "$TEST_TMP/hi.sh")" >/dev/null
t0=$(date +%s%3N)
submit_json "$(task_json fl-impossible shell "$TEST_TMP/hi.sh" kata)" >/dev/null
wait_result fl-impossible 30
t1=$(date +%s%3N)
is "fleet: an impossible task is rejected" "$(rfield fl-impossible .status)" rejected
check "fleet: ... promptly, saying no node offers it ($((t1 - t0)) ms)" \
	grep -q 'runtime "kata" is not enabled on this node (enabled: .*); no live node offers it' \
	<<<"$(rfield fl-impossible .error)"
for t in fl-runsc1 fl-runsc2 fl-special fl-runc fl-mem fl-plain; do
	wait_result $t 90 || true
done
is "fleet: runsc tasks ran on the runsc node" "$(rfield fl-runsc1 '.status + " " + .node')/$(rfield fl-runsc2 .node)" \
	"ok $(node_id f2)/$(node_id f2)"
is "fleet: the image only f2 has ran on f2" "$(rfield fl-special '.status + " " + .node')" "ok $(node_id f2)"
is "fleet: 1024 MiB ran on f1 (f3 allows 256)" "$(rfield fl-mem '.status + " " + .node')" "ok $(node_id f1)"
is "fleet: a runc task ran" "$(rfield fl-runc .status)" ok
is "fleet: a task naming nothing ran" "$(rfield fl-plain .status)" ok
n_handoffs=$(for f in f1 f2 f3; do node_log $f; done | grep -c 'event=handed_off')
check "fleet: tasks were handed between nodes ($n_handoffs hand-offs)" [ "$n_handoffs" -ge 1 ]
for f in f1 f2 f3; do node_stop $f; done

# ---------------------------------------------------------------- 10. a node's default image gone
# g1's store loses its default image after start; a task naming no image must reach g2 (which
# has it), not become internal on g1.
GS=$TEST_TMP/gone-store
mkdir -p "$GS/oci" "$GS/rootfs"
cp -a "$STORE/names" "$STORE/recipes" "$GS/" 2>/dev/null
cp -a "$STORE/oci/index.json" "$STORE/oci/oci-layout" "$GS/oci/" 2>/dev/null
cp -a "$STORE/oci/blobs" "$GS/oci/"
cp -al "$STORE/rootfs/${digest#sha256:}" "$GS/rootfs/"
RT_ENABLED=runc RT_DEFAULT=runc NODE_STORE=$GS node_conf g1
RT_ENABLED=runc RT_DEFAULT=runc node_conf g2
node_start g1
wait_for 30 node_registered g1
rm -f "$GS/names/default"
node_start g2
wait_for 30 node_registered g2
# only g1 reads it first: g2 is stopped from reading by SIGSTOP until g1 has handed it on
kill -STOP "$(node_pid g2)"
submit_json "$(task_json gone1 shell "$TEST_TMP/hi.sh")" >/dev/null
wait_for 20 grep -q "task=gone1 .*event=handed_off" "$(node_dir g1)/log"
kill -CONT "$(node_pid g2)"
wait_result gone1 60
is "default image gone: the task ran on the node that has it" "$(rfield gone1 '.status + " " + .node')" \
	"ok $(node_id g2)"
node_stop g1
node_stop g2

done_testing
