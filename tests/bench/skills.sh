#!/usr/bin/env bash
# A warm execute_skill call against a plain warm task (issue 18): the seed's salesforce skill
# (its files delivered into the warm sandbox by the agent, its two secrets looked up and
# injected, the CSV input blob read from Redis, its log and output blob collected, redacted
# and stored) beside a plain warm Python task, in rounds, measured in one run by
# tests/bench/skills_bench.py (which says what each figure is). Never part of the test suite;
# prints, asserts nothing. Run it under the heavy lock:
#   flock /tmp/aisp-heavy.lock tests/bench/skills.sh [N]
# It starts its own redis-server and aispd node (tests/lib/node.sh) and stops them by pid at
# exit. Environment: BENCH_BUILD (default build/), AISP_IMAGE_STORE.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BENCH_BUILD:-$root/build}
export AISPD_BIN=$build/daemon/aispd AISP_BIN=$build/cli/aisp AISP_AGENT=$build/sandbox/agent/aisp-agent
N=${1:-30}
. "$root/tests/lib/node.sh"
need_nodes
redis_start
SK=$TEST_TMP/skills
SEC=$TEST_TMP/secrets
"$AISP" skill add "$root/tests/data/skills/salesforce" --store "$SK" >/dev/null || bail "skill add"
install -d -m 0700 "$SEC" "$SEC/skills" "$SEC/skills/salesforce"
printf 'sk-bench-0123456789abcdef\n' >"$SEC/skills/salesforce/SALESFORCE_API_KEY"
printf '00D5e0000012345XYZ\n' >"$SEC/skills/salesforce/SALESFORCE_ORG_ID"
chmod 600 "$SEC"/skills/salesforce/*
BLOB=$("$AISP" blob put "$root/tests/data/skills/salesforce/resources/sample_leads.csv")
HTTP=$(free_port)
HTTP_PORT=$HTTP SLOTS=2 RT_ENABLED="runc, runsc" POOL=$'runc/default/python = 2\nrunsc/default/python = 2' \
	EXTRA_SECTIONS="[skills]
store = $SK
[secrets]
dir = $SEC" node_conf s1
sed -i 's/^log_level = debug/log_level = info/' "$(node_dir s1)/aispd.conf"
node_start s1
wait_for 120 node_registered s1 || bail "aispd did not register"
for rt in runc runsc; do
	/usr/bin/python3 "$here/skills_bench.py" --redis-port "$REDIS_PORT" --metrics-port "$HTTP" \
		--runtime "$rt" --blob "$BLOB" -n "$N" || bail "bench failed for $rt"
done
