#!/usr/bin/env bash
# Verifies the golden attestation in attest/testdata/ with no project binary: only openssl,
# sha256sum, base64, jq (to read JSON fields), od/wc and shell printf/arithmetic, following
# attest/ATTESTATION.md section by section. Proves the spec is complete enough to re-implement.
# Usage: test-attest-openssl.sh [TESTDATA_DIR]   (TAP output)
# `set -e`: every step here is a computation the checks depend on; a failing one ends the suite
# (no plan: meson reports an error), a failing check does not.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/host.sh"

DATA=${1:-${AISP_SOURCE_ROOT:-$(dirname "$0")/../..}/attest/testdata}
RESULT=$DATA/result.json
TASK=$DATA/task.json
PUB=$DATA/test-pub.pem
EXPECTED=$DATA/expected.txt
W=$TEST_TMP
expected() { sed -n "s/^$1 //p" "$EXPECTED"; }
hex() { od -An -v -tx1 "$1" | tr -d ' \n'; }
digest() { echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }

# ---- section 2: one field = tag NUL u64be(len) value; value from a file ----
u64be() {
	local b=7
	while [ $b -ge 0 ]; do
		printf "\\$(printf %03o $((($1 >> (8 * b)) & 255)))"
		b=$((b - 1))
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

# ---- section 9: the envelope, the PAE, the signature, the key id ----
jq -r '.attestation.payload' "$RESULT" | base64 -d >"$W/stmt.bin"
jq -r '.attestation.signatures[0].sig' "$RESULT" | base64 -d >"$W/sig.bin"
TYPE=$(jq -r '.attestation.payloadType' "$RESULT")
is "payloadType" "$TYPE" "application/vnd.in-toto+json"
{
	printf 'DSSEv1 %d %s %d ' "${#TYPE}" "$TYPE" "$(wc -c <"$W/stmt.bin")"
	cat "$W/stmt.bin"
} >"$W/pae.bin"
is "PAE bytes" "$(hex "$W/pae.bin")" "$(expected pae_hex)"
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
openssl pkey -pubin -in "$PUB" -outform DER >"$W/pub.der"
KEYID=$(digest "$W/pub.der")
is "keyid is SHA-256 of the DER SubjectPublicKeyInfo" \
	"$(jq -r '.attestation.signatures[0].keyid' "$RESULT")" "$KEYID"
is "key_id in expected.txt" "$KEYID" "$(expected key_id)"

S="$W/stmt.bin"
P() { jq -j ".predicate | $1" "$S"; }
is "statement _type" "$(jq -r '._type' "$S")" "https://in-toto.io/Statement/v1"
is "predicateType" "$(jq -r '.predicateType' "$S")" \
	"https://aisp.dev/attestation/execution/v1"
is "metadata.key_id" "$(P .metadata.key_id)" "$KEYID"

# A string or bytes field of a result/task document into a file: NAME or NAME_b64.
doc_bytes() { # FILE NAME OUT
	if [ "$(jq -r "has(\"$2_b64\")" "$1")" = true ]; then
		jq -j ".$2_b64" "$1" | base64 -d >"$3"
	else
		jq -j ".$2 // \"\"" "$1" >"$3"
	fi
}

# The file.path / file.data fields of a document's "files", sorted by path (paths may hold any
# byte but NUL, so they go through files, never through word splitting). Keeps each file's
# content as $W/PREFIX.N (N in sorted order) for the subject checks.
files_fields() { # FILE PREFIX
	local n i=0
	n=$(jq -j '.files // [] | length' "$1")
	while [ $i -lt "$n" ]; do
		jq -j --argjson i $i '.files | sort_by(.path)[$i].path' "$1" >"$W/$2.path.$i"
		jq -j --argjson i $i '.files | sort_by(.path)[$i].content_b64' "$1" |
			base64 -d >"$W/$2.$i"
		field_file file.path "$W/$2.path.$i"
		field_file file.data "$W/$2.$i"
		i=$((i + 1))
	done
}

# ---- section 3: input encoding ----
{
	field type aisp-input-v1
	field lang "$(jq -j .lang "$TASK")"
	field mode "$(jq -j '.mode // "script"' "$TASK")"
	jq -j .code "$TASK" >"$W/code"
	field_file code "$W/code"
	doc_bytes "$TASK" stdin "$W/stdin"
	field_file stdin "$W/stdin"
	jq -cj 'if .args == null then "" else .args end' "$TASK" >"$W/args"
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
is "input encoding" "$(hex "$W/input.bin")" "$(expected input_encoding_hex)"
INPUT=$(digest "$W/input.bin")
is "input_digest (statement)" "$(P .input_digest)" "$INPUT"
is "input_digest (expected.txt)" "$INPUT" "$(expected input_digest)"

# ---- section 4: output encoding, and the subjects ----
doc_bytes "$RESULT" stdout "$W/stdout"
doc_bytes "$RESULT" stderr "$W/stderr"
jq -j 'if .return_value == null then "" else (.return_value | tojson) end' "$RESULT" >"$W/rv"
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
is "output encoding" "$(hex "$W/output.bin")" "$(expected output_encoding_hex)"
OUTPUT=$(digest "$W/output.bin")
is "output_digest (statement)" "$(P .result.output_digest)" "$OUTPUT"
is "output_digest (expected.txt)" "$OUTPUT" "$(expected output_digest)"
subject() { jq -r --arg n "$1" '.subject[] | select(.name == $n) | .digest.sha256' "$S"; }
i=0
while [ $i -lt "$(jq -j '.files // [] | length' "$RESULT")" ]; do
	p=$(cat "$W/out.path.$i")
	is "subject out/$p" "$(subject "out/$p")" "$(sha256sum "$W/out.$i" | cut -d' ' -f1)"
	i=$((i + 1))
done
is "subject stdout" "$(subject stdout)" "$(sha256sum "$W/stdout" | cut -d' ' -f1)"
is "subject stderr" "$(subject stderr)" "$(sha256sum "$W/stderr" | cut -d' ' -f1)"
if [ -s "$W/rv" ]; then
	is "subject return_value" "$(subject return_value)" \
		"$(sha256sum "$W/rv" | cut -d' ' -f1)"
fi
is "subject count" "$(jq -j '.subject | length' "$S")" \
	"$((2 + $(jq -j '.files // [] | length' "$RESULT") + $([ -s "$W/rv" ] && echo 1 || echo 0)))"

# ---- section 5: exit encoding (from the result; it must equal the statement's) ----
code=$(jq -j 'if .exit_code == null then "" else .exit_code end' "$RESULT")
sig=$(jq -j 'if (.signal // 0) == 0 then "" else .signal end' "$RESULT")
status=$(jq -j .status "$RESULT")
{
	field type aisp-exit-v1
	field status "$status"
	field exit_code "$code"
	field signal "$sig"
} >"$W/exit.bin"
is "exit encoding" "$(hex "$W/exit.bin")" "$(expected exit_encoding_hex)"
is "result.status" "$(P .result.status)" "$status"
is "result.exit_code" "$(P 'if .result.exit_code == null then "" else .result.exit_code end')" \
	"$code"
is "result.signal" "$(P 'if .result.signal == 0 then "" else .result.signal end')" "$sig"
is "image_digest" "$(P .image_digest)" "$(jq -j .image_digest "$RESULT")"

# ---- section 6: environment encoding, from the statement's pair list ----
{
	field type aisp-environment-v1
	field pairs "$(P '.environment | length')"
	i=0
	count=$(P '.environment | length')
	while [ $i -lt "$count" ]; do
		jq -j --argjson i $i '.predicate.environment | sort_by(.key)[$i].key' "$S" >"$W/k"
		jq -j --argjson i $i '.predicate.environment | sort_by(.key)[$i].value' "$S" >"$W/v2"
		field_file key "$W/k"
		field_file value "$W/v2"
		i=$((i + 1))
	done
} >"$W/env.bin"
is "environment encoding" "$(hex "$W/env.bin")" "$(expected environment_encoding_hex)"
ENVD=$(digest "$W/env.bin")
is "environment_digest (statement)" "$(P .environment_digest)" "$ENVD"
is "environment_digest (expected.txt)" "$ENVD" "$(expected environment_digest)"

# ---- section 7: execution digest ----
{
	field type aisp-execution-v1
	field image "$(P .image_digest)"
	field input "$INPUT"
	field output "$OUTPUT"
	field_file exit "$W/exit.bin"
	field environment "$ENVD"
} >"$W/exec.bin"
EXEC=$(digest "$W/exec.bin")
is "execution_digest (statement)" "$(P .execution_digest)" "$EXEC"
is "execution_digest (result)" "$(jq -j .execution_digest "$RESULT")" "$EXEC"
is "execution_digest (expected.txt)" "$EXEC" "$(expected execution_digest)"

# ---- section 10: the attestation digest ----
is "attestation_digest" "$(digest "$S")" "$(expected attestation_digest)"
is "metadata.sequence" "$(P .metadata.sequence)" 2
is "metadata.node_id" "$(P .metadata.node_id)" "$(jq -j .node "$RESULT")"

done_testing
