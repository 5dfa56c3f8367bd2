#!/usr/bin/env bash
# Interoperability of aisp seal / unseal / keygen with the stock age command (Debian's `age`):
# files made by one are read by the other, binary and armored, to several recipients, at chunk
# boundaries; wrong identities, truncated, tampered and non-canonical files fail with precise
# messages and leave no output. Self-contained TAP.   (AISP_BIN: the aisp binary)
# No `set -e`: a TAP suite goes on past a failing step (that test point says "not ok" and the
# remaining ones still run), and many steps test a command's exit status.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/host.sh"

: "${AISP_BIN:?AISP_BIN must name the aisp binary}"
W=$TEST_TMP
for tool in age age-keygen; do
	command -v "$tool" >/dev/null ||
		bail "$tool is not installed (deploy/packages.txt lists the age package)"
done

# The offset of the payload: just after the header's MAC line ("--- " + 43 characters + LF).
payload_at() {
	local line
	line=$(grep -a -b -m1 '^--- ' "$1" | cut -d: -f1)
	echo $((line + 48))
}
flip_byte() { # flip_byte FILE OFFSET
	local b
	b=$(dd if="$1" bs=1 skip="$2" count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
	printf "$(printf '\\%03o' $(((b ^ 1) & 255)))" |
		dd of="$1" bs=1 seek="$2" count=1 conv=notrunc 2>/dev/null
}
# other_b64 FILE OFFSET: the base64 character there becomes another one ("A", or "B" for an
# "A"), so that the text stays canonical base64 (a flipped bit may not be base64 at all)
other_b64() {
	local c
	c=$(dd if="$1" bs=1 skip="$2" count=1 2>/dev/null)
	printf '%s' "$([ "$c" = A ] && echo B || echo A)" | dd of="$1" bs=1 seek="$2" count=1 conv=notrunc 2>/dev/null
}

# ---- keys ----
expect "aisp keygen writes the age identity" 0 "age recipient age1" "$AISP" keygen --out "$W/node"
is "age.key is 0600" "$(stat -c %a "$W/node/age.key")" 600
is "age.pub is 0644" "$(stat -c %a "$W/node/age.pub")" 644
for f in private.pem public.pem; do
	check "keygen still writes $f" test -f "$W/node/$f"
done
age-keygen -y "$W/node/age.key" >"$W/node.derived" 2>&1
check "age-keygen -y derives our age.pub from our age.key" cmp -s "$W/node.derived" "$W/node/age.pub"
NODE=$(cat "$W/node/age.pub")
grep -q "^# public key: $NODE\$" "$W/node/age.key" && ok "age.key names its recipient" ||
	not_ok "age.key has no '# public key' line"
age-keygen -o "$W/user.key" 2>/dev/null
USER_R=$(age-keygen -y "$W/user.key")
age-keygen -o "$W/other.key" 2>/dev/null
OTHER_R=$(age-keygen -y "$W/other.key")

# ---- plaintexts: empty, tiny, one chunk exactly, several chunks ----
: >"$W/p0"
printf 'sealed input\n' >"$W/p1"
head -c 65536 /dev/urandom >"$W/p64k"
head -c 200000 /dev/urandom >"$W/p200k"

for p in p0 p1 p64k p200k; do
	expect "seal $p to an age-keygen recipient" 0 "" "$AISP" seal -r "$USER_R" -o "$W/$p.age" \
		"$W/$p"
	# age 1.1 creates no -o file for an empty plaintext: decrypt to standard output.
	age -d -i "$W/user.key" "$W/$p.age" >"$W/$p.out" 2>"$W/err" && ok "age -d decrypts our $p" ||
		not_ok "age -d decrypts our $p ($(head -c 300 "$W/err"))"
	check "age -d gives back $p" cmp -s "$W/$p" "$W/$p.out"
	age -r "$NODE" -o "$W/$p.byage" "$W/$p"
	expect "aisp unseal decrypts age's $p" 0 "" "$AISP" unseal -i "$W/node/age.key" \
		-o "$W/$p.back" "$W/$p.byage"
	check "aisp unseal gives back $p" cmp -s "$W/$p" "$W/$p.back"
done
is "unseal -o writes mode 0600" "$(stat -c %a "$W/p1.back")" 600

# ---- armor, both ways, and through pipes ----
"$AISP" seal -a -r "$USER_R" <"$W/p200k" >"$W/arm.age"
head -1 "$W/arm.age" | grep -qx -- '-----BEGIN AGE ENCRYPTED FILE-----' && ok "seal -a armors" ||
	not_ok "seal -a wrote no armor"
age -d -i "$W/user.key" "$W/arm.age" >"$W/arm.out" 2>"$W/err" && ok "age -d reads our armor" ||
	not_ok "age -d reads our armor ($(head -c 300 "$W/err"))"
check "armored round trip through age" cmp -s "$W/p200k" "$W/arm.out"
age -a -r "$NODE" <"$W/p200k" >"$W/arm.byage"
"$AISP" unseal -i "$W/node/age.key" <"$W/arm.byage" >"$W/arm.back" 2>"$W/err"
check "aisp unseal reads age -a from stdin" cmp -s "$W/p200k" "$W/arm.back"

# ---- several recipients ----
printf '# the buyer and the node\n%s\n\n%s\n' "$USER_R" "$NODE" >"$W/recipients"
expect "seal to three recipients" 0 "" "$AISP" seal -R "$W/recipients" -r "$OTHER_R" \
	-o "$W/multi.age" "$W/p1"
[ "$(grep -a -c '^-> X25519 ' "$W/multi.age")" = 3 ] && ok "three X25519 stanzas" ||
	not_ok "not three stanzas"
for k in user other; do
	expect "age -d -i $k.key reads the multi-recipient file" 0 "sealed input" \
		age -d -i "$W/$k.key" "$W/multi.age"
done
expect "aisp unseal with the node key reads it" 0 "sealed input" \
	"$AISP" unseal -i "$W/node/age.key" "$W/multi.age"
age -r "$USER_R" -r "$NODE" -r "$OTHER_R" -o "$W/multi.byage" "$W/p1"
expect "aisp unseal reads age's multi-recipient file" 0 "sealed input" \
	"$AISP" unseal -i "$W/node/age.key" "$W/multi.byage"
expect "aisp unseal takes an identity file with several keys" 0 "sealed input" \
	"$AISP" unseal -i "$W/user.key" -i "$W/other.key" "$W/multi.byage"

# ---- failures: nothing is written, and the message names the problem ----
expect "a wrong identity: no identity matches" 1 \
	"aisp unseal: age: no identity matches any recipient stanza" \
	"$AISP" unseal -i "$W/other.key" -o "$W/wrong.out" "$W/p200k.byage"
check "no output after a failure" test ! -e "$W/wrong.out"
expect "age -d refuses our file to a wrong identity" 1 "no identity matched" \
	age -d -i "$W/other.key" "$W/p200k.age"

pay=$(payload_at "$W/p200k.byage")
head -c $((pay + 16 + 2 * 65552)) "$W/p200k.byage" >"$W/trunc.age"
expect "truncated after chunk 2" 1 "age: payload: truncated (no final chunk after chunk 2)" \
	"$AISP" unseal -i "$W/node/age.key" -o "$W/trunc.out" "$W/trunc.age"
check "no output from a truncated file" test ! -e "$W/trunc.out"
head -c $((pay + 10)) "$W/p200k.byage" >"$W/trunc2.age"
expect "truncated inside the nonce" 1 "age: payload: nonce truncated (10 of 16 bytes)" \
	"$AISP" unseal -i "$W/node/age.key" "$W/trunc2.age"
head -c 80 "$W/p200k.byage" >"$W/trunc3.age" # the version line, the arguments, 4 bytes
expect "truncated inside the header" 1 "age: header: line 3: stanza body truncated" \
	"$AISP" unseal -i "$W/node/age.key" "$W/trunc3.age"

cp "$W/p200k.byage" "$W/tamper.age"
flip_byte "$W/tamper.age" $((pay + 16 + 65552 + 1000))
expect "tampered chunk 2" 1 "age: payload: chunk 2 failed authentication" \
	"$AISP" unseal -i "$W/node/age.key" -o "$W/tamper.out" "$W/tamper.age"
check "no output from a tampered file" test ! -e "$W/tamper.out"
expect "age -d also rejects the tampered file" 1 "" age -d -i "$W/node/age.key" "$W/tamper.age"
cp "$W/p1.byage" "$W/trail.age" && printf 'x' >>"$W/trail.age"
expect "trailing data" 1 "age: payload: chunk 1 failed authentication" \
	"$AISP" unseal -i "$W/node/age.key" "$W/trail.age"

# The header MAC: a changed MAC, and a stanza the attacker adds.
cp "$W/p1.byage" "$W/mac.age"
other_b64 "$W/mac.age" $((pay - 10))
expect "changed MAC" 1 "age: header MAC mismatch" \
	"$AISP" unseal -i "$W/node/age.key" "$W/mac.age"
{ head -1 "$W/p1.byage"; printf -- '-> grease x\n\n'; tail -n +2 "$W/p1.byage"; } >"$W/added.age"
expect "added stanza breaks the MAC" 1 "age: header MAC mismatch" \
	"$AISP" unseal -i "$W/node/age.key" "$W/added.age"
# Non-canonical: a CRLF header, a doubled space, the share's unused bits set.
sed '1s/$/\r/' "$W/p1.byage" >"$W/crlf.age"
expect "CRLF header" 1 "age: header: line 1 ends with CR" \
	"$AISP" unseal -i "$W/node/age.key" "$W/crlf.age"
sed '2s/^-> X25519 /-> X25519  /' "$W/p1.byage" >"$W/space.age"
expect "doubled space in a stanza" 1 "age: header: line 2: stanza argument 2 is empty" \
	"$AISP" unseal -i "$W/node/age.key" "$W/space.age"
share=$(sed -n '2s/^-> X25519 //p' "$W/p1.byage")
# 32 bytes take 43 characters: the last one has 2 unused bits, which must be zero. Set one.
b64=ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/
idx=${b64%%"${share: -1}"*}
bump=${b64:$((${#idx} + 1)):1}
sed "2s|^-> X25519 .*|-> X25519 ${share%?}$bump|" "$W/p1.byage" >"$W/noncanon.age"
expect "non-canonical base64 share" 1 \
	"age: header: line 2: X25519 share is not the canonical base64 of 32 bytes" \
	"$AISP" unseal -i "$W/node/age.key" "$W/noncanon.age"

# ---- usage and key files ----
chmod 644 "$W/user.key"
expect "an identity file others can read is refused" 1 "chmod 600" \
	"$AISP" unseal -i "$W/user.key" "$W/p1.age"
chmod 600 "$W/user.key"
expect "seal needs a recipient" 1 "no recipients" "$AISP" seal "$W/p1"
expect "a bad recipient is named" 1 'age: recipient "age1qqqq' "$AISP" seal -r age1qqqqq "$W/p1"
expect "post-quantum recipients are refused" 1 "post-quantum" \
	"$AISP" seal -r "age1pq1x34nzsvr0rxjsgdn8zgyhfe8j7ceq5r9rdelkjuh3y235jzxshfg87pzf5" "$W/p1"
expect "keygen refuses to replace the age key" 1 "use --force" "$AISP" keygen --out "$W/node"
cp "$W/node/private.pem" "$W/old.pem"
rm "$W/node/age.key" "$W/node/age.pub"
expect "keygen --age-only adds an age key to an old key directory" 0 "age recipient age1" \
	"$AISP" keygen --out "$W/node" --age-only
check "--age-only leaves the signing key alone" cmp -s "$W/old.pem" "$W/node/private.pem"
age-keygen -y "$W/node/age.key" >"$W/node.derived2" 2>&1
check "the new age.pub matches the new age.key" cmp -s "$W/node.derived2" "$W/node/age.pub"

done_testing
