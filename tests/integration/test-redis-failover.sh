#!/usr/bin/env bash
# Sentinel failover (issue 23, items 1 and 2), with real processes on loopback: a master and a
# replica (deploy/redis.conf: ACL users, min-replicas-to-write 1), three sentinels, two aispd
# nodes that find the master through Sentinel (as aisp-node, [redis] wait_replicas = 1), and
# aisp through sentinel:// (as aisp-scheduler).
#   1. nodes and aisp resolve the master through Sentinel (a dead sentinel first in the list)
#   2. a few hundred tasks, confirmed on the replica (WAIT); mid-run the replica stops
#      acknowledging for a moment (SIGSTOP) and the master is SIGKILLed: Sentinel promotes the
#      replica, which lacks the last results; the nodes follow; the old master comes back as a
#      replica
#   3. every task ends with exactly one result readable from the new master, one aisp:results
#      event, an empty task stream and no pending entry; every result verifies
#   4. the chain of each node: links hold between consecutive published sequence numbers;
#      every missing number is a result the node signed and logged: discarded (a result
#      existed, or another entry runs the id) or lost with the old master, re-signed under a
#      later number, and (WAIT) logged as not confirmed by the replica. Tasks that ran twice are reported.
#   5. after the failover: the registry lists both nodes, a SIGKILLed node's tasks are taken
#      over by the other (leases and takeover work on the new master)
#   6. a manual failover (SENTINEL FAILOVER: +switch-master, clients killed) is followed too
#   7. a node pointed at a read-only replica reconnects on READONLY and serves once the server
#      is a master
# AISP_FAILOVER_TASKS (default 300) sets the size.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/node.sh"
. "$here/redis-ha.sh"
need_nodes
N=${AISP_FAILOVER_TASKS:-300}

# ---------------------------------------------------------------- the topology
PM=$(free_port)
PR=$(free_port)
ha_server_start m "$PM"
ha_server_start r "$PR" --replicaof 127.0.0.1 "$PM"
wait_for 10 ha_up "$PM" || bail "master did not start: $(tail -5 "$HA_DIR/m/log")"
wait_for 10 ha_up "$PR" || bail "replica did not start: $(tail -5 "$HA_DIR/r/log")"
wait_for 20 ha_synced "$PR" || bail "replica did not sync: $(tail -5 "$HA_DIR/r/log")"
S=()
for i in 1 2 3; do
	S+=("$(free_port)")
	ha_sentinel_start "s$i" "${S[-1]}" "$PM"
done
wait_for 30 ha_sentinels_ready "${S[0]}" 1 || bail "sentinels did not find each other: $(tail -5 "$HA_DIR/s1/log")"
DEAD_SENTINEL=127.0.0.1:$(free_port) # nothing listens there: asked first, skipped
SENTINELS="$DEAD_SENTINEL, 127.0.0.1:${S[0]}, 127.0.0.1:${S[1]}, 127.0.0.1:${S[2]}"
export AISP_REDIS="sentinel://${SENTINELS// /}/$HA_MASTER"
export AISP_REDIS_USER=aisp-scheduler AISP_REDIS_PASSWORD=change-me-scheduler
export AISP_SENTINEL_PASSWORD=$HA_SENTINEL_PASS
# RM ARGS...: the operator's redis-cli to whatever Sentinel names the master now
RM() { ha_cli "$(ha_master_port "${S[1]}")" "$@"; }
R() { RM "$@"; } # node.sh's helpers (submit_json, has_result, ...) go to the master too

NODE_REDIS="sentinels = $SENTINELS
master_name = $HA_MASTER
sentinel_password = $HA_SENTINEL_PASS
user = aisp-node
password = change-me-node
wait_replicas = 1
wait_timeout_ms = 1000"
export NODE_REDIS
# reclaim_ms is above the failover time (down after 1 s, election, the nodes' backoff), as
# deploy/REDIS.md asks: a node cut off by the failover is not taken over meanwhile
SLOTS=3 RECLAIM_MS=12000 POOL="runc/default/shell = 2" node_conf a
SLOTS=3 RECLAIM_MS=12000 POOL="runc/default/shell = 2" node_conf b
node_start a
node_start b
wait_for 60 node_registered a || bail "node a did not register: $(node_log a | tail -5)"
wait_for 60 node_registered b || bail "node b did not register: $(node_log b | tail -5)"

# ---------------------------------------------------------------- 1. resolution
if node_log a | grep -q "sentinel $DEAD_SENTINEL: .*asking the next sentinel" &&
	node_log a | grep -q "sentinel 127.0.0.1:${S[0]}: master \"$HA_MASTER\" is 127.0.0.1:$PM"; then
	ok "the node skips a dead sentinel and finds the master through the next one"
else
	not_ok "node resolution through Sentinel" "$(node_log a | grep -i sentinel | head -5)"
fi
out=$("$AISP" nodes 2>&1)
if [[ "$out" == *"$(node_id a)"* ]] && [[ "$out" == *"$(node_id b)"* ]]; then
	ok "aisp nodes through sentinel:// (as aisp-scheduler) lists both nodes"
else
	not_ok "aisp nodes through sentinel://" "$out"
fi
out=$("$AISP" submit --wait --wait-timeout 60 --id pre-1 --runtime runc --lang shell -c 'echo before' 2>&1)
is "aisp submit --wait through sentinel://" "$out" "before"
bad=$(AISP_REDIS="sentinel://$DEAD_SENTINEL/$HA_MASTER" "$AISP" nodes 2>&1)
if [[ "$bad" == *"no sentinel named the master \"$HA_MASTER\""*"$DEAD_SENTINEL"* ]]; then
	ok "aisp: no reachable sentinel is a clear error naming the sentinels"
else
	not_ok "aisp: unreachable sentinels" "$bad"
fi

# ---------------------------------------------------------------- 2. tasks, then the kill
jq -nc --argjson n "$N" 'range(1; $n + 1) | ["XADD", "aisp:tasks", "*", "task",
	({id: "fo-\(.)", lang: "shell", runtime: "runc", code: "sleep 0.1; echo fo-\(.)"} | tojson)]' >"$TEST_TMP/xadd"
echo '["WAIT", "1", "5000"]' >>"$TEST_TMP/xadd"
replies=$(ha_resp "$PM" aisp-scheduler change-me-scheduler <"$TEST_TMP/xadd" 2>&1)
# the scheduler's part of "no task lost": its XADDs are on the replica before it counts on them
is "$N tasks submitted and confirmed on the replica (WAIT 1)" "$(tail -1 <<<"$replies")" 1
# results_on PORT: how many fo-* results that server has
results_on() { ha_cli "$1" --scan --pattern 'aisp:result:fo-*' 2>/dev/null | wc -l; }
results_now() { results_on "$PM"; }
a_third() { [ "$(results_on "$PM")" -ge $((N / 3)) ]; }
wait_for 300 a_third ||
	bail "a third of the tasks did not finish: $(results_now) results; $(node_log a | tail -3)"
# The replica stops acknowledging (SIGSTOP) while the master keeps publishing (within
# min-replicas-max-lag), so the master holds results the replica lacks: exactly what
# asynchronous replication risks. Then the master dies and the replica wakes up to be
# promoted: those results are lost, and the nodes' WAIT must have said so for each.
stopped=$(results_now)
kill -STOP "${HA_PID[r]}"
more() { [ "$(results_now)" -ge $((stopped + 15)) ]; }
wait_for 20 more || diag "only $(($(results_now) - stopped)) results while the replica was stopped"
before=$(results_now)
ha_kill m
kill -CONT "${HA_PID[r]}"
t_kill=$(date +%s)
diag "replica stopped at $stopped results; master SIGKILLed with $before of $N published"
promoted() { [ "$(ha_master_port "${S[0]}")" = "$PR" ]; }
if wait_for 60 promoted; then
	ok "Sentinel promoted the replica ($(($(date +%s) - t_kill)) s)"
else
	bail "no failover: $(tail -5 "$HA_DIR/s1/log")"
fi
# min-replicas-to-write 1: the new master refuses writes until it has a replica again; the
# old master comes back (its AOF) and Sentinel makes it a replica of the new one
ha_server_start m "$PM"
if wait_for 60 ha_synced "$PM"; then
	ok "the old master is back as a replica of the new one"
else
	not_ok "old master rejoins as a replica" "$(tail -5 "$HA_DIR/m/log")"
fi
all_done() { [ "$(results_on "$PR")" -ge "$N" ]; }
if wait_for 300 all_done; then
	ok "all $N tasks have a result on the new master ($(($(date +%s) - t_kill)) s after the kill)"
else
	not_ok "every task has a result on the new master" "$(results_on "$PR") of $N" "$(node_log a | tail -5)"
fi
# a node that lost the race for the last tasks may still be in its reconnect backoff (at most
# 5 s) when the other one has finished them all: each gets time to follow on its own
followed() { node_log "$1" | grep -q "sentinel .*: master \"$HA_MASTER\" is 127.0.0.1:$PR"; }
if wait_for 30 followed a && wait_for 30 followed b; then
	ok "both nodes asked Sentinel again and followed the new master"
else
	not_ok "nodes follow the new master (127.0.0.1:$PR)" \
		"node a: $(node_log a | grep -i 'sentinel\|redis' | tail -6)" \
		"node b: $(node_log b | grep -i 'sentinel\|redis' | tail -6)"
fi

# ---------------------------------------------------------------- 3. exactly one result each
P=$PR
for i in $(seq 1 "$N"); do echo "[\"GET\", \"aisp:result:fo-$i\"]"; done >"$TEST_TMP/get"
ha_resp "$P" default change-me-admin <"$TEST_TMP/get" >"$TEST_TMP/results.jsonl"
bad=$(jq -r 'select(. == null or (fromjson | .status != "ok" or
	.stdout != "\(.id)\n"))' "$TEST_TMP/results.jsonl" | head -3)
is "every task's one result on the new master is ok with its own output" "${bad:-none}" "none"
echo '["XRANGE", "aisp:results", "-", "+"]' | ha_resp "$P" default change-me-admin |
	jq -r '.[] | .[1] | .[1]' | grep '^fo-' | sort | uniq -c | awk '$1 != 1' >"$TEST_TMP/events"
is "one aisp:results event per task on the new master" "$(wc -l <"$TEST_TMP/events")" 0
is "the task stream is empty" "$(ha_cli "$P" XLEN aisp:tasks)" 0
is "no pending entry is left" "$(ha_cli "$P" XPENDING aisp:tasks aisp | head -1)" 0
jq -c 'fromjson' "$TEST_TMP/results.jsonl" >"$TEST_TMP/results.docs"
ha_cli "$P" GET aisp:result:pre-1 >>"$TEST_TMP/results.docs" # node b's first result: its chain
mkdir -p "$TEST_TMP/res"
jq -c '.' "$TEST_TMP/results.docs" | awk -v d="$TEST_TMP/res" '{f = d "/" NR ".json"; print > f; close(f)}'
failed=0
for f in "$TEST_TMP"/res/*.json; do
	"$AISP" verify --pubkey "$TEST_TMP/key/public.pem" "$f" >/dev/null 2>&1 || failed=$((failed + 1))
done
is "every result verifies (signature, digests)" "$failed" 0

# ---------------------------------------------------------------- 4. the chains
for n in a b; do
	node_log "$n" >"$TEST_TMP/log-$n"
	# the node's audit stream (ATTESTATION.md section 10): its signed results not published
	echo "[\"XRANGE\", \"aisp:audit:$(node_id $n)\", \"-\", \"+\"]" | ha_resp "$P" default change-me-admin >"$TEST_TMP/audit-$n"
done
report=$(python3 - "$TEST_TMP/results.docs" "$(node_id a)" "$TEST_TMP/log-a" "$(node_dir a)/state/chain.json" \
	"$TEST_TMP/audit-a" "$(node_id b)" "$TEST_TMP/log-b" "$(node_dir b)/state/chain.json" "$TEST_TMP/audit-b" <<'PY'
import base64, hashlib, json, re, sys
docs = [json.loads(l) for l in open(sys.argv[1])]
args = sys.argv[2:]
problems, lines = [], []
ran_twice = set()
for k in range(0, len(args), 4):
    node, log = args[k], open(args[k + 1]).read()
    # the chain state's newest slot (each slot is a JSON line: attest/chain.c)
    chain = max((json.loads(l) for l in open(args[k + 2]) if l.strip()), key=lambda c: c["sequence"])
    audited = set()
    for entry in json.loads(open(args[k + 3]).read() or "[]") or []:
        f = entry[1]
        audited.add(int(dict(zip(f[::2], f[1::2]))["sequence"]))
    mine = {}
    for d in docs:
        env = d["attestation"]
        payload = base64.b64decode(env["payload"])
        md = json.loads(payload)["predicate"]["metadata"]
        if md["node_id"] != node:
            continue
        mine[md["sequence"]] = (d["id"], md["previous"], "sha256:" + hashlib.sha256(payload).hexdigest())
    last = chain["sequence"]
    links = sum(1 for s in mine if s - 1 in mine)
    broken = [s for s in mine if s - 1 in mine and mine[s][1] != mine[s - 1][2]]
    if broken:
        problems.append(f"{node}: broken links at {broken[:5]}")
    published = {int(m.group(2)): m.group(1) for m in
                 re.finditer(r"task=(\S+) entry=\S+ event=published status=\S+ attempts=\d+ sequence=(\d+)", log)}
    discarded = {int(m.group(2)): m.group(1) for m in
                 re.finditer(r"task=(\S+) entry=\S+ event=duplicate reason=\"[^\"]*\" sequence_discarded=(\d+)", log)}
    unconfirmed = set(re.findall(r"task (\S+ sequence=\d+): published, but", log))
    missing = [s for s in range(1, last + 1) if s not in mine]
    lost = []
    for s in missing:
        if s in audited or s in discarded:
            continue
        tid = published.get(s)
        if tid is None:
            problems.append(f"{node}: sequence {s} is unpublished and unexplained by the log")
            continue
        later = [q for q, v in mine.items() if v[0] == tid and q > s]
        if not later and not any(d["id"] == tid for d in docs):
            problems.append(f"{node}: {tid} (sequence {s}) was lost and has no result")
        if f"{tid} sequence={s}" not in unconfirmed:
            problems.append(f"{node}: {tid} sequence {s} was lost but WAIT had confirmed it")
        lost.append((s, tid))
        ran_twice.add(tid)
    lines.append(f"{node}: {len(mine)} results on the master, sequences 1..{last}, {links} links, "
                 f"{len(missing)} missing: {len(lost)} lost with the old master and re-signed "
                 f"{[f'{t}@{s}' for s, t in lost][:10]}, "
                 f"{len([s for s in missing if s in audited or s in discarded])} discarded "
                 f"({len([s for s in missing if s in audited])} in its audit stream); "
                 f"{len(unconfirmed)} logged as unconfirmed")
print("\n".join(lines))
print(f"tasks that ran twice (their first result lost): {len(ran_twice)}")
for p in problems:
    print("PROBLEM " + p)
PY
)
diag "$report"
if grep -q '^PROBLEM' <<<"$report"; then
	not_ok "each node's chain: every missing sequence is explained, WAIT-confirmed results survived" "$(grep '^PROBLEM' <<<"$report")"
else
	ok "each node's chain: every missing sequence is explained, WAIT-confirmed results survived"
fi
twice=$(for n in a b; do grep "event=started" "$TEST_TMP/log-$n" | grep -o "task=fo-[0-9]* "; done | sort | uniq -d | wc -l)
diag "tasks run more than once (from the nodes' logs): $twice of $N"

# ---------------------------------------------------------------- 5. registry, takeover
out=$("$AISP" nodes 2>&1)
if [[ "$out" == *"$(node_id a)"* ]] && [[ "$out" == *"$(node_id b)"* ]]; then
	ok "after the failover: the registry on the new master lists both nodes"
else
	not_ok "registry after the failover" "$out"
fi
for i in 1 2 3 4 5 6; do
	submit_json "$(jq -nc --arg id "to-$i" '{id:$id, lang:"shell", runtime:"runc", code:"sleep 4; echo taken"}')" >/dev/null
done
running_on_b() { node_log b | grep -q "task=to-[0-9] .*event=started"; }
wait_for 60 running_on_b || diag "node b got none of the takeover tasks"
node_kill b
took=0
for i in 1 2 3 4 5 6; do
	wait_for 120 has_result "to-$i" && [ "$(rfield "to-$i" .stdout)" = taken ] && took=$((took + 1))
done
is "after the failover: node b SIGKILLed mid-task, all its tasks finish (takeover by a)" "$took" 6
check "node a took over entries of node b" grep -q "reclaimed [0-9]* entries" <(node_log a)

# ---------------------------------------------------------------- 6. manual failover
old=$(ha_master_port "${S[0]}")
ha_scli "${S[0]}" SENTINEL FAILOVER "$HA_MASTER" >/dev/null
switched() { [ "$(ha_master_port "${S[0]}")" = "$PM" ]; }
wait_for 60 switched || not_ok "SENTINEL FAILOVER switched back to $PM"
wait_for 60 ha_synced "$old" || diag "the demoted master did not sync yet"
followed() { node_log a | grep -q "+switch-master $HA_MASTER to 127.0.0.1:$PM"; }
if wait_for 60 followed; then
	ok "node a followed +switch-master of a manual failover"
else
	not_ok "node a follows +switch-master" "$(node_log a | grep -i 'sentinel\|redis' | tail -8)"
fi
run_task after-switch shell "$(printf 'echo switched\n' >"$TEST_TMP/sw.sh" && echo "$TEST_TMP/sw.sh")" runc null '{}' 60
is "a task after the manual failover" "$(rfield after-switch .stdout)" "switched"

# ---------------------------------------------------------------- 7. READONLY
node_stop a >/dev/null
ro=$(ha_master_port "${S[0]}")
replica=$PR
[ "$ro" = "$PR" ] && replica=$PM
NODE_REDIS="address = 127.0.0.1:$replica
user = aisp-node
password = change-me-node" SLOTS=1 node_conf ro
node_start ro
readonly_seen() { node_log ro | grep -q "127.0.0.1:$replica replied READONLY"; }
if wait_for 30 readonly_seen; then
	ok "a node connected to a read-only replica drops the connection on READONLY and retries"
else
	not_ok "READONLY reconnect" "$(node_log ro | tail -5)"
fi
# no sentinel may undo the manual promotion below
for n in 1 2 3; do ha_kill "s$n"; done
ha_cli "$replica" REPLICAOF NO ONE >/dev/null
ha_cli "$replica" CONFIG SET min-replicas-to-write 0 >/dev/null
R() { ha_cli "$replica" "$@"; }
if wait_for 60 node_registered ro; then
	ok "once the server is a master the node registers"
else
	not_ok "READONLY: the node serves once the server is a master" "$(node_log ro | tail -5)"
fi
node_stop ro >/dev/null
done_testing
