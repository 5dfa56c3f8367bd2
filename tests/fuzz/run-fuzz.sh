#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time over its committed corpus
# (tests/fuzz/corpus/<name>/); new inputs go to a scratch directory, crashes fail the test and
# are kept under tests/fuzz/findings/ to become regression inputs in the corpus.
set -euo pipefail
bin=$1 name=$2 secs=${3:-20}
src=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d /tmp/aisp-fuzz-$name.XXXXXX)
log=$(mktemp /tmp/aisp-fuzz-$name.log.XXXXXX) # not in $scratch: libFuzzer reads every file there
trap 'rm -rf "$scratch" "$log"' EXIT
mkdir -p "$src/findings"
rc=0
"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	-artifact_prefix="$src/findings/$name-" "$scratch" "$src/corpus/$name" >"$log" 2>&1 || rc=$?
tail -15 "$log"
echo "# fuzz $name: exit $rc"
exit "$rc"
