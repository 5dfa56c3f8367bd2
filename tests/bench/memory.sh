#!/usr/bin/env bash
# Memory per warm sandbox by host process role (sentry, gofer, ptrace stubs, other) for
# candidate runsc flag sets (issue 17, item 4), measured in one run by
# tests/bench/memory_bench.py (which says what each figure is), each set then checked with a
# few tasks. Never part of the test suite; memory is not time-sensitive, so it may run beside
# other work. Arguments go to memory_bench.py (e.g. --sets default,gogc50 --per-lang 2).
# It starts its own redis-server and aispd nodes and stops them by pid at exit.
# Environment: BENCH_BUILD (default build/), BENCH_OUT (default bench-results/memory.md; the
# JSON and each node's log go beside it), AISP_IMAGE_STORE (default /var/lib/aisp/images).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BENCH_BUILD:-$root/build}
out=${BENCH_OUT:-$root/bench-results/memory.md}
[ "$(id -u)" = 0 ] || { echo "memory.sh: needs root (aispd, runsc)" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "memory.sh: needs redis-server" >&2; exit 1; }
exec /usr/bin/python3 "$here/memory_bench.py" --build "$build" --out "$out" \
	--store "${AISP_IMAGE_STORE:-/var/lib/aisp/images}" "$@"
