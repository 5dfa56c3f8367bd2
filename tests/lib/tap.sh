# shellcheck shell=bash
# TAP primitives of every shell suite (bash). One meaning each, in every suite:
#
#   ok DESC                     a passing test point
#   not_ok DESC [DIAG...]       a failing one; each DIAG (a string, may span lines) follows as
#                               "#   " lines, at most 4000 characters each
#   not_ok_todo REASON DESC [DIAG...]  a failing one marked TODO (a known bug, TAP: expected)
#   skip DESC REASON            a skipped test point
#   check DESC COMMAND...       ok when COMMAND exits 0. COMMAND runs in this shell (it may set
#                               variables, wait for children); its stdout and stderr never reach
#                               the TAP stream: they become the diagnostic when it fails
#   is DESC GOT WANT            ok when the strings GOT and WANT are equal; else both as diagnostic
#   expect DESC RC PATTERN COMMAND...  ok when COMMAND (run as for check) exits RC and a line of
#                               its output (stdout and stderr) matches PATTERN, a grep basic
#                               regular expression; "" matches any output, none included
#   diag TEXT...                a "# " comment
#   done_testing                prints the plan (1..N); fails when any test point failed
#   skip_all REASON             "1..0 # SKIP REASON" and exit 0 (a precondition is absent)
#   bail REASON                 "Bail out! REASON" and exit 1 (the suite cannot go on)
#   at_exit FUNCTION            FUNCTION runs when the script exits, the last registered first
#
# A predicate for polling loops is not an assertion and is named as one: `prints` in node.sh.
# Works with and without `set -e`; sets no shell option itself.

TAP_N=0
TAP_FAIL=0
TAP_EXIT_HOOKS=()

# ---------------------------------------------------------------- exit hooks

at_exit() { TAP_EXIT_HOOKS+=("$1"); }
tap_exit() {
	set +e # cleanup goes on past a failing step
	local i
	for ((i = ${#TAP_EXIT_HOOKS[@]} - 1; i >= 0; i--)); do "${TAP_EXIT_HOOKS[$i]}"; done
	rm -f "$TAP_OUT"
}
trap tap_exit EXIT

# The captured output of the last check or expect.
TAP_OUT=$(mktemp /tmp/aisp-tap.XXXXXX)

# ---------------------------------------------------------------- test points

tap_diag_lines() { # each argument as "#   " lines, capped
	local line
	for line in "$@"; do printf '%s\n' "${line:0:4000}" | sed 's/^/#   /'; done
}
ok() {
	TAP_N=$((TAP_N + 1))
	echo "ok $TAP_N - $1"
}
not_ok() {
	TAP_N=$((TAP_N + 1))
	TAP_FAIL=$((TAP_FAIL + 1))
	echo "not ok $TAP_N - $1"
	shift
	tap_diag_lines "$@"
}
not_ok_todo() {
	TAP_N=$((TAP_N + 1))
	echo "not ok $TAP_N - $2 # TODO $1"
	shift 2
	tap_diag_lines "$@"
}
skip() {
	TAP_N=$((TAP_N + 1))
	echo "ok $TAP_N - $1 # SKIP $2"
}
check() {
	local what=$1
	shift
	if "$@" >"$TAP_OUT" 2>&1; then
		ok "$what"
	else
		not_ok "$what" "exit $?: $*" "$(head -c 4000 "$TAP_OUT")"
	fi
}
is() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got:  $2" "want: $3"; fi
}
like() { # NAME GOT SUBSTRING
	if [[ "$2" == *"$3"* ]]; then ok "$1"; else not_ok "$1" "got:  $2" "want a part: $3"; fi
}
expect() {
	local what=$1 want=$2 pat=$3 got=0
	shift 3
	"$@" >"$TAP_OUT" 2>&1 || got=$?
	if [ "$got" -eq "$want" ] && { [ -z "$pat" ] || grep -q -e "$pat" "$TAP_OUT"; }; then
		ok "$what"
	else
		not_ok "$what" "exit $got (want $want): $*" "output (want /$pat/):" "$(head -c 4000 "$TAP_OUT")"
	fi
}
diag() { printf '%s\n' "$*" | sed 's/^/# /'; }
done_testing() {
	echo "1..$TAP_N"
	[ "$TAP_FAIL" -eq 0 ]
}
skip_all() {
	echo "1..0 # SKIP $*"
	exit 0
}
bail() {
	echo "Bail out! $*"
	exit 1
}
