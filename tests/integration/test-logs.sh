#!/usr/bin/env bash
# Logs an operator can grep (issue 15 item 7), against a real redis-server, runc, runsc and a
# runtime that refuses every container: at the shipped log level (info) every line that names
# a task is one key=value line (parsed by logfmt.py) with task= and entry=; a task that ran has
# a started and a published line with sandbox=, runtime=, status= (the status of its result
# in Redis) and ms=; a rejected task's reason and a sandbox error are quoted values that cannot
# fake a field; `grep 'task=ID '` finds the task's lines and no other task's.
# TAP output. (-e is off on purpose: a TAP suite goes on after a failing check.)
set -uo pipefail
. "$(dirname "$0")/../lib/node.sh"
need_nodes
redis_start

LOGFMT=$(dirname "$0")/logfmt.py
broken_runtime "$TEST_TMP/broken-runtime"
RT_ENABLED="runc, runsc, broken" MAX_DELIVERIES=2 \
	EXTRA_SECTIONS=$'[runtime.broken]\nkind = runc\npath = '"$TEST_TMP/broken-runtime" node_conf l
sed -i 's/^log_level = .*/log_level = info/' "$(node_dir l)/aispd.conf"
node_start l
wait_for 30 node_registered l || bail "node l did not register: $(node_log l | tail -5)"

printf 'print("logged")\n' >"$TEST_TMP/ok.py"
declare -A ENTRY
# send ID JSON: submits, records the entry id
send() { ENTRY[$1]=$(submit_json "$2"); }
send logs-runc "$(task_json logs-runc python "$TEST_TMP/ok.py" runc)"
send logs-runsc "$(task_json logs-runsc python "$TEST_TMP/ok.py" runsc)"
# a prefix of logs-runc's id: grep task=logs-run must not be taken for either
send logs-run "$(task_json logs-run python "$TEST_TMP/ok.py" runc)"
# an unknown field whose name tries to fake fields and a second line
send logs-bad '{"id":"logs-bad","lang":"python","code":"1","x\" sandbox=evil\nstatus=ok":1}'
send logs-poison "$(task_json logs-poison python "$TEST_TMP/ok.py" broken)"
for id in logs-runc logs-runsc logs-run logs-bad logs-poison; do
	wait_result "$id" 120 || not_ok "$id: a result" "$(node_log l | grep -- "$id" | tail -5)"
done

# lines ID: the log's lines that mention ID, parsed (logfmt.py)
lines() { /usr/bin/python3 "$LOGFMT" "$(node_dir l)/log" "$1"; }
# ev ID EVENT JQ: JQ on the fields of ID's EVENT lines (a JSON array of them)
ev() { lines "$1" | jq -c --arg id "$1" --arg ev "$2" "[.[] | .fields | select(.task == \$id and .event == \$ev)] | $3"; }

# every line that names a task: key=value all through, with this task's task= and entry=
for id in logs-runc logs-runsc logs-run logs-bad logs-poison; do
	n=$(lines "$id" | jq --arg id "$id" --arg e "${ENTRY[$id]}" \
		'[.[] | select(.line | test("\\b" + $id + "\\b"))]
		 | if length == 0 then -1 else map(select(.fields == null or .fields.task != $id
		     or .fields.entry != $e)) | length end')
	is "$id: every line naming it is key=value with task=$id entry=${ENTRY[$id]}" "$n" 0
done
# task= is always followed by entry=: "task=ID " matches that id only, not an id it begins
n=$(lines logs-run | jq '[.[] | select(.fields.task == "logs-run")] | length')
check "grep 'task=logs-run ' finds its $n lines and none of logs-runc's or logs-runsc's" \
	test "$(grep -c 'task=logs-run ' "$(node_dir l)/log")" = "$n" -a "$n" -ge 2
for rt in runc runsc; do
	id=logs-$rt
	sb=$(ev "$id" started '.[0].sandbox')
	check "$id: a started line names its sandbox ($sb) and runtime=$rt" \
		test "$(ev "$id" started "map(select(.runtime == \"$rt\" and .sandbox != null)) | length")" = 1
	is "$id: one published line, status= as in its result ($(rfield "$id" .status)), the same sandbox" \
		"$(ev "$id" published "map({status, runtime, sandbox, attempts}) | .[]")" \
		"$(jq -nc --arg s "$(rfield "$id" .status)" --arg rt "$rt" --argjson sb "$sb" \
			'{status:$s, runtime:$rt, sandbox:$sb, attempts:"1"}')"
	check "$id: ms= on every line is a whole number of milliseconds" \
		test "$(lines "$id" | jq '[.[] | .fields.ms | select(test("^[0-9]+$") | not)] | length')" = 0
done

is "logs-bad: the rejection's reason quotes the bad field name whole" \
	"$(ev logs-bad rejected '.[0].reason')" '"unknown field \"x\\\" sandbox=evil\\x0astatus=ok\""'
is "logs-bad: no field faked (no sandbox=, the published status= is rejected)" \
	"$(ev logs-bad rejected '.[0].sandbox'),$(ev logs-bad published '.[0].status')" 'null,"rejected"'
check "logs-bad: the log holds no line break of the task's (one line per event)" \
	bash -c "! grep -q '^status=ok' '$(node_dir l)/log'"

err=$(ev logs-poison sandbox_error '.[0]')
is "logs-poison: a sandbox_error line with runtime=broken, retry=1" \
	"$(jq -r '[.runtime, .retry] | @tsv' <<<"$err")" $'broken\t1'
is "... and the result's error ends with the dead_lettered line's error" \
	"$(rfield logs-poison .error)" "gave up after 2 deliveries: $(ev logs-poison dead_lettered '.[0].error' | jq -r .)"
is "logs-poison: dead_lettered after 2 deliveries, published status=internal" \
	"$(ev logs-poison dead_lettered '.[0].deliveries'),$(ev logs-poison published '.[0].status')" '"2","internal"'

node_stop l
is "the node stops cleanly" "$?" 0
done_testing
