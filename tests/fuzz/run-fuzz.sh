#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time over its committed corpus
# (tests/fuzz/corpus/<name>/); new inputs go to a scratch directory, crashes fail the test and
# are kept under tests/fuzz/findings/ to become regression inputs in the corpus.
set -uo pipefail
bin=$1 name=$2 secs=${3:-20}
src=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d /tmp/aisp-fuzz-$name.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$src/findings"
"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	-artifact_prefix="$src/findings/$name-" "$scratch" "$src/corpus/$name" 2>&1 | tail -15
rc=${PIPESTATUS[0]}
echo "# fuzz $name: exit $rc"
exit "$rc"
