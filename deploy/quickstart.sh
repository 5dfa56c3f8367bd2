#!/usr/bin/env bash
# The README's run command: installs what is missing, builds, builds the default sandbox image
# if the store lacks it, starts a local redis-server on loopback (its own port and directory),
# a node key and aispd, submits example tasks with `aisp submit --wait`, verifies each result's
# signed attestation with `aisp verify`, runs the seed's three-step chain (llm -> script -> llm)
# against a local mock of an OpenAI-compatible API (tests/mock/llm_server.py: no LLM is reached
# from here), prints its steps and cost, verifies and replays it, follows a task's live output,
# runs a sealed task with the stock age command (the buyer decrypts and checks the result),
# starts the HTTP gateway with an API key and a local PostgreSQL call log and runs the seed's
# curl examples through it, runs the seed's salesforce skill on a CSV blob (aisp skill add, its
# secrets, aisp blob put/get), and stops everything it started. For production, the [llm] section below changes in two lines only: base_url
# (OpenRouter's, the default) and api_key_file (your key), and the two allow_* lines, which only
# the loopback mock needs, go; deploy/aispd.conf.example shows it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "dependencies"
./deploy/install-deps.sh
./deploy/prepare-host.sh

say "build"
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build
aisp=$root/build/cli/aisp
aispd=$root/build/daemon/aispd

say "sandbox image"
"$aisp" image build default

work=$(mktemp -d /tmp/aisp-quickstart.XXXXXX)
chmod 0711 "$work" # PostgreSQL (its own user) reaches its cluster below it; the files keep their modes
pids=()
pg_stop=()
cleanup() {
	# the gateway, aispd (it drains and destroys its sandboxes), then redis-server; PostgreSQL
	local i
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill -TERM "${pids[i]}" 2>/dev/null || true
		wait "${pids[i]}" 2>/dev/null || true
	done
	[ ${#pg_stop[@]} -eq 0 ] || "${pg_stop[@]}" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

say "redis-server (deploy/redis.conf and its ACL users, 127.0.0.1, own port and directory)"
rport=$(free_port)
mkdir -p "$work/redis"
# deploy/redis.conf with a fresh password for each of its users (the node logs in as
# aisp-node, aisp as aisp-scheduler; default is the operator's); no replica here, so no
# min-replicas-to-write, and no persistence for a throwaway server
pw() { head -c 18 /dev/urandom | base64 | tr '+/' '-_'; }
node_pw=$(pw) sched_pw=$(pw) admin_pw=$(pw) gw_pw=$(pw)
sed -e "s/>change-me-node />$node_pw /" -e "s/>change-me-scheduler />$sched_pw /" \
	-e "s/>change-me-gateway />$gw_pw /" \
	-e "s/>change-me-admin />$admin_pw /" -e "s/>change-me-\([a-z]*\) />$(pw)-\1 /" \
	deploy/redis.conf >"$work/redis.conf"
chmod 0600 "$work/redis.conf"
redis-server "$work/redis.conf" --bind 127.0.0.1 --port "$rport" --dir "$work/redis" --save "" \
	--appendonly no --min-replicas-to-write 0 >"$work/redis.log" 2>&1 &
pids+=($!)
admin() { redis-cli -p "$rport" --user default --pass "$admin_pw" --no-auth-warning "$@"; }
# a scheduler's raw Redis commands (tasks that aisp submit does not build)
sched() { redis-cli -p "$rport" --user aisp-scheduler --pass "$sched_pw" --no-auth-warning "$@"; }
for _ in $(seq 100); do admin ping >/dev/null 2>&1 && break; sleep 0.1; done
admin ping
export AISP_REDIS=127.0.0.1:$rport AISP_REDIS_USER=aisp-scheduler AISP_REDIS_PASSWORD=$sched_pw

say "a mock LLM server (OpenAI-compatible, deterministic; tests/mock/llm_server.py) on loopback"
echo "quickstart-not-a-real-key-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" >"$work/llm.key"
chmod 600 "$work/llm.key"
/usr/bin/python3 "$root/tests/mock/llm_server.py" --port 0 --port-file "$work/llm.port" \
	--key-file "$work/llm.key" >"$work/llm.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/llm.port" ] && break; sleep 0.1; done
[ -s "$work/llm.port" ] || { cat "$work/llm.log"; exit 1; }
llm_url="http://127.0.0.1:$(cat "$work/llm.port")/v1"
echo "mock LLM API at $llm_url (a stand-in for OpenRouter)"

say "a skill and its secrets (the seed's salesforce example: tests/data/skills/salesforce)"
"$aisp" skill add tests/data/skills/salesforce --store "$work/skills"
install -d -m 0700 "$work/secrets" "$work/secrets/skills" "$work/secrets/skills/salesforce"
# stand-ins: an operator writes the real credentials here (root-only files, never in Redis)
printf 'sk-quickstart-%s\n' "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" |
	install -m 0600 /dev/stdin "$work/secrets/skills/salesforce/SALESFORCE_API_KEY"
printf '00D5e0000012345XYZ\n' | install -m 0600 /dev/stdin "$work/secrets/skills/salesforce/SALESFORCE_ORG_ID"

say "node key and aispd"
"$aisp" keygen --out "$work/key"
hport=$(free_port)
cat >"$work/aispd.conf" <<CONF
[node]
id = quickstart
slots = 2
state_dir = $work/state
run_dir = /run/aisp-quickstart
key = $work/key/private.pem
agent = $root/build/sandbox/agent/aisp-agent
[redis]
address = 127.0.0.1:$rport
user = aisp-node
password = $node_pw
[runtimes]
default = runsc
enabled = runsc, runc
[pool]
runsc/default/python = 1
runc/default/javascript = 1
[http]
listen = 127.0.0.1:$hport
# chains' llm steps: the mock above. Production: base_url = https://openrouter.ai/api/v1 (or
# leave it out), api_key_file = your key file, and drop the two test-only lines.
[llm]
base_url = $llm_url
api_key_file = $work/llm.key
models = anthropic/claude-sonnet-4, openai/gpt-4o-mini
allow_insecure_http = true
allow_private_addresses = true
[cost]
cpu_second_usd = 0.000024
gib_second_usd = 0.0000025
[skills]
store = $work/skills
[secrets]
dir = $work/secrets
CONF
"$aispd" --config "$work/aispd.conf" 2>"$work/aispd.log" &
pids+=($!)
for _ in $(seq 300); do
	curl -fs "http://127.0.0.1:$hport/healthz" >/dev/null 2>&1 && break
	sleep 0.2
done
curl -fs "http://127.0.0.1:$hport/healthz" && echo || { cat "$work/aispd.log"; exit 1; }

run_example() {
	local id=$1
	shift
	say "task $id: aisp submit --wait $*"
	"$aisp" submit --id "$id" --wait --wait-timeout 120 "$@" || echo "(exit status $?)"
	echo "-- verify:"
	"$aisp" verify --redis "$AISP_REDIS" "$id"
}
sfx=$(date +%s)
run_example "hello-$sfx" -c 'import platform; print("hello from", platform.python_implementation(), "in a gVisor sandbox")'
run_example "js-$sfx" --runtime runc --lang javascript -c 'console.log([1, 2, 3].map(x => x * x))'
run_example "sh-$sfx" --lang shell -c 'echo "uid $(id -u) in $(pwd) on $(uname -n)"; exit 3'
run_example "fn-$sfx" --function --args '{"n": 20}' -c '
def main(args):
    a, b = 0, 1
    for _ in range(args["n"]):
        a, b = b, a + b
    return {"fib": a}'

say "execute_skill: the salesforce skill on a CSV input blob, its JSON output blob"
blob=$("$aisp" blob put tests/data/skills/salesforce/resources/sample_leads.csv)
echo "input blob $blob"
sched XADD aisp:tasks '*' task "{\"id\":\"sync-$sfx\",\"skill\":\"salesforce\",\"blobs\":[\"$blob\"],\"args\":{\"input_blob\":\"$blob\"}}" >/dev/null
"$aisp" wait "sync-$sfx" --timeout 120 >/dev/null || true
"$aisp" result "sync-$sfx" | jq '{status, return_value, logs, output_blobs}'
"$aisp" blob get "$("$aisp" result "sync-$sfx" | jq -r .return_value.output_blob)" | jq -c '.records[0]'
echo "-- verify (the statement names the skill's digest, the blob and the secrets' names):"
"$aisp" verify --redis "$AISP_REDIS" "sync-$sfx"

say "live output: aisp submit --follow prints the lines as the program prints them"
"$aisp" submit --follow --id "follow-$sfx" --wait-timeout 120 -c 'import time
for i in range(1, 4):
    print("tick", i, flush=True)
    time.sleep(0.5)'

say "a sealed task: code and input encrypted with the stock age command, the result to the buyer"
# The buyer's identity, and the node's recipient from the registry (signed by the node's key:
# `aisp submit --seal-to node:quickstart` checks that signature for you).
age-keygen -o "$work/buyer.key" 2>/dev/null
buyer=$(age-keygen -y "$work/buyer.key")
node_age=$(sched HGET aisp:node:quickstart age)
printf 'import sys\nprint("the node saw", len(sys.stdin.read()), "secret bytes")\n' |
	age -r "$node_age" | base64 -w0 >"$work/code.b64"
printf 'my private input' | age -r "$node_age" | base64 -w0 >"$work/stdin.b64"
jq -nc --arg id "sealed-$sfx" --rawfile c "$work/code.b64" --rawfile s "$work/stdin.b64" \
	--arg to "$buyer" '{id:$id, lang:"python", code_age:$c, stdin_age:$s, reply_to:$to}' \
	>"$work/sealed-task.json"
sched XADD aisp:tasks '*' task "$(cat "$work/sealed-task.json")" >/dev/null
"$aisp" wait --timeout 120 "sealed-$sfx" >/dev/null || true
"$aisp" result "sealed-$sfx" >"$work/sealed-result.json"
echo "-- public result (no output in the clear):"
jq -c '{status, stdout, exit_code, sealed: (.sealed | length | tostring + " bytes of age")}' \
	"$work/sealed-result.json"
echo "-- the buyer decrypts with age -d:"
jq -r .sealed "$work/sealed-result.json" | base64 -d | age -d -i "$work/buyer.key" | jq -r .result.stdout
echo "-- and checks the node's signature and commitments:"
"$aisp" unseal --verify "$work/sealed-result.json" --key "$work/key" -i "$work/buyer.key" \
	--task "$work/sealed-task.json" >/dev/null

say "the seed's three-step chain: llm -> script -> llm (against the mock LLM server)"
chain_id="chain-$sfx"
jq -nc --arg id "$chain_id" '{id: $id, runtime: "runc",
  input: {items: [{price: 10}, {price: 20.5}, {price: 4.5}], currency: "EUR"},
  steps: [
    {type: "llm", model: "anthropic/claude-sonnet-4", temperature: 0,
     system_prompt: "[[mock echo]] Extract the items as JSON."},
    {type: "script", timeout_ms: 10000, code: "const data = JSON.parse(input);\nconst total = data.items.reduce((sum, item) => sum + item.price, 0);\nreturn JSON.stringify({total, count: data.items.length, average: total / data.items.length, currency: data.currency || \"USD\"});"},
    {type: "llm", model: "openai/gpt-4o-mini", temperature: 0.7,
     system_prompt: "Summarise the totals for a customer."}]}' >"$work/chain.json"
# aisp submit takes code, not steps: a chain task goes to aisp:tasks as any scheduler sends it
sched -x XADD aisp:tasks '*' task <"$work/chain.json" >/dev/null
"$aisp" wait --timeout 120 "$chain_id" || {
	rc=$?
	echo "the chain did not succeed (exit status $rc); aispd's log ends:"
	tail -20 "$work/aispd.log"
	exit 1
}
"$aisp" result "$chain_id" >"$work/chain.result.json"
echo "-- steps (each one's output is the next one's input):"
jq -r '.steps[] | "step \(.step) \(.type) \(.status): \(.output)"' "$work/chain.result.json"
echo "-- cost, signed in the attestation (the mock reports usage.cost as OpenRouter does):"
jq -r '.cost as $c | ($c.breakdown[] | "step \(.step) \(.type): " +
  (if .type == "llm" then "\(.model), \(.prompt_tokens) prompt + \(.completion_tokens) completion tokens"
   else "\(.execution_ms) ms, \(.cpu_ms) ms CPU, \(.memory_peak_bytes) bytes peak" end) +
  ", \(.cost) \($c.unit) (\(.source))"), "total: \($c.total) \($c.unit)"' "$work/chain.result.json"
echo "-- verify, then replay the script step with the recorded llm answers:"
"$aisp" verify --redis "$AISP_REDIS" "$chain_id" --task "$work/chain.json" --replay

say "the HTTP gateway: an API key, the seed's curl examples, the call log in PostgreSQL"
# a throwaway PostgreSQL 15 cluster on a unix socket in the work dir (initdb refuses root)
PGB=/usr/lib/postgresql/15/bin
pgdir=$work/pg
mkdir -p "$pgdir" && chown postgres: "$pgdir"
runuser -u postgres -- "$PGB/initdb" -D "$pgdir/data" -A trust -U aisp >/dev/null
pgport=$(free_port)
runuser -u postgres -- "$PGB/pg_ctl" -D "$pgdir/data" -o "-k $pgdir -p $pgport -c listen_addresses=''" \
	-l "$pgdir/log" -w start >/dev/null
pg_stop=(runuser -u postgres -- "$PGB/pg_ctl" -D "$pgdir/data" -m fast stop)
runuser -u postgres -- "$PGB/createdb" -h "$pgdir" -p "$pgport" -U aisp calls
gateway=$root/build/gateway/aisp-gateway
gport=$(free_port)
# an API key that may run Python; the keys file keeps only its SHA-256
api_key=$("$gateway" key add --file "$work/gw-keys.conf" --id quickstart \
	--set allow_languages=python --set rate_per_s=20 --set burst=40 | grep -o 'aisk_[A-Za-z0-9_-]*' | head -1)
printf '%s\n' "[gateway]" "id = quickstart-gw" "listen = 127.0.0.1:$gport" \
	"key = $work/gw-key/private.pem" "create_key = true" "keys_file = $work/gw-keys.conf" \
	"[redis]" "address = 127.0.0.1:$rport" "user = aisp-gateway" "password = $gw_pw" \
	"[calllog]" "postgres = host=$pgdir port=$pgport user=aisp dbname=calls" >"$work/gateway.conf"
"$gateway" --config "$work/gateway.conf" >"$work/gateway.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$gport/health" >/dev/null 2>&1 && break; sleep 0.1; done
gw=http://127.0.0.1:$gport
echo "-- curl $gw/exec/simulate (a dry run: no sandbox starts; signed by the gateway):"
curl -fsS -X POST "$gw/exec/simulate" -H "Authorization: Bearer $api_key" -H "Content-Type: application/json" \
	-d '{"agentId": "test", "tool": {"name": "run_code", "args": {"language": "python", "code": "print(6*7)"}}}' |
	jq -c '{dryRun, iamApproved, status, proofHash}'
echo "-- curl $gw/exec/tool with dryRun false (runs on the node):"
curl -fsS -X POST "$gw/exec/tool" -H "Authorization: Bearer $api_key" -H "Content-Type: application/json" \
	-d '{"agentId": "my_agent", "tool": {"name": "run_code", "args": {"language": "python", "code": "print(6*7)"}, "timeout_s": 10}, "dryRun": false}' \
	>"$work/gw-exec.json"
jq -c '{jobId, status, output: .result.output, node, proofHash}' "$work/gw-exec.json"
echo "-- the node's signed result of that call, verified:"
"$aisp" verify --redis "$AISP_REDIS" "$(jq -r .jobId "$work/gw-exec.json")" | tail -1
echo "-- a shell task is outside this key's policy:"
curl -sS -X POST "$gw/v1/exec" -H "Authorization: Bearer $api_key" -H "Content-Type: application/json" \
	-d '{"lang": "shell", "code": "id"}' | jq -c '{status, title, detail}'
echo "-- NDJSON: queued, the node's live events, then the result:"
curl -fsS -N -X POST "$gw/v1/exec" -H "Accept: application/x-ndjson" -H "Authorization: Bearer $api_key" \
	-H "Content-Type: application/json" \
	-d '{"lang": "python", "code": "import time\nfor i in range(3): print(i, flush=True); time.sleep(0.3)"}' |
	jq -c '{event} + (if .event == "output" then {data} elif .event == "result" then {status} else {} end)'
echo "-- the call log in PostgreSQL:"
for _ in $(seq 50); do
	n=$(runuser -u postgres -- "$PGB/psql" -h "$pgdir" -p "$pgport" -U aisp -d calls -Atc 'SELECT count(*) FROM secureexec_calls' 2>/dev/null || echo 0)
	[ "${n:-0}" -ge 4 ] && break
	sleep 0.2
done
echo "$n calls logged (table secureexec_calls, the seed's schema: aisp-gateway --print-schema)"

say "the node"
"$aisp" nodes
curl -fs "http://127.0.0.1:$hport/metrics" | grep -E '^aisp_tasks_total' || true
say "what Redis refused the aisp users (ACL LOG; aisp nodes may not drop expired ids)"
admin ACL LOG 10 | grep -A1 -E '^(username|object)$' | grep -vE '^(username|object|--)$' | paste - - || true
say "done: stopping the gateway, aispd, redis-server and PostgreSQL"
