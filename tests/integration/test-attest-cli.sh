#!/bin/sh
# aisp keygen and aisp verify, end to end: key files and their modes, verification of the golden
# results with a key file and through a real redis-server (the key by key id, the node registry,
# the result key), tampered results failing with the check that names the change (the error
# text included), the SKIP line without a task, and the documented exit statuses. TAP output.
# Usage: test-attest-cli.sh TESTDATA_DIR   (AISP_BIN: the aisp binary)
set -eu

DATA=$1
AISP=${AISP_BIN:?AISP_BIN must name the aisp binary}
W=$(mktemp -d /tmp/test-attest-cli.XXXXXX)
REDIS_PID=
cleanup() {
	if [ -n "$REDIS_PID" ]; then
		kill "$REDIS_PID" 2>/dev/null || true
		wait "$REDIS_PID" 2>/dev/null || true
	fi
	rm -rf "$W"
}
trap cleanup EXIT INT TERM

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
# expect NAME WANT_RC GREP_PATTERN CMD...: runs CMD, checks its exit status and output.
expect() {
	_name=$1 _rc=$2 _pat=$3
	shift 3
	set +e
	"$@" >"$W/out" 2>&1
	_got=$?
	set -e
	if [ "$_got" -eq "$_rc" ] && grep -q -e "$_pat" "$W/out"; then
		ok "$_name"
	else
		not_ok "$_name (exit $_got, want $_rc; output: $(tr '\n' '|' <"$W/out"))"
	fi
}

# ---- keygen ----
expect "keygen creates a pair" 0 '^key id sha256:' "$AISP" keygen --out "$W/keys"
mode=$(stat -c %a "$W/keys/private.pem")
[ "$mode" = 600 ] && ok "private.pem is 0600" || not_ok "private.pem is $mode"
mode=$(stat -c %a "$W/keys/public.pem")
[ "$mode" = 644 ] && ok "public.pem is 0644" || not_ok "public.pem is $mode"
expect "keygen refuses to overwrite" 1 'use --force' "$AISP" keygen --out "$W/keys"
cp "$W/keys/public.pem" "$W/old.pem"
expect "keygen --force replaces" 0 '^key id' "$AISP" keygen --out "$W/keys" --force
if cmp -s "$W/old.pem" "$W/keys/public.pem"; then not_ok "new key differs"; else ok "new key differs"; fi
expect "keygen needs --out" 2 'usage' "$AISP" keygen

# ---- verify with a key file ----
B=$DATA/01-basic
R=$B/result.json
expect "golden result verifies" 0 '^PASS execution_digest' \
	"$AISP" verify "$R" --pubkey "$DATA/test-pub.pem" --task "$B/task.json"
expect "with the task, input_digest is checked" 0 '^PASS input_digest' \
	"$AISP" verify "$R" --pubkey "$DATA/test-pub.pem" --task "$B/task.json"
expect "without a task, input_digest is a SKIP line" 0 '^SKIP input_digest (no --task)$' \
	"$AISP" verify "$R" --pubkey "$DATA/test-pub.pem"
expect "--replay without --task is a usage error" 2 'needs the task' \
	"$AISP" verify "$R" --pubkey "$DATA/test-pub.pem" --replay
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
jq -c '.error = "your account is suspended: pay at evil.example"' "$R" >"$W/error.json"
expect "an error text added to an ok result fails error" 1 '^FAIL error: error differs' \
	"$AISP" verify "$W/error.json" --pubkey "$DATA/test-pub.pem"
jq -c '.error = "ValueError: nothing to see"' "$DATA/07-function-error/result.json" >"$W/error2.json"
expect "a changed error text fails error" 1 '^FAIL error: error differs (statement "ValueError: bad' \
	"$AISP" verify "$W/error2.json" --pubkey "$DATA/test-pub.pem"
expect "another node's key fails the signature" 1 '^FAIL signature' \
	"$AISP" verify "$R" --pubkey "$W/keys/public.pem"
sed 's/"stdout":"input data\\n"/"stdout":"input dbta\\n"/' "$R" >"$W/stdout.json"
expect "changed stdout fails subjects" 1 '^FAIL subjects: stdout differs' \
	"$AISP" verify "$W/stdout.json" --pubkey "$DATA/test-pub.pem"
sed 's/"exit_code":0/"exit_code":1/' "$R" >"$W/exit.json"
expect "changed exit code fails exit" 1 '^FAIL exit: exit_code differs' \
	"$AISP" verify "$W/exit.json" --pubkey "$DATA/test-pub.pem"
sed 's/"node":"node-a"/"node":"node-b"/' "$R" >"$W/node.json"
expect "changed node fails metadata" 1 '^FAIL metadata: node_id differs' \
	"$AISP" verify "$W/node.json" --pubkey "$DATA/test-pub.pem"
expect "the same result twice is not a chain" 1 '^FAIL chain' \
	"$AISP" verify "$R" "$R" --pubkey "$DATA/test-pub.pem"
expect "a missing file is reported" 1 '^FAIL result' \
	"$AISP" verify "$W/none.json" --pubkey "$DATA/test-pub.pem"
expect "verify needs a key source" 2 'exactly one of' "$AISP" verify "$R"

# ---- verify through Redis: node registry key, result by task id ----
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
	port=$((20000 + $$ % 20000))
	redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
		>"$W/redis.log" 2>&1 &
	REDIS_PID=$!
	i=0
	until redis-cli -p "$port" ping >/dev/null 2>&1 || [ $i -ge 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -0 "$REDIS_PID" 2>/dev/null || { echo "Bail out! redis-server did not start on $port"; exit 1; }
	redis-cli -p "$port" HSET aisp:node:node-a pubkey "$(cat "$DATA/test-pub.pem")" >/dev/null
	redis-cli -p "$port" -x SET aisp:result:golden-1 <"$R" >/dev/null
	expect "verify a task id through Redis" 0 '^PASS metadata' \
		"$AISP" verify golden-1 --redis "127.0.0.1:$port" --task "$B/task.json"
	expect "verify a file with the key from Redis" 0 '^PASS signature' \
		"$AISP" verify "$R" --redis "127.0.0.1:$port"
	expect "an unknown task id" 1 'no result for task nope' \
		"$AISP" verify nope --redis "127.0.0.1:$port"
	# The error text forged in Redis, as `aisp wait` would print it: verify names error.
	jq -c '.error = "forged"' "$R" | redis-cli -p "$port" -x SET aisp:result:forged-1 >/dev/null
	expect "an error forged in Redis fails error" 1 '^FAIL error: error differs (statement none, result "forged")' \
		"$AISP" verify forged-1 --redis "127.0.0.1:$port"
	redis-cli -p "$port" DEL aisp:node:node-a >/dev/null
	expect "a node without a key" 1 'no public key in Redis' \
		"$AISP" verify golden-1 --redis "127.0.0.1:$port"
	# A stopped node's key stays by key id (aisp:key:<id>): its results still verify.
	kid=$(jq -r '.attestation.signatures[0].keyid' "$R")
	redis-cli -p "$port" HSET "aisp:key:$kid" pubkey "$(cat "$DATA/test-pub.pem")" \
		node.node-a 1767225600000 >/dev/null
	expect "the key by key id verifies without the node's entry" 0 '^PASS signature' \
		"$AISP" verify golden-1 --redis "127.0.0.1:$port"
	redis-cli -p "$port" HDEL "aisp:key:$kid" node.node-a >/dev/null
	redis-cli -p "$port" HSET "aisp:key:$kid" node.node-b 1767225600000 >/dev/null
	expect "a key id not registered to the result's node is refused" 1 'not registered to node node-a' \
		"$AISP" verify golden-1 --redis "127.0.0.1:$port"
	"$AISP" keygen --out "$W/other" >/dev/null
	redis-cli -p "$port" HSET "aisp:key:$kid" pubkey "$(cat "$W/other/public.pem")" \
		node.node-a 1767225600000 >/dev/null
	expect "a key that does not hash to its key id is refused" 1 'whose id is not' \
		"$AISP" verify golden-1 --redis "127.0.0.1:$port"
	# aisp submit --task-out writes exactly the task it sends; --nondeterministic marks it.
	expect "submit --task-out --nondeterministic" 0 '^audit-1$' \
		"$AISP" submit --redis "127.0.0.1:$port" --id audit-1 --nondeterministic \
		--task-out "$W/sent.json" -c 'import time; print(time.time())'
	redis-cli -p "$port" --raw XRANGE aisp:tasks - + | sed -n '3p' >"$W/xadd.json"
	printf '\n' >>"$W/sent.json"
	if cmp -s "$W/sent.json" "$W/xadd.json"; then ok "--task-out holds the exact bytes sent"
	else not_ok "--task-out differs from the stream entry: $(cat "$W/sent.json") vs $(cat "$W/xadd.json")"; fi
	[ "$(jq -r .nondeterministic "$W/sent.json")" = true ] && ok "the task is marked nondeterministic" ||
		not_ok "nondeterministic missing: $(cat "$W/sent.json")"
	expect "--task-out into a missing directory submits nothing" 1 'task-out' \
		"$AISP" submit --redis "127.0.0.1:$port" --id audit-2 --task-out "$W/no/such/t.json" -c 'print(1)'
	[ "$(redis-cli -p "$port" XLEN aisp:tasks)" = 1 ] && ok "nothing was sent" ||
		not_ok "a task was sent although --task-out failed"
else
	n=$((n + 1))
	echo "ok $n # SKIP redis-server not installed"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
