#!/usr/bin/env bash
# aisp-gateway against hostile clients and hostile writers of its Redis keys, TAP. Only a real
# redis-server and the gateway, on loopback, started and stopped here: no node, no sandbox, no
# root. Results are the signed vectors of attest/testdata (their key put in aisp:key:<key id>
# as a node puts it), so a task waits as long as the test wants and a forged entry is exactly
# what an attacker could write. One gateway has no PostgreSQL (the default); another has one
# where nothing listens, so its outbox fills as during an outage.
#
#  1. evhttp's error page on a keep-alive connection that already served a request, pipelined
#     and not, is problem+json
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/node.sh"
SRC=${AISP_SOURCE_ROOT:-$(cd "$here/../.." && pwd)}
GATEWAY=${1:-${AISP_GATEWAY_BIN:-aisp-gateway}}
VEC=$SRC/attest/testdata
CLIENT=("/usr/bin/python3" "$here/gateway_client.py")
for b in redis-server redis-cli curl jq openssl "$GATEWAY"; do
	command -v "$b" >/dev/null || { echo "1..0 # SKIP $b is missing"; exit 0; }
done
/usr/bin/python3 -c 'import jsonschema, yaml' 2>/dev/null ||
	{ echo "1..0 # SKIP python3-jsonschema or python3-yaml is missing"; exit 0; }

redis_start
GW=$NL_TMP/gw
mkdir -p "$GW"
addkey() { "$GATEWAY" key add --file "$GW/keys.conf" --id "$@" 2>>"$GW/keyadd.log"; }
K_FULL=$(addkey full)
K_NODEF=$(addkey nodefault --set block_images=default)
K_OTHER=$(addkey onlyother --set allow_images=other)
gw_conf() { # gw_conf NAME PORT [EXTRA LINES]
	cat >"$GW/$1.conf" <<EOF
[gateway]
id = $1-$NL_TAG
listen = 127.0.0.1:$2
key = $GW/key/private.pem
create_key = true
keys_file = $GW/keys.conf
log_level = debug
wait_ms = 60000
poll_ms = 300
[redis]
address = 127.0.0.1:$REDIS_PORT
${3:-}
EOF
}
declare -A GW_PIDS=()
gw_start() { # gw_start NAME PORT
	"$GATEWAY" --config "$GW/$1.conf" >>"$GW/$1.log" 2>&1 &
	GW_PIDS[$1]=$!
	NL_PIDS+=("$!")
	wait_for 20 sh -c "curl -sf http://127.0.0.1:$2/healthz >/dev/null"
}
gw_stop() { kill -TERM "${GW_PIDS[$1]}" && wait "${GW_PIDS[$1]}"; }
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
# metric_is PORT NAME VALUE (for wait_for)
metric_is() { [ "$(metric "$1" "$2")" = "$3" ]; }
req() { "${CLIENT[@]}" req "$@" >>"$GW/req.log"; }
redis_mem() { R INFO memory | tr -d '\r' | awk -F: '$1 == "used_memory" {print $2}'; }

A_PORT=$(free_port)
A=http://127.0.0.1:$A_PORT
REPLY=aisp:reply:gw:a-$NL_TAG
gw_conf a "$A_PORT"
gw_start a "$A_PORT" || bail "aisp-gateway did not start: $(tail -5 "$GW/a.log")"

# ---------------------------------------------------------------- 1. keep-alive error pages
ka() { "${CLIENT[@]}" keepalive "$A_PORT" "$@" >>"$GW/ka.log" 2>&1; }
check "a malformed request after a served one on the same connection -> problem+json, not HTML" \
	ka --step 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n' --status 200 --step 'BADLINE\r\n\r\n' --status 400
check "the same, pipelined" \
	ka --pipeline --step 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n' --status 200 --step 'BADLINE\r\n\r\n' --status 400
check "headers too large after two served requests -> 431 problem+json" \
	ka --step 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n' --status 200 --step 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' --status 200 \
	--step "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: $(head -c 20000 /dev/zero | tr '\0' a)\r\n\r\n" --status 431
grep -qi '<html' "$GW/ka.log" && not_ok "no HTML anywhere" "$(grep -i -m3 '<html' "$GW/ka.log")" || ok "no HTML anywhere"
check "the gateway's log has no error line" sh -c "! grep -qE '^[^ ]+ error ' '$GW/a.log'"
gw_stop a
is "aisp-gateway exits 0" "$?" 0
done_testing
