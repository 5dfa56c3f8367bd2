#!/usr/bin/env bash
# aisp-gateway end to end (issue 22), TAP: a real redis-server, a real aispd node (runc, a warm
# Python pool), a real PostgreSQL 15 (initdb into the test's temp dir, its own socket dir and
# port) and the gateway, all on loopback, started and stopped by this script. Requests go
# through curl and a Python client (gateway_client.py) that validates every response against
# gateway/openapi.yaml and proto/schemas/*.json.
#
#  1. config and keys: --check, file:line errors, `key add` stores only the SHA-256
#  2. /health, /healthz, /metrics (each family once, with HELP and TYPE)
#  3. every IAM outcome: no key, bad key, blocked tool, language, runtime, skill, limits above
#     the key's maximum, rate limited, payment required
#  4. dry runs start no sandbox (the node's /metrics and aisp:tasks before and after); the
#     simulation's signature verifies with openssl; resolved limits; an unservable task
#  5. execution: seed form and protocol form, proofHash = SHA-256 of the envelope in
#     aisp:result:<id>, `aisp verify` of the embedded result, tasks/{id}, nodes, timeout,
#     NDJSON events (queued, a forwarded node event, result)
#  6. malformed requests: bad JSON, wrong content type, huge headers, huge body, chunked
#     bodies, garbage, unknown path and method; slow clients; the connection cap
#  7. load: 200 concurrent clients (simulations, then one task each through the node)
#  8. the call log: rows match the outbox, columns and indexes; PostgreSQL SIGKILLed mid-load
#     and restarted: no loss, no duplicates
# Every wait is a bounded poll; nothing asserts wall-clock times (the load figures are
# reported as diagnostics).
# No `set -e`: a TAP suite goes on past a failing step (that test point says "not ok" and the
# remaining ones still run), and many steps test a command's exit status.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/node.sh"
SRC=${AISP_SOURCE_ROOT:-$(cd "$here/../.." && pwd)}
GATEWAY=${1:-${AISP_GATEWAY_BIN:-aisp-gateway}}
PGB=/usr/lib/postgresql/15/bin
CLIENT=("/usr/bin/python3" "$here/gateway_client.py")
need_nodes openssl sha256sum base64
[ -x "$PGB/initdb" ] || skip_all "postgresql 15 is missing ($PGB)"
/usr/bin/python3 -c 'import jsonschema, yaml' 2>/dev/null ||
	skip_all "python3-jsonschema or python3-yaml is missing"

# ---------------------------------------------------------------- PostgreSQL
PG_DIR=$TEST_TMP/pg
PG_PORT=$(free_port)
pg_ctl() { runuser -u postgres -- "$PGB/pg_ctl" -D "$PG_DIR/data" "$@"; }
pg_start() {
	pg_ctl -o "-k $PG_DIR -p $PG_PORT -c listen_addresses=''" -l "$PG_DIR/log" -w start >/dev/null
}
pg_pid() { head -1 "$PG_DIR/data/postmaster.pid" 2>/dev/null; }
pg_kill() { # SIGKILL the postmaster; its backends exit when they see it gone
	local p kids
	p=$(pg_pid)
	[ -n "$p" ] || return 1
	kids=$(pgrep -P "$p" | tr '\n' ' ')
	kill -KILL "$p"
	wait_for 30 sh -c "for k in $p $kids; do kill -0 \$k 2>/dev/null && exit 1; done; exit 0"
}
pg_cleanup() {
	pg_ctl -m immediate stop >/dev/null 2>&1
	return 0
}
psqlq() { psql -h "$PG_DIR" -p "$PG_PORT" -U aisp -d calls -Atc "$1" 2>/dev/null; }
mkdir -p "$PG_DIR" && chown postgres: "$PG_DIR"
runuser -u postgres -- "$PGB/initdb" -D "$PG_DIR/data" -A trust -U aisp >/dev/null ||
	bail "initdb failed"
at_exit pg_cleanup
pg_start || bail "postgres did not start"
runuser -u postgres -- "$PGB/createdb" -h "$PG_DIR" -p "$PG_PORT" -U aisp calls || bail "createdb"

# ---------------------------------------------------------------- Redis and a node
redis_start
NODE_HTTP=$(free_port)
HTTP_PORT=$NODE_HTTP SLOTS=4 POOL="runc/default/python = 2" node_conf n1
node_start n1
wait_for 120 node_registered n1 || bail "aispd did not register: $(node_log n1 | tail -5)"
NODE=$(node_id n1)
node_metric() { # node_metric NAME{labels}: the value from the node's /metrics
	curl -s "http://127.0.0.1:$NODE_HTTP/metrics" | awk -v m="$1" '$1 == m {print $2}'
}
warm() { [ "$(node_metric 'aisp_pool_sandboxes_total{state="warm"}')" = 2 ]; }
wait_for 120 warm || diag "the pool did not reach 2 warm sandboxes"

# ---------------------------------------------------------------- the gateway
GW=$TEST_TMP/gw
mkdir -p "$GW"
GW_PORT=$(free_port)
BASE=http://127.0.0.1:$GW_PORT
GW_ID=gw-$NODE_TAG
REPLY=aisp:reply:gw:$GW_ID
addkey() { "$GATEWAY" key add --file "$GW/keys.conf" --id "$@" 2>>"$GW/keyadd.log"; }
K_FULL=$(addkey full --set block_skills=shell_exec)
K_PY=$(addkey py --set allow_languages=python --set block_runtimes=runsc --set block_images=secret-image \
	--set max_memory_mb=256 --set max_timeout_s=20 --set trust_level=L1)
K_NOTOOLS=$(addkey notools --set block_tools=run_code)
K_RATE=$(addkey rate --set rate_per_s=0.01 --set burst=2)
K_PAY=$(addkey pay --set requires_payment=true)
K_NODEF=$(addkey nodefault --set block_images=default)
gw_conf() { # gw_conf FILE [EXTRA LINES]
	cat >"$1" <<EOF
[gateway]
id = $GW_ID
listen = 127.0.0.1:$GW_PORT
key = $GW/key/private.pem
create_key = true
keys_file = $GW/keys.conf
log_level = debug
wait_ms = 60000
poll_ms = 1000
[http]
max_body_bytes = 1048576
max_headers_bytes = 8192
idle_timeout_s = 20
request_timeout_s = 4
max_connections = 260
[redis]
address = 127.0.0.1:$REDIS_PORT
[calllog]
postgres = host=$PG_DIR port=$PG_PORT user=aisp dbname=calls
interval_ms = 200
[cost]
per_call_micros = 10000
per_cpu_second_micros = 1000
per_gib_second_micros = 500
${2:-}
EOF
}
gw_conf "$GW/gw.conf"
GW_PID=
gw_start() {
	"$GATEWAY" --config "$GW/gw.conf" >>"$GW/log" 2>&1 &
	GW_PID=$!
	track_pid "$GW_PID"
	wait_for 20 sh -c "curl -sf $BASE/healthz >/dev/null"
}
gw_metric() { curl -s "$BASE/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
# the client prints the bodies it got: kept in files, out of the TAP stream
req() { "${CLIENT[@]}" req "$@" >>"$GW/req.log"; }
client() { "${CLIENT[@]}" "$@" >>"$GW/client.log"; }
# jqr FILE FILTER: a raw field of a JSON file
jqr() { jq -r "$2" "$1"; }

# ---------------------------------------------------------------- 1. config and keys
out=$("$GATEWAY" --config "$GW/gw.conf" --check 2>&1)
check "--check accepts the config and says the key will be created, writing nothing" \
	sh -c "grep -q 'will be created at start' <<'E'
$out
E
[ ! -e '$GW/key' ]"
gw_conf "$GW/bad.conf" "[http]
max_connections = 12x"
out=$("$GATEWAY" --config "$GW/bad.conf" --check 2>&1)
check "a bad number is refused with file:line" grep -q "bad.conf:[0-9]*: \[http\] max_connections = \"12x\": not an integer" <<<"$out"
check "key add stores the SHA-256, never the key" \
	sh -c "! grep -qF '$K_FULL' '$GW/keys.conf' && grep -q \"hash = sha256:$(printf %s "$K_FULL" | sha256sum | cut -c1-64)\" '$GW/keys.conf'"
check "key add refuses an existing id" sh -c "! '$GATEWAY' key add --file '$GW/keys.conf' --id full 2>/dev/null"
check "key add refuses a bad policy before writing" \
	sh -c "! '$GATEWAY' key add --file '$GW/keys.conf' --id x --set max_cpus=lots 2>/dev/null && ! grep -q 'key.x' '$GW/keys.conf'"
gw_start || bail "aisp-gateway did not start: $(tail -5 "$GW/log")"

# ---------------------------------------------------------------- 2. health and metrics
check "GET /health (seed fields, schema Health)" req GET "$BASE" /health --schema Health --out "$GW/health.json"
is "/health says ok" "$(jqr "$GW/health.json" .status)/$(jqr "$GW/health.json" .service)" "ok/aisp-gateway"
is "GET /healthz" "$(curl -s "$BASE/healthz")" "ok"
jqr "$GW/health.json" .publicKey >"$GW/gwpub.pem"
curl -s "$BASE/metrics" >"$GW/metrics.txt"
prom_ok() { # every sample's family has exactly one HELP and one TYPE, before its samples
	awk '/^# HELP /{h[$3]++; next} /^# TYPE /{t[$3]++; next} /^#/{next}
	     {n=$1; sub(/\{.*/, "", n); f=n; sub(/_(bucket|sum|count)$/, "", f);
	      if (!(n in t) && !(f in t)) {print "no TYPE: " n; bad=1}}
	     END {for (k in h) if (h[k] != 1 || t[k] != 1) {print "family " k; bad=1}; exit bad}' "$1"
}
check "/metrics is valid Prometheus text (one HELP and TYPE per family)" prom_ok "$GW/metrics.txt"

# curl, endpoint by endpoint: status and Content-Type (the Python client checks the bodies)
curl_is() { # curl_is METHOD PATH WANT-STATUS WANT-CTYPE [BODY]
	local got
	got=$(curl -s -o /dev/null -w '%{http_code} %{content_type}' -X "$1" -H "Authorization: Bearer $K_FULL" \
		${5:+-H 'Content-Type: application/json' -d "$5"} "$BASE$2")
	is "curl $1 $2" "$got" "$3 $4"
}
curl_is GET /health 200 application/json
curl_is GET /v1/health 200 application/json
curl_is GET /healthz 200 text/plain
curl_is GET /metrics 200 "text/plain; version=0.0.4"
curl_is GET /v1/tools 200 application/json
curl_is GET /exec/tools 200 application/json
curl_is GET /v1/nodes 200 application/json
curl_is GET /v1/tasks/never-submitted 404 application/problem+json
curl_is POST /v1/exec/simulate 200 application/json '{"lang":"shell","code":"true","runtime":"runc"}'
curl_is POST /exec/simulate 200 application/json '{"tool":{"name":"run_code","args":{"language":"shell","code":"true"}}}'
curl_is POST /exec/tool 200 application/json '{"tool":{"name":"run_code","args":{"language":"shell","code":"true"}}}'
curl_is POST /v1/exec 200 application/json '{"lang":"shell","code":"echo curl","runtime":"runc"}'

# ---------------------------------------------------------------- 3. IAM outcomes
SEED_PY='{"agentId":"agent-1","tool":{"name":"run_code","args":{"language":"python","code":"print(6*7)"}},"dryRun":false}'
problem() { # problem DESC STATUS DECISION KEY BODY [PATH]
	local key=()
	[ -n "$4" ] && key=(--key "$4")
	req POST "$BASE" "${6:-/v1/exec}" "${key[@]}" --body "$5" --status "$2" --out "$GW/p.json" >/dev/null &&
		[ "$(jqr "$GW/p.json" .decision)" = "$3" ] && ok "$1: $(jqr "$GW/p.json" .detail)" ||
		not_ok "$1" "$(cat "$GW/p.json")"
}
problem "no key -> 401" 401 no_key "" "$SEED_PY"
problem "bad key -> 401" 401 bad_key "aisk_not-a-key" "$SEED_PY"
problem "blocked tool -> 403" 403 tool_blocked "$K_NOTOOLS" "$SEED_PY"
problem "blocked language -> 403" 403 language_blocked "$K_PY" \
	'{"tool":{"name":"run_code","args":{"language":"javascript","code":"1","runtime":"runc"}}}'
problem "blocked runtime -> 403" 403 runtime_blocked "$K_PY" \
	'{"tool":{"name":"run_code","args":{"language":"python","code":"1","runtime":"runsc"}}}'
problem "blocked image -> 403" 403 image_blocked "$K_PY" \
	'{"lang":"python","code":"1","runtime":"runc","image":"secret-image"}'
# the node's digest of "default" (its registry's images and image_digests, in the same order)
DEF_DIGEST=$(paste -d' ' <(R HGET "aisp:node:$NODE" images | tr , '\n') <(R HGET "aisp:node:$NODE" image_digests | tr , '\n') |
	awk '$1 == "default" {print $2}')
problem "the digest of a blocked image -> 403" 403 image_blocked "$K_NODEF" \
	"{\"lang\":\"python\",\"code\":\"1\",\"runtime\":\"runc\",\"image\":\"$DEF_DIGEST\"}"
problem "limits above the key's maximum -> 403" 403 limit_exceeded "$K_PY" \
	'{"lang":"python","code":"1","runtime":"runc","limits":{"memory_mb":1024}}'
check "the limit detail names the limit and the maximum" grep -q 'limits.memory_mb 1024 is above the maximum 256 of key py' "$GW/p.json"
problem "blocked skill -> 403" 403 skill_blocked "$K_FULL" '{"tool":{"name":"shell_exec"}}'
problem "payment required -> 402" 402 payment_required "$K_PAY" "$SEED_PY"
check "the 402 carries the amount and currency" sh -c "jq -e '.amountMicros and .currency == \"USDC\"' '$GW/p.json' >/dev/null"
req GET "$BASE" /v1/tools --key "$K_RATE" --schema Tools >/dev/null &&
	req GET "$BASE" /v1/tools --key "$K_RATE" --schema Tools >/dev/null &&
	ok "a rate-limited key gets its burst" || not_ok "a rate-limited key gets its burst"
hdrs=$(curl -s -D - -o "$GW/p.json" -H "Authorization: Bearer $K_RATE" "$BASE/v1/tools")
check "over the rate -> 429 with Retry-After" sh -c "grep -q '^HTTP/1.1 429' <<'E'
$hdrs
E
grep -qi '^Retry-After: [0-9]' <<'E'
$hdrs
E
jq -e '.decision == \"rate_limited\"' '$GW/p.json' >/dev/null"
req POST "$BASE" /v1/exec --key "$K_FULL" --body '{"tool":{"name":"json_parse","args":{}}}' --status 422 --out "$GW/p.json" >/dev/null
check "a skill tool -> 422 (no skill field in the node protocol)" grep -q 'skills are not in the node protocol' "$GW/p.json"
req POST "$BASE" /v1/exec --key "$K_FULL" --body '{"id":"bad-lang","lang":"ruby","code":"puts 1"}' --status 400 --out "$GW/p.json" >/dev/null
check "an invalid task -> 400 with the node's message" grep -q 'invalid task: field \\"lang\\" must be one of python, javascript, shell' "$GW/p.json"
req POST "$BASE" /v1/exec --key "$K_FULL" --body '{"id":"rs","lang":"python","code":"1","reply_stream":"aisp:tasks"}' --status 400 --out "$GW/p.json" >/dev/null
check "a task naming its own reply_stream -> 400" grep -q 'reply_stream' "$GW/p.json"

# ---------------------------------------------------------------- 4. dry runs
sandbox_counters() {
	echo "$(node_metric aisp_sandbox_creations_total) $(node_metric 'aisp_pool_takes_total{result="hit"}') $(node_metric 'aisp_pool_takes_total{result="miss"}') $(R XLEN aisp:tasks) $(R XLEN aisp:results)"
}
steady() { # the pool is full and creates or destroys nothing (an earlier task's refill is over)
	[ "$(node_metric 'aisp_pool_sandboxes_total{state="warm"}')" = 2 ] &&
		[ "$(node_metric 'aisp_pool_sandboxes_total{state="creating"}')" = 0 ] &&
		[ "$(node_metric 'aisp_pool_sandboxes_total{state="destroying"}')" = 0 ]
}
wait_for 120 steady || diag "the pool is not steady: $(curl -s "http://127.0.0.1:$NODE_HTTP/metrics" | grep pool_sandboxes)"
before=$(sandbox_counters)
SIM_PY='{"agentId":"agent-1","tool":{"name":"run_code","args":{"language":"python","code":"print(1)","runtime":"runc"}}}'
check "POST /v1/exec/simulate (schema SimulateResponse)" \
	req POST "$BASE" /v1/exec/simulate --key "$K_PY" --body "$SIM_PY" --schema SimulateResponse --out "$GW/sim.json"
check "POST /exec/simulate (the seed's alias)" \
	req POST "$BASE" /exec/simulate --key "$K_FULL" --body "$SIM_PY" --schema SimulateResponse
check "POST /exec/tool defaults to dryRun (the seed)" \
	sh -c "\"\$@\" >/dev/null && jq -e '.dryRun == true and .status == \"simulated\" and .result.simulated == true' '$GW/s2.json' >/dev/null" _ \
	"${CLIENT[@]}" req POST "$BASE" /exec/tool --key "$K_FULL" --body "$SIM_PY" --schema SimulateResponse --out "$GW/s2.json"
check "POST /v1/exec with dryRun true simulates" \
	req POST "$BASE" /v1/exec --key "$K_FULL" --body '{"tool":{"name":"run_code","args":{"language":"shell","code":"rm -rf /"}},"dryRun":true}' --schema SimulateResponse
check "a policy refusal in a dry run is a 200 with iamApproved false" \
	sh -c "\"\$@\" >/dev/null && jq -e '.iamApproved == false and .iamDecision == \"payment_required\"' '$GW/s3.json' >/dev/null" _ \
	"${CLIENT[@]}" req POST "$BASE" /v1/exec/simulate --key "$K_PAY" --body "$SIM_PY" --schema SimulateResponse --out "$GW/s3.json"
req POST "$BASE" /v1/exec/simulate --key "$K_FULL" --body '{"lang":"python","code":"1","runtime":"crun"}' --schema SimulateResponse --out "$GW/s4.json" >/dev/null
check "a task no node can serve: servable false, the reason named" \
	jq -e '.servable == false and (.nodes[0].reasons[0] | test("runtime crun is not offered"))' "$GW/s4.json"
req POST "$BASE" /v1/exec/simulate --key "$K_FULL" --body '{"lang":"ruby","code":"1"}' --schema SimulateResponse --out "$GW/s5.json" >/dev/null
check "an invalid task in a dry run: validation.valid false with the node's message" \
	jq -e '.validation.valid == false and (.validation.error | test("must be one of python"))' "$GW/s5.json"
after=$(sandbox_counters)
is "dry runs started no sandbox and queued nothing (node metrics, aisp:tasks, aisp:results)" "$after" "$before"
check "the simulation resolves the key's maximum as the default and names the node" \
	jq -e --arg n "$NODE" '.resolved.limits.memory_mb == 256 and .resolved.limits.timeout_s == 20 and .node == $n and .servable and .resolved.runtime == "runc" and .cost.maxMicros > 10000' "$GW/sim.json"
verify_sim() { # the DSSE signature over PAE(type, payload) with the gateway's public key
	local t p
	t=$(jqr "$1" .attestation.payloadType)
	jqr "$1" .attestation.payload | base64 -d >"$GW/payload"
	{ printf 'DSSEv1 %d %s %d ' "${#t}" "$t" "$(stat -c %s "$GW/payload")"; cat "$GW/payload"; } >"$GW/pae"
	jqr "$1" '.attestation.signatures[0].sig' | base64 -d >"$GW/sig"
	openssl pkeyutl -verify -pubin -inkey "$GW/gwpub.pem" -rawin -in "$GW/pae" -sigfile "$GW/sig" >/dev/null &&
		[ "$(jq -S 'del(.latencyMs, .attestation, .proofHash)' "$1")" = "$(jq -S . "$GW/payload")" ] &&
		[ "$(jqr "$1" .proofHash)" = "sha256:$(jq -cj .attestation "$1" | sha256sum | cut -c1-64)" ]
}
check "the simulation is signed by the gateway's key (openssl), its payload is the document, proofHash its envelope's SHA-256" verify_sim "$GW/sim.json"

# ---------------------------------------------------------------- 5. execution
check "POST /v1/exec, the seed's form (schema ExecResponse)" \
	req POST "$BASE" /v1/exec --key "$K_PY" --body '{"agentId":"agent-1","tool":{"name":"run_code","args":{"language":"python","code":"print(6*7)","runtime":"runc"},"timeout_s":10},"context":{"purpose":"test"}}' --schema ExecResponse --out "$GW/e1.json"
JOB=$(jqr "$GW/e1.json" .jobId)
is "the seed's fields: status, result.output, result.exitCode, iamApproved" \
	"$(jq -c '[.status, .result.output, .result.exitCode, .iamApproved, .dryRun, .schemaVersion]' "$GW/e1.json")" \
	'["completed","42\n",0,true,false,"v1"]'
check "the generated task id is gw-<gateway id>-<32 hex>" grep -qE "^gw-$GW_ID-[0-9a-f]{32}\$" <<<"$JOB"
R GET "aisp:result:$JOB" >"$GW/r1.json"
is "proofHash = SHA-256 of the envelope bytes in aisp:result:<id>" "$(jqr "$GW/e1.json" .proofHash)" \
	"sha256:$(jq -cj .attestation "$GW/r1.json" | sha256sum | cut -c1-64)"
is "the response's taskResult is the stored result" "$(jq -cS .taskResult "$GW/e1.json")" "$(jq -cS . "$GW/r1.json")"
jq .taskResult "$GW/e1.json" >"$GW/tr.json"
check "the embedded result verifies with the node's key (aisp verify)" \
	"$AISP" verify "$GW/tr.json" --pubkey "$TEST_TMP/key/public.pem"
is "the key's maximum reached the node: the signed limits are memory 256 MiB, timeout 10 s" \
	"$(jqr "$GW/r1.json" .attestation.payload | base64 -d | jq -c '[.predicate.limits.memory_bytes, .predicate.limits.timeout_ms]')" \
	"[$((256 * 1024 * 1024)),10000]"
check "POST /v1/exec, the protocol's form with its own id" \
	req POST "$BASE" /v1/exec --key "$K_FULL" --body '{"id":"gwtest-own-1","lang":"shell","code":"echo hi; exit 3","runtime":"runc"}' --schema ExecResponse --out "$GW/e2.json"
is "own id kept, exit code 3 is a completed run" "$(jq -c '[.jobId, .status, .result.exitCode, .result.output]' "$GW/e2.json")" '["gwtest-own-1","completed",3,"hi\n"]'
check "GET /v1/tasks/{id} of a finished task" req GET "$BASE" /v1/tasks/gwtest-own-1 --key "$K_FULL" --schema ExecResponse --out "$GW/t1.json"
is "tasks/{id} gives the same proofHash" "$(jqr "$GW/t1.json" .proofHash)" "$(jqr "$GW/e2.json" .proofHash)"
check "GET /v1/tasks/{id} of an unknown task -> 404" req GET "$BASE" /v1/tasks/no-such-task --key "$K_FULL" --status 404
check "GET /v1/tasks/{id} with a bad id -> 400" req GET "$BASE" '/v1/tasks/a%20b' --key "$K_FULL" --status 400
check "a timeout is a failed call with status timeout" \
	sh -c "\"\$@\" >/dev/null && jq -e '.status == \"failed\" and .result.status == \"timeout\"' '$GW/e3.json' >/dev/null" _ \
	"${CLIENT[@]}" req POST "$BASE" /v1/exec --key "$K_FULL" --body '{"lang":"python","code":"import time; time.sleep(30)","runtime":"runc","limits":{"timeout_s":1}}' --schema ExecResponse --out "$GW/e3.json"
check "GET /v1/nodes lists the node (schema Nodes)" req GET "$BASE" /v1/nodes --key "$K_FULL" --schema Nodes --out "$GW/nodes.json"
check "the node is there with its runtimes" jq -e --arg n "$NODE" '.nodes[] | select(.id == $n) | .runtimes | index("runc")' "$GW/nodes.json"
check "GET /v1/tools and /exec/tools (schema Tools)" sh -c "\"\$@\" >/dev/null" _ "${CLIENT[@]}" req GET "$BASE" /exec/tools --key "$K_PY" --schema Tools --out "$GW/tools.json"
is "tools: what key py may run and what is blocked" \
	"$(jq -c '[.allowed, .languages.allowed, .languages.blocked, .runtimes.allowed, .runtimes.blocked, .maxLimits.memory_mb, .trustLevel]' "$GW/tools.json")" \
	'[["run_code"],["python"],["javascript","shell"],["runc"],["runsc"],256,"L1"]'
# a second gateway on the same Redis, with a short wait_ms and its own outbox: 202 pending,
# then the result through GET /v1/tasks/{id} (of either gateway)
GW2_PORT=$(free_port)
sed -e "s/^id = .*/id = gw2-$NODE_TAG/" -e "s/^listen = .*/listen = 127.0.0.1:$GW2_PORT/" \
	-e "s/^wait_ms = .*/wait_ms = 1000/" -e "s/^poll_ms = .*/poll_ms = 500/" \
	-e "s/^postgres = .*/outbox = aisp:gw2:calls/" "$GW/gw.conf" >"$GW/gw2.conf"
"$GATEWAY" --config "$GW/gw2.conf" >>"$GW/log2" 2>&1 &
GW2_PID=$!
track_pid "$GW2_PID"
wait_for 20 sh -c "curl -sf http://127.0.0.1:$GW2_PORT/healthz >/dev/null"
check "a call past wait_ms -> 202 pending with statusUrl (schema Pending)" \
	req POST "http://127.0.0.1:$GW2_PORT" /v1/exec --key "$K_FULL" --body '{"id":"gwtest-slow-1","lang":"python","code":"import time; time.sleep(4); print(\"late\")","runtime":"runc"}' --status 202 --schema Pending --out "$GW/pend.json"
is "statusUrl names the task" "$(jqr "$GW/pend.json" .statusUrl)" "/v1/tasks/gwtest-slow-1"
check "meanwhile tasks/{id} says running or pending (schema TaskState)" \
	req GET "$BASE" /v1/tasks/gwtest-slow-1 --key "$K_FULL" --schema TaskState
done_late() { req GET "$BASE" /v1/tasks/gwtest-slow-1 --key "$K_FULL" --schema ExecResponse --out "$GW/late.json" >/dev/null 2>&1; }
check "then tasks/{id} gives the result (through the other gateway)" wait_for 60 done_late
is "the late result" "$(jqr "$GW/late.json" .result.output)" "late"
kill -TERM "$GW2_PID" && wait "$GW2_PID"
is "the second gateway exits 0" "$?" 0
is "the second gateway, without PostgreSQL, wrote no outbox" "$(R EXISTS aisp:gw2:calls)" 0

# NDJSON: queued, then the node's live events on the reply stream (the task asks for them:
# live_output), then the result
jq -nc '{lang:"python", code:"import time\nprint(\"start\", flush=True)\ntime.sleep(3)\nprint(\"end\")", runtime:"runc"}' >"$GW/nd.json"
"${CLIENT[@]}" ndjson "$BASE" "$K_FULL" "$GW/nd.json" >"$GW/nd.out" 2>&1
is "NDJSON streams queued, the node's started and output events, then the result" \
	"$(tail -1 "$GW/nd.out")" "events: queued started output output result"
check "the forwarded output event carries the node's fields" \
	grep -q '"event": "output".*"stream": "stdout".*"offset": "0".*"data": "start' "$GW/nd.out"
check "the started event names the node and its sandbox" \
	grep -q '"event": "started".*"node": ".*"sandbox": "' "$GW/nd.out"

# ---------------------------------------------------------------- 6. malformed requests
check "bad JSON -> 400 problem" req POST "$BASE" /v1/exec --key "$K_FULL" --body '{"lang": "python",' --status 400
check "wrong content type -> 415 problem" req POST "$BASE" /v1/exec --key "$K_FULL" --body 'lang=python' --ctype application/x-www-form-urlencoded --status 415
check "a body that is not an object -> 400 problem" req POST "$BASE" /v1/exec/simulate --key "$K_FULL" --body '[1,2]' --status 400
check "an unknown seed field -> 400 problem" req POST "$BASE" /exec/tool --key "$K_FULL" --body '{"tool":{"name":"run_code"},"extra":1}' --status 400
check "unknown path -> 404 problem" req GET "$BASE" /nope --status 404
check "wrong method -> 405 problem" req GET "$BASE" /v1/exec --status 405
raw() { "${CLIENT[@]}" raw "$GW_PORT" "$@" >>"$GW/raw.log" 2>&1; }
check "a garbage request line -> 400 problem+json, not HTML" raw 'GARBAGE\r\n\r\n' --status 400
check "a malformed request after a served one on a keep-alive connection -> 400 problem+json" \
	"${CLIENT[@]}" keepalive "$GW_PORT" --step 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n' --status 200 --step 'BADLINE\r\n\r\n' --status 400
check "huge headers -> 431 problem+json, not HTML" raw 'GET /health HTTP/1.1\r\nHost: x\r\nX-Big: @@\r\n\r\n' --repeat 20000 --status 431
check "a huge body -> 413 problem+json" raw "POST /v1/exec HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000000\r\n\r\n{" --status 413
CHUNKED=$(printf '%s' "$SIM_PY" | wc -c)
printf 'POST /v1/exec/simulate HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n' "$K_FULL" "$CHUNKED" "$SIM_PY" >"$GW/chunked.req"
chunked_ok() {
	/usr/bin/python3 -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",int(sys.argv[1]))); s.sendall(open(sys.argv[2],"rb").read()); d=b""
while True:
    x=s.recv(65536)
    if not x: break
    d+=x
sys.stdout.write(d.decode())' "$GW_PORT" "$GW/chunked.req" | grep -q '"status":"simulated"'
}
check "a chunked body is decoded and served (200 simulated)" chunked_ok
check "a malformed chunked body -> 400 problem+json" raw 'POST /v1/exec HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n' --status 400
check "a chunk above the body limit -> 413 problem+json" raw 'POST /v1/exec HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n7fffff\r\n{' --status 413
check "the precise details" sh -c "grep -q 'the request line and headers are more than the 8192-byte limit' '$GW/raw.log' && grep -q 'the body is 5000000 bytes, above the 1048576-byte limit' '$GW/raw.log' && grep -q 'a chunk of 8388607 bytes is above the 1048576-byte body limit' '$GW/raw.log' && grep -q 'the chunked body could not be read' '$GW/raw.log'"
check "evhttp's error pages were rewritten (counted)" test "$(gw_metric aisp_gateway_error_pages_rewritten_total)" -ge 4
grep -qi '<html' "$GW/raw.log" && not_ok "no HTML anywhere" || ok "no HTML anywhere"
check "slow clients (slowloris) are closed at request_timeout_s while others are served" \
	client slowloris "$GW_PORT" --n 8 --limit 30
diag "$(grep 'slow connections closed' "$GW/client.log")"
check "closed slow clients are counted" test "$(gw_metric aisp_gateway_connections_timed_out_total)" -ge 8
sleep 1 # the slow connections are forgotten at the next sweep
check "past max_connections (260) a connection gets 503 problem+json" \
	client conncap "$GW_PORT" --n 270 --want 10
wait_for 20 sh -c "[ \"\$(curl -s $BASE/metrics | awk '\$1 == \"aisp_gateway_connections\" {print \$2}')\" -le 2 ] 2>/dev/null"
check "the gateway serves again once the idle connections are gone" req GET "$BASE" /health --schema Health

# ---------------------------------------------------------------- 7. load
printf '%s' "$SIM_PY" >"$GW/load.json"
if "${CLIENT[@]}" load "$BASE" "$K_FULL" /v1/exec/simulate "$GW/load.json" --clients 200 --total 2000 \
	--schema SimulateResponse >"$GW/load.out" 2>&1; then
	ok "200 concurrent clients, 2000 simulations: every response 200 and schema-valid"
else
	not_ok "200 concurrent clients, 2000 simulations" "$(cat "$GW/load.out")"
fi
diag "simulate: $(head -1 "$GW/load.out")"
jq -nc '{tool:{name:"run_code", args:{language:"python", code:"print(1+1)", runtime:"runc"}}}' >"$GW/load-exec.json"
if "${CLIENT[@]}" load "$BASE" "$K_FULL" /v1/exec "$GW/load-exec.json" --clients 200 --total 200 \
	--schema ExecResponse >"$GW/load2.out" 2>&1; then
	ok "200 concurrent clients, one task each through the node: every one completed"
else
	not_ok "200 concurrent clients, one task each through the node" "$(cat "$GW/load2.out")"
fi
diag "exec: $(head -1 "$GW/load2.out")"

# ---------------------------------------------------------------- 8. the call log
outbox_empty() { # everything logged has been written (outbox and pending list empty)
	[ "$(R XLEN aisp:gw:calls)" = 0 ] &&
		[ "$(R XPENDING aisp:gw:calls pgwriter | head -1)" = 0 ] &&
		[ "$(gw_metric aisp_gateway_calls_backlog)" = 0 ]
}
rows_match() { [ "$(psqlq 'select count(*) from secureexec_calls')" = "$(gw_metric aisp_gateway_calls_logged_total)" ]; }
wait_for 60 outbox_empty && wait_for 30 rows_match
ROWS=$(psqlq 'select count(*) from secureexec_calls')
is "every call logged is a row in secureexec_calls" "$ROWS" "$(gw_metric aisp_gateway_calls_logged_total)"
CALL=$(jqr "$GW/e1.json" .callId)
is "the exec call's row (agent, tool, dry run, status, IAM, proof hash, node, key)" \
	"$(psqlq "select caller_agent_id, tool_name, dry_run, status, iam_approved, iam_decision, proof_hash, node_id, key_id, http_status, schema_version from secureexec_calls where call_id = '$CALL'")" \
	"agent-1|run_code|f|ok|t|allow|$(jqr "$GW/e1.json" .proofHash)|$NODE|py|200|v1"
is "a denied call's row records the decision" \
	"$(psqlq "select count(*) from secureexec_calls where iam_decision = 'payment_required' and http_status = 402 and not iam_approved")" 1
is "a call that failed authentication or hit no endpoint makes no row" \
	"$(psqlq "select count(*) from secureexec_calls where iam_decision in ('no_key', 'bad_key') or (http_status in (404, 405) and endpoint not like '/v1/tasks/%')")" 0
check "... it is counted instead" \
	test "$(gw_metric 'aisp_gateway_calls_unlogged_total{reason="unauthenticated"}')" -ge 2 -a \
	"$(gw_metric 'aisp_gateway_calls_unlogged_total{reason="no_route"}')" -ge 2
is "the seed's indexes (timestamp, agent, tool) exist" \
	"$(psqlq "select string_agg(indexname, ',' order by indexname) from pg_indexes where tablename = 'secureexec_calls' and indexname like 'idx_secureexec_%'")" \
	"idx_secureexec_agent,idx_secureexec_key,idx_secureexec_tool,idx_secureexec_ts"
# PostgreSQL SIGKILLed in the middle of a load, restarted after it: no loss, no duplicates
"${CLIENT[@]}" load "$BASE" "$K_FULL" /v1/exec/simulate "$GW/load.json" --clients 50 --total 4000 \
	--schema SimulateResponse >"$GW/load3.out" 2>&1 &
LOAD=$!
wait_for 30 sh -c "[ \"\$(psql -h $PG_DIR -p $PG_PORT -U aisp -d calls -Atc 'select count(*) from secureexec_calls' 2>/dev/null)\" -gt $((ROWS + 50)) ]"
pg_kill
wait "$LOAD"
LOAD_RC=$?
is "while PostgreSQL was killed the calls were all served" "$LOAD_RC" 0
diag "load during the outage: $(head -1 "$GW/load3.out")"
check "the writer noticed the outage" test "$(gw_metric aisp_gateway_pg_connected)" = 0
check "the records wait in the outbox meanwhile" test "$(R XLEN aisp:gw:calls)" -gt 0
pg_start || bail "postgres did not restart"
wait_for 60 outbox_empty && wait_for 30 rows_match
is "after the restart: every record written" "$(psqlq 'select count(*) from secureexec_calls')" "$(gw_metric aisp_gateway_calls_logged_total)"
is "no duplicates" "$(psqlq 'select count(*) - count(distinct call_id) from secureexec_calls')" 0
check "the outage was seen as PostgreSQL errors" test "$(gw_metric aisp_gateway_pg_errors_total)" -ge 1
check "every row of the outage's load is there (2000 + 4000 simulate calls at least)" \
	test "$(psqlq "select count(*) from secureexec_calls where endpoint = '/v1/exec/simulate'")" -ge 6000

# ---------------------------------------------------------------- Redis restarted under a call
# the call still gets its result: the reply stream is read on from the last id seen, and every
# waiter looks at aisp:result:<id> once the reply connection is back
jq -nc '{id:"gwtest-redis-restart", lang:"python", code:"import time; time.sleep(3); print(\"survived\")", runtime:"runc"}' >"$GW/rr.json"
req POST "$BASE" /v1/exec --key "$K_FULL" --body "@$GW/rr.json" --schema ExecResponse --out "$GW/rr.out.json" &
RR=$!
wait_for 30 sh -c "[ \"\$(redis-cli -p $REDIS_PORT EXISTS aisp:running:gwtest-redis-restart)\" = 1 ]"
redis_stop
redis_start
wait "$RR"
is "a call waiting across a Redis restart gets its result" "$?/$(jqr "$GW/rr.out.json" .result.output)" "0/survived"
check "the gateway reconnected (counted)" test "$(gw_metric aisp_gateway_redis_reconnects_total)" -ge 2
wait_for 30 sh -c "[ \"\$(curl -s $BASE/healthz)\" = ok ]"

# ---------------------------------------------------------------- shutdown
# two calls waiting (one plain, one NDJSON) when SIGTERM comes: each hears back
jq -nc '{lang:"python", code:"import time; time.sleep(20)", runtime:"runc"}' >"$GW/slow.json"
"${CLIENT[@]}" ndjson "$BASE" "$K_FULL" "$GW/slow.json" >"$GW/slow.out" 2>&1 &
SLOW=$!
req POST "$BASE" /v1/exec --key "$K_FULL" --body "@$GW/slow.json" --status 503 >"$GW/slow2.out" 2>&1 &
SLOW2=$!
wait_for 20 sh -c "[ \"\$(curl -s $BASE/metrics | awk '\$1 == \"aisp_gateway_waiters\" {print \$2}')\" = 2 ] 2>/dev/null"
kill -TERM "$GW_PID"
wait "$GW_PID"
is "aisp-gateway exits 0 on SIGTERM" "$?" 0
wait "$SLOW2"
is "a call waiting at SIGTERM gets 503 problem+json" "$?" 0
wait "$SLOW"
is "an NDJSON call waiting at SIGTERM gets the node's started event, an error event, then the end" "$(tail -1 "$GW/slow.out")" "events: queued started error"
check "the gateway's log has no error line" sh -c "! grep -qE '^[^ ]+ error ' '$GW/log'"
node_stop n1
done_testing
