#!/usr/bin/env bash
# The gateway's overhead (issue 22): POST /v1/exec latency against the Redis path for the same
# warm task (print(1+1) on a warm runc and runsc pool), measured in one run on this machine by
# tests/bench/gateway_bench.py. Never part of the test suite; run it under the heavy lock:
#   flock /tmp/aisp-heavy.lock tests/bench/gateway.sh [N]
# It starts its own redis-server, aispd node and aisp-gateway (tests/lib/node.sh) and stops
# them by pid at exit. Environment: BENCH_BUILD (default build/), AISP_IMAGE_STORE.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BENCH_BUILD:-$root/build}
export AISPD_BIN=$build/daemon/aispd AISP_BIN=$build/cli/aisp AISP_AGENT=$build/sandbox/agent/aisp-agent
N=${1:-50}
. "$root/tests/lib/node.sh"
need_nodes
redis_start
SLOTS=2 RT_ENABLED="runc, runsc" POOL=$'runc/default/python = 2\nrunsc/default/python = 2' node_conf b1
node_start b1
wait_for 120 node_registered b1 || bail "aispd did not register"
GW=$TEST_TMP/gw
mkdir -p "$GW"
PORT=$(free_port)
KEY=$("$build/gateway/aisp-gateway" key add --file "$GW/keys.conf" --id bench 2>/dev/null)
cat >"$GW/gw.conf" <<EOC
[gateway]
id = bench
listen = 127.0.0.1:$PORT
key = $GW/key/private.pem
create_key = true
keys_file = $GW/keys.conf
[redis]
address = 127.0.0.1:$REDIS_PORT
EOC
"$build/gateway/aisp-gateway" --config "$GW/gw.conf" >"$GW/log" 2>&1 &
track_pid $!
wait_for 20 sh -c "curl -sf http://127.0.0.1:$PORT/healthz >/dev/null" || bail "gateway did not start"
sleep 5 # the pools warm up
for rt in runc runsc; do
	/usr/bin/python3 "$here/gateway_bench.py" --redis-port "$REDIS_PORT" --gateway "127.0.0.1:$PORT" \
		--key "$KEY" --runtime "$rt" -n "$N" || bail "bench failed for $rt"
done
