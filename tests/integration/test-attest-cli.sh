#!/bin/sh
# aisp keygen and aisp verify, end to end: key files and their modes, verification of the golden
# result with a key file and through a real redis-server (node registry and result key), and
# tampered results failing with the check that names the change. TAP output.
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
R=$DATA/result.json
expect "golden result verifies" 0 '^PASS execution_digest' \
	"$AISP" verify "$R" --pubkey "$DATA/test-pub.pem" --task "$DATA/task.json"
expect "with the task, input_digest is checked" 0 '^PASS input_digest' \
	"$AISP" verify "$R" --pubkey "$DATA/test-pub.pem" --task "$DATA/task.json"
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
		"$AISP" verify golden-1 --redis "127.0.0.1:$port" --task "$DATA/task.json"
	expect "verify a file with the key from Redis" 0 '^PASS signature' \
		"$AISP" verify "$R" --redis "127.0.0.1:$port"
	expect "an unknown task id" 1 'no result for task nope' \
		"$AISP" verify nope --redis "127.0.0.1:$port"
	redis-cli -p "$port" DEL aisp:node:node-a >/dev/null
	expect "a node without a key" 1 'has no public key' \
		"$AISP" verify golden-1 --redis "127.0.0.1:$port"
else
	n=$((n + 1))
	echo "ok $n # SKIP redis-server not installed"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
