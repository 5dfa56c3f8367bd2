#!/usr/bin/env bash
# aisp-gateway against hostile clients and hostile writers of its Redis keys, TAP. Only a real
# redis-server and the gateway, on loopback, started and stopped here: no node, no sandbox, no
# root. Results are the signed vectors of attest/testdata (their key put in aisp:key:<key id>
# as a node puts it), so a task waits as long as the test wants and a forged entry is exactly
# what an attacker could write. One gateway has no PostgreSQL (the default); another has one
# where nothing listens, so its outbox fills as during an outage.
#
#  1. the call log: without PostgreSQL no outbox at all; with it, no record of a call that
#     failed authentication or hit no route (counted in /metrics), the outbox bounded by
#     MAXLEN ~ outbox_max, the stored path capped and valid UTF-8; Redis memory under a
#     keep-alive 404 flood (a diagnostic)
#  2. the image lists hold against digests (the registry's images / image_digests pairs), an
#     unknown digest is refused, and simulate says what exec does
#  3. forged results on the reply stream and in aisp:result:<id> are ignored (a changed one,
#     another task's, a key not in Redis or not the node's, a bad signature, an oversized
#     entry, the genuine result of another task that had the same id); the node's signed
#     result is accepted; GET /v1/tasks/{id} verifies too
#  4. evhttp's error page on a keep-alive connection that already served a request, pipelined
#     and not, is problem+json
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/node.sh"
SRC=${AISP_SOURCE_ROOT:-$(cd "$here/../.." && pwd)}
GATEWAY=${1:-${AISP_GATEWAY_BIN:-aisp-gateway}}
VEC=$SRC/attest/testdata
CLIENT=("/usr/bin/python3" "$here/gateway_client.py")
for b in redis-server redis-cli curl jq openssl "$GATEWAY"; do
	command -v "$b" >/dev/null || { echo "1..0 # SKIP $b is missing"; exit 0; }
done
/usr/bin/python3 -c 'import jsonschema, yaml' 2>/dev/null ||
	{ echo "1..0 # SKIP python3-jsonschema or python3-yaml is missing"; exit 0; }

redis_start
GW=$TEST_TMP/gw
mkdir -p "$GW"
addkey() { "$GATEWAY" key add --file "$GW/keys.conf" --id "$@" 2>>"$GW/keyadd.log"; }
K_FULL=$(addkey full)
K_NODEF=$(addkey nodefault --set block_images=default)
K_OTHER=$(addkey onlyother --set allow_images=other)
gw_conf() { # gw_conf NAME PORT [EXTRA LINES]
	cat >"$GW/$1.conf" <<EOF
[gateway]
id = $1-$NODE_TAG
listen = 127.0.0.1:$2
key = $GW/key/private.pem
create_key = true
keys_file = $GW/keys.conf
log_level = debug
wait_ms = 60000
poll_ms = 300
[redis]
address = 127.0.0.1:$REDIS_PORT
${3:-}
EOF
}
declare -A GW_PIDS=()
gw_start() { # gw_start NAME PORT
	"$GATEWAY" --config "$GW/$1.conf" >>"$GW/$1.log" 2>&1 &
	GW_PIDS[$1]=$!
	track_pid "$!"
	wait_for 20 sh -c "curl -sf http://127.0.0.1:$2/healthz >/dev/null"
}
gw_stop() { kill -TERM "${GW_PIDS[$1]}" && wait "${GW_PIDS[$1]}"; }
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
# metric_is PORT NAME VALUE (for wait_for)
metric_is() { [ "$(metric "$1" "$2")" = "$3" ]; }
req() { "${CLIENT[@]}" req "$@" >>"$GW/req.log"; }
redis_mem() { R INFO memory | tr -d '\r' | awk -F: '$1 == "used_memory" {print $2}'; }

A_PORT=$(free_port)
A=http://127.0.0.1:$A_PORT
REPLY=aisp:reply:gw:a-$NODE_TAG
gw_conf a "$A_PORT"
gw_start a "$A_PORT" || bail "aisp-gateway did not start: $(tail -5 "$GW/a.log")"

# ---------------------------------------------------------------- 1. the call log
flood() { "${CLIENT[@]}" flood "$@" >>"$GW/flood.out" 2>&1; }
mem0=$(redis_mem)
check "a keep-alive flood of 4000 404s with 500-byte paths is answered" \
	flood "$A_PORT" /nope/ --n 4000 --path-len 500 --status 404
mem1=$(redis_mem)
check "a keep-alive flood of 2000 401s is answered" flood "$A_PORT" /v1/tools --n 2000 --status 401
check "300 authenticated calls are answered" flood "$A_PORT" /v1/tools --n 300 --key "$K_FULL" --status 200
diag "without PostgreSQL: $(head -1 "$GW/flood.out"); Redis used_memory $mem0 -> $mem1 bytes over the 404 flood ($(((mem1 - mem0) / 1024)) KiB)"
is "without PostgreSQL (the default) there is no outbox: nothing reads it" "$(R EXISTS aisp:gw:calls)" 0
is "404s are counted, not logged" "$(metric "$A_PORT" 'aisp_gateway_calls_unlogged_total{reason="no_route"}')" 4000
is "401s are counted, not logged" "$(metric "$A_PORT" 'aisp_gateway_calls_unlogged_total{reason="unauthenticated"}')" 2000
check "authenticated calls without PostgreSQL are counted as not logged" \
	test "$(metric "$A_PORT" 'aisp_gateway_calls_unlogged_total{reason="no_postgres"}')" -ge 300

B_PORT=$(free_port)
gw_conf b "$B_PORT" "[calllog]
outbox = aisp:gwb:calls
outbox_max = 1000
postgres = host=$TEST_TMP/no-postgres-here port=5 user=nobody dbname=none
interval_ms = 200"
check "a gateway with outbox_max and a PostgreSQL that is away starts" gw_start b "$B_PORT"
mem0=$(redis_mem)
check "(with PostgreSQL) a flood of 4000 404s is answered" \
	flood "$B_PORT" /nope/ --n 4000 --path-len 500 --status 404
mem1=$(redis_mem)
diag "with PostgreSQL configured: $(tail -1 "$GW/flood.out"); Redis used_memory $mem0 -> $mem1 bytes over the 404 flood ($(((mem1 - mem0) / 1024)) KiB)"
check "(with PostgreSQL) a flood of 2000 401s is answered" flood "$B_PORT" /v1/nodes --n 2000 --status 401
drained() { metric_is "$B_PORT" aisp_gateway_calls_backlog 0; }
wait_for 20 drained
is "with PostgreSQL, a call that failed authentication or hit no route makes no record" \
	"$(R XLEN aisp:gwb:calls)" 0
check "3000 authenticated calls are answered" flood "$B_PORT" /v1/tools --n 3000 --key "$K_FULL" --status 200
logged() { test "$(metric "$B_PORT" aisp_gateway_calls_logged_total)" -ge 3000; }
wait_for 20 logged
n=$(R XLEN aisp:gwb:calls)
check "the outbox is bounded (MAXLEN ~ 1000) while PostgreSQL is away: $n entries for 3000 calls" \
	test "$n" -ge 1000 -a "$n" -le 1100
printf 'GET /v1/tasks/%s\xff\xfe HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n' \
	"$(head -c 400 /dev/zero | tr '\0' a)" "$K_FULL" >"$GW/longpath.req"
/usr/bin/python3 -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",int(sys.argv[1]))); s.sendall(open(sys.argv[2],"rb").read()); s.recv(65536)' \
	"$B_PORT" "$GW/longpath.req"
last_endpoint() { R XREVRANGE aisp:gwb:calls + - COUNT 1 | sed -n 3p | jq -r .endpoint; }
wait_for 10 sh -c "[ \"\$(redis-cli -p $REDIS_PORT XREVRANGE aisp:gwb:calls + - COUNT 1 | sed -n 3p | jq -r .http_status)\" = 400 ]"
ep=$(last_endpoint)
check "the stored path is capped at 128 bytes: ${#ep} characters" test "${#ep}" -le 128 -a "${#ep}" -gt 100
last_utf8_json() { # the last record is JSON in strict UTF-8
	R XREVRANGE aisp:gwb:calls + - COUNT 1 | sed -n 3p |
		/usr/bin/python3 -c 'import sys, json; json.loads(sys.stdin.buffer.read().decode("utf-8"))'
}
check "the record is JSON in valid UTF-8 even for a path that is not" last_utf8_json
gw_stop b

# ---------------------------------------------------------------- 2. images named by digest
D_DEF=sha256:$(printf 'a%.0s' $(seq 64))
D_OTHER=sha256:$(printf 'b%.0s' $(seq 64))
D_NONE=sha256:$(printf 'c%.0s' $(seq 64))
R HSET aisp:node:fake-1 version test runtimes runc default_runtime runc images default,other \
	image_digests "$D_DEF,$D_OTHER" default_image default slots 1 busy 0 draining 0 >/dev/null
R SADD aisp:nodes fake-1 >/dev/null
task() { jq -nc --arg i "$1" '{lang:"python", code:"print(1)", runtime:"runc", image:$i}'; }
sim() { # sim KEY IMAGE: the simulation's iamDecision, iamDetail
	req POST "$A" /v1/exec/simulate --key "$1" --body "$(task "$2")" --schema SimulateResponse --out "$GW/sim.json" &&
		jq -r '.iamDecision + " " + (.iamDetail // "")' "$GW/sim.json"
}
out=$(sim "$K_NODEF" "$D_DEF")
check "simulate: the digest of a blocked image is blocked ($out)" grep -q '^image_blocked .*default' <<<"$out"
req POST "$A" /v1/exec --key "$K_NODEF" --body "$(task "$D_DEF")" --status 403 --out "$GW/p.json"
check "exec: the digest of a blocked image -> 403 image_blocked" jq -e '.decision == "image_blocked"' "$GW/p.json"
diag "$(jq -r .detail "$GW/p.json")"
out=$(sim "$K_OTHER" "$D_OTHER")
is "simulate: the digest of an allowed image is allowed" "$out" "allow "
out=$(sim "$K_OTHER" "$D_DEF")
check "simulate: the digest of an image not in the allow list is refused ($out)" grep -q '^image_blocked ' <<<"$out"
req POST "$A" /v1/exec --key "$K_NODEF" --body "$(task "$D_NONE")" --status 403 --out "$GW/p.json"
check "exec: a digest no live node advertises -> 403 with why" \
	jq -e '.decision == "image_blocked" and (.detail | test("no live node advertises"))' "$GW/p.json"
diag "$(jq -r .detail "$GW/p.json")"
req POST "$A" /v1/exec/simulate --key "$K_FULL" --body "$(task "$D_NONE")" --schema SimulateResponse --out "$GW/sim.json"
check "simulate: no node can serve a digest it does not advertise" \
	jq -e '.servable == false and (.nodes[0].reasons[0] | test("not in this node"))' "$GW/sim.json"
# a registry writer's bytes that are not UTF-8 are quoted by the simulation's reasons: the
# answer stays valid JSON (U+FFFD) and the gateway lives (the strict generator aborted on them)
printf 'runc,\xff' | R -x HSET aisp:node:fake-1 runtimes >/dev/null
req POST "$A" /v1/exec/simulate --key "$K_FULL" --body "$(jq -nc '{lang:"python", code:"print(1)", runtime:"runsc"}')" \
	--schema SimulateResponse --out "$GW/sim.json"
check "simulate: a registry field that is not UTF-8 is quoted as U+FFFD" \
	jq -e '.nodes[0].reasons[0] | test("runc,\ufffd")' "$GW/sim.json"
req GET "$A" /healthz --status 200 --out /dev/null
check "... and the gateway still answers" test "$?" = 0
R DEL aisp:node:fake-1 >/dev/null
R SREM aisp:nodes fake-1 >/dev/null

# ---------------------------------------------------------------- 3. forged results
KID=$(jq -r '.attestation.signatures[0].keyid' "$VEC/01-basic/result.json")
REAL=$(jq -c . "$VEC/01-basic/result.json")
refused() { metric "$A_PORT" aisp_gateway_results_refused_total; }
# add_entry WANT-REFUSED FIELD VALUE...: XADD to the reply stream, then wait until the gateway
# has refused WANT-REFUSED results in all
add_entry() {
	local want=$1
	shift
	R XADD "$REPLY" '*' "$@" >/dev/null
	wait_for 10 metric_is "$A_PORT" aisp_gateway_results_refused_total "$want"
}
waiting() { metric_is "$A_PORT" aisp_gateway_waiters "$1"; }
req POST "$A" /v1/exec --key "$K_FULL" --body "@$VEC/01-basic/task.json" --schema ExecResponse --out "$GW/e1.json" &
E1=$!
wait_for 20 waiting 1 || diag "the call is not waiting"
R HSET "aisp:key:$KID" pubkey "$(cat "$VEC/test-pub.pem")" node.node-a 1 >/dev/null
check "a changed result (stdout FORGED, the node's envelope) is refused" \
	add_entry 1 id golden-1 result "$(jq -c '.stdout = "FORGED\n"' <<<"$REAL")"
R HDEL "aisp:key:$KID" node.node-a >/dev/null
R HSET "aisp:key:$KID" node.node-b 1 >/dev/null
check "the node's result signed with a key registered to another node is refused" \
	add_entry 2 id golden-1 result "$REAL"
R DEL "aisp:key:$KID" >/dev/null
check "the node's result while its key is not in Redis is refused" add_entry 3 id golden-1 result "$REAL"
R HSET "aisp:key:$KID" pubkey "$(cat "$VEC/test-pub.pem")" node.node-a 1 >/dev/null
check "another task's signed result under this task's id is refused" \
	add_entry 4 id golden-1 result "$(jq -c . "$VEC/03-unicode/result.json")"
check "the node's result with a signature that is not the key's is refused" \
	add_entry 5 id golden-1 result "$(jq -c '.attestation.signatures[0].sig |= "AAAA" + .[4:]' <<<"$REAL")"
head -c $((17 * 1024 * 1024)) /dev/zero | tr '\0' x >"$GW/big"
check "an entry above 16 MiB is refused unparsed" sh -c "redis-cli -p $REDIS_PORT -x XADD $REPLY '*' id golden-1 result <'$GW/big' >/dev/null"
wait_for 10 metric_is "$A_PORT" aisp_gateway_results_refused_total 6
is "... and counted" "$(refused)" 6
is "the call still waits" "$(metric "$A_PORT" aisp_gateway_waiters)" 1
grep 'refused' "$GW/a.log" | head -5 | sed 's/^/# /'
# a second call that chose the same id for another task (other stdin): the node's genuine
# result of golden-1 is not its result
jq -c '.stdin = "other input\n"' "$VEC/01-basic/task.json" >"$GW/other.json"
req POST "$A" /v1/exec --key "$K_FULL" --body "@$GW/other.json" --status 503 --out "$GW/e0.json" &
E0=$!
wait_for 20 waiting 2 || diag "the second call is not waiting"
check "the node's result goes to the call whose task it is, and is refused for the other" \
	add_entry 7 id golden-1 result "$REAL"
grep 'refused: input_digest' "$GW/a.log" | head -1 | sed 's/^/# /'
wait "$E1"
is "the node's signed result is accepted" "$?" 0
is "the caller gets the node's output" "$(jq -c '[.status, .result.output, .node]' "$GW/e1.json")" '["completed","input data\n","node-a"]'
is "its proofHash is the envelope's" "$(jq -r .proofHash "$GW/e1.json")" \
	"sha256:$(jq -cj .attestation <<<"$REAL" | sha256sum | cut -c1-64)"
is "the other call still waits" "$(metric "$A_PORT" aisp_gateway_waiters)" 1

# the GET aisp:result:<id> fallback verifies too
req POST "$A" /v1/exec --key "$K_FULL" --body "@$VEC/02-escapes/task.json" --schema ExecResponse --out "$GW/e2.json" &
E2=$!
wait_for 20 waiting 2 # and the other call of golden-1
R SET aisp:result:escapes-1 "$(jq -c '.stdout = "FORGED"' "$VEC/02-escapes/result.json")" >/dev/null
refused_ge() { test "$(refused)" -ge "$1" 2>/dev/null; }
check "a forged aisp:result:<id> is refused by the waiting call" wait_for 10 refused_ge 8
R SET aisp:result:escapes-1 "$(jq -c . "$VEC/02-escapes/result.json")" >/dev/null
wait "$E2"
is "the genuine aisp:result:<id> is accepted" "$?/$(jq -r .jobId "$GW/e2.json")" "0/escapes-1"
R SET aisp:result:unicode-1 "$(jq -c '.exit_code = 1' "$VEC/03-unicode/result.json")" >/dev/null
req GET "$A" /v1/tasks/unicode-1 --key "$K_FULL" --status 502 --out "$GW/t.json"
check "GET /v1/tasks/{id} of a forged result -> 502 with why" jq -e '.detail | test("does not verify")' "$GW/t.json"
diag "$(jq -r .detail "$GW/t.json")"
R SET aisp:result:unicode-1 "$(jq -c . "$VEC/03-unicode/result.json")" >/dev/null
check "GET /v1/tasks/{id} of the genuine result -> 200" req GET "$A" /v1/tasks/unicode-1 --key "$K_FULL" --schema ExecResponse

# ---------------------------------------------------------------- 4. keep-alive error pages
ka() { "${CLIENT[@]}" keepalive "$A_PORT" "$@" >>"$GW/ka.log" 2>&1; }
check "a malformed request after a served one on the same connection -> problem+json, not HTML" \
	ka --step 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n' --status 200 --step 'BADLINE\r\n\r\n' --status 400
check "the same, pipelined" \
	ka --pipeline --step 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n' --status 200 --step 'BADLINE\r\n\r\n' --status 400
check "headers too large after two served requests -> 431 problem+json" \
	ka --step 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n' --status 200 --step 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' --status 200 \
	--step "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: $(head -c 20000 /dev/zero | tr '\0' a)\r\n\r\n" --status 431
grep -qi '<html' "$GW/ka.log" && not_ok "no HTML anywhere" "$(grep -i -m3 '<html' "$GW/ka.log")" || ok "no HTML anywhere"
check "the gateway's log has no error line" sh -c "! grep -qE '^[^ ]+ error ' '$GW/a.log'"
gw_stop a
is "aisp-gateway exits 0" "$?" 0
wait "$E0"
# 503 at shutdown (or 202 pending, had the test outlasted wait_ms): never the other task's result
check "the call given another task's result under its id never took it" jq -e \
	'(.type // "" | endswith("/shutting-down")) or (.status == "pending" and .result == null)' "$GW/e0.json"
done_testing
