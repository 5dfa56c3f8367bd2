#!/usr/bin/env bash
# Tasks that use skills and blobs (proto/PROTOCOL.md, "Skills"), through a real redis-server
# and aispd, on runc and on runsc: execute_skill (the seed's salesforce example end to end,
# with aisp verify), run_code importing mounted skills (Python and JavaScript), input and
# output blobs, logs and logs_preview, declared secrets only (run_code gets none), redaction,
# the read-only skills tree, a warm sandbox that shows no skill its task did not ask for, and
# every bad input of issue 18 rejected with its message and nothing stored. TAP output.
set -uo pipefail
. "$(dirname "$0")/../lib/node.sh"
need_nodes
redis_start

SRC=${AISP_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
SK=$TEST_TMP/skills
SEC=$TEST_TMP/secrets
for s in salesforce leaky needy greeter; do
	"$AISP" skill add "$SRC/tests/data/skills/$s" --store "$SK" >/dev/null ||
		bail "aisp skill add $s failed"
done
SF_DIGEST=$(cat "$SK/names/salesforce")
API_KEY=sk-live-8f3a91c2d4e5b6a7
ORG_ID=00D5e0000012345XYZ
LEAKY=leaky-token-Q7w9Zp2Lx
install -d -m 0700 "$SEC" "$SEC/skills" "$SEC/skills/salesforce" "$SEC/skills/leaky"
put_secret() { printf '%s\n' "$3" >"$SEC/skills/$1/$2" && chmod 600 "$SEC/skills/$1/$2"; }
put_secret salesforce SALESFORCE_API_KEY "$API_KEY"
put_secret salesforce SALESFORCE_ORG_ID "$ORG_ID"
put_secret leaky LEAKY_TOKEN "$LEAKY"

POOL="runc/default/python = 1
runsc/default/python = 1
runc/default/javascript = 1
runsc/default/javascript = 1" EXTRA_SECTIONS="[skills]
store = $SK
[secrets]
dir = $SEC" node_conf a
node_start a
wait_for 60 node_registered a || bail "node a did not register: $(node_log a | tail -5)"

CSV=$SRC/tests/data/skills/salesforce/resources/sample_leads.csv
BLOB=$("$AISP" blob put "$CSV")
is "the CSV is a blob" "$BLOB" "sha256:$(sha256sum <"$CSV" | cut -d' ' -f1)"

# submit ID JSON-FIELDS: a task {"id": ID, ...fields}, waits for its result
submit() {
	submit_json "$(jq -nc --arg id "$1" --argjson f "$2" '{id:$id} + $f')" >/dev/null &&
		wait_result "$1" 90
}
# predicate ID: the attestation's in-toto predicate
predicate() { rfield "$1" '.attestation.payload' | base64 -d | jq -c '.predicate'; }
has_subject() { rfield "$1" '.attestation.payload' | base64 -d | jq -r '.subject[].name' | grep -qxF "$2"; }
no_secret_in() { ! grep -q -e "$API_KEY" -e "$ORG_ID" -e "$LEAKY" "$@"; }

for rt in runc runsc; do
	# ---- execute_skill: the seed's example
	id=sync-$rt
	check "$rt: the salesforce skill runs" submit "$id" \
		"{\"runtime\":\"$rt\",\"skill\":\"salesforce\",\"blobs\":[\"$BLOB\"],\"args\":{\"input_blob\":\"$BLOB\"}}"
	result "$id" >"$TEST_TMP/$id.json"
	is "$rt: status ok" "$(rfield "$id" .status)" ok
	is "$rt: return value" "$(rfield "$id" '.return_value | [.status, .synced, .rejected] | join(" ")')" \
		"completed 2 1"
	out=$(rfield "$id" .return_value.output_blob)
	is "$rt: the output blob is listed" "$(rfield "$id" '.output_blobs | join(" ")')" "$out"
	is "$rt: logs hold runtime.log entries" "$(rfield "$id" '.logs[0].message')" "Starting sync..."
	is "$rt: the second entry names the blob" "$(rfield "$id" '.logs[1].message')" \
		"Created output blob: $out"
	is "$rt: logs_preview (nothing printed)" "$(rfield "$id" .logs_preview)" ""
	"$AISP" blob get "$out" -o "$TEST_TMP/$id.batch.json"
	is "$rt: the output blob is in Redis before the result" \
		"$(jq -r '.records[0].Email + " " + (.rejected | length | tostring)' "$TEST_TMP/$id.batch.json")" \
		"ada@example.com 1"
	check "$rt: aisp verify passes" "$AISP" verify "$TEST_TMP/$id.json" --redis "$AISP_REDIS"
	jq -nc --arg id "$id" --arg rt "$rt" --arg b "$BLOB" \
		'{id:$id, runtime:$rt, skill:"salesforce", blobs:[$b], args:{input_blob:$b}}' >"$TEST_TMP/$id.task.json"
	check "$rt: aisp verify --task checks the input digest (skills, blobs, secret names)" \
		"$AISP" verify "$TEST_TMP/$id.json" --task "$TEST_TMP/$id.task.json" --redis "$AISP_REDIS"
	jq -c '.blobs = ["sha256:'"$(printf '%064d' 3)"'"]' "$TEST_TMP/$id.task.json" >"$TEST_TMP/$id.task2.json"
	expect "$rt: another input blob fails the input digest" 1 "FAIL input_digest" \
		"$AISP" verify "$TEST_TMP/$id.json" --task "$TEST_TMP/$id.task2.json" --redis "$AISP_REDIS"
	is "$rt: the statement names the skill by digest" "$(predicate "$id" | jq -r '.skills[0] | .name + " " + .digest')" \
		"salesforce $SF_DIGEST"
	is "$rt: and the input blob" "$(predicate "$id" | jq -r '.blobs | join(" ")')" "$BLOB"
	is "$rt: and the secret names" "$(predicate "$id" | jq -r '.secrets | join(" ")')" \
		"SALESFORCE_API_KEY SALESFORCE_ORG_ID"
	check "$rt: the output blob is a subject" has_subject "$id" "blob/$out"
	check "$rt: no secret value in the result" no_secret_in "$TEST_TMP/$id.json"
	sed 's/"output_blob":"sha256:[0-9a-f]*"/"output_blob":"sha256:0000"/' "$TEST_TMP/$id.json" >"$TEST_TMP/$id.forged.json"
	expect "$rt: a forged return value fails verify" 1 "FAIL" "$AISP" verify "$TEST_TMP/$id.forged.json" --redis "$AISP_REDIS"

	id=pinned-$rt
	check "$rt: a skill pinned to its digest" submit "$id" \
		"{\"runtime\":\"$rt\",\"skill\":\"salesforce@$SF_DIGEST\",\"blobs\":[\"$BLOB\"],\"args\":{\"input_blob\":\"$BLOB\"}}"
	is "$rt: pinned: it runs" "$(rfield "$id" .return_value.status)" completed

	# ---- secrets: only the executing skill's, redacted everywhere
	id=leak-$rt
	check "$rt: the leaky skill runs" submit "$id" "{\"runtime\":\"$rt\",\"skill\":\"leaky\"}"
	result "$id" >"$TEST_TMP/$id.json"
	is "$rt: leaky: status ok" "$(rfield "$id" .status)" ok
	check "$rt: leaky: its secret is nowhere in the result" no_secret_in "$TEST_TMP/$id.json"
	check "$rt: leaky: the redacted result verifies" "$AISP" verify "$TEST_TMP/$id.json" --redis "$AISP_REDIS"
	is "$rt: leaky: stdout redacted (plain and base64)" "$(rfield "$id" .stdout)" $'token: ***\nb64: ***'
	is "$rt: leaky: stderr redacted (hex)" "$(rfield "$id" .stderr)" "hex: ***"
	is "$rt: leaky: the return value redacted" "$(rfield "$id" .return_value.token)" "***"
	is "$rt: leaky: the log redacted (message and data)" "$(rfield "$id" '.logs[0] | .message + " " + .data.token')" \
		"the token is *** ***"
	is "$rt: leaky: logs_preview redacted" "$(rfield "$id" .logs_preview)" $'token: ***\nb64: ***\nhex: ***'
	is "$rt: leaky: the output file redacted" "$(rfield "$id" '.files[0].content_b64' | base64 -d)" '{"t": "***"}'
	is "$rt: leaky: a file named by the secret is dropped" "$(rfield "$id" '[(.files | length), .files_truncated] | join(" ")')" "1 true"
	lb=$(rfield "$id" '.output_blobs[0]')
	is "$rt: leaky: the output blob redacted, named by what remains" "$("$AISP" blob get "$lb")" "blob holds ***"
	is "$rt: leaky: another skill's secret is not in its environment" "$(rfield "$id" .return_value.other)" null
	env1=$(rfield "$id" .return_value.environ)
	check "$rt: leaky: /proc/1/environ is unreadable or empty (got \"$env1\")" \
		test "$env1" = "error: PermissionError" -o -z "$env1"
	is "$rt: leaky: redaction cannot catch a reversed secret (documented)" \
		"$(rfield "$id" .return_value.reversed)" "$(rev <<<"$LEAKY")"
	is "$rt: leaky: its sandbox holds only its own skill" "$(rfield "$id" '.return_value.skills | join(" ")')" leaky
	is "$rt: leaky: a new file in the skills tree is refused" "$(rfield "$id" .return_value.write)" "error: PermissionError"
	is "$rt: leaky: a skill file cannot be written" "$(rfield "$id" .return_value.overwrite)" "error: PermissionError"

	id=leaklive-$rt
	check "$rt: leaky with live output asked for" submit "$id" \
		"{\"runtime\":\"$rt\",\"skill\":\"leaky\",\"reply_stream\":\"aisp:reply:$id\",\"live_output\":true}"
	R XRANGE "aisp:reply:$id" - + >"$TEST_TMP/$id.stream"
	check "$rt: leaky: its reply stream has the result" grep -qx result "$TEST_TMP/$id.stream"
	check "$rt: leaky: and no live output event (its output is redacted whole)" \
		sh -c "! grep -qx output '$TEST_TMP/$id.stream'"
	check "$rt: leaky: no secret in its reply stream" no_secret_in "$TEST_TMP/$id.stream"

	# ---- run_code mounting skills
	id=mount-$rt
	code='import os
from skills.salesforce.leads.sync import _field_map
from runtime import blobs
print(sorted(_field_map())[0], os.environ.get("SALESFORCE_API_KEY"), sorted(os.listdir("/.aisp/skills")))
print(blobs.read_text("'$BLOB'").splitlines()[0])'
	check "$rt: run_code imports a mounted skill" submit "$id" \
		"$(jq -nc --arg rt "$rt" --arg code "$code" --arg b "$BLOB" '{runtime:$rt, lang:"python", code:$code, mount_skills:["salesforce"], blobs:[$b]}')"
	is "$rt: mount: the import works, no secret, only the mounted skill" "$(rfield "$id" .stdout)" \
		$'company None [\'salesforce\']\nfirst_name,last_name,email,company'
	is "$rt: mount: logs_preview is stdout" "$(rfield "$id" .logs_preview)" "$(rfield "$id" .stdout)"
	is "$rt: mount: the statement names the mounted skill" "$(predicate "$id" | jq -r '[.skills[].name, (.secrets | length)] | join(" ")')" "salesforce 0"
	id=mountdigest-$rt
	check "$rt: a skill mounted by digest" submit "$id" \
		"$(jq -nc --arg rt "$rt" --arg d "$SF_DIGEST" '{runtime:$rt, lang:"python", code:"import skills.salesforce.leads.sync as m; print(m.SECRETS[0])", mount_skills:[$d]}')"
	is "$rt: mount by digest imports it" "$(rfield "$id" .stdout)" "SALESFORCE_API_KEY"
	id=plain-$rt
	check "$rt: a plain task" submit "$id" \
		"{\"runtime\":\"$rt\",\"lang\":\"python\",\"code\":\"import os; print(os.listdir('/.aisp/skills'), os.listdir('/.aisp/blobs'))\"}"
	is "$rt: a warm sandbox shows no skill and no blob its task did not ask for" "$(rfield "$id" .stdout)" "[] []"
	is "$rt: a plain task's result has no runtime fields" "$(rfield "$id" 'has("logs_preview")')" false

	# ---- logs: caps and the preview's UTF-8 boundary
	id=logs-$rt
	code='from runtime import log
for i in range(300):
    log.info("entry %d" % i)
print("\u20ac" * 1000)'
	check "$rt: a run that logs past the cap" submit "$id" \
		"$(jq -nc --arg rt "$rt" --arg code "$code" '{runtime:$rt, lang:"python", code:$code, blobs:[]}')"
	is "$rt: logs: 255 entries and the limit entry" "$(rfield "$id" '[(.logs | length), .logs[-1].dropped] | join(" ")')" "256 true"
	# 682 three-byte characters (2046 bytes) fit in 2048, and jq adds a newline
	is "$rt: logs_preview: 2048 bytes at most, cut between characters" \
		"$(rfield "$id" '.logs_preview' | LC_ALL=C wc -c)" 2047
	check "$rt: logs_preview is valid UTF-8" sh -c "redis-cli -p $REDIS_PORT GET aisp:result:$id | jq -r .logs_preview | iconv -f UTF-8 -t UTF-8 >/dev/null"

	# ---- JavaScript
	id=js-skill-$rt
	check "$rt: a JavaScript skill runs" submit "$id" "{\"runtime\":\"$rt\",\"skill\":\"greeter\",\"args\":{\"who\":\"ada\"}}"
	is "$rt: js: its entrypoint's value" "$(rfield "$id" .return_value.greeting)" "hello ada"
	is "$rt: js: its log entry" "$(rfield "$id" '.logs[0] | .message + " " + .data.who')" "greeting ada"
	is "$rt: js: its output blob" "$("$AISP" blob get "$(rfield "$id" .return_value.blob)")" '{"hello":"ada"}'
	id=js-mount-$rt
	check "$rt: JavaScript run_code requires a mounted skill" submit "$id" \
		"{\"runtime\":\"$rt\",\"lang\":\"javascript\",\"mount_skills\":[\"greeter\"],\"code\":\"const g = require('skills/greeter/lib/greet'); console.log(g.greet({who: 'bob'}).greeting);\"}"
	is "$rt: js: require('skills/greeter/lib/greet')" "$(rfield "$id" .stdout)" "hello bob"
done

# ---- the operator lets run_code mounting salesforce receive its declared secrets
node_stop a
POOL= EXTRA_SECTIONS="[skills]
store = $SK
[secrets]
dir = $SEC
run_code_skills = salesforce" node_conf a
node_start a
wait_for 60 node_registered a || bail "node a did not restart"
check "run_code_skills: a run_code task mounting salesforce" submit rc-allowed \
	'{"lang":"python","mount_skills":["salesforce"],"code":"import os; print(len(os.environ[\"SALESFORCE_API_KEY\"]), os.environ.get(\"LEAKY_TOKEN\"))"}'
is "run_code_skills: it receives salesforce's secrets (and no other)" "$(rfield rc-allowed .stdout)" "${#API_KEY} None"
check "run_code_skills: leaky is not allowed" submit rc-denied \
	'{"lang":"python","mount_skills":["leaky"],"code":"import os; print(os.environ.get(\"LEAKY_TOKEN\"))"}'
is "run_code_skills: a mounted skill not listed gives none" "$(rfield rc-denied .stdout)" "None"

# ---- bad input: each a precise rejection, nothing stored
rejected() { # NAME ID FIELDS PATTERN
	local name=$1 id=$2
	submit "$id" "$3" || { not_ok "$name" "no result"; return; }
	if [ "$(rfield "$id" .status)" = rejected ] && rfield "$id" .error | grep -qF -e "$4"; then
		ok "$name"
	else
		not_ok "$name" "got: $(rfield "$id" '.status + ": " + (.error // "")')" "want: rejected: $4"
	fi
}
keys_before=$(R --scan --pattern 'aisp:blob:*' | sort)
rejected "an unknown skill" bad-unknown '{"skill":"nosuch"}' 'unknown skill "nosuch"'
rejected "a digest the node does not hold" bad-digest "{\"skill\":\"sha256:$(printf '%064d' 1)\"}" \
	"unknown skill \"sha256:$(printf '%064d' 1)\""
rejected "a pinned digest that is not the node's skill" bad-pin "{\"skill\":\"salesforce@sha256:$(printf '%064d' 2)\"}" \
	"skill salesforce is $SF_DIGEST on this node, not the sha256:$(printf '%064d' 2) the task pins"
rejected "a skill field that is no skill name" bad-name '{"skill":"../etc"}' 'field "skill": "../etc" is not a skill name'
mounts=$(jq -nc '[range(9) | "s\(.)"]')
rejected "more skills than the cap" bad-cap "{\"lang\":\"python\",\"code\":\"1\",\"mount_skills\":$mounts}" \
	'field "mount_skills" lists 9 entries, above the cap of 8'
rejected "a blob id that is not a digest" bad-blobid '{"lang":"python","code":"1","blobs":["sha256:xyz"]}' \
	'field "blobs"[0]: "sha256:xyz" is not a blob id'
missing=sha256:$(printf '%064d' 7)
rejected "a blob missing from Redis" bad-missing "{\"lang\":\"python\",\"code\":\"1\",\"blobs\":[\"$missing\"]}" \
	"blob $missing is not in Redis"
truncate -s 8388609 "$TEST_TMP/big"
bigid=sha256:$(sha256sum <"$TEST_TMP/big" | cut -d' ' -f1)
R -x SET "aisp:blob:$bigid" <"$TEST_TMP/big" >/dev/null
rejected "a blob over the cap" bad-big "{\"lang\":\"python\",\"code\":\"1\",\"blobs\":[\"$bigid\"]}" \
	"blob $bigid is over the cap of 8388608 bytes"
ids=()
for i in 1 2 3 4 5; do
	head -c 8000000 /dev/urandom >"$TEST_TMP/b$i"
	ids+=("$("$AISP" blob put "$TEST_TMP/b$i")")
done
rejected "blobs over the task's cap" bad-total "$(jq -nc '{lang:"python", code:"1", blobs:$ARGS.positional}' --args "${ids[@]}")" \
	"the task's blobs are over their cap of 33554432 bytes in all"
R SET "aisp:blob:$BLOB" "forged bytes" >/dev/null
rejected "a blob whose bytes are not the digest" bad-forged "{\"lang\":\"python\",\"code\":\"1\",\"blobs\":[\"$BLOB\"]}" \
	"the bytes do not match the digest"
"$AISP" blob put "$CSV" >/dev/null
rejected "a declared secret the node does not hold" bad-secret '{"skill":"needy"}' \
	"skill needy declares the secret NEEDY_SECRET, which this node does not hold"
rejected "a skill task with code" bad-code '{"skill":"salesforce","code":"print(1)"}' \
	'a task with "skill" has no "code"'
rejected "a skill task whose lang is not the skill's" bad-lang '{"skill":"salesforce","lang":"javascript"}' \
	'field "lang" is javascript, but skill salesforce is python'
rejected "an executing skill given a service its manifest does not declare" bad-service \
	'{"skill":"salesforce","services":["billing"]}' \
	'service "billing" is not declared by skill salesforce (its [permissions] services: salesforce)'
rejected "... one it declares passes that check (this node serves no services)" bad-served \
	'{"skill":"salesforce","services":["salesforce"]}' 'service "salesforce" is not served by this node'
rejected "run_code mounting a skill of another language" bad-mountlang \
	'{"lang":"python","code":"1","mount_skills":["greeter"]}' "skill greeter is javascript: a python task cannot import it"
rejected "skill and mount_skills together" bad-both '{"skill":"salesforce","mount_skills":["leaky"]}' \
	'field "mount_skills" is for run_code tasks'
rejected "a secret the task sets in env" bad-env '{"skill":"leaky","env":{"LEAKY_TOKEN":"x"}}' \
	'field "env" sets LEAKY_TOKEN, the secret skill leaky receives'
for i in 1 2 3; do # three skills of 25 MB: more than a sandbox's 64 MiB skills tree
	d=$TEST_TMP/big$i
	mkdir -p "$d/code" "$d/resources"
	printf 'name = "big%s"\nversion = "1.0.0"\nlanguage = "python"\nentrypoint = "code/m.py"\n' "$i" >"$d/skill.toml"
	echo 'def main(args): return 1' >"$d/code/m.py"
	head -c 25000000 /dev/zero >"$d/resources/data.bin"
	"$AISP" skill add "$d" --store "$SK" >/dev/null || bail "skill add big$i"
done
rejected "skills over the sandbox's skills tree" bad-tree-cap \
	'{"lang":"python","code":"1","mount_skills":["big1","big2","big3"]}' \
	"the task's skills hold 75000"
hex=${SF_DIGEST#sha256:}
echo "# tampered" >>"$SK/skills/$hex/code/leads/sync.py"
rejected "a skill whose stored tree fails verification" bad-tree '{"skill":"salesforce"}' \
	"skill salesforce: the stored tree hashes to"
is "no output blob was stored for a rejected task" "$(R --scan --pattern 'aisp:blob:*' | sort)" \
	"$(printf '%s\n' $keys_before "aisp:blob:$bigid" "${ids[@]/#/aisp:blob:}" | sort -u)"
check "no secret value in any node log line" no_secret_in "$(node_dir a)/log"
node_stop a
done_testing
