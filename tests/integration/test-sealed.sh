#!/usr/bin/env bash
# Sealed and signed tasks on the command line (issue 20; proto/SEALED.md, attest/SEALED.md,
# attest/TRUST.md), against the stock `age` command and a real redis-server on a free loopback
# port: task parts encrypted with `age -r` to a node identity made by `aisp keygen` are opened by
# the node's admission (`aisp task check`, the node's own functions); `aisp task seal` output
# opens with `age -d`; wrong recipient, truncated, tampered and non-canonical ciphertexts are
# rejected by name; passports are issued, verified, and the trust level x passport matrix is
# decided; revocations in Redis reject; `aisp submit --sign-key --seal-to` sends a signed sealed
# task; the golden sealed result verifies with `aisp unseal --verify` and with openssl-free
# stock tools (age, jq, base64, sha256sum).
# Sealed tasks run through aispd: test-sealed-node.sh. TAP. Needs AISP_BIN, AISP_SOURCE_ROOT.
set -uo pipefail
. "$(dirname "$0")/../lib/host.sh"
AISP=${AISP_BIN:?}
SRC=${AISP_SOURCE_ROOT:?}
for tool in age age-keygen redis-server redis-cli jq base64 sha256sum; do
	command -v "$tool" >/dev/null || { echo "Bail out! $tool is not installed"; exit 1; }
done
port=$(free_port)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >"$TEST_TMP/redis.log" 2>&1 &
REDIS_PID=$!
track_pid "$REDIS_PID"
export AISP_REDIS=127.0.0.1:$port
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
R() { redis-cli -p "$port" "$@"; }
W=$TEST_TMP
CANARY=canary-$RANDOM-$RANDOM
b64() { base64 -w0 "$@"; }
flip_last() { # flips the last byte of a file
	local n b
	n=$(($(stat -c %s "$1") - 1))
	b=$(dd if="$1" bs=1 skip="$n" count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
	printf "$(printf '\\%03o' $(((b ^ 1) & 255)))" | dd of="$1" bs=1 seek="$n" count=1 conv=notrunc 2>/dev/null
}

# ---- keys: a node, a buyer with stock age only, a signer, an issuer ----
for d in node signer issuer rogue other; do "$AISP" keygen --out "$W/$d" >/dev/null; done
age-keygen -o "$W/buyer.key" 2>/dev/null
BUYER=$(age-keygen -y "$W/buyer.key")
NODE=$(cat "$W/node/age.pub")
check "the node has an age identity" test -n "$NODE"

# ---- a task sealed with the stock age command ----
printf 'import sys\nprint(sys.stdin.read().upper())  # %s\n' "$CANARY" >"$W/code.py"
printf 'hello %s' "$CANARY" >"$W/stdin.txt"
age -r "$NODE" -o "$W/code.age" "$W/code.py"
age -r "$NODE" -o "$W/stdin.age" "$W/stdin.txt"
task_with() { # task_with CODE_AGE_FILE STDIN_AGE_FILE [EXTRA JSON FIELDS] -> stdout
	printf '{"id":"sealed-1","lang":"python","code_age":"%s","stdin_age":"%s","reply_to":"%s"%s}' \
		"$(b64 "$1")" "$(b64 "$2")" "$BUYER" "${3:+,$3}"
}
task_with "$W/code.age" "$W/stdin.age" >"$W/task.json"
expect "age -r parts open with the node's identity" 0 "opened: exec_mode sealed, reply_to $BUYER" \
	"$AISP" task check "$W/task.json" -i "$W/node/age.key"
expect "and the unsigned task is admitted with no trust level" 0 "admitted: trust level none, unsigned" \
	"$AISP" task check "$W/task.json" -i "$W/node/age.key"
check "no plaintext in the sealed task" bash -c "! grep -q '$CANARY' '$W/task.json'"
age -a -r "$NODE" -o "$W/code.armored" "$W/code.py"
task_with "$W/code.armored" "$W/stdin.age" >"$W/armored.json"
expect "an armored age file is accepted too" 0 "admitted" \
	"$AISP" task check "$W/armored.json" -i "$W/node/age.key"

# ---- every bad ciphertext is rejected by name ----
age -r "$BUYER" -o "$W/code.buyer" "$W/code.py"
task_with "$W/code.buyer" "$W/stdin.age" >"$W/wrong.json"
expect "a part for another recipient" 2 "rejected: sealed part code_age: age: no identity matches any recipient stanza" \
	"$AISP" task check "$W/wrong.json" -i "$W/node/age.key"
cp "$W/stdin.age" "$W/stdin.tampered"
flip_last "$W/stdin.tampered"
task_with "$W/code.age" "$W/stdin.tampered" >"$W/tampered.json"
expect "a tampered part" 2 "rejected: sealed part stdin_age: age: payload: chunk 1 failed authentication" \
	"$AISP" task check "$W/tampered.json" -i "$W/node/age.key"
head -c $(($(stat -c %s "$W/code.age") - 20)) "$W/code.age" >"$W/code.truncated"
task_with "$W/code.truncated" "$W/stdin.age" >"$W/truncated.json"
expect "a truncated part" 2 "rejected: sealed part code_age: age: payload" \
	"$AISP" task check "$W/truncated.json" -i "$W/node/age.key"
sed '1s/$/\r/' "$W/code.age" >"$W/code.crlf"
task_with "$W/code.crlf" "$W/stdin.age" >"$W/crlf.json"
expect "a non-canonical header (CRLF)" 2 "rejected: sealed part code_age: age: header: line 1" \
	"$AISP" task check "$W/crlf.json" -i "$W/node/age.key"
printf '{"id":"s","lang":"python","code_age":"%s"}' "$(b64 "$W/code.age")" >"$W/noreply.json"
expect "sealed parts without reply_to" 2 'rejected: field "code_age" needs "reply_to"' \
	"$AISP" task check "$W/noreply.json" -i "$W/node/age.key"
printf '[{"path":"../%s","content_b64":""}]' "$CANARY" | age -r "$NODE" -o "$W/files.age"
printf '{"id":"s","lang":"python","code":"x","files_age":"%s","reply_to":"%s"}' \
	"$(b64 "$W/files.age")" "$BUYER" >"$W/badfiles.json"
"$AISP" task check "$W/badfiles.json" -i "$W/node/age.key" >"$W/badfiles.out" 2>&1
check "an invalid decrypted part is rejected" grep -q "^rejected: sealed part files_age: the decrypted files is not valid" "$W/badfiles.out"
check "and the public message does not quote it" bash -c "! grep '^rejected' '$W/badfiles.out' | grep -q '$CANARY'"

# ---- aisp task seal: the node opens it, and so does age -d ----
printf '{"id":"plain-1","lang":"python","code":"print(%s)","stdin":"in %s","args":["%s"]}' \
	"'$CANARY'" "$CANARY" "$CANARY" >"$W/plain.json"
check "aisp task seal" "$AISP" task seal "$W/plain.json" --seal-to "$W/node/age.pub" \
	--reply-to "$BUYER" -o "$W/sealed.json"
check "its document holds no plaintext" bash -c "! grep -q '$CANARY' '$W/sealed.json'"
is "its parts" "$(jq -c '[keys[] | select(endswith("_age"))]' "$W/sealed.json")" '["args_age","code_age","stdin_age"]'
jq -r .code_age "$W/sealed.json" | base64 -d | age -d -i "$W/node/age.key" >"$W/code.out" 2>&1
is "age -d opens its code" "$(cat "$W/code.out")" "print('$CANARY')"
expect "the node opens it" 0 "admitted" "$AISP" task check "$W/sealed.json" -i "$W/node/age.key"
check "--seal-parts seals only those" "$AISP" task seal "$W/plain.json" --seal-to "$NODE" \
	--seal-parts stdin --reply-to "$BUYER" -o "$W/partial.json"
is "code stays in the clear (exec_mode source)" "$(jq -r '.exec_mode + " " + (.code != null | tostring)' "$W/partial.json")" "source true"
expect "sealing without a reply_to is refused" 1 'needs "reply_to"' \
	"$AISP" task seal "$W/plain.json" --seal-to "$NODE"

# ---- passports ----
pp() { "$AISP" passport issue --key "$W/issuer/private.pem" --subject "$W/signer" "$@"; }
pp --id pp_human --claim verified_human:substantial:worldid -o "$W/pp_human.json"
pp --id pp_low --claim verified_human:low:worldid -o "$W/pp_low.json"
pp --id pp_ident --claim verified_identity:high:bankid_se -o "$W/pp_ident.json"
"$AISP" passport issue --key "$W/rogue/private.pem" --subject "$W/signer" --id pp_rogue \
	--claim verified_identity:high:bankid_se -o "$W/pp_rogue.json"
now=$(date +%s)
pp --id pp_old --claim verified_identity:high:bankid_se --issued-at $((now - 172800)) --valid-for 1d -o "$W/pp_old.json"
pp --id pp_future --claim verified_identity:high:bankid_se --issued-at $((now + 86400)) -o "$W/pp_future.json"
expect "passport show" 0 "claim verified_human substantial worldid" "$AISP" passport show "$W/pp_human.json"
expect "passport verify with its issuer trusted" 0 "^valid" "$AISP" passport verify "$W/pp_human.json" --issuer "$W/issuer"
expect "an untrusted issuer" 1 "is not trusted by this node" "$AISP" passport verify "$W/pp_rogue.json" --issuer "$W/issuer"
expect "an expired passport" 1 "passport pp_old expired at" "$AISP" passport verify "$W/pp_old.json" --issuer "$W/issuer"
expect "a passport not valid yet" 1 "passport pp_future is not valid before" "$AISP" passport verify "$W/pp_future.json" --issuer "$W/issuer"
expect "presented by another key" 1 "but the task is signed by" \
	"$AISP" passport verify "$W/pp_human.json" --issuer "$W/issuer" --signer "$W/other"
jq -c '.signatures[0].sig = "'"$(jq -r .signatures[0].sig "$W/pp_low.json")"'"' "$W/pp_ident.json" >"$W/pp_forged.json"
expect "a forged passport" 1 "the signature does not verify with its issuer key" \
	"$AISP" passport verify "$W/pp_forged.json" --issuer "$W/issuer"
expect "a bad claim" 1 "expected TYPE:ASSURANCE:PROVIDER" \
	"$AISP" passport issue --key "$W/issuer/private.pem" --subject "$W/signer" --claim verified_human:medium:x

# ---- signed tasks and the trust matrix (admission as a node does it) ----
sign() { # sign OUT LEVEL [PASSPORT] : signs the sealed task
	local out=$1 level=$2
	shift 2
	"$AISP" task sign "$W/sealed.json" --sign-key "$W/signer/private.pem" ${level:+--trust-level "$level"} \
		${1:+--passport "$1"} -o "$out"
}
admit() { "$AISP" task check "$1" -i "$W/node/age.key" --issuer "$W/issuer" "${@:2}"; }
sign "$W/signed.json" "" "$W/pp_human.json"
is "a signed task is a DSSE envelope" "$(jq -r .payloadType "$W/signed.json")" "application/vnd.aisp.task+json"
expect "signed, no level: admitted" 0 "admitted: trust level none, signed by sha256:" admit "$W/signed.json"
expect "a passport issued to another key is refused at signing" 1 "not to the signing key" \
	"$AISP" task sign "$W/sealed.json" --sign-key "$W/other/private.pem" --passport "$W/pp_human.json"
# level x passport: want "admitted" or the node's reason
matrix() {
	local level=$1 pass=$2 want=$3 f="$W/m-$1-$2.json"
	if [ "$pass" = none ]; then sign "$f" "$level"; else sign "$f" "$level" "$W/pp_$pass.json"; fi
	local rc=2
	[ "$want" = admitted ] && rc=0
	expect "$level with passport $pass: $want" "$rc" "$want" admit "$f"
}
matrix L0 none "trust level L0 requires a passport; the task carries none"
matrix L0 low admitted
matrix L0 human admitted
matrix L0 ident admitted
matrix L1 none "trust level L1 requires a passport"
matrix L1 low "trust level L1 requires claim verified_human at assurance substantial or higher; passport pp_low has it at low"
matrix L1 human admitted
matrix L1 ident admitted
matrix L2 none "trust level L2 requires a passport"
matrix L2 low "trust level L2 requires claim verified_identity; passport pp_low has none"
matrix L2 human "trust level L2 requires claim verified_identity; passport pp_human has none"
matrix L2 ident admitted
matrix L2 rogue "passport pp_rogue: issuer sha256:"
matrix L2 old "passport pp_old expired at"
matrix L2 future "passport pp_future is not valid before"
expect "unsigned under a node floor of L0" 2 "trust level L0 requires a signed task" \
	admit "$W/sealed.json" --min-level L0
payload=$(jq -r .payload "$W/m-L1-human.json" | base64 -d | sed 's/"L1"/"L0"/' | b64)
jq -c --arg p "$payload" '.payload = $p' "$W/m-L1-human.json" >"$W/lowered.json"
expect "a signed task whose level was lowered" 2 "the task's signature does not verify with its signer key" \
	admit "$W/lowered.json"

# ---- revocation in Redis ----
expect "revoke a passport" 0 "revoked passport:pp_human" \
	"$AISP" passport revoke --passport pp_human --reason "lost phone"
is "the record is in aisp:revoked" "$(R HGET aisp:revoked passport:pp_human | jq -r .reason)" "lost phone"
expect "its task is rejected" 2 'passport pp_human is revoked (since .*: "lost phone")' \
	admit "$W/m-L1-human.json" --redis "$AISP_REDIS"
expect "passport verify sees it too" 1 "passport pp_human is revoked" \
	"$AISP" passport verify "$W/pp_human.json" --issuer "$W/issuer" --redis "$AISP_REDIS"
expect "revoked lists it" 0 "passport pp_human is revoked" "$AISP" passport revoked
expect "unrevoke" 0 "unrevoked passport:pp_human" "$AISP" passport unrevoke --passport pp_human
expect "admitted again" 0 "admitted" admit "$W/m-L1-human.json" --redis "$AISP_REDIS"
signer_id=$("$AISP" passport key-id "$W/signer" | head -1)
expect "revoke the signer's key" 0 "revoked key:$signer_id" "$AISP" passport revoke --key "$W/signer"
expect "a task it signed is rejected" 2 "key $signer_id is revoked" admit "$W/signed.json" --redis "$AISP_REDIS"
"$AISP" passport unrevoke --key "$signer_id" >/dev/null
"$AISP" passport revoke --key "$W/issuer" --reason compromised >/dev/null
expect "a revoked issuer's passports are rejected" 2 "is revoked (since .*: \"compromised\")" \
	admit "$W/m-L1-human.json" --redis "$AISP_REDIS"
"$AISP" passport unrevoke --key "$W/issuer" >/dev/null
expect "a bad passport id" 1 "a passport id matches" "$AISP" passport revoke --passport "a b"

# ---- aisp submit --sign-key --passport --seal-to --reply-to ----
printf 'secret stdin %s' "$CANARY" >"$W/submit.in"
expect "submit a signed sealed task" 0 "^sub-1" "$AISP" submit --id sub-1 -c "print('$CANARY')" \
	--stdin "$W/submit.in" --seal-to "$W/node/age.pub" --reply-to "$BUYER" --trust-level L1 \
	--sign-key "$W/signer/private.pem" --passport "$W/pp_human.json"
R XRANGE aisp:tasks - + COUNT 1 | sed -n 3p >"$W/entry.json"
is "the stream entry is a signed task" "$(jq -r .payloadType "$W/entry.json")" "application/vnd.aisp.task+json"
check "with no plaintext in it" bash -c "! grep -q '$CANARY' '$W/entry.json'"
check "not even in its payload" bash -c "! jq -r .payload '$W/entry.json' | base64 -d | grep -q '$CANARY'"
expect "the node would admit it" 0 "admitted: trust level L1" admit "$W/entry.json" --redis "$AISP_REDIS"
expect "a passport without --sign-key" 2 "needs --sign-key" "$AISP" submit -c x --passport "$W/pp_human.json"

# ---- the buyer's side: the golden sealed result ----
V=$SRC/attest/testdata/sealed
install -m 600 "$V/buyer-age.key" "$W/vbuyer.key"
"$AISP" unseal --verify "$V/result.json" --key "$SRC/attest/testdata/test-pub.pem" -i "$W/vbuyer.key" \
	--task "$V/task.json" --input "$V/plain-task.json" >"$W/v.out" 2>"$W/v.err"
is "unseal --verify passes" "$?" 0
is "and prints the decrypted output" "$(cat "$W/v.out")" 42
check "every check passed" bash -c "! grep -qv '^PASS ' '$W/v.err' && test \$(wc -l <'$W/v.err') -eq 15"
expect "verify --sealed is the same check" 0 "PASS execution" "$AISP" verify --sealed "$V/result.json" \
	--key "$SRC/attest/testdata/test-pub.pem" -i "$W/vbuyer.key"
expect "another identity cannot read it" 1 "FAIL decrypt: age: no identity matches" \
	"$AISP" unseal --verify "$V/result.json" --key "$SRC/attest/testdata/test-pub.pem" -i "$W/buyer.key"
expect "without an identity, the public part still verifies" 0 "SKIP decrypt" \
	"$AISP" unseal --verify "$V/result.json" --key "$SRC/attest/testdata/test-pub.pem"
jq -c '.status = "error"' "$V/result.json" >"$W/status.json"
expect "a changed public status" 1 "FAIL metadata: the result's status is not the signed one" \
	"$AISP" unseal --verify "$W/status.json" --key "$SRC/attest/testdata/test-pub.pem" -i "$W/vbuyer.key"
expect "another node's key" 1 "FAIL signature" \
	"$AISP" unseal --verify "$V/result.json" --key "$W/node" -i "$W/vbuyer.key"
# The same checks with stock tools only: the delivered ciphertext is the signed subject, and a
# commitment is SHA-256(salt || digest) of the plaintext.
jq -r .sealed "$V/result.json" | base64 -d >"$W/result.age"
stmt=$(jq -r .attestation.payload "$V/result.json" | base64 -d)
is "sha256sum of the sealed result is its subject" "$(sha256sum <"$W/result.age" | cut -d' ' -f1)" \
	"$(jq -r '.subject[] | select(.name == "sealed_result") | .digest.sha256' <<<"$stmt")"
doc=$(age -d -i "$W/vbuyer.key" "$W/result.age")
salt=$(jq -r .commitments.stdin.salt <<<"$doc")
digest=$(jq -r .commitments.stdin.digest <<<"$doc")
is "the stdin digest is SHA-256 of the buyer's stdin" "$digest" "sha256:$(printf 21 | sha256sum | cut -d' ' -f1)"
is "SHA-256(salt || digest) is the signed commitment" \
	"sha256:$( (printf %s "$salt" | base64 -d; printf %s "$digest") | sha256sum | cut -d' ' -f1)" \
	"$(jq -r .predicate.commitments.stdin <<<"$stmt")"
is "the received code_age is the task's" \
	"$(jq -r .code_age "$V/task.json" | base64 -d | sha256sum | cut -d' ' -f1)" \
	"$(jq -r '.subject[] | select(.name == "code_age") | .digest.sha256' <<<"$stmt")"

# ---- Redis gone: the admission check fails; it never admits unchecked ----
kill "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null
expect "no revocation store, no admission" 1 "Connection refused" \
	admit "$W/m-L1-human.json" --redis "$AISP_REDIS"

done_testing
