#!/usr/bin/env bash
# Live output (issue 16 item 4), against a real redis-server and aispd on runc and runsc: a task
# that asks for it (live_output, with a reply stream) gets a started event and its output as
# output events on its reply stream while it runs; `aisp submit --follow` prints the lines as
# they come and then the result without printing them twice; the events are bounded; a task
# that does not ask, and a sealed task, get none. Nothing here depends on timing: "while it
# runs" is proven by the lines being there while the program still blocks, before a cancel
# ends it. TAP output.
# No `set -e`: a TAP suite goes on past a failing step.
set -uo pipefail
. "$(dirname "$0")/../lib/node.sh"
need_nodes age-keygen
redis_start
LIMITS="max_stdout_bytes = 4194304" SLOTS=2 node_conf l1
node_start l1
wait_for 30 node_registered l1 || bail "node l1 did not register: $(node_log l1 | tail -5)"
L1=$(node_id l1)

# A program that prints a line a second and never ends by itself.
printf 'import time\nfor i in range(1, 1000):\n    print("line", i, flush=True)\n    time.sleep(1)\n' >"$TEST_TMP/tick.py"
# events STREAM ID: the event names of ID's entries on STREAM, in order
events_of() { R --raw XRANGE "$1" - + | awk -v id="$2" '
	/^id$/ {k="id"; next} k=="id" {cur=$0; k=""; next}
	/^event$/ {k="ev"; next} k=="ev" {if (cur==id) printf "%s ", $0; k=""; next}
	/^result$/ {if (cur==id) printf "result "; next}'; }

for rt in runc runsc; do
	# ---------------------------------------------------------------- the events themselves
	jq -nc --arg id "ev-$rt" --rawfile c "$TEST_TMP/tick.py" --arg rt "$rt" \
		'{id:$id, lang:"python", code:$c, runtime:$rt, reply_stream:("aisp:reply:live-" + $rt), live_output:true}' \
		>"$TEST_TMP/ev-$rt.json"
	submit_json "$(cat "$TEST_TMP/ev-$rt.json")" >/dev/null
	S=aisp:reply:live-$rt
	wait_for 60 bash -c "redis-cli -p $REDIS_PORT --raw XRANGE $S - + | grep -q 'line 2'"
	check "$rt: output events arrive while the task still runs (no result yet)" \
		[ "$(R EXISTS "aisp:result:ev-$rt")" = 0 ]
	first=$(R --raw XRANGE "$S" - + COUNT 1 | paste -sd' ')
	check "$rt: the first event is started, with the node, runtime and sandbox" \
		grep -qE "^[0-9-]+ id ev-$rt event started node $L1 runtime $rt sandbox aisp-[^ ]+ at_ms [0-9]+$" <<<"$first"
	second=$(R --raw XRANGE "$S" - + COUNT 2 | paste -sd' ' | sed -e 's/.* id ev/id ev/' -e 's/ $//')
	is "$rt: then an output event: stdout from offset 0" "$second" "id ev-$rt event output stream stdout offset 0 data line 1"
	"$AISP" cancel --wait --timeout 30 "ev-$rt" >/dev/null 2>&1
	wait_result "ev-$rt" 30
	is "$rt: the result comes last, after the events" "$(events_of "$S" "ev-$rt" | awk '{print $1, $NF}')" "started result"
	expected=$(rfield "ev-$rt" .stdout)
	live=$(R --raw XRANGE "$S" - + | awk '/^data$/ {getline; print}')
	is "$rt: the output events, in order, are the beginning of the signed result's stdout" \
		"${expected:0:${#live}}" "$live"

	# ---------------------------------------------------------------- aisp submit --follow
	"$AISP" submit --follow --id "fw-$rt" --runtime "$rt" "$TEST_TMP/tick.py" >"$TEST_TMP/fw-$rt.out" 2>"$TEST_TMP/fw-$rt.err" &
	fw=$!
	wait_for 60 grep -q "line 2" "$TEST_TMP/fw-$rt.out"
	check "$rt: --follow printed lines while the task runs" [ "$(R EXISTS "aisp:result:fw-$rt")" = 0 ]
	check "$rt: --follow said where it started" grep -q "aisp: started on node $L1, runtime $rt, sandbox aisp-" "$TEST_TMP/fw-$rt.err"
	"$AISP" cancel "fw-$rt" >/dev/null
	wait "$fw"
	is "$rt: --follow exits as --wait does (130: cancelled)" "$?" 130
	wait_result "fw-$rt" 10
	is "$rt: --follow printed the result's stdout exactly once" "$(cat "$TEST_TMP/fw-$rt.out")" "$(rfield "fw-$rt" .stdout | sed '$ { /^$/d }')"
done

# ---------------------------------------------------------------- bounds
# 3 MiB of output at once, in 3-byte characters: the events carry at most 1 MiB, in events of
# at most 16 KiB, none splitting a character; the result has all of it, and --follow prints all
# of it once.
printf 'import sys\nsys.stdout.write("\\u20ac" * (1 << 20))\n' >"$TEST_TMP/big.py"
"$AISP" submit --follow --id big --runtime runc --reply-stream aisp:reply:big --stdout-bytes 4194304 \
	"$TEST_TMP/big.py" >"$TEST_TMP/big.out" 2>"$TEST_TMP/big.err"
is "a flood: --follow exit 0" "$?" 0
is "a flood: --follow printed the whole output once" "$(wc -c <"$TEST_TMP/big.out")" $((3 << 20))
sizes=$(R --raw XRANGE aisp:reply:big - + | LC_ALL=C awk '/^data$/ {getline; print length($0)}')
total=$(awk '{s += $1} END {print s + 0}' <<<"$sizes")
max=$(sort -n <<<"$sizes" | tail -1)
check "a flood: the events carried at most 1 MiB ($total bytes)" [ "$total" -le 1048576 -a "$total" -gt 0 ]
check "a flood: no event above 16 KiB (largest $max)" [ "${max:-0}" -le 16384 ]
R --raw XRANGE aisp:reply:big - + | awk '/^data$/ {getline; print}' >"$TEST_TMP/big.events"
check "a flood: every event is whole UTF-8 characters (none split between two events)" \
	/usr/bin/python3 -c 'import sys; [l.rstrip(b"\n").decode("utf-8") for l in open(sys.argv[1], "rb")]' "$TEST_TMP/big.events"

# ---------------------------------------------------------------- who gets none
printf 'print("quiet")\n' >"$TEST_TMP/quiet.py"
"$AISP" submit --wait --id quiet --runtime runc --reply-stream aisp:reply:quiet "$TEST_TMP/quiet.py" >/dev/null 2>&1
is "a task that does not ask: its reply stream has the result only" "$(events_of aisp:reply:quiet quiet)" "result "
submit_json '{"id":"nolive2","lang":"python","code":"print(1)","live_output":true}' >/dev/null
wait_result nolive2 30
is "live_output without a reply stream is rejected by name" "$(rfield nolive2 '.status + ": " + .error')" \
	'rejected: field "live_output" needs a "reply_stream": the live events go there'
age-keygen -o "$TEST_TMP/buyer.key" 2>/dev/null
BUYER=$(age-keygen -y "$TEST_TMP/buyer.key")
printf 'print("secret output")\n' >"$TEST_TMP/secret.py"
"$AISP" submit --follow --id sealed-live --runtime runc --seal-to "node:$L1" --reply-to "$BUYER" \
	--reply-stream aisp:reply:sealed "$TEST_TMP/secret.py" >"$TEST_TMP/sealed.out" 2>&1
is "a sealed task: its reply stream gets no event, only the result" "$(events_of aisp:reply:sealed sealed-live)" "result "
check "a sealed task: --follow printed nothing of its output" bash -c "! grep -q 'secret output' '$TEST_TMP/sealed.out'"

node_stop l1
is "the node exits 0" "$?" 0
done_testing
