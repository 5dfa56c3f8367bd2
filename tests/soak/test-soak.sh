#!/usr/bin/env bash
# The soak suite (issue 7): AISP_SOAK_TASKS tasks (default 2000) through 2 aispd nodes, mixed
# languages (python, javascript, shell), runtimes (runc mostly; every 20th task on runsc, which
# costs ~1.5 s of a core per sandbox on this 2-core machine) and outcomes (ok, non-zero exit,
# timeout with a 0.3 s limit, output_limit with a 1 KiB cap). Every task must get exactly one
# result with the expected status and output. Each aispd's fd count and RSS are measured after
# a warm-up (AISP_SOAK_WARMUP, default 200 tasks) and at the end: the fd count may not grow
# (bound: +4, the Redis reconnect and HTTP slack), RSS by at most 4 MiB (a leak of 2.3 KiB
# per task would pass it after 1800 tasks). After the nodes stop:
# no containers, bundle dirs, cgroups, mounts or processes left.
# No `set -e`: a TAP suite goes on past a failing step (that test point says "not ok" and the
# remaining ones still run), and many steps test a command's exit status.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/node.sh"
need_nodes
TOTAL=${AISP_SOAK_TASKS:-2000}
WARM=${AISP_SOAK_WARMUP:-200}
[ "$WARM" -lt "$TOTAL" ] || WARM=$((TOTAL / 10))
FD_BOUND=4
RSS_BOUND_KB=$((4 * 1024))
redis_start

SLOTS=2 POOL=$'runc/default/python = 1\nrunc/default/shell = 1' node_conf so1
SLOTS=2 POOL=$'runc/default/javascript = 1\nrunc/default/python = 1' node_conf so2
node_start so1
node_start so2
wait_for 30 node_registered so1 && wait_for 30 node_registered so2 || bail "nodes did not register"

# task i -> its kind (decides language, runtime, limits and the expected result)
kind() {
	case $(($1 % 20)) in
	0) echo runsc ;;
	1 | 7 | 13) echo exit ;;
	2 | 12) echo timeout ;;
	3 | 15) echo flood ;;
	4 | 8 | 11 | 16 | 19) echo js ;;
	5 | 9 | 14 | 18) echo sh ;;
	*) echo py ;;
	esac
}
# tasks FROM TO: prints the XADD commands (redis-cli input) of tasks FROM..TO
tasks() {
	local i k
	for i in $(seq "$1" "$2"); do
		k=$(kind "$i")
		case $k in
		py) jq -nc --arg id "soak-$i" --arg c "print($i * 2)" '{id:$id,lang:"python",runtime:"runc",code:$c}' ;;
		js) jq -nc --arg id "soak-$i" --arg c "console.log($i * 2)" '{id:$id,lang:"javascript",runtime:"runc",code:$c}' ;;
		sh) jq -nc --arg id "soak-$i" --arg c "echo \$(($i * 2))" '{id:$id,lang:"shell",runtime:"runc",code:$c}' ;;
		exit) jq -nc --arg id "soak-$i" --arg c "echo $((i * 2)); exit 3" '{id:$id,lang:"shell",runtime:"runc",code:$c}' ;;
		timeout) jq -nc --arg id "soak-$i" '{id:$id,lang:"shell",runtime:"runc",code:"sleep 5",limits:{timeout_s:0.3}}' ;;
		flood) jq -nc --arg id "soak-$i" '{id:$id,lang:"python",runtime:"runc",code:"while True: print(\"x\" * 100)",limits:{stdout_bytes:1024}}' ;;
		runsc) jq -nc --arg id "soak-$i" --arg c "print($i * 2)" '{id:$id,lang:"python",runtime:"runsc",code:$c}' ;;
		esac
	done | while IFS= read -r json; do
		printf 'XADD aisp:tasks * task %s\n' "$(printf '%s' "$json" | sed 's/\\/\\\\/g; s/"/\\"/g; s/^/"/; s/$/"/')"
	done
}
published() { R XLEN aisp:results; }
stat_nodes() { # prints "fds rss_kb" of so1 and so2
	echo "$(fd_count "$(node_pid so1)") $(rss_kb "$(node_pid so1)") $(fd_count "$(node_pid so2)") $(rss_kb "$(node_pid so2)")"
}

t0=$(date +%s)
tasks 1 "$WARM" | R >/dev/null
wait_for $((WARM * 2 + 120)) prints "$WARM" published || not_ok "warm-up: $WARM results" "$(published) published"
sleep 2 # let the pools refill and the destroyed sandboxes go
read -r fd1a rss1a fd2a rss2a <<<"$(stat_nodes)"
t1=$(date +%s)
diag "warm-up: $WARM tasks in $((t1 - t0)) s; so1 fds $fd1a rss ${rss1a} kB, so2 fds $fd2a rss ${rss2a} kB"

tasks $((WARM + 1)) "$TOTAL" | R >/dev/null
if wait_for $(((TOTAL - WARM) * 2 + 300)) prints "$TOTAL" published; then
	ok "$TOTAL results published"
else
	not_ok "$TOTAL results published" "$(published) published"
fi
t2=$(date +%s)
sleep 2
read -r fd1b rss1b fd2b rss2b <<<"$(stat_nodes)"
diag "all $TOTAL tasks in $((t2 - t0)) s ($(((TOTAL - WARM) / ((t2 - t1) > 0 ? (t2 - t1) : 1))) tasks/s after the warm-up)"
diag "so1 fds $fd1a -> $fd1b, rss $rss1a -> $rss1b kB; so2 fds $fd2a -> $fd2b, rss $rss2a -> $rss2b kB"

# Exactly once: one aisp:results event per id, every id, nothing else.
R XRANGE aisp:results - + | grep '^soak-' | sort >"$TEST_TMP/events"
is "every id has exactly one aisp:results event" "$(uniq -d "$TEST_TMP/events" | wc -l) $(sort -u "$TEST_TMP/events" | wc -l)" "0 $TOTAL"
# Every result as expected (status and output by kind).
for i in $(seq 1 "$TOTAL"); do echo "GET aisp:result:soak-$i"; done | R >"$TEST_TMP/results"
bad=$(jq -r --slurp '
	def want(i): (i % 20) as $m |
		if $m == 0 then ["ok", 0, "\(i * 2)\n"]
		elif ([1,7,13] | index($m)) then ["ok", 3, "\(i * 2)\n"]
		elif ([2,12] | index($m)) then ["timeout", null, null]
		elif ([3,15] | index($m)) then ["output_limit", null, null]
		else ["ok", 0, "\(i * 2)\n"] end;
	.[] | (.id | ltrimstr("soak-") | tonumber) as $i | want($i) as $w |
	select(.status != $w[0] or ($w[1] != null and .exit_code != $w[1]) or
	       ($w[2] != null and .stdout != $w[2]) or
	       ($w[0] == "output_limit" and (.stdout_truncated | not))) |
	"\(.id): \(.status) \(.exit_code) \(.stdout // "" | .[:40]) \(.error // "")"' "$TEST_TMP/results" 2>&1)
n_res=$(jq -s length "$TEST_TMP/results" 2>/dev/null)
is "every task has its result document ($n_res)" "$n_res" "$TOTAL"
if [ -z "$bad" ]; then
	ok "every result has the expected status and output"
else
	not_ok "results with an unexpected status or output: $(echo "$bad" | wc -l)" "$(echo "$bad" | head -20)"
fi
summary=$(jq -r -s 'group_by(.status) | map("\(.[0].status) \(length)") | join(", ")' "$TEST_TMP/results")
runtimes=$(jq -r -s 'group_by(.runtime) | map("\(.[0].runtime) \(length)") | join(", ")' "$TEST_TMP/results")
by=$(jq -r -s 'group_by(.node) | map("\(.[0].node) \(length)") | join(", ")' "$TEST_TMP/results")
diag "statuses: $summary; runtimes: $runtimes; nodes: $by"
check "both nodes served" test "$(jq -r -s 'map(.node) | unique | length' "$TEST_TMP/results")" = 2
is "the task stream is empty" "$(R XLEN aisp:tasks)" 0
is "no run leases left" "$(R --scan --pattern 'aisp:running:*' | wc -l)" 0

# Leaks: fds and RSS after the warm-up vs at the end.
check "so1 fd count bounded: $fd1a -> $fd1b (bound +$FD_BOUND)" test "$fd1b" -le $((fd1a + FD_BOUND))
check "so2 fd count bounded: $fd2a -> $fd2b (bound +$FD_BOUND)" test "$fd2b" -le $((fd2a + FD_BOUND))
check "so1 RSS bounded: $rss1a -> $rss1b kB (bound +$RSS_BOUND_KB kB)" test "$rss1b" -le $((rss1a + RSS_BOUND_KB))
check "so2 RSS bounded: $rss2a -> $rss2b kB (bound +$RSS_BOUND_KB kB)" test "$rss2b" -le $((rss2a + RSS_BOUND_KB))

# Idle nodes hold only their warm pools; stopped nodes hold nothing.
check "so1 drains and exits 0" node_stop so1
check "so2 drains and exits 0" node_stop so2
is "no containers, bundle dirs, cgroups, mounts or processes left" "$(residue so1)$(residue so2)" ""
done_testing
