# shellcheck shell=bash
# The host side of every suite that runs the project's binaries (bash; sources tap.sh): a
# scratch directory, processes started in the background, free ports, bounded polling, and the
# preconditions (root, tools, the default image).
#
#   TEST_TMP               the suite's scratch dir (mode 0711), below TEST_TMP_PARENT (/tmp);
#                          removed at exit (KEEP_TMP=1 keeps it), with what was mounted below it
#   track_pid PID          the process (a child of this shell) is SIGKILLed and reaped at exit
#   free_port              prints a free loopback TCP port
#   wait_for SECONDS COMMAND...  polls COMMAND every 0.1 s; fails after SECONDS
#   prints VALUE COMMAND...      true when COMMAND prints exactly VALUE (a predicate for wait_for)
#   need_root, need_tools TOOL..., need_image: skip_all / bail when the precondition is absent
#
# Environment: AISP_BIN (the aisp binary), AISP_IMAGE_STORE (default /var/lib/aisp/images).
# Like tap.sh, it sets no shell option: each suite states its own.
# shellcheck source=tap.sh
. "$(dirname "${BASH_SOURCE[0]}")/tap.sh"

AISP=${AISP_BIN:-aisp}
STORE=${AISP_IMAGE_STORE:-/var/lib/aisp/images}

TEST_TMP=$(mktemp -d "${TEST_TMP_PARENT:-/tmp}/aisp-test.XXXXXX")
# runc's user namespace (container root = host uid 100000) must traverse to a rootfs or state
# dir placed below it (the image store copy of the faults suite)
chmod 0711 "$TEST_TMP"
TEST_PIDS=()

track_pid() { TEST_PIDS+=("$1"); }
host_cleanup() {
	local p m live
	live=" $(jobs -p | tr '\n' ' ') "
	for p in "${TEST_PIDS[@]}"; do
		[[ "$live" == *" $p "* ]] || continue # waited for already: the pid may be another's now
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	grep -o " ${TEST_TMP}[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
	if [ -n "${KEEP_TMP:-}" ]; then echo "# kept $TEST_TMP"; else rm -rf "$TEST_TMP"; fi
}
at_exit host_cleanup

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_for() {
	local limit=$(($1 * 10)) i=0
	shift
	until "$@"; do
		i=$((i + 1))
		[ $i -ge $limit ] && return 1
		sleep 0.1
	done
	return 0
}
prints() {
	local want=$1
	shift
	[ "$("$@" 2>/dev/null)" = "$want" ]
}

need_root() { [ "$(id -u)" = 0 ] || skip_all "needs root (${1:-sandboxes, cgroups})"; }
need_tools() {
	local b
	for b in "$@"; do command -v "$b" >/dev/null || skip_all "$b is missing"; done
}
# need_image: the default image is in STORE, built once per machine when it is not
need_image() {
	command -v "$AISP" >/dev/null || bail "no aisp binary ($AISP); set AISP_BIN"
	[ -f "$STORE/names/default" ] && return 0
	echo "# building the default image into $STORE (once per machine)"
	"$AISP" image build default --store "$STORE" >/dev/null 2>&1 ||
		bail "the default image is not in $STORE and could not be built"
}
