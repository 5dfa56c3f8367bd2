#!/usr/bin/env bash
# A warm proxy_fetch round trip against the same request made by curl on the host (issue 21),
# side by side in one run: the loopback HTTPS API (tests/mock/https_server.py, its own test
# CA), a node with one [proxy.echo] service, and per runtime one warm Python task that makes N
# timed proxy_fetch calls (after one untimed call) and prints each call's time, seen by the
# program (the frame to the agent, the agent to aispd, the policy, the secret read, a fresh
# TLS connection from aispd, the answer back); then N curl requests on the host with the same
# CA, header and URL, each a fresh connection (curl's own time_total: the request, without
# curl's process start). Prints one JSON object per runtime: the distributions (ms) and
# proxy_vs_curl = p50(proxy_fetch) / p50(curl). Never part of the test suite; asserts nothing.
# Run it under the heavy lock:
#   flock /tmp/aisp-heavy.lock tests/bench/proxy.sh [N]
# It starts its own redis-server, HTTPS server and aispd node (tests/lib/node.sh) and stops them
# by pid at exit. Environment: BENCH_BUILD (default build/), AISP_IMAGE_STORE.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BENCH_BUILD:-$root/build}
export AISPD_BIN=$build/daemon/aispd AISP_BIN=$build/cli/aisp AISP_AGENT=$build/sandbox/agent/aisp-agent
N=${1:-50}
. "$root/tests/lib/node.sh"
need_nodes
redis_start
proxy_store_start
SLOTS=2 RT_ENABLED="runc, runsc" POOL=$'runc/default/python = 1\nrunsc/default/python = 1' \
	EXTRA_SECTIONS="[secrets]
dir = $SECRETS
[proxy]
max_calls = 256
[proxy.echo]
hosts = localhost:$PORT
paths = /v1/
secret = ECHO_TOKEN
max_calls = 256
ca_file = $MOCK_HTTPS_CA
allow_private_addresses = true" node_conf b1
sed -i 's/^log_level = debug/log_level = info/' "$(node_dir b1)/aispd.conf"
node_start b1
wait_for 120 node_registered b1 || bail "aispd did not register"
cat >"$TEST_TMP/rtt.py" <<PY
import json, time
from runtime import proxy_fetch
url = "https://localhost:$PORT/v1/echo"
proxy_fetch(url, {"service": "echo"})
ms = []
for _ in range($N):
    t = time.perf_counter()
    r = proxy_fetch(url, {"service": "echo"})
    ms.append((time.perf_counter() - t) * 1000)
    assert r.json()["auth_ok"]
print(json.dumps(ms))
PY
p50() { python3 -c 'import json,statistics,sys; v=json.load(sys.stdin); print(round(statistics.median(v),3))'; }
dist() { python3 -c 'import json,statistics,sys; v=sorted(json.load(sys.stdin)); q=statistics.quantiles(v,n=10); print(json.dumps({"n":len(v),"p10":round(q[0],3),"p50":round(statistics.median(v),3),"p90":round(q[8],3),"max":round(v[-1],3)}))'; }
for rt in runc runsc; do
	sleep 2 # the pool refilled after the last task
	json=$(task_json rtt-$rt python "$TEST_TMP/rtt.py" $rt null '{"services":["echo"]}')
	submit_json "$json" >/dev/null
	wait_result rtt-$rt 300 || bail "no result for $rt"
	[ "$(rfield rtt-$rt .status)" = ok ] || bail "$rt: $(rfield rtt-$rt .stderr | tail -3)"
	proxy=$(rfield rtt-$rt .stdout)
	curlms=$(for _ in $(seq "$N"); do
		curl -s -o /dev/null --cacert "$MOCK_HTTPS_CA" -H "Authorization: Bearer $MOCK_HTTPS_KEY" \
			-w '%{time_total}\n' "https://localhost:$PORT/v1/echo"
	done | python3 -c 'import json,sys; print(json.dumps([float(x)*1000 for x in sys.stdin]))')
	pp=$(printf '%s' "$proxy" | p50)
	cp=$(printf '%s' "$curlms" | p50)
	printf '{"runtime":"%s","proxy_fetch_ms":%s,"curl_ms":%s,"proxy_vs_curl":%s}\n' "$rt" \
		"$(printf '%s' "$proxy" | dist)" "$(printf '%s' "$curlms" | dist)" \
		"$(python3 -c "print(round($pp/$cp,2))")"
done
node_stop b1
