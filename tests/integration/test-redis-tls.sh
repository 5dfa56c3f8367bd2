#!/usr/bin/env bash
# TLS to Redis through the stunnel sidecar (issue 23, item 3), against TLS-only redis-servers
# (port 0, tls-port, tls-auth-clients yes) with certificates the test makes with openssl, the
# shipped deploy/stunnel-aisp-redis.conf (its paths and ports replaced) and deploy/redis.conf
# (its ACL users).
#   1. aispd --check passes with [redis] tls_sidecar = yes in front of the TLS Redis
#   2. the node and aisp (submit --wait, result, verify --redis, nodes) run the happy path
#      through the sidecar
#   3. a wrong CA, a wrong client certificate, a plain Redis instead of the sidecar, nothing
#      listening, a remote address: aispd --check fails naming the cause; aisp fails at connect
#   4. Sentinel + TLS: a TLS master, a TLS replica and a TLS sentinel, each behind its own
#      sidecar service; the node finds the master through the sentinel's tunnel, maps it to
#      its tunnel (address_map), runs a task, follows a failover to the replica's tunnel and
#      refuses a master that has no tunnel
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/node.sh"
. "$here/redis-ha.sh"
need_nodes stunnel4 openssl
STUNNEL_CONF=$(dirname "$REDIS_CONF")/stunnel-aisp-redis.conf
T=$TEST_TMP/tls
mkdir -p "$T"

# ---------------------------------------------------------------- certificates
# mk_ca NAME CN, mk_cert NAME CA CN EKU [SAN]
mk_ca() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=$2" \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
		-keyout "$T/$1.key" -out "$T/$1.crt" 2>/dev/null
}
mk_cert() {
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$3" \
		-keyout "$T/$1.key" -out "$T/$1.csr" 2>/dev/null &&
		printf 'extendedKeyUsage=%s\n%s\n' "$4" "${5:+subjectAltName=$5}" >"$T/$1.ext" &&
		openssl x509 -req -in "$T/$1.csr" -CA "$T/$2.crt" -CAkey "$T/$2.key" -CAcreateserial \
			-days 2 -extfile "$T/$1.ext" -out "$T/$1.crt" 2>/dev/null
}
mk_ca ca "aisp test CA" && mk_ca rogue "some other CA" &&
	mk_cert server ca localhost serverAuth,clientAuth "DNS:localhost,IP:127.0.0.1" &&
	mk_cert node ca aisp-node clientAuth && mk_cert evil rogue aisp-node clientAuth ||
	bail "openssl could not make the test certificates"
chains() { openssl verify -CAfile "$T/ca.crt" "$T/server.crt" "$T/node.crt" >/dev/null 2>&1; }
check "openssl: the server and node certificates chain to the test CA" chains
# (after ha_server_start's --port PORT: port 0 turns plain text off; add --tls-port PORT)
TLS_ARGS=(--port 0 --tls-cert-file "$T/server.crt" --tls-key-file "$T/server.key"
	--tls-ca-cert-file "$T/ca.crt" --tls-auth-clients yes --tls-replication yes)
# tcli PORT ARGS...: redis-cli over TLS to a TLS port, as the operator
tcli() {
	local port=$1
	shift
	redis-cli --tls --cacert "$T/ca.crt" --cert "$T/node.crt" --key "$T/node.key" -p "$port" \
		"${HA_ADMIN[@]}" "$@"
}

# sidecar NAME ACCEPT_PORT CONNECT_PORT [CAFILE CERT KEY]: the shipped stunnel configuration
# with this test's ports and files, started (stunnel4 stays in the foreground: foreground = yes)
sidecar() {
	local name=$1 accept=$2 connect=$3 ca=${4:-$T/ca.crt} cert=${5:-$T/node.crt} key=${6:-$T/node.key}
	sed -e "s|^accept = 127.0.0.1:6380\$|accept = 127.0.0.1:$accept|" \
		-e "s|^connect = redis.example.net:6379\$|connect = 127.0.0.1:$connect|" \
		-e "s|^CAfile = /etc/aisp/tls/ca.crt\$|CAfile = $ca|" \
		-e "s|^checkHost = redis.example.net\$|checkHost = localhost|" \
		-e "s|^cert = /etc/aisp/tls/node.crt\$|cert = $cert|" \
		-e "s|^key = /etc/aisp/tls/node.key\$|key = $key|" "$STUNNEL_CONF" >"$T/$name.conf"
	stunnel4 "$T/$name.conf" >"$T/$name.log" 2>&1 &
	track_pid $!
	wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$accept" 2>/dev/null ||
		bail "stunnel $name did not listen on $accept: $(tail -3 "$T/$name.log")"
}
# check_conf NAME [REDIS LINES]: node NAME's config with these [redis] lines; prints aispd
# --check's output, returns its status
check_conf() {
	NODE_REDIS=$2 node_conf "$1"
	"$AISPD" --config "$(node_dir "$1")/aispd.conf" --check 2>&1
}
acl_lines="user = aisp-node
password = change-me-node"

# ---------------------------------------------------------------- 1, 2. the happy path
TP=$(free_port)
ha_server_start tls "$TP" "${TLS_ARGS[@]}" --tls-port "$TP" --min-replicas-to-write 0
tls_up() { [ "$(tcli "$1" PING 2>/dev/null)" = PONG ]; }
wait_for 10 tls_up "$TP" ||
	bail "the TLS redis-server did not start: $(tail -5 "$HA_DIR/tls/log")"
is "the server is TLS-only (port 0)" "$(tcli "$TP" CONFIG GET port | tail -1)" 0
plain=$(redis-cli -p "$TP" PING 2>&1)
check "plain text to the TLS port gets no answer ($plain)" test "$plain" != PONG
SP=$(free_port)
sidecar good "$SP" "$TP"
is "the sidecar answers PING for Redis" "$(redis-cli -p "$SP" "${HA_ADMIN[@]}" PING 2>&1)" PONG

out=$(check_conf n "address = 127.0.0.1:$SP
$acl_lines
tls_sidecar = yes")
rc=$?
if [ $rc = 0 ] && [[ "$out" == *"all startup checks passed"* ]]; then
	ok "aispd --check passes: the sidecar (stunnel, client, verifying) is in front of a TLS Redis"
else
	not_ok "aispd --check with a working sidecar" "exit $rc" "$out"
fi
REDIS_PORT=$SP
NL_REDIS_AUTH=("${HA_ADMIN[@]}")
export AISP_REDIS=127.0.0.1:$SP AISP_REDIS_USER=aisp-scheduler AISP_REDIS_PASSWORD=change-me-scheduler
# wait_replicas = 1 on a server without replicas: WAIT times out on every result (tested here
# once: the result stays published, the node logs and counts it)
HTTP_PORT=$(free_port)
HP=$HTTP_PORT
NODE_REDIS="address = 127.0.0.1:$SP
$acl_lines
tls_sidecar = yes
wait_replicas = 1
wait_timeout_ms = 200" POOL="runc/default/python = 1" node_conf n
HTTP_PORT=
node_start n
wait_for 60 node_registered n || bail "the node did not register through the sidecar: $(node_log n | tail -5)"
ok "the node registers through the sidecar"
out=$("$AISP" submit --wait --wait-timeout 90 --id tls-1 --runtime runc -c 'print(6 * 7)' 2>&1)
is "aisp submit --wait through the sidecar" "$out" 42
is "aisp result through the sidecar" "$("$AISP" result tls-1 2>&1 | jq -r .status)" ok
# (the client reads the result before WAIT returns: WAIT does not delay readers)
unconfirmed() { grep -q "task tls-1 sequence=1: published, but 0 of 1 replicas confirmed it within 200 ms" "$(node_dir n)/log"; }
check "WAIT timed out: the node says so, naming the task and its chain sequence" wait_for 10 unconfirmed
is "WAIT timed out: counted in aisp_results_unreplicated_total" \
	"$(curl -s "http://127.0.0.1:$HP/metrics" | awk '$1 == "aisp_results_unreplicated_total" {print $2}')" 1
verified() { "$AISP" verify --redis "$AISP_REDIS" "$1" >/dev/null 2>&1; }
check "aisp verify --redis through the sidecar" verified tls-1
check "aisp nodes through the sidecar" bash -c "'$AISP' nodes | grep -q '$(node_id n)'"
clients=$(tcli "$TP" CLIENT LIST | grep -c 'user=aisp-node')
check "the node's connections reach the TLS port as aisp-node ($clients)" test "$clients" -ge 2

# ---------------------------------------------------------------- 3. what must fail
# refused LABEL PORT WANT: with the sidecar on PORT, aispd --check fails with WANT in its
# message, and aisp fails at connect (exit 4, Redis unreachable) saying what a closed
# connection means
refused() {
	local label=$1 port=$2 want=$3 out rc
	out=$(check_conf x "address = 127.0.0.1:$port
$acl_lines
tls_sidecar = yes")
	rc=$?
	if [ $rc = 1 ] && [[ "$out" == *"$want"* ]]; then
		ok "$label: aispd --check fails: $want"
	else
		not_ok "$label: aispd --check" "exit $rc" "$out"
	fi
	out=$("$AISP" nodes --redis "127.0.0.1:$port" 2>&1)
	rc=$?
	if [ $rc = 4 ] && [[ "$out" == *"the connection was closed at once (a TLS sidecar"* ]]; then
		ok "$label: aisp fails at connect with a clear message"
	else
		not_ok "$label: aisp" "exit $rc" "$out"
	fi
}
BP=$(free_port)
sidecar badca "$BP" "$TP" "$T/rogue.crt"
refused "wrong CA" "$BP" "Redis's certificate at 127.0.0.1:$TP does not verify with the sidecar's CAfile $T/rogue.crt"
check "wrong CA: the sidecar's log names the verification failure" grep -q "certificate verify failed" "$T/badca.log"
CP=$(free_port)
sidecar badcert "$CP" "$TP" "$T/ca.crt" "$T/evil.crt" "$T/evil.key"
refused "wrong client certificate" "$CP" "Redis at 127.0.0.1:$TP refused the sidecar's client certificate $T/evil.crt"
PLAIN=$(free_port)
ha_server_start plain "$PLAIN" --min-replicas-to-write 0
wait_for 10 ha_up "$PLAIN" || bail "plain redis-server did not start"
out=$(check_conf x "address = 127.0.0.1:$PLAIN
$acl_lines
tls_sidecar = yes")
rc=$?
if [ $rc = 1 ] && [[ "$out" == *"127.0.0.1:$PLAIN is served by redis-server (pid "*"), not by the TLS sidecar"* ]]; then
	ok "a plain Redis where the sidecar should be: aispd --check fails"
else
	not_ok "plain Redis instead of the sidecar" "exit $rc" "$out"
fi
out=$(check_conf x "address = 127.0.0.1:$(free_port)
tls_sidecar = yes")
check "nothing listening: aispd --check says to start the sidecar" grep -q "nothing listens on .*start the TLS sidecar" <<<"$out"
NODE_REDIS="address = 192.0.2.1:6379
tls_sidecar = yes" node_conf remote
out=$(timeout 20 "$AISPD" --config "$(node_dir remote)/aispd.conf" 2>&1)
rc=$?
if [ $rc = 1 ] && [[ "$out" == *"192.0.2.1:6379 is not on this host: the node would speak plain text"* ]]; then
	ok "a remote address with tls_sidecar = yes: aispd refuses to start (not only --check)"
else
	not_ok "remote address with tls_sidecar" "exit $rc" "$out"
fi
node_stop n >/dev/null

# ---------------------------------------------------------------- 4. Sentinel + TLS
MP=$(free_port)
RP=$(free_port)
ha_server_start tm "$MP" "${TLS_ARGS[@]}" --tls-port "$MP" --min-replicas-to-write 0
ha_server_start tr "$RP" "${TLS_ARGS[@]}" --tls-port "$RP" --min-replicas-to-write 0 --replicaof 127.0.0.1 "$MP"
synced_tls() { tcli "$RP" INFO replication 2>/dev/null | grep -q '^master_link_status:up'; }
wait_for 20 synced_tls || bail "the TLS replica did not sync: $(tail -5 "$HA_DIR/tr/log")"
S1=$(free_port)
HA_QUORUM=1 ha_sentinel_start ts "$S1" "$MP" "port 0
tls-port $S1
tls-cert-file $T/server.crt
tls-key-file $T/server.key
tls-ca-cert-file $T/ca.crt
tls-auth-clients yes
tls-replication yes"
SS=$(free_port) SM=$(free_port) SR=$(free_port)
sidecar sent "$SS" "$S1"
sidecar master "$SM" "$MP"
sidecar replica "$SR" "$RP"
knows_replica() { [ "$(ha_scli "$SS" SENTINEL master "$HA_MASTER" 2>/dev/null | awk 'p {print; exit} /^num-slaves$/ {p=1}')" = 1 ]; }
wait_for 30 knows_replica || bail "the TLS sentinel did not find the replica: $(tail -5 "$HA_DIR/ts/log")"
sent_lines="sentinels = 127.0.0.1:$SS
master_name = $HA_MASTER
sentinel_password = $HA_SENTINEL_PASS
address_map = 127.0.0.1:$MP->127.0.0.1:$SM, 127.0.0.1:$RP->127.0.0.1:$SR
$acl_lines
tls_sidecar = yes"
out=$(check_conf st "$sent_lines")
rc=$?
if [ $rc = 0 ]; then
	ok "Sentinel + TLS: aispd --check passes for the sentinel's and both servers' sidecars"
else
	not_ok "Sentinel + TLS: aispd --check" "exit $rc" "$out"
fi
NODE_REDIS=$sent_lines POOL="runc/default/python = 1" node_conf st
node_start st
REDIS_PORT=$SM
wait_for 60 node_registered st || bail "Sentinel + TLS: the node did not register: $(node_log st | tail -5)"
check "Sentinel + TLS: the node found the master through the sentinel's tunnel and reached it at its own" \
	grep -q "master \"$HA_MASTER\" is 127.0.0.1:$MP, reached at 127.0.0.1:$SM" "$(node_dir st)/log"
out=$(AISP_REDIS="sentinel://127.0.0.1:$SS/$HA_MASTER" AISP_SENTINEL_PASSWORD=$HA_SENTINEL_PASS \
	AISP_REDIS_ADDRESS_MAP="127.0.0.1:$MP->127.0.0.1:$SM,127.0.0.1:$RP->127.0.0.1:$SR" \
	"$AISP" submit --wait --wait-timeout 90 --id stls-1 --runtime runc -c 'print("over tls")' 2>&1)
is "Sentinel + TLS: aisp submit --wait through sentinel:// and the address map" "$out" "over tls"
out=$(AISP_REDIS="sentinel://127.0.0.1:$SS/$HA_MASTER" AISP_SENTINEL_PASSWORD=$HA_SENTINEL_PASS \
	AISP_REDIS_ADDRESS_MAP="127.0.0.1:$RP->127.0.0.1:$SR" "$AISP" nodes 2>&1)
check "Sentinel + TLS: aisp refuses a master without a tunnel ($out)" \
	grep -q "no tunnel in \$AISP_REDIS_ADDRESS_MAP (not connecting around it)" <<<"$out"
ha_scli "$SS" SENTINEL FAILOVER "$HA_MASTER" >/dev/null
switched() { [ "$(ha_master_port "$SS")" = "$RP" ]; }
wait_for 60 switched || not_ok "Sentinel + TLS: SENTINEL FAILOVER did not switch"
REDIS_PORT=$SR
followed() { grep -q "master \"$HA_MASTER\" is 127.0.0.1:$RP, reached at 127.0.0.1:$SR" "$(node_dir st)/log"; }
if wait_for 60 followed; then
	ok "Sentinel + TLS: after a failover the node reaches the new master through its tunnel"
else
	not_ok "Sentinel + TLS: failover" "$(node_log st | grep -i 'redis\|sentinel' | tail -6)"
fi
printf 'print("after")\n' >"$TEST_TMP/after.py"
run_task stls-2 python "$TEST_TMP/after.py" runc null '{}' 90
is "Sentinel + TLS: a task after the failover" "$(rfield stls-2 .stdout)" "after"
node_stop st >/dev/null
NODE_REDIS="sentinels = 127.0.0.1:$SS
master_name = $HA_MASTER
sentinel_password = $HA_SENTINEL_PASS
address_map = 127.0.0.1:$MP->127.0.0.1:$SM
$acl_lines" SLOTS=1 node_conf nomap
node_start nomap
refused() { node_log nomap | grep -q "names the master 127.0.0.1:$RP, which has no tunnel in address_map (not connecting around it)"; }
check "Sentinel + TLS: the node refuses a master that has no tunnel" wait_for 30 refused
node_stop nomap >/dev/null
done_testing
