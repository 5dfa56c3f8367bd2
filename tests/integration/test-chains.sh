#!/usr/bin/env bash
# Multi-step chains end to end (issue 19): a real redis-server, aispd on runc and runsc, and the
# OpenAI-compatible mock (tests/mock/llm_server.py) on a free loopback port. The seed's three-
# step chain (llm -> script -> llm) through Redis; every mock failure mode gives the result
# proto/CHAINS.md documents; the API key canary never appears in Redis, results or logs; every
# cost total is the sum of its breakdown; verify --replay with the recorded answers passes, and
# a tampered recorded answer or script output fails naming the step. TAP output.
# (-e is off on purpose: a TAP suite goes on after a failing check.)
set -uo pipefail
. "$(dirname "$0")/../lib/node.sh"
need_nodes
redis_start

# ---------------------------------------------------------------- the mock and its key
mock_llm_start "$TEST_TMP/llm.key"
CANARY=$MOCK_LLM_KEY
MOCK=$MOCK_LLM

LLM_CONF="[llm]
base_url = $MOCK/v1
api_key_file = $TEST_TMP/llm.key
models = anthropic/claude-sonnet-4, openai/gpt-4o-mini, mock/priced
max_tokens = 4096
timeout_ms = 2000
max_attempts = 3
retry_base_ms = 50
retry_budget_ms = 5000
prices = mock/priced:1.5:3
allow_insecure_http = true
allow_private_addresses = true
[cost]
cpu_second_usd = 0.000024
gib_second_usd = 0.0000025"
SLOTS=3 RT_ENABLED="runc, runsc" POOL="runc/default/javascript = 1
runsc/default/javascript = 1" EXTRA_SECTIONS="$LLM_CONF" node_conf c1
node_start c1
wait_for 60 node_registered c1 || bail "node c1 did not register: $(node_log c1 | tail -5)"

# ---------------------------------------------------------------- helpers
# chain ID RUNTIME STEPS-JSON [INPUT-JSON]: a chain task document
chain() {
	jq -nc --arg id "$1" --arg rt "$2" --argjson steps "$3" --argjson input "${4:-\"\"}" \
		'{id:$id, runtime:$rt, steps:$steps, input:$input}'
}
# run_chain ID JSON [TIMEOUT]: submit, wait for the result, keep task and result in files
run_chain() {
	printf '%s' "$2" >"$TEST_TMP/$1.task.json"
	submit_json "$2" >/dev/null
	wait_result "$1" "${3:-120}" || { not_ok "$1: no result" "$(node_log c1 | tail -5)"; return 1; }
	result "$1" >"$TEST_TMP/$1.result.json"
}
# cost_sums ID: true when the total is the sum of the breakdown
cost_sums() { rfield "$1" '.cost.total == ([.cost.breakdown[].cost] | add // 0)' | grep -qx true; }
verify() { "$AISP" verify --pubkey "$TEST_TMP/key/public.pem" "$TEST_TMP/$1.result.json" --task "$TEST_TMP/$1.task.json" "${@:2}"; }

SEED_STEPS='[
 {"type":"llm","model":"anthropic/claude-sonnet-4","system_prompt":"[[mock echo]] Extract the items as JSON.","temperature":0},
 {"type":"script","code":"const data = JSON.parse(input);\nconst result = {\n  total: data.items.reduce((sum, item) => sum + item.price, 0),\n  count: data.items.length,\n  average: data.items.reduce((sum, item) => sum + item.price, 0) / data.items.length,\n  currency: data.currency || \"USD\"\n};\nreturn JSON.stringify(result);","timeout_ms":10000},
 {"type":"llm","model":"openai/gpt-4o-mini","system_prompt":"Summarise.","temperature":0.7}]'
SEED_INPUT='{"items":[{"price":10},{"price":20.5},{"price":4.5}],"currency":"EUR"}'
SUMMARY='[openai/gpt-4o-mini] Summarise. | {"total":35,"count":3,"average":11.666666666666666,"currency":"EUR"}'

# ---------------------------------------------------------------- the seed's chain, both runtimes
for rt in runc runsc; do
	id=seed-$rt
	run_chain $id "$(chain $id $rt "$SEED_STEPS" "$SEED_INPUT")" || continue
	is "$rt seed chain: ok, three steps" "$(rfield $id '.status + " " + (.steps | length | tostring)')" "ok 3"
	is "$rt seed chain: the output is the last llm step's answer" "$(rfield $id .output)" "$SUMMARY"
	is "$rt seed chain: the script step got the first answer and returned a string" \
		"$(rfield $id '.steps[1].output')" '{"total":35,"count":3,"average":11.666666666666666,"currency":"EUR"}'
	is "$rt seed chain: every step ok" "$(rfield $id '[.steps[].status] | join(",")')" "ok,ok,ok"
	is "$rt seed chain: the llm usage is recorded" "$(rfield $id '.steps[2].usage.prompt_tokens > 0 and .steps[2].usage.completion_tokens > 0')" true
	is "$rt seed chain: cost per step, in micro-USD" \
		"$(rfield $id '.cost.unit + " " + ([.cost.breakdown[] | .type + ":" + .source] | join(","))')" \
		"micro_usd llm:provider,script:usage,llm:provider"
	check "$rt seed chain: the cost total is the sum of the breakdown" cost_sums $id
	# the mock's price: $1 per Mtok prompt, $2 per Mtok completion (usage.cost, exact)
	is "$rt seed chain: an llm step's cost is the provider's" \
		"$(rfield $id '.cost.breakdown[2] | .cost == ((.prompt_tokens + 2 * .completion_tokens) as $n | ($n + 0))')" true
	verify $id >"$TEST_TMP/$id.v" 2>&1
	is "$rt seed chain: the result verifies (steps and cost signed)" "$?" 0
	check "$rt seed chain: verify checked every step" grep -q "^PASS steps" "$TEST_TMP/$id.v"
	verify $id --replay >"$TEST_TMP/$id.r" 2>&1
	rc=$?
	is "$rt seed chain: replay with the recorded answers passes" "$rc" 0
	[ $rc = 0 ] || diag "$(cat "$TEST_TMP/$id.r")"
	check "$rt seed chain: the replay re-ran the script step" grep -q "^PASS replay.step.1" "$TEST_TMP/$id.r"
	check "$rt seed chain: the replay reproduced the execution digest" grep -q "^PASS replay.execution" "$TEST_TMP/$id.r"
	"$AISP" wait --timeout 10 $id >"$TEST_TMP/$id.w" 2>"$TEST_TMP/$id.we"
	is "$rt seed chain: aisp wait exits 0 and prints the chain's output" "$? $(cat "$TEST_TMP/$id.w")" "0 $SUMMARY"
	is "$rt seed chain: ... and each step's status on stderr" "$(tr '\n' ';' <"$TEST_TMP/$id.we")" \
		"aisp: step 0 (llm): ok;aisp: step 1 (script): ok;aisp: step 2 (llm): ok;"
done

# ---------------------------------------------------------------- tampering, named by step
jq -c '.steps[0].output = "{\"items\":[{\"price\":1000}]}"' "$TEST_TMP/seed-runc.result.json" >"$TEST_TMP/t1.result.json"
cp "$TEST_TMP/seed-runc.task.json" "$TEST_TMP/t1.task.json"
verify t1 --replay >"$TEST_TMP/t1.r" 2>&1
is "a tampered recorded answer fails" "$?" 1
check "... and verify names step 0" grep -q "^FAIL steps: step 0 (llm): the recorded answer differs" "$TEST_TMP/t1.r"
check "... and the replay names step 0" grep -q "^FAIL replay.step.0: step 0 (llm): the recorded answer differs" "$TEST_TMP/t1.r"
jq -c '.steps[1].output = "{\"total\":1}"' "$TEST_TMP/seed-runc.result.json" >"$TEST_TMP/t2.result.json"
cp "$TEST_TMP/seed-runc.task.json" "$TEST_TMP/t2.task.json"
verify t2 --replay >"$TEST_TMP/t2.r" 2>&1
is "a tampered script output fails" "$?" 1
check "... and verify names step 1" grep -q "^FAIL steps: step 1 (script): the output differs" "$TEST_TMP/t2.r"
check "... and the replay names step 1" grep -q "^FAIL replay.step.1: step 1 (script): the output differs (recorded" "$TEST_TMP/t2.r"
check "... while the re-executed step itself matches what was attested" \
	bash -c "! grep -q 'step 1 (script): the output differs (replayed' '$TEST_TMP/t2.r'"

# ---------------------------------------------------------------- a python step, llm only, plain
PY='[{"type":"llm","model":"anthropic/claude-sonnet-4","system_prompt":"[[mock echo]]"},{"type":"script","lang":"python","code":"import json\ndata = json.loads(input)\noutput = {\"n\": len(data[\"items\"])}"}]'
run_chain py "$(chain py runc "$PY" "$SEED_INPUT")"
is "python step: input is a str, output assigned" "$(rfield py '.status + " " + (.output | tojson)')" 'ok {"n":3}'
run_chain llm-only "$(chain llm-only runc '[{"type":"llm","model":"openai/gpt-4o-mini","system_prompt":"[[mock upper]]"}]' '"abc"')"
is "llm-only chain: no sandbox, the answer" "$(rfield llm-only '.status + " " + .output + " " + (.image_digest // "none")')" "ok ABC none"
verify llm-only --replay >"$TEST_TMP/lo.r" 2>&1
is "llm-only chain: replay passes (nothing to run)" "$?" 0
printf 'print(6*7)\n' >"$TEST_TMP/p.py"
submit_json "$(task_json plain python "$TEST_TMP/p.py" runc)" >/dev/null
wait_result plain 60
is "a plain task gets a cost too" "$(rfield plain '.cost.unit + " " + .cost.breakdown[0].type + " " + .cost.breakdown[0].source')" "micro_usd task usage"
check "... whose total is its breakdown" cost_sums plain

# ---------------------------------------------------------------- failure modes (proto/CHAINS.md)
# fail_case ID DIRECTIVE STATUS ERROR-SUBSTRING: the directive in step 0's system prompt
fail_case() {
	local id=$1 steps
	steps=$(jq -nc --arg sp "$2" '[{type:"llm",model:"anthropic/claude-sonnet-4",system_prompt:$sp},{type:"script",code:"return input"}]')
	run_chain "$id" "$(chain "$id" runc "$steps" '"x"')" || return
	is "$id: status, failed step, steps recorded" \
		"$(rfield "$id" '.status + " " + (.failed_step | tostring) + " " + (.steps | length | tostring)')" "$3 0 1"
	local err
	err=$(rfield "$id" .error)
	if [[ "$err" == "step 0 (llm): "*"$4"* ]]; then ok "$id: error names step 0: $4"; else not_ok "$id: error" "got: $err" "want: step 0 (llm): ...$4..."; fi
	check "$id: cost total is the sum of the breakdown" cost_sums "$id"
}
fail_case f500 "[[mock fail=500]]" error "llm: HTTP 500 from $MOCK/v1/chat/completions: mock failure 500"
fail_case f429 "[[mock fail=429 retry-after=0]]" error "llm: gave up after 3 attempts (last: 429 Too Many Requests"
fail_case fslow "[[mock delay=5000]]" error "Operation timed out"
fail_case fmal "[[mock malformed]]" error "is not JSON"
fail_case f200 "[[mock error200]]" error "llm: error in an HTTP 200 response"
fail_case fchoice "[[mock choice-error]]" error "llm: error in choices[0] in an HTTP 200 response"
fail_case fdrop "[[mock drop]]" error "llm: POST $MOCK/v1/chat/completions:"
fail_case fredir "[[mock redirect]]" error "llm: HTTP 302"
fail_case fhtml "[[mock html=502]]" error "gave up after 3 attempts (last: 502 Bad Gateway"
fail_case fnochoice "[[mock nochoices]]" error "has no choices[0]"
fail_case fbig "[[mock oversized=2000000]]" output_limit "the output is"
run_chain retry "$(chain retry runc '[{"type":"llm","model":"anthropic/claude-sonnet-4","system_prompt":"[[mock fail=429 times=2 retry-after=0 id=r1]] [[mock echo]]"}]' '"hi"')"
is "429 twice, then an answer: ok after 3 attempts" "$(rfield retry '.status + " " + (.steps[0].attempts | tostring)')" "ok 3"
run_chain nocost "$(chain nocost runc '[{"type":"llm","model":"mock/priced","system_prompt":"[[mock nocost]]"}]' '"abcd"')"
is "no provider cost: the node's price table, exactly" \
	"$(rfield nocost '.cost.breakdown[0] | .source + " " + ((.cost == (((.prompt_tokens * 1500000 + .completion_tokens * 3000000) + 500000) / 1000000 | floor)) | tostring)')" "price_table true"
run_chain nousage "$(chain nousage runc '[{"type":"llm","model":"anthropic/claude-sonnet-4","system_prompt":"[[mock nousage]]"}]' '"a"')"
is "no usage: tokens null, cost none" "$(rfield nousage '(.steps[0].usage.prompt_tokens | tostring) + " " + .cost.breakdown[0].source + " " + (.cost.total | tostring)')" "null none 0"
run_chain badmodel "$(chain badmodel runc '[{"type":"llm","model":"openai/gpt-5"}]')"
is "a model the node does not allow: rejected" "$(rfield badmodel '.status + ": " + .error')" \
	'rejected: steps[0]: llm: model "openai/gpt-5" is not allowed on this node'
run_chain badstep "$(jq -nc '{id:"badstep", steps:[{type:"script"}]}')"
is "a bad step: rejected with its message" "$(rfield badstep '.status + ": " + .error')" \
	'rejected: steps[0]: a script step needs "code"'
run_chain throws "$(chain throws runc '[{"type":"llm","model":"anthropic/claude-sonnet-4","system_prompt":"[[mock echo]]"},{"type":"script","code":"throw new Error(\"no items: \" + input)"},{"type":"llm","model":"openai/gpt-4o-mini"}]' '"x"')"
is "a script step that throws stops the chain at step 1" "$(rfield throws '.status + " " + (.failed_step | tostring) + " " + .error')" \
	"error 1 step 1 (script): Error: no items: x"
is "... with the steps that ran and their cost" "$(rfield throws '[.cost.breakdown[].type] | join(",")')" "llm,script"
run_chain slow "$(chain slow runsc '[{"type":"script","code":"for (;;) {}","timeout_ms":500}]')"
is "a script step past its timeout_ms: timeout" "$(rfield slow '.status + " " + (.failed_step | tostring)')" "timeout 0"

# ---------------------------------------------------------------- cancel during an llm call
submit_json "$(chain cancel-llm runc '[{"type":"llm","model":"anthropic/claude-sonnet-4","system_prompt":"[[mock delay=20000]]"}]' '"x"')" >/dev/null
wait_for 20 grep -q "task=cancel-llm .*event=step step=0 type=llm" "$(node_dir c1)/log"
sleep 0.5
"$AISP" cancel --wait --timeout 10 cancel-llm >/dev/null 2>&1
is "a cancel stops the llm call: status" "$(rfield cancel-llm '.status + " " + .error')" \
	"cancelled step 0 (llm): cancelled by request while it ran"

# ---------------------------------------------------------------- the key never leaks
run_chain leak "$(chain leak runc '[{"type":"llm","model":"anthropic/claude-sonnet-4","system_prompt":"[[mock leak-key]]"}]' '"x"')"
is "a provider quoting the key: the answer has it redacted" "$(rfield leak '.output | test("\\[REDACTED\\]")')" true
run_chain echoauth "$(chain echoauth runc '[{"type":"llm","model":"anthropic/claude-sonnet-4","system_prompt":"[[mock echo-auth]]"}]' '"x"')"
is "a 401 quoting the key: the message has it redacted" "$(rfield echoauth '.error | test("\\[REDACTED\\]")')" true
check "the mock received the key (the scan below would see a leak)" grep -q "$CANARY" <(curl -s "$MOCK/_mock/requests")
redis_dump "$TEST_TMP/redis-dump"
check "the scan read Redis (results, streams, the node's entry)" grep -q "seed-runc" "$TEST_TMP/redis-dump"
check "the API key canary is nowhere in Redis" bash -c "! grep -qF '$CANARY' '$TEST_TMP/redis-dump'"
check "... nor in any result" bash -c "! cat '$TEST_TMP'/*.result.json | grep -qF '$CANARY'"
check "... nor in aispd's log" bash -c "! grep -qF '$CANARY' '$(node_dir c1)/log'"

node_stop c1
check "node c1 left no residue" [ -z "$(residue c1)" ]
done_testing
