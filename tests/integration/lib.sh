# Shared helpers for the integration suites (TAP output). Source it; set AISP_BIN first.
# Every helper that starts something records its pid; cleanup() ends exactly those.
set -uo pipefail
TAP_N=0
TAP_FAIL=0
PIDS=()
TMP=$(mktemp -d /tmp/aisp-it.XXXXXX)

ok() { TAP_N=$((TAP_N + 1)); echo "ok $TAP_N - $*"; }
not_ok() { TAP_N=$((TAP_N + 1)); TAP_FAIL=$((TAP_FAIL + 1)); echo "not ok $TAP_N - $*"; }
# check "description" command...: ok when the command succeeds
check() {
	local d=$1
	shift
	if "$@"; then ok "$d"; else not_ok "$d"; fi
}
# is "description" got want
is() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1 (got '$2', want '$3')"; fi
}
# expect "description" WANT_RC GREP_PATTERN command...: ok when the command exits WANT_RC and
# its output (stdout and stderr) matches the pattern
expect() {
	local d=$1 want=$2 pat=$3
	shift 3
	"$@" >"$TMP/expect.out" 2>&1
	local got=$?
	if [ "$got" -eq "$want" ] && grep -q -e "$pat" "$TMP/expect.out"; then
		ok "$d"
	else
		not_ok "$d (exit $got, want $want; output: $(head -c 600 "$TMP/expect.out" | tr '\n' '|'))"
	fi
}
diag() { echo "# $*"; }
done_testing() {
	echo "1..$TAP_N"
	[ "$TAP_FAIL" -eq 0 ]
}
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$TMP"
}
trap cleanup EXIT
free_port() {
	python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}
# The default image must be in the store (tests/run.sh builds it once per machine).
need_image() {
	"$AISP_BIN" image build default >/dev/null || {
		echo "Bail out! the default image is not in the store and could not be built"
		exit 1
	}
}
