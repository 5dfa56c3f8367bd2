#!/usr/bin/env bash
# aisp cancel / aisp:cancel:<id> (issue 16 item 5), against a real redis-server and aispd on runc
# and runsc: a queued task is never run; a running task's sandbox is destroyed; exactly one
# result either way, status cancelled, signed. TAP output.
# No `set -e`: a TAP suite goes on past a failing step (that test point says "not ok" and the
# remaining ones still run), and many steps test a command's exit status.
set -uo pipefail
. "$(dirname "$0")/../lib/node.sh"
need_nodes
redis_start

printf 'echo ran >&2\necho started\nsleep 60\necho never\n' >"$TEST_TMP/long.sh"
printf 'echo hi\n' >"$TEST_TMP/hi.sh"

# verified ID: the result verifies with the nodes' public key
verified() { result "$1" >"$TEST_TMP/$1.result.json" && "$AISP" verify --pubkey "$TEST_TMP/key/public.pem" "$TEST_TMP/$1.result.json" >/dev/null; }

# ---------------------------------------------------------------- queued: never run
# No node runs yet: the task waits in the stream, and is cancelled there.
submit_json "$(task_json q-cancel shell "$TEST_TMP/hi.sh" runc null '{"reply_stream":"aisp:reply:qc"}')" >/dev/null
check "aisp cancel of a queued task is accepted" "$AISP" cancel q-cancel
SLOTS=2 RT_ENABLED="runc, runsc" node_conf c1
node_start c1
wait_for 30 node_registered c1 || bail "node c1 did not register: $(node_log c1 | tail -5)"
wait_result q-cancel 30
is "queued task cancelled: status" "$(rfield q-cancel '.status + " " + .error')" \
	"cancelled cancelled by request before it ran"
check "queued task cancelled: it never ran" [ "$(node_log c1 | grep -c 'task=q-cancel .*event=started')" = 0 ]
is "queued task cancelled: one result event" "$(events q-cancel)" 1
check "queued task cancelled: the result is signed" verified q-cancel
wait_for 10 prints 1 R XLEN aisp:reply:qc
is "queued task cancelled: its reply stream heard" "$(R XLEN aisp:reply:qc)" 1

# ---------------------------------------------------------------- running: stopped
for rt in runc runsc; do
	submit_json "$(task_json run-$rt shell "$TEST_TMP/long.sh" $rt)" >/dev/null
	wait_for 60 grep -q "task=run-$rt .*event=started" "$(node_dir c1)/log"
	sleep 1
	t0=$(date +%s%3N)
	"$AISP" cancel --wait --timeout 30 run-$rt >"$TEST_TMP/c-$rt.out" 2>"$TEST_TMP/c-$rt.err"
	rc=$?
	t1=$(date +%s%3N)
	is "$rt running task cancelled: aisp cancel --wait exits 130" "$rc" 130
	is "$rt running task cancelled: status" "$(rfield run-$rt '.status + " " + .error')" \
		"cancelled cancelled by request while it ran"
	check "$rt running task cancelled: stopped long before its 60 s ($((t1 - t0)) ms)" \
		[ $((t1 - t0)) -lt 20000 ]
	is "$rt running task cancelled: one result event" "$(events run-$rt)" 1
	check "$rt running task cancelled: the result is signed" verified run-$rt
	check "$rt running task cancelled: 'never' was never printed" \
		bash -c "! grep -q never <<<'$(rfield run-$rt .stdout)'"
done

# ---------------------------------------------------------------- a cancel after the result
submit_json "$(task_json done1 shell "$TEST_TMP/hi.sh" runc)" >/dev/null
wait_result done1 30
"$AISP" cancel done1 >/dev/null
sleep 1.5
is "a cancel after the result changes nothing" "$(rfield done1 .status)/$(events done1)" "ok/1"
node_stop c1
check "node c1 left no residue" [ -z "$(residue c1)" ]

done_testing
