#!/usr/bin/env bash
# `aispd --check` (issue 15 item 3) against real runc, runsc and redis-server: it finds what a
# start would find, every problem in one run, each naming file:line where the config has one;
# it creates, uses and destroys a sandbox per enabled runtime (a runtime that answers
# --version but runs no container is caught); it binds the HTTP address; it warns (and still
# passes) when Redis is unreachable, refuses the AUTH, or another aispd holds the node id.
# TAP output. (-e is off on purpose: a TAP suite goes on after a failing check.)
set -uo pipefail
. "$(dirname "$0")/../lib/node.sh"
need_nodes
redis_start

# chk NAME: aispd --check on NAME's config: OUT (stdout and stderr), RC
chk() {
	OUT=$("$AISPD" --config "$(node_dir "$1")/aispd.conf" --check 2>&1)
	RC=$?
}
# says DESCRIPTION TEXT...: ok when the last --check output holds every TEXT
says() {
	local what=$1 t
	shift
	for t in "$@"; do
		if [[ "$OUT" != *"$t"* ]]; then
			not_ok "$what" "missing: $t" "exit $RC" "$OUT"
			return
		fi
	done
	ok "$what"
}
# at NAME PATTERN: "<config path>:<line>" of the first line of NAME's config matching PATTERN
at() { echo "$(node_dir "$1")/aispd.conf:$(grep -n -m1 -- "$2" "$(node_dir "$1")/aispd.conf" | cut -d: -f1)"; }

# ---------------------------------------------------------------- a good node
HTTP_PORT=$(free_port) node_conf good
chk good
is "good config: exit 0" "$RC" 0
says "good config: a sandbox created, used and destroyed per runtime; Redis reachable" \
	"runtime runc: a sandbox was created, ran a task and was destroyed" \
	"runtime runsc: a sandbox was created, ran a task and was destroyed" \
	"redis 127.0.0.1:$REDIS_PORT: reachable, node id $(node_id good) free" \
	"aispd --check: all startup checks passed (0 warnings)"
is "good config: the check leaves no sandbox behind" "$(residue good)" ""
# The check reads the chain state and writes nothing: no chain.json where there was none, and
# one in the older single-object form is neither converted nor touched.
is "good config: the check creates no chain state" \
	"$(ls "$(node_dir good)/state/chain.json" 2>/dev/null)" ""
printf '{"previous":"sha256:%s","sequence":7}\n' "$(printf 'a%.0s' {1..64})" >"$(node_dir good)/state/chain.json"
before=$(sha256sum <"$(node_dir good)/state/chain.json")
chk good
is "good config, chain state in the older form: exit 0" "$RC" 0
is "good config: the check leaves the older chain state as it was" \
	"$(sha256sum <"$(node_dir good)/state/chain.json")" "$before"
echo 'not json' >"$(node_dir good)/state/chain.json"
chk good
is "good config, a malformed chain state: exit 1" "$RC" 1
says "good config, a malformed chain state: the check names it" "chain state in $(node_dir good)/state:"
rm -f "$(node_dir good)/state/chain.json"

# ---------------------------------------------------------------- every problem in one run
# A listener the check cannot bind over.
coproc BUSY { exec python3 -c 'import socket,time
s=socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(); print(s.getsockname()[1], flush=True)
time.sleep(600)'; }
track_pid "$BUSY_PID"
read -r busy <&"${BUSY[0]}"
HTTP_PORT=$busy LIMITS=$'memory_mb = 512\nmax_memory_mb = 256' \
	POOL=$'runc/nope/python = 1\nrunc/default/cobol = 1' \
	EXTRA_SECTIONS=$'[runtime.runsc]\nplatform = systrap' node_conf many
c=$(node_dir many)/aispd.conf
sed -i "s|^slots = .*|&\nslots = 3|; s|^key = .*|key = $TEST_TMP/nokey/private.pem|" "$c"
chk many
is "many problems: exit 1" "$RC" 1
says "many problems: every one reported in one run, each at its file:line" \
	"$(at many '^slots = 3'): [node] slots: set twice (first on line $(grep -n -m1 '^slots' "$c" | cut -d: -f1))" \
	"$(at many '^max_memory_mb'): [limits] max_memory_mb = 256 is below memory_mb = 512 (line $(grep -n -m1 '^memory_mb' "$c" | cut -d: -f1))" \
	"$(at many cobol): [pool] runc/default/cobol: unknown language \"cobol\" (valid: python, javascript, shell)" \
	"$(at many '^key = '): no node key at $TEST_TMP/nokey/private.pem: run \`aisp keygen --out $TEST_TMP/nokey\` or set create_key = true" \
	"$(at many '^platform'): runtime runsc: platform systrap is not supported by runsc (it has: " \
	"$(at many 'runc/nope'): [pool] runc/nope/python: image nope is not in the store at $STORE (build it with \`aisp image build nope" \
	"$(at many '^listen'): [http] listen 127.0.0.1:$busy: cannot bind: Address already in use" \
	"aispd --check: 7 errors"
if [[ "$OUT" == *"platform systrap"* ]]; then
	have=$(runsc help platforms | sort | tr '\n' ' ')
	got=$(printf '%s\n' "$OUT" | sed -n 's/.*(it has: \(.*\))$/\1/p' | tr ',' '\n' | tr -d ' ' | sort | tr '\n' ' ')
	is "the platforms named are those the installed runsc lists" "$got" "$have"
fi
"$AISPD" --config "$c" >"$TEST_TMP/start.out" 2>&1
rc=$?
is "a start with the same config refuses: exit 1" "$rc" 1
check "a start names the config's problems too" grep -qF "$(at many '^slots = 3'): [node] slots: set twice" "$TEST_TMP/start.out"
sed -i '/^slots = 3$/d; /cobol/d; /^max_memory_mb/d' "$c"
"$AISPD" --config "$c" >"$TEST_TMP/start.out" 2>&1
rc=$?
if [ $rc = 1 ] && grep -qF "$(at many '^key = '): no node key" "$TEST_TMP/start.out" &&
	grep -qF "$(at many 'runc/nope'): [pool] runc/nope/python: image nope" "$TEST_TMP/start.out" &&
	grep -qF "not starting: 4 startup checks failed" "$TEST_TMP/start.out"; then
	ok "a start with a valid file reports every failing startup check, then refuses"
else
	not_ok "a start reports every failing startup check" "exit $rc" "$(cat "$TEST_TMP/start.out")"
fi

# ---------------------------------------------------------------- a runtime that runs nothing
# It answers --version (so a start without --check would come up and fail every task), but
# refuses every container: only creating a sandbox finds it.
broken_runtime "$TEST_TMP/broken-runtime"
RT_ENABLED="runc, broken" EXTRA_SECTIONS=$'[runtime.broken]\nkind = runc\npath = '"$TEST_TMP/broken-runtime" node_conf broken
chk broken
is "a runtime that runs no container: exit 1" "$RC" 1
says "a runtime that runs no container: named, at its section, with the runtime's reason" \
	"$(at broken '^\[runtime.broken\]'): runtime broken: a sandbox with image default does not work: " \
	"runtime runc: a sandbox was created, ran a task and was destroyed" \
	"aispd --check: 1 error"
is "a failed check leaves no sandbox behind" "$(residue broken)" ""

# ---------------------------------------------------------------- Redis: warnings only
HTTP_PORT= node_conf noredis
sed -i "s|^address = .*|address = 127.0.0.1:$(free_port)|" "$(node_dir noredis)/aispd.conf"
chk noredis
is "Redis unreachable: still exit 0" "$RC" 0
says "Redis unreachable: a warning at [redis] address" \
	"$(at noredis '^address'): redis 127.0.0.1:" "is unreachable (Connection refused): aispd will start and retry" \
	"all startup checks passed (1 warning)"

apass=$(free_port)
mkdir -p "$TEST_TMP/redis-auth"
redis-server --port "$apass" --bind 127.0.0.1 --dir "$TEST_TMP/redis-auth" --save '' \
	--requirepass right-pass >/dev/null 2>&1 &
track_pid $!
wait_for 10 prints PONG redis-cli -p "$apass" -a right-pass --no-auth-warning PING
HTTP_PORT= node_conf authbad
sed -i "s|^address = .*|address = 127.0.0.1:$apass\npassword = wrong-pass|" "$(node_dir authbad)/aispd.conf"
chk authbad
is "AUTH refused: still exit 0" "$RC" 0
says "AUTH refused: a warning at [redis] password with Redis's reason" \
	"$(at authbad '^password'): redis 127.0.0.1:$apass: AUTH failed (WRONGPASS"
HTTP_PORT= node_conf noauth
sed -i "s|^address = .*|address = 127.0.0.1:$apass|" "$(node_dir noauth)/aispd.conf"
chk noauth
says "no password for a Redis that wants one: a warning that says to set it" \
	"redis 127.0.0.1:$apass: PING failed (NOAUTH" ": set [redis] password (and user)"
sed -i "s|^address = .*|&\npassword = right-pass|" "$(node_dir noauth)/aispd.conf"
chk noauth
says "the right password: AUTH accepted" "redis 127.0.0.1:$apass: reachable, AUTH accepted"

# ---------------------------------------------------------------- the node id in use
HTTP_PORT= node_conf idused
R SET "aisp:lock:$(node_id idused)" "host elsewhere pid 1 token 00" PX 60000 >/dev/null
chk idused
is "node id held by another process: still exit 0 (it may be a dead one's)" "$RC" 0
says "node id held by another process: a warning naming the holder" \
	"node id $(node_id idused) is in use: aisp:lock:$(node_id idused) is held by host elsewhere pid 1 token 00"
R DEL "aisp:lock:$(node_id idused)" >/dev/null

# ---------------------------------------------------------------- no file
OUT=$("$AISPD" --config "$TEST_TMP/none.conf" --check 2>&1)
RC=$?
is "a config that cannot be read: exit 1" "$RC" 1
says "a config that cannot be read: says so" "$TEST_TMP/none.conf: cannot open: No such file or directory"

done_testing
