#!/usr/bin/env bash
# A warm three-step chain's overhead beyond the mock's answer time (issue 19): the seed's chain
# (llm -> script -> llm) through Redis against tests/mock/llm_server.py, beside the same two llm
# requests sent straight to the mock (its answer time), the chain's script step alone as a
# one-step chain, and a plain warm task (the sandbox path alone), in rounds, measured in one
# run on this machine by tests/bench/chains_bench.py (which says what each figure is). Never
# part of the test suite; prints, asserts nothing. Run it under the heavy lock:
#   flock /tmp/aisp-heavy.lock tests/bench/chains.sh [N]
# It starts its own redis-server, mock LLM server and aispd node (tests/lib/node.sh) and stops
# them by pid at exit. Environment: BENCH_BUILD (default build/), AISP_IMAGE_STORE.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BENCH_BUILD:-$root/build}
export AISPD_BIN=$build/daemon/aispd AISP_BIN=$build/cli/aisp AISP_AGENT=$build/sandbox/agent/aisp-agent
N=${1:-30}
. "$root/tests/lib/node.sh"
need_nodes
redis_start
mock_llm_start "$TEST_TMP/llm.key"
MOCK=$MOCK_LLM
HTTP=$(free_port)
HTTP_PORT=$HTTP SLOTS=2 RT_ENABLED="runc, runsc" POOL=$'runc/default/javascript = 2\nrunsc/default/javascript = 2' \
	EXTRA_SECTIONS="[llm]
base_url = $MOCK/v1
api_key_file = $TEST_TMP/llm.key
models = anthropic/claude-sonnet-4, openai/gpt-4o-mini
allow_insecure_http = true
allow_private_addresses = true" node_conf b1
sed -i 's/^log_level = debug/log_level = info/' "$(node_dir b1)/aispd.conf"
node_start b1
wait_for 120 node_registered b1 || bail "aispd did not register"
for rt in runc runsc; do
	/usr/bin/python3 "$here/chains_bench.py" --redis-port "$REDIS_PORT" --mock "$MOCK" \
		--key-file "$TEST_TMP/llm.key" --metrics-port "$HTTP" --runtime "$rt" -n "$N" ||
		bail "bench failed for $rt"
done
