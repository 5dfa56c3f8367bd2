#!/usr/bin/env bash
# aisp blob put / get against a real redis-server (proto/SKILLS.md, "Blobs"): ids are the
# SHA-256 of the bytes, SET NX with a TTL, bounded reads checked against the id, the caps, and
# keys holding other bytes. TAP output. Needs AISP_BIN.
# No `set -e`: a TAP suite goes on past a failing step (that test point says "not ok" and the
# remaining ones still run), and many steps test a command's exit status.
set -uo pipefail
. "$(dirname "$0")/../lib/node.sh"
: "${AISP_BIN:?}"
command -v redis-server >/dev/null || bail "redis-server is not installed"
redis_start # exports AISP_REDIS

printf 'first_name,email\nAda,ada@example.com\n' >"$TEST_TMP/leads.csv"
want=sha256:$(sha256sum <"$TEST_TMP/leads.csv" | cut -d' ' -f1)
is "put prints the sha256 id" "$("$AISP" blob put "$TEST_TMP/leads.csv")" "$want"
R GET "aisp:blob:$want" >"$TEST_TMP/raw"
check "the key holds the bytes" cmp -s <(head -c -1 "$TEST_TMP/raw") "$TEST_TMP/leads.csv"
ttl=$(R TTL "aisp:blob:$want")
check "it has the default TTL (24 h)" test "$ttl" -gt 86000 -a "$ttl" -le 86400
is "put again gives the same id" "$("$AISP" blob put "$TEST_TMP/leads.csv" --ttl 200000)" "$want"
ttl=$(R TTL "aisp:blob:$want")
check "and extends the TTL" test "$ttl" -gt 190000
"$AISP" blob put "$TEST_TMP/leads.csv" --ttl 60 >/dev/null
ttl=$(R TTL "aisp:blob:$want")
check "but never shortens it" test "$ttl" -gt 190000
"$AISP" blob get "$want" >"$TEST_TMP/got"
check "get writes the bytes to stdout" cmp -s "$TEST_TMP/got" "$TEST_TMP/leads.csv"
"$AISP" blob get "$want" -o "$TEST_TMP/got2"
check "get -o writes a file" cmp -s "$TEST_TMP/got2" "$TEST_TMP/leads.csv"

head -c 100000 /dev/urandom >"$TEST_TMP/bin"
printf '\0\0\r\n\0' >>"$TEST_TMP/bin"
id=$("$AISP" blob put - <"$TEST_TMP/bin")
is "put - reads stdin" "$id" "sha256:$(sha256sum <"$TEST_TMP/bin" | cut -d' ' -f1)"
"$AISP" blob get "$id" -o "$TEST_TMP/bin2"
check "binary bytes round-trip" cmp -s "$TEST_TMP/bin" "$TEST_TMP/bin2"
: >"$TEST_TMP/empty"
eid=$("$AISP" blob put "$TEST_TMP/empty")
is "the empty blob" "$eid" "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
"$AISP" blob get "$eid" -o "$TEST_TMP/empty2"
check "is stored and read back" test -f "$TEST_TMP/empty2" -a ! -s "$TEST_TMP/empty2"

missing=sha256:$(printf '%064d' 7)
expect "a missing blob" 1 "blob $missing is not in Redis (never put, or its TTL ran out)" \
	"$AISP" blob get "$missing"
expect "an id that is not a digest" 2 "not a blob id (expected sha256: and 64 lower-case hex" \
	"$AISP" blob get "sha256:../../etc/passwd"
expect "upper-case hex is not an id" 2 "not a blob id" "$AISP" blob get "${want^^}"
R SET "aisp:blob:$want" "forged bytes" >/dev/null
rm -f "$TEST_TMP/forged"
expect "a key holding other bytes is refused" 1 "the bytes do not match the digest (they hash to" \
	"$AISP" blob get "$want" -o "$TEST_TMP/forged"
check "and nothing is written" test ! -e "$TEST_TMP/forged"
expect "put replaces other bytes under its key" 0 "held other bytes; replacing them" \
	"$AISP" blob put "$TEST_TMP/leads.csv"
"$AISP" blob get "$want" -o "$TEST_TMP/fixed"
check "after which get works" cmp -s "$TEST_TMP/fixed" "$TEST_TMP/leads.csv"

keys=$(R DBSIZE)
truncate -s 8388609 "$TEST_TMP/big"
expect "a file over the cap is refused" 1 "8388609 bytes, over the blob cap of 8388608" \
	"$AISP" blob put "$TEST_TMP/big"
expect "so is a pipe over the cap" 1 "-: over the blob cap of 8388608 bytes" \
	sh -c "cat \"$TEST_TMP/big\" | \"$AISP\" blob put -"
is "nothing was stored" "$(R DBSIZE)" "$keys"
truncate -s 8388608 "$TEST_TMP/big"
expect "exactly the cap is fine" 0 "^sha256:" "$AISP" blob put "$TEST_TMP/big"
R SETRANGE "aisp:blob:$(sha256sum <"$TEST_TMP/big" | cut -d' ' -f1 | sed 's/^/sha256:/')" 8388608 x >/dev/null
expect "a key over the cap is refused, read bounded" 1 "8388609 bytes, over the cap of 8388608" \
	"$AISP" blob get "sha256:$(sha256sum <"$TEST_TMP/big" | cut -d' ' -f1)" -o "$TEST_TMP/big2"
expect "--ttl must be 1..30 days" 2 "--ttl: expected 1..2592000 seconds" \
	"$AISP" blob put "$TEST_TMP/leads.csv" --ttl 0
expect "an unreachable Redis is named" 1 "redis 127.0.0.1:1" \
	"$AISP" blob get "$want" --redis 127.0.0.1:1
done_testing
