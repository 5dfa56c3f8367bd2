#!/usr/bin/env bash
# Two aispd with one node id (issue 15 item 4), against a real redis-server and runc: the
# second refuses to consume while the first is alive and exits 1 saying why; a refused process
# removes nothing of the live one's registry entry; after a SIGKILL the same id is taken over
# once the dead process's lock expires; a node whose lock was taken while it was stopped stops
# itself, and leaves the new holder's entry alone. TAP output.
# (-e is off on purpose: a TAP suite goes on after a failing check.)
set -uo pipefail
. "$(dirname "$0")/../lib/node.sh"
need_nodes
redis_start

printf 'echo served\n' >"$TEST_TMP/hi.sh"
# twin A B: B's config is a copy of A's under B's dirs, with A's node id
twin() {
	node_conf "$2"
	sed -i "s|^id = .*|id = $(node_id "$1")|" "$(node_dir "$2")/aispd.conf"
}
lock() { R GET "aisp:lock:$(node_id "$1")"; }
holds() { [[ "$(lock "$1")" == *" pid $2 "* ]]; }
gone() { ! kill -0 "$1" 2>/dev/null; }
# exits NAME SECONDS: NAME's aispd exits on its own within SECONDS; its status in RC
exits() {
	local pid
	pid=$(node_pid "$1")
	wait_for "$2" gone "$pid" || return 1
	wait "$pid"
	RC=$?
	unset "NODE_PID[$1]"
}

# ---------------------------------------------------------------- a live twin is refused
HTTP_PORT= RT_ENABLED=runc node_conf a
twin a b
node_start a
wait_for 30 node_registered a || bail "node a did not register: $(node_log a | tail -5)"
check "the first process holds the id's lock" holds a "$(node_pid a)"
started=$(R HGET "aisp:node:$(node_id a)" started_ms)
node_start b
# heartbeat 500 ms: the lock lives 1.5 s; b gives up after 2 s of refusals
if exits b 20; then
	is "the twin exits 1" "$RC" 1
	check "the twin says the id is in use by the live process, and exits" \
		grep -q "node id $(node_id a): aisp:lock:$(node_id a) is still held by host .* pid $(node_pid a) .*another live aispd has this id; exiting" "$(node_dir b)/log"
else
	not_ok "the twin exits" "$(node_log b | tail -5)"
fi
check "the twin read nothing" bash -c "! grep -q 'task=' '$(node_dir b)/log'"
check "the twin did not touch the live entry's lock" holds a "$(node_pid a)"
is "the live entry is the first process's" "$(R HGET "aisp:node:$(node_id a)" started_ms)" "$started"
run_task by-a shell "$TEST_TMP/hi.sh" runc '{"timeout_s":30}' '{}' 60
is "the first process serves on" "$(rfield by-a '.status + " " + .node + " " + .stdout')" "ok $(node_id a) served"

# ---------------------------------------------------------------- a refused twin removes nothing
# a is stopped (it cannot rewrite its entry); its lock lives 3 heartbeats of 10 s.
HTTP_PORT= RT_ENABLED=runc node_conf c
sed -i 's|^heartbeat_ms = .*|heartbeat_ms = 10000|' "$(node_dir c)/aispd.conf"
twin c d
node_start c
wait_for 30 node_registered c || bail "node c did not register"
kill -STOP "$(node_pid c)"
node_start d
if wait_for 20 grep -q "node id $(node_id c) is in use" "$(node_dir d)/log"; then
	node_stop d
	check "SIGTERM to the refused twin: it says it does not deregister" \
		grep -q "not deregistering $(node_id c): its lock is not this process's" "$(node_dir d)/log"
	is "the live (stopped) process's entry is still there" "$(R EXISTS "aisp:node:$(node_id c)")" 1
	is "... and in aisp:nodes" "$(R SISMEMBER aisp:nodes "$(node_id c)")" 1
	check "... and its lock is still its own" holds c "$(node_pid c)"
else
	not_ok "the twin of a stopped node waits for the lock" "$(node_log d | tail -5)"
fi
kill -CONT "$(node_pid c)"
node_stop c
is "the holder's own shutdown removes its entry and lock" "$(R EXISTS "aisp:node:$(node_id c)" "aisp:lock:$(node_id c)")" 0

# ---------------------------------------------------------------- takeover after a crash
node_kill a
HTTP_PORT= RT_ENABLED=runc node_conf b2
sed -i "s|^id = .*|id = $(node_id a)|" "$(node_dir b2)/aispd.conf"
node_start b2
if wait_for 20 holds a "$(node_pid b2)"; then
	ok "after a SIGKILL the same id is taken once the dead process's lock expired"
else
	not_ok "after a SIGKILL the same id is taken over" "$(node_log b2 | tail -5)"
fi
run_task by-b2 shell "$TEST_TMP/hi.sh" runc '{"timeout_s":30}' '{}' 60
is "the new process serves under the id" "$(rfield by-b2 '.status + " " + .node')" "ok $(node_id a)"

# ---------------------------------------------------------------- a lock taken while stopped
kill -STOP "$(node_pid b2)"
HTTP_PORT= RT_ENABLED=runc node_conf e
sed -i "s|^id = .*|id = $(node_id a)|" "$(node_dir e)/aispd.conf"
node_start e
if wait_for 20 holds a "$(node_pid e)"; then
	ok "a process stopped past its lock's TTL loses the id to a new one"
	kill -CONT "$(node_pid b2)"
	if exits b2 20; then
		is "the superseded process stops with exit 1" "$RC" 1
		check "... saying another aispd took its id" \
			grep -q "node id $(node_id a): the lock aisp:lock:$(node_id a) is now held by host .* pid $(node_pid e) .*: another aispd runs with this id; stopping" "$(node_dir b2)/log"
	else
		not_ok "the superseded process stops" "$(node_log b2 | tail -5)"
	fi
	check "the new holder keeps the id's lock" holds a "$(node_pid e)"
	is "... and its entry" "$(R EXISTS "aisp:node:$(node_id a)")" 1
	run_task by-e shell "$TEST_TMP/hi.sh" runc '{"timeout_s":30}' '{}' 60
	is "the new holder serves" "$(rfield by-e '.status + " " + .node')" "ok $(node_id a)"
else
	not_ok "a process stopped past its lock's TTL loses the id" "$(node_log e | tail -5)"
	kill -CONT "$(node_pid b2)"
fi
node_stop e
for n in a b b2 c d e; do is "nothing left behind by $n" "$(residue "$n")" ""; done

done_testing
