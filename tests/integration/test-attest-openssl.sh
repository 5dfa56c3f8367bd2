#!/bin/sh
# Verifies every golden attestation in attest/testdata/NN-name/ with no project binary: only
# openssl, sha256sum, base64, jq (to read JSON fields, and the canonical JSON text of
# ATTESTATION.md section 1 as a jq function), od/wc and shell printf/arithmetic, following
# attest/ATTESTATION.md section by section. Proves the spec is complete enough to re-implement.
# The vectors, in directory order, are also checked as one node's hash chain.
# Usage: test-attest-openssl.sh [TESTDATA_DIR]   (TAP output)
set -eu
export LC_ALL=C

DATA=${1:-${AISP_SOURCE_ROOT:-$(dirname "$0")/../..}/attest/testdata}
PUB=$DATA/test-pub.pem
W=$(mktemp -d /tmp/test-attest-openssl.XXXXXX)
trap 'rm -rf "$W"' EXIT INT TERM

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $V: $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $V: $1"; }
# check NAME GOT WANT
check() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1: got '$2', want '$3'"; fi
}
expected() { sed -n "s/^$1 //p" "$EXPECTED"; }
hex() { od -An -v -tx1 "$1" | tr -d ' \n'; }
digest() { echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }

# ---- section 1: canonical JSON text (yajl's): no whitespace, keys in document order, numbers
# as jq prints them (exact for the vectors' numbers), strings escaped exactly as the table says
# (upper-case hex for other controls; "/", DEL and non-ASCII as UTF-8 bytes) ----
CANON='
def hex2: "0123456789ABCDEF" as $h | $h[(. / 16 | floor):(. / 16 | floor) + 1] + $h[(. % 16):(. % 16) + 1];
def esc: [explode[] | if . == 34 then "\\\"" elif . == 92 then "\\\\" elif . == 8 then "\\b"
  elif . == 12 then "\\f" elif . == 10 then "\\n" elif . == 13 then "\\r" elif . == 9 then "\\t"
  elif . < 32 then "\\u00" + hex2 else [.] | implode end] | join("");
def canon: if type == "object" then
    "{" + ([to_entries[] | "\"" + (.key | esc) + "\":" + (.value | canon)] | join(",")) + "}"
  elif type == "array" then "[" + (map(canon) | join(",")) + "]"
  elif type == "string" then "\"" + esc + "\""
  else tojson end;'

# ---- section 2: one field = tag NUL u64be(len) value; value from a file ----
u64be() { # (no local variables in POSIX sh: _b is this function's own)
	_b=7
	while [ $_b -ge 0 ]; do
		printf "\\$(printf %03o $((($1 >> (8 * _b)) & 255)))"
		_b=$((_b - 1))
	done
}
field_file() { # TAG FILE
	printf '%s\000' "$1"
	u64be "$(wc -c <"$2")"
	cat "$2"
}
field() { # TAG STRING
	printf '%s' "$2" >"$W/v"
	field_file "$1" "$W/v"
}

# A string or bytes field of a result/task document into a file: NAME or NAME_b64.
doc_bytes() { # FILE NAME OUT
	if [ "$(jq -r "has(\"$2_b64\")" "$1")" = true ]; then
		jq -j ".$2_b64" "$1" | base64 -d >"$3"
	else
		jq -j ".$2 // \"\"" "$1" >"$3"
	fi
}

# The file.path / file.data fields of a document's "files", sorted by path (paths may hold any
# byte but NUL and controls, so they go through files, never through word splitting). Keeps
# each file's content as $W/PREFIX.N (N in sorted order) for the subject checks.
files_fields() { # FILE PREFIX
	_n=$(jq -j '.files // [] | length' "$1")
	_i=0
	while [ $_i -lt "$_n" ]; do
		jq -j --argjson i $_i '.files | sort_by(.path)[$i].path' "$1" >"$W/$2.path.$_i"
		jq -j --argjson i $_i '.files | sort_by(.path)[$i].content_b64' "$1" |
			base64 -d >"$W/$2.$_i"
		field_file file.path "$W/$2.path.$_i"
		field_file file.data "$W/$2.$_i"
		_i=$((_i + 1))
	done
}

# ---- section 9: the envelope, the PAE, the signature, the key id ----
envelope() {
	jq -r '.attestation.payload' "$RESULT" | base64 -d >"$W/stmt.bin"
	jq -r '.attestation.signatures[0].sig' "$RESULT" | base64 -d >"$W/sig.bin"
	TYPE=$(jq -r '.attestation.payloadType' "$RESULT")
	check "payloadType" "$TYPE" "application/vnd.in-toto+json"
	check "one signature" "$(jq '.attestation.signatures | length' "$RESULT")" 1
	check "signature is 64 bytes" "$(wc -c <"$W/sig.bin")" 64
	{
		printf 'DSSEv1 %d %s %d ' "${#TYPE}" "$TYPE" "$(wc -c <"$W/stmt.bin")"
		cat "$W/stmt.bin"
	} >"$W/pae.bin"
	check "PAE bytes" "$(hex "$W/pae.bin")" "$(expected pae_hex)"
	if openssl pkeyutl -verify -pubin -inkey "$PUB" -rawin -in "$W/pae.bin" \
		-sigfile "$W/sig.bin" >/dev/null 2>&1; then
		ok "Ed25519 signature verifies over the PAE"
	else
		not_ok "Ed25519 signature verifies over the PAE"
	fi
	# One flipped payload byte must break it (the check above can fail).
	{ head -c 40 "$W/pae.bin"; printf 'X'; tail -c +42 "$W/pae.bin"; } >"$W/bad.bin"
	if openssl pkeyutl -verify -pubin -inkey "$PUB" -rawin -in "$W/bad.bin" \
		-sigfile "$W/sig.bin" >/dev/null 2>&1; then
		not_ok "a tampered PAE is rejected"
	else
		ok "a tampered PAE is rejected"
	fi
	check "keyid is SHA-256 of the DER SubjectPublicKeyInfo" \
		"$(jq -r '.attestation.signatures[0].keyid' "$RESULT")" "$KEYID"
	check "key_id in expected.txt" "$KEYID" "$(expected key_id)"
	check "statement _type" "$(jq -r '._type' "$S")" "https://in-toto.io/Statement/v1"
	check "predicateType" "$(jq -r '.predicateType' "$S")" \
		"https://aisp.dev/attestation/execution/v1"
	check "metadata.key_id" "$(P .metadata.key_id)" "$KEYID"
}

# ---- section 3: input encoding (no task: the input digest is "") ----
input() {
	if [ ! -f "$TASK" ]; then
		INPUT=
		check "no task: input_digest is empty" "$(P .input_digest)" ""
		check "no task: input_digest (expected.txt)" "$(expected input_digest)" ""
		return
	fi
	jq -j "$CANON"'
		if (has("args") | not) or .args == null or
		   ((.mode // "script") == "script" and .args == []) then ""
		else .args | canon end' "$TASK" >"$W/args"
	check "args canonical text" "$(hex "$W/args")" "$(expected args_text_hex)"
	{
		field type aisp-input-v1
		field lang "$(jq -j .lang "$TASK")"
		field mode "$(jq -j '.mode // "script"' "$TASK")"
		jq -j .code "$TASK" >"$W/code"
		field_file code "$W/code"
		doc_bytes "$TASK" stdin "$W/stdin"
		field_file stdin "$W/stdin"
		field_file args "$W/args"
		field env "$(jq -j '.env // {} | length' "$TASK")"
		for k in $(jq -r '.env // {} | keys[]' "$TASK"); do
			field env.name "$k"
			jq -j --arg k "$k" '.env[$k]' "$TASK" >"$W/ev"
			field_file env.value "$W/ev"
		done
		field files "$(jq -j '.files // [] | length' "$TASK")"
		files_fields "$TASK" task
	} >"$W/input.bin"
	check "input encoding" "$(hex "$W/input.bin")" "$(expected input_encoding_hex)"
	INPUT=$(digest "$W/input.bin")
	check "input_digest (statement)" "$(P .input_digest)" "$INPUT"
	check "input_digest (expected.txt)" "$INPUT" "$(expected input_digest)"
	check "task_id (statement) is the task's" "$(P .task_id)" "$(jq -j .id "$TASK")"
	check "nondeterministic (statement) is the task's" "$(P .nondeterministic)" \
		"$(jq -j '.nondeterministic // false' "$TASK")"
}

# ---- section 4: output encoding, and the subjects (section 8) ----
output() {
	doc_bytes "$RESULT" stdout "$W/stdout"
	doc_bytes "$RESULT" stderr "$W/stderr"
	jq -j "$CANON"'if has("return_value") then .return_value | canon else "" end' \
		"$RESULT" >"$W/rv"
	check "return value text" "$(hex "$W/rv")" "$(expected return_value_text_hex)"
	{
		field type aisp-output-v1
		field_file stdout "$W/stdout"
		field_file stderr "$W/stderr"
		field stdout_truncated "$(jq -j '.stdout_truncated // false' "$RESULT")"
		field stderr_truncated "$(jq -j '.stderr_truncated // false' "$RESULT")"
		field files "$(jq -j '.files // [] | length' "$RESULT")"
		files_fields "$RESULT" out
		field files_truncated "$(jq -j '.files_truncated // false' "$RESULT")"
		field_file return_value "$W/rv"
	} >"$W/output.bin"
	check "output encoding" "$(hex "$W/output.bin")" "$(expected output_encoding_hex)"
	OUTPUT=$(digest "$W/output.bin")
	check "output_digest (statement)" "$(P .result.output_digest)" "$OUTPUT"
	check "output_digest (expected.txt)" "$OUTPUT" "$(expected output_digest)"
	# Subjects in their order: stdout, stderr, out/<path> sorted, return_value when present.
	nf=$(jq -j '.files // [] | length' "$RESULT")
	{
		printf 'stdout %s\n' "$(sha256sum "$W/stdout" | cut -d' ' -f1)"
		printf 'stderr %s\n' "$(sha256sum "$W/stderr" | cut -d' ' -f1)"
		i=0
		while [ $i -lt "$nf" ]; do
			printf 'out/%s %s\n' "$(cat "$W/out.path.$i")" \
				"$(sha256sum "$W/out.$i" | cut -d' ' -f1)"
			i=$((i + 1))
		done
		if [ "$(jq -r 'has("return_value")' "$RESULT")" = true ]; then
			printf 'return_value %s\n' "$(sha256sum "$W/rv" | cut -d' ' -f1)"
		fi
	} >"$W/subjects.want"
	jq -r '.subject[] | .name + " " + .digest.sha256' "$S" >"$W/subjects.got"
	if cmp -s "$W/subjects.want" "$W/subjects.got"; then
		ok "subjects: names, order and digests ($(wc -l <"$W/subjects.got"))"
	else
		not_ok "subjects: $(tr '\n' '|' <"$W/subjects.got") want $(tr '\n' '|' <"$W/subjects.want")"
	fi
}

# ---- section 5: exit encoding (from the result; it must equal the statement's) ----
exit_enc() {
	code=$(jq -j 'if .exit_code == null then "" else .exit_code end' "$RESULT")
	sig=$(jq -j 'if (.signal // 0) == 0 then "" else .signal end' "$RESULT")
	status=$(jq -j .status "$RESULT")
	{
		field type aisp-exit-v1
		field status "$status"
		field exit_code "$code"
		field signal "$sig"
	} >"$W/exit.bin"
	check "exit encoding" "$(hex "$W/exit.bin")" "$(expected exit_encoding_hex)"
	check "result.status" "$(P .result.status)" "$status"
	check "result.exit_code (null: none)" \
		"$(P 'if .result.exit_code == null then "" else .result.exit_code end')" "$code"
	check "result.signal (0: none)" \
		"$(P 'if .result.signal == 0 then "" else .result.signal end')" "$sig"
	check "result.error (null: none)" "$(jq -c .predicate.result.error "$S")" \
		"$(jq -c '.error // null' "$RESULT")"
	check "image_digest" "$(P .image_digest)" "$(jq -j '.image_digest // ""' "$RESULT")"
}

# ---- section 6: environment encoding, from the statement's pair list; the limits ----
environment() {
	count=$(P '.environment | length')
	{
		field type aisp-environment-v1
		field pairs "$count"
		i=0
		while [ $i -lt "$count" ]; do
			jq -j --argjson i $i '.predicate.environment | sort_by(.key)[$i].key' "$S" >"$W/k"
			jq -j --argjson i $i '.predicate.environment | sort_by(.key)[$i].value' "$S" \
				>"$W/v2"
			field_file key "$W/k"
			field_file value "$W/v2"
			i=$((i + 1))
		done
	} >"$W/env.bin"
	check "environment encoding" "$(hex "$W/env.bin")" "$(expected environment_encoding_hex)"
	ENVD=$(digest "$W/env.bin")
	check "environment_digest (statement)" "$(P .environment_digest)" "$ENVD"
	check "environment_digest (expected.txt)" "$ENVD" "$(expected environment_digest)"
	check "predicate.limits has the nine limits" "$(P '.limits | keys | join(",")')" \
		"cpus_milli,fsize_bytes,memory_bytes,nofile,pids,stderr_bytes,stdout_bytes,timeout_ms,workspace_bytes"
	check "predicate.limits agree with the environment's limits.*" "$(P '
		[.environment[] | select(.key | startswith("limits."))] as $l |
		if ($l | length) == 0 then [.limits[]] | all(. == 0)
		else [.limits | to_entries[] | . as $e |
		      [$l[] | select(.key == "limits." + $e.key) | .value] == [$e.value | tostring]]
		     | all end')" true
}

# ---- section 7: execution digest ----
execution() {
	{
		field type aisp-execution-v1
		field image "$(P .image_digest)"
		field input "$INPUT"
		field output "$OUTPUT"
		field_file exit "$W/exit.bin"
		field environment "$ENVD"
	} >"$W/exec.bin"
	EXEC=$(digest "$W/exec.bin")
	check "execution_digest (statement)" "$(P .execution_digest)" "$EXEC"
	check "execution_digest (result)" "$(jq -j .execution_digest "$RESULT")" "$EXEC"
	check "execution_digest (expected.txt)" "$EXEC" "$(expected execution_digest)"
}

# ---- section 10 and 11: the chain; the result fields the metadata covers ----
chain_and_metadata() {
	ATT=$(digest "$S")
	check "attestation_digest" "$ATT" "$(expected attestation_digest)"
	check "metadata.sequence" "$(P .metadata.sequence)" "$SEQ"
	check "metadata.sequence (expected.txt)" "$(expected sequence)" "$SEQ"
	check "metadata.previous is the attestation digest before" "$(P .metadata.previous)" "$PREV"
	check "metadata.previous (expected.txt)" "$(expected previous)" "$PREV"
	for pair in id:task_id runtime:runtime node:metadata.node_id \
		received_at_ms:metadata.received_ms started_at_ms:metadata.started_ms \
		finished_at_ms:metadata.finished_ms attempts:metadata.attempt \
		usage.wall_ms:metadata.usage.wall_ms usage.cpu_ms:metadata.usage.cpu_ms \
		usage.memory_peak_bytes:metadata.usage.memory_peak_bytes; do
		r=${pair%%:*} p=${pair#*:}
		check "result $r is predicate.$p" "$(P ".$p")" "$(jq -j ".$r // \"\"" "$RESULT")"
	done
}

openssl pkey -pubin -in "$PUB" -outform DER >"$W/pub.der"
KEYID=$(digest "$W/pub.der")
PREV=
SEQ=0
for D in "$DATA"/[0-9][0-9]-*/; do
	D=${D%/}
	V=$(basename "$D")
	RESULT=$D/result.json
	TASK=$D/task.json
	EXPECTED=$D/expected.txt
	S="$W/stmt.bin"
	P() { jq -j ".predicate | $1" "$S"; } # FILTER on the statement's predicate
	SEQ=$((SEQ + 1))
	envelope
	input
	output
	exit_enc
	environment
	execution
	chain_and_metadata
	PREV=$ATT
done
V=all
check "vectors checked" "$([ "$SEQ" -ge 8 ] && echo yes)" yes

echo "1..$n"
[ "$failed" -eq 0 ]
