#!/usr/bin/env bash
# aisp keygen and aisp verify, end to end: key files and their modes, verification of the golden
# result with a key file and through a real redis-server (node registry and result key), and
# tampered results failing with the check that names the change. TAP output.
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
RESULT=$DATA/result.json
expect "golden result verifies" 0 '^PASS execution_digest' \
	"$AISP" verify "$RESULT" --pubkey "$DATA/test-pub.pem" --task "$DATA/task.json"
expect "with the task, input_digest is checked" 0 '^PASS input_digest' \
	"$AISP" verify "$RESULT" --pubkey "$DATA/test-pub.pem" --task "$DATA/task.json"
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
		"$AISP" verify golden-1 --redis "$AISP_REDIS" --task "$DATA/task.json"
	expect "verify a file with the key from Redis" 0 '^PASS signature' \
		"$AISP" verify "$RESULT" --redis "$AISP_REDIS"
	expect "an unknown task id" 1 'no result for task nope' \
		"$AISP" verify nope --redis "$AISP_REDIS"
	R DEL aisp:node:node-a >/dev/null
	expect "a node without a key" 1 'has no public key' \
		"$AISP" verify golden-1 --redis "$AISP_REDIS"
else
	skip "verify through Redis" "redis-server not installed"
fi

done_testing
