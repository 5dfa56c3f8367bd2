#!/usr/bin/env bash
# Sealed and signed tasks through aispd (issue 20, done-when), against a real redis-server,
# the stock age command and aispd on runc and runsc: a task whose code and stdin were encrypted
# with `age -r` to the node's recipient runs, and its result opens with `age -d` (and passes
# `aisp unseal --verify`); wrong recipient, truncated, tampered and non-canonical ciphertexts
# are rejected by name; a chain whose steps (the seller's) and input (the buyer's) came sealed
# runs and verifies; a task sealed for another node's identity is handed to that node; no
# plaintext canary reaches Redis (its AOF), the node's state and run dirs or its log, also
# while the task runs; the trust level x passport matrix is decided by the node; a revocation
# mid-run stops the task on both runtimes with a signed `revoked` result. TAP output.
# (-e is off on purpose: a TAP suite goes on after a failing check.)
set -uo pipefail
. "$(dirname "$0")/../lib/node.sh"
need_nodes age age-keygen base64
redis_start

W=$TEST_TMP/w
mkdir -p "$W"
CANARY=cnry$RANDOM$RANDOM
UPPER=${CANARY^^}
b64() { base64 -w0 "$@"; }
flip_last() { # flips the last byte of a file
	local n b
	n=$(($(stat -c %s "$1") - 1))
	b=$(dd if="$1" bs=1 skip="$n" count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
	printf "$(printf '\\%03o' $(((b ^ 1) & 255)))" | dd of="$1" bs=1 seek="$n" count=1 conv=notrunc 2>/dev/null
}

# ---------------------------------------------------------------- keys and the node
"$AISP" keygen --out "$TEST_TMP/key" >/dev/null
for d in signer issuer rogue other; do "$AISP" keygen --out "$W/$d" >/dev/null; done
age-keygen -o "$W/buyer.key" 2>/dev/null
BUYER=$(age-keygen -y "$W/buyer.key")
NODE_AGE=$(cat "$TEST_TMP/key/age.pub")
TRUST="[trust]
issuers = $W/issuer/public.pem
revocation_poll_ms = 100"
SLOTS=2 EXTRA_SECTIONS=$TRUST node_conf s1
node_start s1
wait_for 30 node_registered s1 || bail "node s1 did not register: $(node_log s1 | tail -5)"
S1=$(node_id s1)
is "the registry publishes the node's age recipient" "$(R HGET "aisp:node:$S1" age)" "$NODE_AGE"
is "inside a statement signed by the node" \
	"$(R HGET "aisp:node:$S1" age_recipient | jq -r .payloadType)" \
	"application/vnd.aisp.node-recipient+json"
KEY_ID=$(R HGET "aisp:node:$S1" key_id)

# sealed_task ID CODE_AGE STDIN_AGE RUNTIME: a task document with the parts as base64
sealed_task() {
	jq -nc --arg id "$1" --arg c "$(b64 "$2")" --arg s "$(b64 "$3")" --arg rt "$4" \
		--arg to "$BUYER" '{id:$id, lang:"python", runtime:$rt, code_age:$c, stdin_age:$s, reply_to:$to}'
}
# opened ID: the sealed document of ID's result, decrypted by the buyer with stock age
opened() { rfield "$1" .sealed | base64 -d | age -d -i "$W/buyer.key"; }

printf 'import sys\nprint(sys.stdin.read().upper())\n' >"$W/code.py"
printf 'hello %s' "$CANARY" >"$W/stdin.txt"
age -r "$NODE_AGE" -o "$W/code.age" "$W/code.py"
age -r "$NODE_AGE" -o "$W/stdin.age" "$W/stdin.txt"

# ---------------------------------------------------------------- a sealed run, both runtimes
for rt in runc runsc; do
	sealed_task "ok-$rt" "$W/code.age" "$W/stdin.age" "$rt" >"$W/ok-$rt.json"
	submit_json "$(cat "$W/ok-$rt.json")" >/dev/null
	wait_result "ok-$rt" 120 || diag "no result for ok-$rt: $(node_log s1 | tail -5)"
	result "ok-$rt" >"$W/ok-$rt.result"
	is "$rt sealed task: status ok" "$(jq -r .status "$W/ok-$rt.result")" ok
	is "$rt sealed task: the public result has no stdout, stderr or exit code" \
		"$(jq -c '[(.stdout // ""), (.stderr // ""), .exit_code, (.files | length)]' "$W/ok-$rt.result")" \
		'["","",null,0]'
	is "$rt sealed task: age -d opens the sealed result" "$(opened "ok-$rt" | jq -r .result.stdout)" \
		"HELLO $UPPER"
	"$AISP" unseal --verify "$W/ok-$rt.result" --key "$TEST_TMP/key" -i "$W/buyer.key" \
		--task "$W/ok-$rt.json" >"$W/ok-$rt.out" 2>"$W/ok-$rt.err"
	is "$rt sealed task: aisp unseal --verify passes (received, delivered, commitments)" "$?" 0
	check "$rt sealed task: ... every check passed" bash -c "! grep -v '^PASS\|^SKIP' '$W/ok-$rt.err'"
done

# ---------------------------------------------------------------- bad ciphertexts
bad() { # bad NAME CODE_AGE STDIN_AGE WANT
	sealed_task "$1" "$2" "$3" runc >"$W/$1.json"
	submit_json "$(cat "$W/$1.json")" >/dev/null
	wait_result "$1" 30
	is "$1: rejected" "$(rfield "$1" .status)" rejected
	check "$1: the error names the problem: $4" grep -qF -- "$4" <<<"$(rfield "$1" .error)"
}
age -r "$BUYER" -o "$W/code.buyer" "$W/code.py"
bad wrong-recipient "$W/code.buyer" "$W/stdin.age" \
	"age: no identity matches any recipient stanza (1 stanza, 1 X25519) (the task is sealed for another node's age identity); no live node offers it"
cp "$W/stdin.age" "$W/stdin.tampered"
flip_last "$W/stdin.tampered"
bad tampered "$W/code.age" "$W/stdin.tampered" "sealed part stdin_age: age: payload: chunk 1 failed authentication"
head -c $(($(stat -c %s "$W/code.age") - 20)) "$W/code.age" >"$W/code.truncated"
bad truncated "$W/code.truncated" "$W/stdin.age" "sealed part code_age: age: payload"
sed '1s/$/\r/' "$W/code.age" >"$W/code.crlf"
bad non-canonical "$W/code.crlf" "$W/stdin.age" "sealed part code_age: age: header: line 1"
printf '[{"path":"../%s","content_b64":""}]' "$CANARY" | age -r "$NODE_AGE" -o "$W/files.age"
jq -nc --arg f "$(b64 "$W/files.age")" --arg to "$BUYER" \
	'{id:"badfiles", lang:"python", code:"print(1)", files_age:$f, reply_to:$to}' >"$W/badfiles.json"
submit_json "$(cat "$W/badfiles.json")" >/dev/null
wait_result badfiles 30
check "an invalid decrypted part is rejected" \
	grep -q "^sealed part files_age: the decrypted files is not valid" <<<"$(rfield badfiles .error)"
check "... and the buyer reads why in the sealed result" grep -qF "$CANARY" <<<"$(opened badfiles | jq -r .result.error)"
for id in wrong-recipient tampered; do
	result "$id" >"$W/$id.result"
	check "$id: the rejection is signed" "$AISP" verify --pubkey "$TEST_TMP/key/public.pem" "$W/$id.result"
done

# ---------------------------------------------------------------- aisp submit --seal-to node:ID
printf 'print("%s".upper())\n' "$CANARY" >"$W/cli.py"
"$AISP" submit --id cli-sealed --seal-to "node:$S1" --reply-to "$BUYER" --runtime runc \
	"$W/cli.py" >"$W/cli.out" 2>"$W/cli.err"
is "aisp submit --seal-to node:ID" "$?" 0
check "... names the key that signed the recipient, and how to pin it" \
	grep -qF "signed by the registry's key $KEY_ID (whoever can write the registry can replace both" "$W/cli.err"
wait_result cli-sealed 60
is "... and the node runs it" "$(opened cli-sealed | jq -r .result.stdout)" "$UPPER"
"$AISP" submit --id cli-pinned --seal-to "node:$S1@$KEY_ID" --reply-to "$BUYER" --runtime runc \
	"$W/cli.py" >/dev/null 2>"$W/pinned.err"
is "--seal-to node:ID@KEYID with the node's own key" "$?" 0
check "... says the key was the pinned one" grep -qF "signed by the pinned key $KEY_ID" "$W/pinned.err"
OTHER_KEY=sha256:$(printf '0%.0s' $(seq 64))
"$AISP" submit --id cli-badpin --seal-to "node:$S1@$OTHER_KEY" --reply-to "$BUYER" "$W/cli.py" \
	>/dev/null 2>"$W/badpin.err"
is "... with another key pinned: refused (exit 2)" "$?" 2
check "... naming both keys" grep -qF "the registry's key for node $S1 is $KEY_ID, not the pinned $OTHER_KEY" "$W/badpin.err"
# The node's heartbeat rewrites its registry entry: forge, submit, and count the try only when
# the forgery was still there after the submit (a few tries at most).
forged=$(R HGET "aisp:node:$S1" age_recipient | jq -c '.payload = "e30="')
for try in 1 2 3 4 5; do
	R HSET "aisp:node:$S1" age_recipient "$forged" >/dev/null
	"$AISP" submit --id "cli-forged-$try" --seal-to "node:$S1" --reply-to "$BUYER" "$W/cli.py" >/dev/null 2>"$W/forged.err"
	rc=$?
	[ "$(R HGET "aisp:node:$S1" age_recipient)" = "$forged" ] && break
	diag "try $try: the heartbeat rewrote the registry entry during the submit"
done
is "a forged registry recipient is refused (exit 2: the task is not built)" "$rc" 2
check "... by name" grep -q "node-recipient\|signature\|does not verify" "$W/forged.err"
diag "$(cat "$W/forged.err")"

# ---------------------------------------------------------------- a sealed chain, both runtimes
# The seller seals the steps (scripts, system prompts) with the stock age command; the buyer's
# `aisp task seal` seals the input, the part still in the clear.
jq -nc --arg c "$CANARY" '[{type:"script", lang:"python", timeout_ms:30000,
	code:("import json\n# seller " + $c + "\nd = json.loads(input)\noutput = {\"shout\": d[\"q\"].upper()}")},
	{type:"script", lang:"python", timeout_ms:30000, code:"output = \"done \" + input"}]' >"$W/steps.json"
age -r "$NODE_AGE" -o "$W/steps.age" "$W/steps.json"
for rt in runc runsc; do
	jq -nc --arg id "chain-$rt" --arg rt "$rt" --arg s "$(b64 "$W/steps.age")" --arg c "$CANARY" \
		--arg to "$BUYER" '{id:$id, runtime:$rt, steps_age:$s, input:{q:("buyer " + $c)}, reply_to:$to}' \
		>"$W/chain-$rt.half"
	"$AISP" task seal "$W/chain-$rt.half" --seal-to "$NODE_AGE" \
		-o "$W/chain-$rt.json" 2>"$W/chain-$rt.seal.err"
	is "$rt sealed chain: aisp task seal seals the input beside the sealed steps" \
		"$(jq -c '[has("steps"), has("steps_age"), has("input"), has("input_age")]' "$W/chain-$rt.json")" \
		'[false,true,false,true]'
	submit_json "$(cat "$W/chain-$rt.json")" >/dev/null
	wait_result "chain-$rt" 120 || diag "no result for chain-$rt: $(node_log s1 | tail -5)"
	result "chain-$rt" >"$W/chain-$rt.result"
	is "$rt sealed chain: status ok" "$(jq -r .status "$W/chain-$rt.result")" ok
	is "$rt sealed chain: the public result has no steps, output or cost breakdown" \
		"$(jq -c '[has("steps"), has("output"), (.cost.breakdown // [] | length)]' "$W/chain-$rt.result")" \
		'[false,false,0]'
	is "$rt sealed chain: the public cost is the sealed document's total, its breakdown sealed" \
		"$(jq -c '.cost | [.total, .breakdown_sealed, has("breakdown")]' "$W/chain-$rt.result")" \
		"$(opened "chain-$rt" | jq -c '[.result.cost.total, true, false]')"
	is "$rt sealed chain: age -d opens the steps' run" \
		"$(opened "chain-$rt" | jq -r '.result.steps[0].output.shout + " | " + .result.steps[1].output')" \
		"BUYER $UPPER | done {\"shout\":\"BUYER $UPPER\"}"
	jq -n --slurpfile s "$W/steps.json" --arg c "$CANARY" --arg to "$BUYER" --arg id "chain-$rt" \
		'{id:$id, steps:$s[0], input:{q:("buyer " + $c)}, reply_to:$to}' >"$W/chain-$rt.plain"
	"$AISP" unseal --verify "$W/chain-$rt.result" --key "$TEST_TMP/key" -i "$W/buyer.key" \
		--task "$W/chain-$rt.json" --input "$W/chain-$rt.plain" >"$W/chain-$rt.out" 2>"$W/chain-$rt.err"
	is "$rt sealed chain: aisp unseal --verify passes with the plaintext chain" "$?" 0
	check "$rt sealed chain: ... the input commitment checked, every check passed" \
		bash -c "grep -q '^PASS input' '$W/chain-$rt.err' && ! grep -v '^PASS\|^SKIP\|^aisp: step' '$W/chain-$rt.err'"
done
jq -nc --arg s "$(printf '[{"type":"script","lang":"ruby","code":"%s"}]' "$CANARY" | age -r "$NODE_AGE" | b64)" \
	--arg to "$BUYER" '{id:"chain-bad", runtime:"runc", steps_age:$s, input:"x", reply_to:$to}' >"$W/chain-bad.json"
submit_json "$(cat "$W/chain-bad.json")" >/dev/null
wait_result chain-bad 60
is "a sealed chain whose steps break the rules: rejected naming the part only" \
	"$(rfield chain-bad '.status + ": " + .error')" \
	"rejected: sealed part steps_age: the decrypted steps is not valid (the reason is in the result sealed to reply_to)"
check "... and the buyer reads why in the sealed result" grep -q "steps\[0\]" <<<"$(opened chain-bad | jq -r .result.error)"
# this node runs no llm steps: the reason names the step (and, with an [llm] section, its
# model), so for sealed steps it is the buyer's alone
jq -nc --arg s "$(printf '[{"type":"llm","model":"vendor/%s"}]' "$CANARY" | age -r "$NODE_AGE" | b64)" \
	--arg to "$BUYER" '{id:"chain-llm", steps_age:$s, input:"x", reply_to:$to}' >"$W/chain-llm.json"
submit_json "$(cat "$W/chain-llm.json")" >/dev/null
wait_result chain-llm 60
is "a sealed chain this node cannot plan: rejected without quoting its steps" \
	"$(rfield chain-llm '.status + ": " + .error')" \
	"rejected: sealed part steps_age: this node cannot run the decrypted steps (the reason is in the result sealed to reply_to)"
check "... and the buyer reads the node's reason" grep -q "steps\[0\]: this node runs no llm steps" \
	<<<"$(opened chain-llm | jq -r .result.error)"

# ---------------------------------------------------------------- no plaintext, also mid-run
printf 'import sys, time\nprint(sys.stdin.read().upper(), flush=True)\ntime.sleep(4)\n' >"$W/slow.py"
age -r "$NODE_AGE" -o "$W/slow.age" "$W/slow.py"
for rt in runc runsc; do
	sealed_task "slow-$rt" "$W/slow.age" "$W/stdin.age" "$rt" >"$W/slow-$rt.json"
	submit_json "$(cat "$W/slow-$rt.json")" >/dev/null
done
wait_for 60 grep -q "task=slow-runsc .*event=started" "$(node_dir s1)/log"
sleep 1
# grep -a: binary files too (the AOF, chain state); -i: the upper-cased output as well
scan() { grep -rail -- "$CANARY" "$(node_dir s1)" "$TEST_TMP/redis" 2>/dev/null; }
leaks=$(scan)
is "while sealed tasks run: no canary in Redis's AOF, the node's state, run dirs or log" "$leaks" ""
wait_result slow-runc 60
wait_result slow-runsc 60
leaks=$(scan; R --scan | while read -r k; do R DUMP "$k" | grep -qai -- "$CANARY" && echo "$k"; done)
is "after: none in Redis, the node's state, run dirs or log" "$leaks" ""

# ---------------------------------------------------------------- handed to the node that holds it
"$AISP" keygen --out "$W/key2" >/dev/null
SLOTS=2 BLOCK_MS=200 EXTRA_SECTIONS=$TRUST node_conf s2
# its own key; its registry entry lives 6 s, so that it stays live while it is paused below
sed -i -e "s|^key = .*|key = $W/key2/private.pem|" -e "s|^heartbeat_ms = .*|heartbeat_ms = 2000|" \
	"$(node_dir s2)/aispd.conf"
node_start s2
wait_for 30 node_registered s2 || bail "node s2 did not register: $(node_log s2 | tail -5)"
S2=$(node_id s2)
age -r "$(cat "$W/key2/age.pub")" -o "$W/code2.age" "$W/code.py"
age -r "$(cat "$W/key2/age.pub")" -o "$W/stdin2.age" "$W/stdin.txt"
# s2 paused: s1 reads the tasks, and must hand them on. The pause outlasts s2's last blocked
# read (200 ms): Redis would deliver an entry to a read that is still blocked on the server.
kill -STOP "$(node_pid s2)"
sleep 0.5
for i in 1 2; do
	sealed_task "other-$i" "$W/code2.age" "$W/stdin2.age" runc >"$W/other-$i.json"
	submit_json "$(cat "$W/other-$i.json")" >/dev/null
done
wait_for 10 grep -q "task=other-2 .*event=handed_off to=$S2" "$(node_dir s1)/log"
kill -CONT "$(node_pid s2)"
for i in 1 2; do
	wait_result "other-$i" 60
	is "sealed for another node: other-$i handed to it and run there" \
		"$(rfield "other-$i" '.status + " " + .node')" "ok $S2"
done
is "... and its result opens for the buyer" "$(opened other-1 | jq -r .result.stdout)" "HELLO $UPPER"
node_stop s2

# ---------------------------------------------------------------- the trust matrix, by the node
pp() { "$AISP" passport issue --key "$W/issuer/private.pem" --subject "$W/signer" "$@"; }
pp --id pp_human --claim verified_human:substantial:worldid -o "$W/pp_human.json"
pp --id pp_low --claim verified_human:low:worldid -o "$W/pp_low.json"
pp --id pp_ident --claim verified_identity:high:bankid_se -o "$W/pp_ident.json"
"$AISP" passport issue --key "$W/rogue/private.pem" --subject "$W/signer" --id pp_rogue \
	--claim verified_identity:high:bankid_se -o "$W/pp_rogue.json"
now=$(date +%s)
pp --id pp_old --claim verified_identity:high:bankid_se --issued-at $((now - 172800)) --valid-for 1d -o "$W/pp_old.json"
printf '{"id":"plain","lang":"shell","runtime":"runc","code":"echo admitted"}' >"$W/plain.json"
# matrix LEVEL PASSPORT WANT: a signed task submitted, then the node's verdict
matrix() {
	local level=$1 pass=$2 want=$3 id="m-$1-$2"
	jq -c --arg id "$id" '.id = $id' "$W/plain.json" >"$W/$id.plain"
	"$AISP" task sign "$W/$id.plain" --sign-key "$W/signer/private.pem" ${level:+--trust-level "$level"} \
		${pass:+--passport "$W/pp_$pass.json"} -o "$W/$id.json" || return
	submit_json "$(cat "$W/$id.json")" >/dev/null
	wait_result "$id" 60
	if [ "$want" = admitted ]; then
		is "$level x ${pass:-no passport}: admitted and run" "$(rfield "$id" '.status + " " + .stdout')" 'ok admitted'
	else
		is "$level x ${pass:-no passport}: rejected" "$(rfield "$id" .status)" rejected
		check "... $want" grep -qF -- "$want" <<<"$(rfield "$id" .error)"
	fi
}
matrix "" "" admitted
matrix L0 "" "trust level L0 requires a passport; the task carries none"
matrix L0 low admitted
matrix L1 "" "trust level L1 requires a passport"
matrix L1 low "trust level L1 requires claim verified_human at assurance substantial or higher; passport pp_low has it at low"
matrix L1 human admitted
matrix L1 ident admitted
matrix L2 low "trust level L2 requires claim verified_identity; passport pp_low has none"
matrix L2 human "trust level L2 requires claim verified_identity; passport pp_human has none"
matrix L2 ident admitted
matrix L2 rogue "passport pp_rogue: issuer sha256:"
matrix L2 old "passport pp_old expired at"
payload=$(jq -r .payload "$W/m-L1-human.json" | base64 -d | sed 's/"L1"/"L0"/;s/m-L1-human/lowered/' | b64)
jq -c --arg p "$payload" '.payload = $p' "$W/m-L1-human.json" >"$W/lowered.json"
submit_json "$(cat "$W/lowered.json")" >/dev/null
wait_result lowered 30
check "a signed task whose level was lowered is rejected" \
	grep -qF "the task's signature does not verify with its signer key" <<<"$(rfield lowered .error)"

# ---------------------------------------------------------------- revocation
signer_id=$("$AISP" passport key-id "$W/signer" | head -1)
"$AISP" passport revoke --key "$W/signer" --reason "stolen laptop" >/dev/null
jq -c '.id = "by-revoked"' "$W/plain.json" >"$W/by-revoked.plain"
"$AISP" task sign "$W/by-revoked.plain" --sign-key "$W/signer/private.pem" -o "$W/by-revoked.json"
submit_json "$(cat "$W/by-revoked.json")" >/dev/null
wait_result by-revoked 30
check "a task signed by a revoked key is rejected at admission" \
	grep -qF "key $signer_id is revoked" <<<"$(rfield by-revoked .error)"
"$AISP" passport unrevoke --key "$signer_id" >/dev/null

printf 'echo started\nsleep 30\necho never\n' >"$W/long.sh"
for rt in runc runsc; do
	pp --id "pp_$rt" --claim verified_human:substantial:worldid -o "$W/pp_$rt.json"
	jq -nc --arg id "rev-$rt" --arg rt "$rt" --rawfile c "$W/long.sh" \
		'{id:$id, lang:"shell", runtime:$rt, code:$c}' >"$W/rev-$rt.plain"
	"$AISP" task sign "$W/rev-$rt.plain" --sign-key "$W/signer/private.pem" --trust-level L1 \
		--passport "$W/pp_$rt.json" -o "$W/rev-$rt.json"
	submit_json "$(cat "$W/rev-$rt.json")" >/dev/null
	wait_for 60 grep -q "task=rev-$rt .*event=started" "$(node_dir s1)/log"
	sleep 1
	t0=$(date +%s%3N)
	"$AISP" passport revoke --passport "pp_$rt" --reason "lost phone" >/dev/null
	wait_result "rev-$rt" 30
	t1=$(date +%s%3N)
	is "$rt revoked mid-run: status revoked" "$(rfield "rev-$rt" .status)" revoked
	check "$rt revoked mid-run: the error says which party and why" \
		grep -qF "revoked while it ran: passport pp_$rt is revoked" <<<"$(rfield "rev-$rt" .error)"
	check "$rt revoked mid-run: stopped in $((t1 - t0)) ms, long before its 30 s" [ $((t1 - t0)) -lt 10000 ]
	check "$rt revoked mid-run: 'never' was never printed" bash -c "! grep -q never <<<'$(rfield "rev-$rt" .stdout)'"
	result "rev-$rt" >"$W/rev-$rt.result"
	check "$rt revoked mid-run: the result is signed" \
		"$AISP" verify --pubkey "$TEST_TMP/key/public.pem" "$W/rev-$rt.result"
done
# a sealed task revoked mid-run: the public result says revoked, the buyer's says why
pp --id pp_sealed --claim verified_human:substantial:worldid -o "$W/pp_sealed.json"
printf 'import time\nprint("started", flush=True)\ntime.sleep(30)\n' >"$W/long.py"
jq -nc --rawfile c "$W/long.py" '{id:"rev-sealed", lang:"python", runtime:"runsc", code:$c}' >"$W/rev-sealed.plain"
"$AISP" task seal "$W/rev-sealed.plain" --seal-to "$NODE_AGE" --reply-to "$BUYER" \
	--sign-key "$W/signer/private.pem" --trust-level L1 --passport "$W/pp_sealed.json" -o "$W/rev-sealed.json"
submit_json "$(cat "$W/rev-sealed.json")" >/dev/null
wait_for 60 grep -q "task=rev-sealed .*event=started" "$(node_dir s1)/log"
sleep 1
"$AISP" passport revoke --passport pp_sealed >/dev/null
wait_result rev-sealed 30
is "a sealed task revoked mid-run: status revoked" "$(rfield rev-sealed .status)" revoked
is "... the buyer's document has what it printed" "$(opened rev-sealed | jq -r .result.stdout)" "started"

node_stop s1
is "the node exits 0" "$?" 0
check "node s1 left no residue" [ -z "$(residue s1)" ]
done_testing
