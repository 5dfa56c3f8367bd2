#!/usr/bin/env bash
# The benchmark harness (issue 8): latency, throughput and memory of aispd on this machine,
# side by side with baselines measured in the same run (bare host python3, `runc run` and
# `runsc run` per task, the machine's sandbox creation rate). Never part of the test suite.
#
#   tests/bench/run.sh [--quick] [--busy] [--publish]
#     --quick    fewer tasks and shorter runs (< 5 minutes); the full run takes < 30
#     --busy     only the host baseline and, per runtime, the idle and back-to-back cells with
#                their stage breakdowns (a few minutes; with --quick, fewer programs)
#     --report-only  measure nothing: rewrite the table, summary and plots from BENCH_OUT/raw.json
#     --publish  also copy the table and plots to tests/bench/latest/ and put the table into
#                README.md's Performance section (between the bench markers)
#
# Environment: BENCH_OUT (default bench-results/), BENCH_BUILD (a meson build dir with the
# binaries; default build/, set up and built when missing), AISP_IMAGE_STORE (default
# /var/lib/aisp/images; image "default" must be there: `aisp image build default`).
# Outputs in BENCH_OUT: results.md, summary.json, raw.json (every sample), *.dat,
# latency_by_concurrency.png, warm_vs_cold.png, bench.log.
#
# It starts its own redis-server (free loopback port, own dir) and its own aispd nodes (own
# run/state dirs, own key) and stops them by pid at exit; every loop is bounded.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
quick=()
report=()
busy=()
publish=0
for a in "$@"; do
	case $a in
	--quick) quick=(--quick) ;;
	--publish) publish=1 ;;
	--busy) busy=(--busy-only) ;;
	--report-only) report=(--report-only) ;;
	*)
		echo "usage: tests/bench/run.sh [--quick] [--busy] [--report-only] [--publish]" >&2
		exit 2
		;;
	esac
done
out=${BENCH_OUT:-$root/bench-results}
build=${BENCH_BUILD:-$root/build}
store=${AISP_IMAGE_STORE:-/var/lib/aisp/images}

[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (sandboxes, cgroups)" >&2; exit 1; }
for b in python3 redis-server runc runsc gnuplot; do
	command -v $b >/dev/null || { echo "run.sh: $b is missing (deploy/install-deps.sh)" >&2; exit 1; }
done
[ -x /usr/bin/python3 ] || { echo "run.sh: /usr/bin/python3 is missing (the host baseline)" >&2; exit 1; }
if [ ! -x "$build/daemon/aispd" ] || [ ! -x "$build/cli/aisp" ]; then
	[ -f "$build/build.ninja" ] || meson setup "$build" "$root" >/dev/null
	ninja -C "$build"
fi
[ -f "$store/names/default" ] || { echo "run.sh: no image \"default\" in $store: $build/cli/aisp image build default" >&2; exit 1; }

mkdir -p "$out"
if [ ${#report[@]} = 0 ]; then
	rm -f "$out"/{results.md,summary.json,raw.json,*.dat,*.png,node-*.log}
	: >"$out/bench.log"
fi
pid=
stop() {
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" || true
	fi
}
trap stop EXIT
trap 'exit 130' INT TERM
rc=0
[ ${#busy[@]} = 0 ] || [ $publish = 0 ] || { echo "run.sh: --busy measures too little to --publish" >&2; exit 2; }
/usr/bin/python3 "$here/bench.py" "${quick[@]}" "${report[@]}" "${busy[@]}" --build "$build" --out "$out" --store "$store" \
	2> >(tee -a "$out/bench.log" >&2) &
pid=$!
wait "$pid" || rc=$?
pid=
if [ ! -f "$out/summary.json" ]; then
	echo "run.sh: the run stopped early (exit $rc); what it measured is in $out/raw.json" >&2
	exit $rc
fi
[ ${#busy[@]} != 0 ] || gnuplot -e "dir='$out'" "$here/plot.gp" || rc=1
# Syscalls of a warm task inside the sandbox (counts are stable where times are not): the
# table of agent-syscalls.sh, as markdown, after the latency tables.
if [ ${#busy[@]} = 0 ] && [ ${#report[@]} = 0 ]; then
	if "$here/agent-syscalls.sh" "$build" >"$out/syscalls.txt" 2>>"$out/bench.log"; then
		{
			echo "Syscalls of one warm task inside the sandbox, from the agent's read of the TASK frame to"
			echo "its last result frame (the agent, the warm interpreter and the program; runc: \`strace -f\`,"
			echo "runsc: the sentry's \`--strace\`, the task sent ${AGENT_SYSCALLS_AGE_S:-2} s after READY as to a pooled"
			echo "sandbox, once gVisor's vDSO clock is calibrated; tests/bench/agent-syscalls.sh):"
			echo
			echo "| runtime | language | mode | syscalls | most frequent |"
			echo "| --- | --- | --- | --- | --- |"
			tail -n +2 "$out/syscalls.txt" | while read -r rt lang mode total top; do
				echo "| $rt | $lang | $mode | $total | ${top//:/ } |"
			done
			echo
		} >>"$out/results.md"
	else
		echo "run.sh: agent-syscalls.sh failed (see $out/bench.log)" >&2
		rc=1
	fi
fi
cat "$out/results.md"
echo "results: $out (summary.json, results.md, raw.json, latency_by_concurrency.png, warm_vs_cold.png)"

if [ $publish = 1 ]; then
	mkdir -p "$here/latest"
	cp "$out/results.md" "$out/summary.json" "$out/latency_by_concurrency.png" "$out/warm_vs_cold.png" "$here/latest/"
	/usr/bin/python3 - "$root/README.md" "$out/results.md" <<'PY'
import sys
readme, table = sys.argv[1], open(sys.argv[2]).read().strip()
text = open(readme).read()
begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
if begin not in text or end not in text:
    sys.exit("README.md has no bench markers; not updated")
head, rest = text.split(begin, 1)
tail = rest.split(end, 1)[1]
open(readme, "w").write(head + begin + "\n" + table + "\n" + end + tail)
PY
	echo "published to tests/bench/latest/ and README.md"
fi
exit $rc
