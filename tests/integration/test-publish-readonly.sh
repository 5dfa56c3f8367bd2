#!/usr/bin/env bash
# A task whose publish meets a server that is not a master (READONLY, as during a failover)
# retries until the server is a master again, and its signed result is published then, under
# the sequence it was signed with, and never "publish_refused". Against a real redis-server made
# a replica of a dead address and back (REPLICAOF), and aispd on runc. TAP output.
# What it cannot force: which command meets READONLY first (here the node's other commands do:
# the connection drops and the publish sees "connection lost"). daemon/redis.c hands READONLY,
# LOADING and MASTERDOWN to every caller as no reply (the connection is being dropped), and a
# publish retries NOREPLICAS (the new master below min-replicas-to-write), which the
# redis-failover suite saw counted three times as the script failing: left pending, its
# sequence never published ("sequence ... is unpublished and unexplained by the log").
# No `set -e`: a TAP suite goes on past a failing step.
set -uo pipefail
. "$(dirname "$0")/../lib/node.sh"
need_nodes
redis_start

printf 'sleep 2\necho done\n' >"$TEST_TMP/slow.sh"
SLOTS=1 RT_ENABLED="runc" node_conf p1
node_start p1
wait_for 30 node_registered p1 || bail "node p1 did not register: $(node_log p1 | tail -5)"

submit_json "$(task_json ro-1 shell "$TEST_TMP/slow.sh" runc)" >/dev/null
wait_for 60 grep -q "task=ro-1 .*event=started" "$(node_dir p1)/log" || bail "ro-1 never started"
# the server stops being a master while the program runs: a replica of an address nobody
# listens on keeps its data and answers every write with READONLY
R REPLICAOF 127.0.0.1 "$(free_port)" >/dev/null
failed() { [ "$(node_log p1 | grep -c 'task=ro-1 .*event=publish_failed')" -ge "$1" ]; }
wait_for 30 failed 4
check "the publish meets READONLY and is retried (4 attempts seen)" failed 4
check "... never counted as the script failing" bash -c "! grep -q 'task=ro-1 .*event=publish_refused' '$(node_dir p1)/log'"
R REPLICAOF NO ONE >/dev/null
wait_result ro-1 30
is "once the server is a master again, the result is published" "$(rfield ro-1 '.status + " " + .stdout')" "ok done"
seq=$(node_log p1 | sed -n 's/.*task=ro-1 .*event=published .*sequence=\([0-9]*\).*/\1/p' | head -1)
check "... logged as published, with its sequence ($seq)" test -n "$seq"
is "... one result event" "$(events ro-1)" 1
diag "$(node_log p1 | grep -E "task=ro-1|redis" | cut -c1-220)"
done_testing
