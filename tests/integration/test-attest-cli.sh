#!/usr/bin/env bash
# aisp keygen and aisp verify, end to end: key files and their modes, verification of the golden
# results with a key file and through a real redis-server (the key by key id, the node registry,
# the result key), tampered results failing with the check that names the change (the error
# text included), the SKIP line without a task, and the documented exit statuses. TAP output.
# Usage: test-attest-cli.sh TESTDATA_DIR   (AISP_BIN: the aisp binary)
# `set -e`: every step outside the checks prepares their input; a failing one ends the suite
# (no plan: meson reports an error), a failing check does not.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/node.sh"

DATA=$1
: "${AISP_BIN:?AISP_BIN must name the aisp binary}"
W=$TEST_TMP

# ---- keygen ----
expect "keygen creates a pair" 0 '^key id sha256:' "$AISP" keygen --out "$W/keys"
is "private.pem is 0600" "$(stat -c %a "$W/keys/private.pem")" 600
is "public.pem is 0644" "$(stat -c %a "$W/keys/public.pem")" 644
expect "keygen refuses to overwrite" 1 'use --force' "$AISP" keygen --out "$W/keys"
cp "$W/keys/public.pem" "$W/old.pem"
expect "keygen --force replaces" 0 '^key id' "$AISP" keygen --out "$W/keys" --force
if cmp -s "$W/old.pem" "$W/keys/public.pem"; then not_ok "new key differs"; else ok "new key differs"; fi
expect "keygen needs --out" 2 'usage' "$AISP" keygen

# ---- verify with a key file ----
B=$DATA/01-basic
RESULT=$B/result.json
expect "golden result verifies" 0 '^PASS execution_digest' \
	"$AISP" verify "$RESULT" --pubkey "$DATA/test-pub.pem" --task "$B/task.json"
expect "with the task, input_digest is checked" 0 '^PASS input_digest' \
	"$AISP" verify "$RESULT" --pubkey "$DATA/test-pub.pem" --task "$B/task.json"
expect "without a task, input_digest is a SKIP line" 0 '^SKIP input_digest (no --task)$' \
	"$AISP" verify "$RESULT" --pubkey "$DATA/test-pub.pem"
expect "--replay without --task is a usage error" 2 'needs the task' \
	"$AISP" verify "$RESULT" --pubkey "$DATA/test-pub.pem" --replay
for d in "$DATA"/[0-9][0-9]-*/; do
	t=$d/task.json
	[ -f "$t" ] && set -- --task "$t" || set --
	expect "vector $(basename "$d") verifies" 0 '^PASS limits' \
		"$AISP" verify "$d/result.json" --pubkey "$DATA/test-pub.pem" "$@"
done
set --
# The vectors are one node's chain, in directory order.
expect "the vectors verify as one chain" 0 '^PASS chain' \
	"$AISP" verify "$DATA"/[0-9][0-9]-*/result.json --pubkey "$DATA/test-pub.pem"
jq -c '.error = "your account is suspended: pay at evil.example"' "$RESULT" >"$W/error.json"
expect "an error text added to an ok result fails error" 1 '^FAIL error: error differs' \
	"$AISP" verify "$W/error.json" --pubkey "$DATA/test-pub.pem"
jq -c '.error = "ValueError: nothing to see"' "$DATA/07-function-error/result.json" >"$W/error2.json"
expect "a changed error text fails error" 1 '^FAIL error: error differs (statement "ValueError: bad' \
	"$AISP" verify "$W/error2.json" --pubkey "$DATA/test-pub.pem"
expect "another node's key fails the signature" 1 '^FAIL signature' \
	"$AISP" verify "$RESULT" --pubkey "$W/keys/public.pem"
sed 's/"stdout":"input data\\n"/"stdout":"input dbta\\n"/' "$RESULT" >"$W/stdout.json"
expect "changed stdout fails subjects" 1 '^FAIL subjects: stdout differs' \
	"$AISP" verify "$W/stdout.json" --pubkey "$DATA/test-pub.pem"
sed 's/"exit_code":0/"exit_code":1/' "$RESULT" >"$W/exit.json"
expect "changed exit code fails exit" 1 '^FAIL exit: exit_code differs' \
	"$AISP" verify "$W/exit.json" --pubkey "$DATA/test-pub.pem"
sed 's/"node":"node-a"/"node":"node-b"/' "$RESULT" >"$W/node.json"
expect "changed node fails metadata" 1 '^FAIL metadata: node_id differs' \
	"$AISP" verify "$W/node.json" --pubkey "$DATA/test-pub.pem"
expect "the same result twice is not a chain" 1 '^FAIL chain' \
	"$AISP" verify "$RESULT" "$RESULT" --pubkey "$DATA/test-pub.pem"
expect "a missing file is reported" 1 '^FAIL result' \
	"$AISP" verify "$W/none.json" --pubkey "$DATA/test-pub.pem"
expect "verify needs a key source" 2 'exactly one of' "$AISP" verify "$RESULT"

# ---- verify through Redis: node registry key, result by task id ----
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
	redis_start
	R HSET aisp:node:node-a pubkey "$(cat "$DATA/test-pub.pem")" >/dev/null
	R -x SET aisp:result:golden-1 <"$RESULT" >/dev/null
	expect "verify a task id through Redis" 0 '^PASS metadata' \
		"$AISP" verify golden-1 --redis "$AISP_REDIS" --task "$B/task.json"
	expect "verify a file with the key from Redis" 0 '^PASS signature' \
		"$AISP" verify "$RESULT" --redis "$AISP_REDIS"
	expect "an unknown task id" 1 'no result for task nope' \
		"$AISP" verify nope --redis "$AISP_REDIS"
	# The error text forged in Redis, as `aisp wait` would print it: verify names error.
	jq -c '.error = "forged"' "$RESULT" | R -x SET aisp:result:forged-1 >/dev/null
	expect "an error forged in Redis fails error" 1 '^FAIL error: error differs (statement none, result "forged")' \
		"$AISP" verify forged-1 --redis "$AISP_REDIS"
	R DEL aisp:node:node-a >/dev/null
	expect "a node without a key" 1 'no public key in Redis' \
		"$AISP" verify golden-1 --redis "$AISP_REDIS"
	# A stopped node's key stays by key id (aisp:key:<id>): its results still verify.
	kid=$(jq -r '.attestation.signatures[0].keyid' "$RESULT")
	R HSET "aisp:key:$kid" pubkey "$(cat "$DATA/test-pub.pem")" \
		node.node-a 1767225600000 >/dev/null
	expect "the key by key id verifies without the node's entry" 0 '^PASS signature' \
		"$AISP" verify golden-1 --redis "$AISP_REDIS"
	R HDEL "aisp:key:$kid" node.node-a >/dev/null
	R HSET "aisp:key:$kid" node.node-b 1767225600000 >/dev/null
	expect "a key id not registered to the result's node is refused" 1 'not registered to node node-a' \
		"$AISP" verify golden-1 --redis "$AISP_REDIS"
	"$AISP" keygen --out "$W/other" >/dev/null
	R HSET "aisp:key:$kid" pubkey "$(cat "$W/other/public.pem")" \
		node.node-a 1767225600000 >/dev/null
	expect "a key that does not hash to its key id is refused" 1 'whose id is not' \
		"$AISP" verify golden-1 --redis "$AISP_REDIS"
	# aisp submit --task-out writes exactly the task it sends; --nondeterministic marks it.
	expect "submit --task-out --nondeterministic" 0 '^audit-1$' \
		"$AISP" submit --redis "$AISP_REDIS" --id audit-1 --nondeterministic \
		--task-out "$W/sent.json" -c 'import time; print(time.time())'
	R --raw XRANGE aisp:tasks - + | sed -n '3p' >"$W/xadd.json"
	printf '\n' >>"$W/sent.json"
	if cmp -s "$W/sent.json" "$W/xadd.json"; then ok "--task-out holds the exact bytes sent"
	else not_ok "--task-out differs from the stream entry: $(cat "$W/sent.json") vs $(cat "$W/xadd.json")"; fi
	[ "$(jq -r .nondeterministic "$W/sent.json")" = true ] && ok "the task is marked nondeterministic" ||
		not_ok "nondeterministic missing: $(cat "$W/sent.json")"
	expect "--task-out into a missing directory submits nothing" 1 'task-out' \
		"$AISP" submit --redis "$AISP_REDIS" --id audit-2 --task-out "$W/no/such/t.json" -c 'print(1)'
	[ "$(R XLEN aisp:tasks)" = 1 ] && ok "nothing was sent" ||
		not_ok "a task was sent although --task-out failed"
else
	skip "verify through Redis" "redis-server not installed"
fi

done_testing
