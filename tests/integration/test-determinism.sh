#!/usr/bin/env bash
# Determinism corpus (issue 6): every program under determinism/ runs twice on runsc and twice
# on runc; the execution digest (image, input, output, exit, environment) must be the same run
# to run on the same runtime. The sandbox fixes hostname, TZ, LANG, PYTHONHASHSEED, the
# environment and cwd, which is what makes that hold. The programs in determinism/ are sandbox
# inputs, not test scripts (their code is part of the digest).
# No `set -e`: a TAP suite goes on past a failing step (that test point says "not ok" and the
# remaining ones still run), and many steps test a command's exit status.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/host.sh"
need_image
for f in "$here"/determinism/*; do
	name=$(basename "$f")
	case $name in
	*.py) lang=python ;;
	*.js) lang=javascript ;;
	*.sh) lang=shell ;;
	esac
	for rt in runsc runc; do
		d1=$("$AISP" run --json --runtime $rt --lang $lang "$f" | jq -r '[.status, .execution_digest]|join(" ")')
		d2=$("$AISP" run --json --runtime $rt --lang $lang "$f" | jq -r '[.status, .execution_digest]|join(" ")')
		if [ -n "${d1#* }" ] && [ "$d1" = "$d2" ]; then
			ok "$rt $name: same execution digest twice (${d1%% *})"
		else
			not_ok "$rt $name: '$d1' vs '$d2'"
		fi
	done
done
done_testing
