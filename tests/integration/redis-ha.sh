# Redis servers, replicas and sentinels on loopback for the test-redis-*.sh suites. Source it
# after tests/lib/node.sh. Servers run deploy/redis.conf (its ACL users, masteruser and
# min-replicas settings) with the test's ports and directories; sentinels run generated
# sentinel.conf files (they rewrite them). Every process is recorded with track_pid, so node.sh's
# EXIT trap stops exactly those; HA_PID[name] names them for a test that kills one.
HA_DIR=$TEST_TMP/ha
# node.sh's bail, but a multi-line message (a log tail) goes out as diagnostics after its
# first line, so that the TAP stream stays valid
bail() {
	local msg="$*"
	echo "Bail out! ${msg%%$'\n'*}"
	[[ "$msg" == *$'\n'* ]] && printf '%s\n' "${msg#*$'\n'}" | sed 's/^/# /'
	exit 1
}
mkdir -p "$HA_DIR"
declare -A HA_PID=() HA_PORT=()
HA_MASTER=aisp
HA_ADMIN=(--user default --pass change-me-admin --no-auth-warning)
# Clients (nodes, aisp, these helpers) and the sentinels themselves log in to the sentinels
# with this password (requirepass, sentinel-pass).
HA_SENTINEL_PASS=s3ntinel-clients

# ha_cli PORT ARGS...: redis-cli as the operator (default user of deploy/redis.conf)
ha_cli() {
	local port=$1
	shift
	redis-cli -p "$port" "${HA_ADMIN[@]}" "$@"
}
ha_up() { [ "$(ha_cli "$1" PING 2>/dev/null)" = PONG ]; }

# ha_server_start NAME PORT [ARGS...]: redis-server from a copy of deploy/redis.conf on PORT
# (its own dir, AOF every second as shipped); ARGS are passed on (--replicaof, TLS settings,
# ...). A restart of NAME keeps its dir (its AOF, and its config as Sentinel rewrote it).
ha_server_start() {
	local name=$1 port=$2 d=$HA_DIR/$1
	shift 2
	mkdir -p "$d"
	# a copy: Sentinel's CONFIG REWRITE rewrites the file a server was started with
	[ -f "$d/redis.conf" ] || cp "$REDIS_CONF" "$d/redis.conf"
	redis-server "$d/redis.conf" --port "$port" --bind 127.0.0.1 --dir "$d" --save '' \
		--replica-announce-ip 127.0.0.1 --logfile "$d/log" "$@" >/dev/null 2>&1 &
	HA_PID[$name]=$!
	HA_PORT[$name]=$port
	track_pid $!
}
# ha_kill NAME [SIGNAL]: SIGKILL (or SIGNAL) and reap
ha_kill() {
	kill "-${2:-KILL}" "${HA_PID[$1]}" 2>/dev/null
	wait "${HA_PID[$1]}" 2>/dev/null
	HA_PID[$1]=
}

# ha_sentinel_start NAME PORT MASTER_PORT [LINES]: a sentinel watching HA_MASTER at
# 127.0.0.1:MASTER_PORT (quorum HA_QUORUM, default 2; down after 1 s), logging in as
# aisp-sentinel; LINES are added to its sentinel.conf (later lines win).
ha_sentinel_start() {
	local name=$1 port=$2 mport=$3 d=$HA_DIR/$1
	mkdir -p "$d"
	cat >"$d/sentinel.conf" <<EOF
port $port
bind 127.0.0.1
dir $d
logfile $d/log
sentinel announce-ip 127.0.0.1
sentinel resolve-hostnames no
sentinel monitor $HA_MASTER 127.0.0.1 $mport ${HA_QUORUM:-2}
sentinel down-after-milliseconds $HA_MASTER 1000
sentinel failover-timeout $HA_MASTER 10000
sentinel parallel-syncs $HA_MASTER 1
sentinel auth-user $HA_MASTER aisp-sentinel
sentinel auth-pass $HA_MASTER change-me-sentinel
requirepass $HA_SENTINEL_PASS
sentinel sentinel-pass $HA_SENTINEL_PASS
${4:-}
EOF
	redis-server "$d/sentinel.conf" --sentinel >/dev/null 2>&1 &
	HA_PID[$name]=$!
	HA_PORT[$name]=$port
	track_pid $!
}

# ha_scli SENTINEL_PORT ARGS...: redis-cli to a sentinel
ha_scli() {
	local port=$1
	shift
	redis-cli -p "$port" -a "$HA_SENTINEL_PASS" --no-auth-warning "$@"
}
# ha_master_port SENTINEL_PORT: the master's port as that sentinel names it
ha_master_port() { ha_scli "$1" SENTINEL get-master-addr-by-name "$HA_MASTER" 2>/dev/null | sed -n 2p; }
# ha_synced PORT: the replica on PORT has its master link up
ha_synced() { ha_cli "$1" INFO replication 2>/dev/null | grep -q '^master_link_status:up'; }
# ha_sentinels_ready SENTINEL_PORT N_REPLICAS: that sentinel knows the other two sentinels and
# the replicas (they find each other through hello messages, every 2 s)
ha_sentinels_ready() {
	[ "$(ha_scli "$1" SENTINEL master "$HA_MASTER" 2>/dev/null |
		awk 'p {print; exit} /^num-other-sentinels$/ {p=1}')" = 2 ] &&
		[ "$(ha_scli "$1" SENTINEL master "$HA_MASTER" 2>/dev/null |
			awk 'p {print; exit} /^num-slaves$/ {p=1}')" = "$2" ]
}

# ha_resp PORT USER PASSWORD: a tiny RESP client (python3, standard library only). Reads one
# command per line as a JSON array of strings on stdin, pipelines them, prints one reply per
# line as JSON (errors as {"error": "..."}).
ha_resp() {
	python3 -c "$HA_RESP_PY" "$@"
}
HA_RESP_PY=$(
	cat <<'PY'
import json, socket, sys
port, user, pw = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(("127.0.0.1", port))
f = s.makefile("rb")
def enc(args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out
def read():
    line = f.readline().rstrip(b"\r\n")
    t, rest = line[:1], line[1:].decode()
    if t == b"+": return rest
    if t == b"-": return {"error": rest}
    if t == b":": return int(rest)
    if t == b"$":
        n = int(rest)
        if n < 0: return None
        data = f.read(n + 2)[:-2]
        return data.decode("utf-8", "replace")
    if t == b"*":
        n = int(rest)
        return None if n < 0 else [read() for _ in range(n)]
    raise SystemExit("bad reply: %r" % line)
cmds = [["AUTH", user, pw]] + [json.loads(l) for l in sys.stdin if l.strip()]
s.sendall(b"".join(enc(c) for c in cmds))
replies = [read() for _ in cmds]
if isinstance(replies[0], dict):
    raise SystemExit("AUTH: " + replies[0]["error"])
for r in replies[1:]:
    print(json.dumps(r))
PY
)
