#!/usr/bin/env bash
# Every .c and .h of the project is clang-formatted (.clang-format at the root).
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(find common proto attest sandbox pool daemon cli gateway tests -name '*.[ch]' | sort)
bad=0
n=0
while IFS= read -r f; do
	n=$((n + 1))
	if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
		echo "not formatted: $f (clang-format -i $f)"
		bad=$((bad + 1))
	fi
done <<<"$files"
echo "$n files checked, $bad not formatted"
[ "$bad" -eq 0 ]
