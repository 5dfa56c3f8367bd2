# shellcheck shell=bash
# The node side of the suites that drive aispd (bash; sources host.sh, and so tap.sh): a
# redis-server of their own on a free loopback port and its own directory, aispd nodes with
# generated configs in the scratch dir, task submission through Redis, result checks, and
# residue checks (containers, bundle dirs, cgroups, mounts, processes).
#
# Source it after setting AISPD_BIN, AISP_BIN, AISP_AGENT (meson passes them). Every process a
# helper starts is recorded by pid; at exit exactly those are stopped, the containers the nodes
# left are reaped, and host.sh removes the scratch dir. Sets no shell option (see tap.sh).
# shellcheck source=host.sh
. "$(dirname "${BASH_SOURCE[0]}")/host.sh"

AISPD=${AISPD_BIN:-aispd}
AGENT=${AISP_AGENT:-/usr/libexec/aisp/aisp-agent}

# need_nodes [TOOL...]: the preconditions of every suite that runs nodes: root, the binaries,
# the tools (and TOOL...), the default image.
need_nodes() {
	need_root
	local b
	for b in "$AISPD" "$AISP"; do
		command -v "$b" >/dev/null || bail "$b is missing (set AISPD_BIN and AISP_BIN)"
	done
	[ -f "$AGENT" ] || bail "the agent $AGENT is missing (set AISP_AGENT)"
	need_tools redis-server redis-cli python3 curl jq runc runsc "$@"
	need_image
}

# A tag unique to this run: node ids (and so container ids and cgroups) carry it.
NODE_TAG=t$$
declare -A NODE_PID=()
REDIS_PID=
# Extra redis-server arguments of the suite (e.g. --enable-debug-command local).
REDIS_ARGS=()

node_cleanup() {
	local name d
	for name in "${!NODE_PID[@]}"; do
		kill -CONT "${NODE_PID[$name]}" 2>/dev/null
		kill -KILL "${NODE_PID[$name]}" 2>/dev/null
		wait "${NODE_PID[$name]}" 2>/dev/null
	done
	[ -n "$REDIS_PID" ] && kill -KILL "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null
	for d in "$TEST_TMP"/node-*/run; do
		[ -d "$d" ] && reap_containers "$d"
	done
}
at_exit node_cleanup

# ---------------------------------------------------------------- redis-server

REDIS_PORT=$(free_port)
export AISP_REDIS=127.0.0.1:$REDIS_PORT
# REDIS_ACL=1 (set before redis_start): the server runs deploy/redis.conf (its ACL users; no
# min-replicas-to-write for a server without replicas), R logs in as the operator (default),
# node_conf logs nodes in as aisp-node and aisp (submit, wait, ...) runs as aisp-scheduler.
# The passwords are the ones deploy/redis.conf ships.
REDIS_ACL=${REDIS_ACL:-}
NL_REDIS_ACL= # set by redis_start (REDIS_ACL may be given to that call only)
REDIS_CONF=${AISP_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}/deploy/redis.conf
NL_REDIS_AUTH=()
R() { redis-cli -p "$REDIS_PORT" "${NL_REDIS_AUTH[@]}" "$@"; }
redis_up() { [ "$(R PING 2>/dev/null)" = PONG ]; }
# redis_start: on REDIS_PORT, its own dir, AOF fsync always (a restart keeps the results),
# with REDIS_ARGS.
redis_start() {
	local conf=()
	mkdir -p "$TEST_TMP/redis"
	if [ -n "$REDIS_ACL" ]; then
		cp "$REDIS_CONF" "$TEST_TMP/redis/redis.conf" # the server may rewrite its file
		conf=("$TEST_TMP/redis/redis.conf" --min-replicas-to-write 0)
		NL_REDIS_ACL=1
		NL_REDIS_AUTH=(--user default --pass change-me-admin --no-auth-warning)
		export AISP_REDIS_USER=aisp-scheduler AISP_REDIS_PASSWORD=change-me-scheduler
	fi
	redis-server "${conf[@]}" --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$TEST_TMP/redis" --save '' \
		--appendonly yes --appendfsync always --logfile "$TEST_TMP/redis/log" "${REDIS_ARGS[@]}" \
		>/dev/null 2>&1 &
	REDIS_PID=$!
	wait_for 10 redis_up || bail "redis-server did not start on port $REDIS_PORT"
}
redis_stop() { # SIGTERM: writes its AOF and exits
	[ -n "$REDIS_PID" ] || return 0
	kill -TERM "$REDIS_PID" && wait "$REDIS_PID"
	REDIS_PID=
}
redis_kill() {
	[ -n "$REDIS_PID" ] || return 0
	kill -KILL "$REDIS_PID" && wait "$REDIS_PID" 2>/dev/null
	REDIS_PID=
}

# ---------------------------------------------------------------- the mock LLM API

# mock_llm_start KEY-FILE: tests/mock/llm_server.py on a free loopback port, requiring the key
# in KEY-FILE (written here: a random canary, mode 0600); sets MOCK_LLM (http://127.0.0.1:PORT)
# and MOCK_LLM_KEY. Chains' [llm] sections point base_url at $MOCK_LLM/v1.
mock_llm_start() {
	local src=${AISP_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
	MOCK_LLM_KEY="sk-or-v1-canary$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
	printf '%s\n' "$MOCK_LLM_KEY" >"$1"
	chmod 600 "$1"
	/usr/bin/python3 "$src/tests/mock/llm_server.py" --port 0 --port-file "$TEST_TMP/mock.port" \
		--key-file "$1" >"$TEST_TMP/mock.log" 2>&1 &
	track_pid $!
	wait_for 10 test -s "$TEST_TMP/mock.port" || bail "the mock LLM server did not start"
	MOCK_LLM="http://127.0.0.1:$(cat "$TEST_TMP/mock.port")"
}

# proxy_store_start: a secret store in TEST_TMP (SECRETS, 0700) and the HTTPS API below, whose
# key is the node secret ECHO_TOKEN; sets PORT too. For the credential proxy's test and bench.
proxy_store_start() {
	SECRETS=$TEST_TMP/secrets
	mkdir -p "$SECRETS/node"
	chmod 700 "$SECRETS" "$SECRETS/node"
	mock_https_start "$SECRETS/node/ECHO_TOKEN"
	PORT=$MOCK_HTTPS_PORT
}

# mock_https_start KEY-FILE: tests/mock/https_server.py on a free loopback port with a
# certificate (localhost, 127.0.0.1) of a test CA made here with the openssl CLI; the server
# expects "Bearer <KEY-FILE's value>" (a random canary written here, mode 0600). Sets
# MOCK_HTTPS_PORT, MOCK_HTTPS_CA (the CA's PEM), MOCK_HTTPS_KEY and MOCK_HTTPS_LOG (one
# "METHOD PATH" line per request the server received).
mock_https_start() {
	local src=${AISP_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
	local d=$TEST_TMP/https
	mkdir -p "$d"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj "/CN=aisp test CA" -keyout "$d/ca.key" -out "$d/ca.pem" >/dev/null 2>&1 ||
		bail "openssl: cannot make the test CA"
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
		-keyout "$d/server.key" -out "$d/server.csr" >/dev/null 2>&1
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$d/ext"
	openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
		-days 2 -extfile "$d/ext" -out "$d/server.pem" >/dev/null 2>&1 ||
		bail "openssl: cannot sign the server certificate"
	MOCK_HTTPS_KEY="sk-proxy-canary$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
	printf '%s\n' "$MOCK_HTTPS_KEY" >"$1"
	chmod 600 "$1"
	MOCK_HTTPS_LOG=$d/requests.log
	MOCK_HTTPS_CA=$d/ca.pem
	/usr/bin/python3 "$src/tests/mock/https_server.py" --port-file "$d/port" --cert "$d/server.pem" \
		--key "$d/server.key" --key-file "$1" --log "$MOCK_HTTPS_LOG" >"$d/server.out" 2>&1 &
	track_pid $!
	wait_for 10 test -s "$d/port" || bail "the mock HTTPS server did not start"
	MOCK_HTTPS_PORT=$(cat "$d/port")
}

# ---------------------------------------------------------------- aispd nodes

# Node names are local to a test; the node id in Redis is <name>-<NODE_TAG> so that sandboxes
# of parallel runs never share container ids or cgroups.
node_id() { echo "$1-$NODE_TAG"; }
node_dir() { echo "$TEST_TMP/node-$1"; }
node_run_dir() { echo "$TEST_TMP/node-$1/run"; }

# node_conf NAME: writes NAME's config. Knobs (environment): SLOTS (2), DRAIN_S (5), RT_DEFAULT
# (runc), RT_ENABLED (runc, runsc), POOL (lines of [pool]), LIMITS (lines of [limits]),
# RECLAIM_MS (3000), MAX_DELIVERIES (3), REDIS_TIMEOUT_MS (2000), BLOCK_MS (500), REDIS_EXTRA
# (lines of [redis]), HTTP_PORT (empty: no HTTP), NODE_AGENT, NODE_STORE, STATE_DIR,
# NODE_REDIS (the [redis] lines saying where Redis is and how to log in; default: REDIS_PORT,
# as aisp-node with REDIS_ACL), EXTRA_SECTIONS (appended verbatim).
node_conf() {
	local name=$1 d
	d=$(node_dir "$1")
	mkdir -p "$d"
	[ -f "$TEST_TMP/key/private.pem" ] || "$AISP" keygen --out "$TEST_TMP/key" >/dev/null 2>&1
	cat >"$d/aispd.conf" <<EOF
[node]
id = $(node_id "$name")
slots = ${SLOTS:-2}
state_dir = ${STATE_DIR:-$d/state}
run_dir = $d/run
key = $TEST_TMP/key/private.pem
agent = ${NODE_AGENT:-$AGENT}
log_level = debug
heartbeat_ms = 500
drain_s = ${DRAIN_S:-5}
[redis]
${NODE_REDIS:-address = 127.0.0.1:$REDIS_PORT${NL_REDIS_ACL:+
user = aisp-node
password = change-me-node}}
reclaim_ms = ${RECLAIM_MS:-3000}
max_deliveries = ${MAX_DELIVERIES:-3}
timeout_ms = ${REDIS_TIMEOUT_MS:-2000}
block_ms = ${BLOCK_MS:-500}
${REDIS_EXTRA:-}
[images]
store = ${NODE_STORE:-$STORE}
[runtimes]
default = ${RT_DEFAULT:-runc}
enabled = ${RT_ENABLED:-runc, runsc}
[limits]
${LIMITS:-}
[pool]
${POOL:-}
[http]
listen = ${HTTP_PORT:+127.0.0.1:$HTTP_PORT}
${EXTRA_SECTIONS:-}
EOF
}
node_start() {
	local name=$1 d
	d=$(node_dir "$1")
	# AISP_TEST_UMASK: aispd runs under that umask (the unit's UMask=0077)
	(umask "${AISP_TEST_UMASK:-022}" && exec "$AISPD" --config "$d/aispd.conf") >>"$d/log" 2>&1 &
	NODE_PID[$name]=$!
}
# node_start_faulty NAME FLAG: node_start with the fdatasync fault injector preloaded
# (tests/faults/fault-fdatasync.c): while the file FLAG exists, the node's fdatasync() fails
# with EIO, so its chain state cannot be saved. Under ASan the sanitizer's runtime must come
# first in the preload list.
node_start_faulty() {
	local asan
	asan=$(ldd "$AISPD" 2>/dev/null | awk '/libasan/ { print $3; exit }')
	LD_PRELOAD="${asan:+$asan:}${AISP_FAULT_FDATASYNC_SO:?the fault injector is not built}" \
		AISP_FAULT_FDATASYNC=$2 node_start "$1"
}
node_pid() { echo "${NODE_PID[$1]:-}"; }
node_alive() { kill -0 "${NODE_PID[$1]}" 2>/dev/null; }
node_registered() { [ "$(R SISMEMBER aisp:nodes "$(node_id "$1")")" = 1 ]; }
# node_stop NAME: SIGTERM (drain), returns aispd's exit status.
node_stop() {
	local name=$1 pid=${NODE_PID[$1]} rc=0
	kill -TERM "$pid"
	wait "$pid" || rc=$?
	unset "NODE_PID[$name]"
	return $rc
}
# node_kill NAME: SIGKILL, then its leftover containers are reaped.
node_kill() {
	local name=$1 pid=${NODE_PID[$1]}
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || true
	unset "NODE_PID[$name]"
	reap_containers "$(node_run_dir "$name")"
}
node_log() { cat "$(node_dir "$1")/log" 2>/dev/null; }
# healthz HTTP_PORT: prints the HTTP status code of /healthz
healthz() { curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/healthz"; }

# broken_runtime FILE: writes an OCI runtime that answers --version (so a node starts with
# it) and refuses every container (so every sandbox fails to start: a real node fault).
broken_runtime() {
	cat >"$1" <<'EOF'
#!/bin/sh
case "$1" in
--version) echo "broken-runtime 1.0" ;;
*) echo "broken-runtime: refusing $*" >&2; exit 1 ;;
esac
EOF
	chmod 755 "$1"
}

# ---------------------------------------------------------------- tasks and results

# redis_dump FILE: every key's value (strings, streams, hashes, sets) into FILE, for canary scans
redis_dump() {
	local k
	: >"$1"
	R --scan | while read -r k; do
		case $(R TYPE "$k") in
		string) R GET "$k" ;;
		stream) R XRANGE "$k" - + ;;
		hash) R HGETALL "$k" ;;
		set) R SMEMBERS "$k" ;;
		esac >>"$1"
	done
}

# task_json ID LANG CODE-FILE [RUNTIME [LIMITS-JSON [EXTRA-JSON]]]: prints a task document.
# EXTRA-JSON is merged into the task (e.g. '{"args":["x"]}').
task_json() {
	jq -nc --arg id "$1" --arg lang "$2" --rawfile code "$3" --arg rt "${4:-}" \
		--argjson limits "${5:-null}" --argjson extra "${6:-{\}}" \
		'{id:$id, lang:$lang, code:$code}
		 + (if $rt != "" then {runtime:$rt} else {} end)
		 + (if $limits != null then {limits:$limits} else {} end) + $extra'
}
# submit_json JSON: XADD the task (prints the entry id)
submit_json() { printf '%s' "$1" | R -x XADD aisp:tasks '*' task; }
has_result() { [ "$(R EXISTS "aisp:result:$1")" = 1 ]; }
wait_result() { wait_for "$2" has_result "$1"; }
result() { R GET "aisp:result:$1"; }
# rfield ID JQ-FILTER: a field of the result document, raw
rfield() { result "$1" | jq -r "$2"; }
# events ID: the number of aisp:results events naming ID
events() { R XRANGE aisp:results - + | grep -cx -- "$1"; }
# run_task ID LANG CODE-FILE RUNTIME LIMITS [EXTRA] [TIMEOUT_S]: submits and waits; fails
# when no result came.
run_task() {
	local json
	json=$(task_json "$1" "$2" "$3" "$4" "${5:-null}" "${6:-{\}}") || return 1
	submit_json "$json" >/dev/null || return 1
	wait_result "$1" "${7:-120}"
}

# shell_tasks PREFIX N [PRELUDE [RUNTIME]]: submits the shell tasks PREFIX1..PREFIXN in one
# redis-cli call; task i runs "PRELUDEecho i" (PRELUDE e.g. "sleep 0.3; ")
shell_tasks() {
	local i rt=${4:+,\"runtime\":\"$4\"}
	for i in $(seq 1 "$2"); do
		printf "XADD aisp:tasks * task '{\"id\":\"%s%d\",\"lang\":\"shell\"%s,\"code\":\"%secho %d\"}'\n" \
			"$1" "$i" "$rt" "${3:-}" "$i"
	done | R >/dev/null
}
# all_results PREFIX N: PREFIX1..PREFIXN all have a result (for wait_for)
all_results() {
	local i
	for i in $(seq 1 "$2"); do has_result "$1$i" || return 1; done
}
# missing_results PREFIX N: the ids among PREFIX1..PREFIXN without a result
missing_results() {
	local i
	for i in $(seq 1 "$2"); do has_result "$1$i" || echo -n "$1$i "; done
}
# wrong_results PREFIX N: how many of the shell_tasks PREFIX1..PREFIXN lack stdout "i" or
# exactly one aisp:results event
wrong_results() {
	local i wrong=0
	for i in $(seq 1 "$2"); do
		[ "$(rfield "$1$i" .stdout)" = "$i" ] && [ "$(events "$1$i")" = 1 ] || wrong=$((wrong + 1))
	done
	echo $wrong
}

# redis_restart_mid_run WHAT STOP PREFIX N PRELUDE [RUNTIME]: submits the shell_tasks, stops
# redis-server with STOP (redis_stop: SIGTERM, or redis_kill) once PREFIX2 has a result, starts
# it again (AOF), and checks that every task got exactly one result (one test point, WHAT).
redis_restart_mid_run() {
	local what=$1 stop=$2 prefix=$3 n=$4
	shell_tasks "$prefix" "$n" "$5" "${6:-}"
	wait_for 60 has_result "${prefix}2"
	"$stop"
	sleep 1
	redis_start
	if wait_for 180 all_results "$prefix" "$n"; then
		is "$what: $n tasks, exactly one result each (wrong)" "$(wrong_results "$prefix" "$n")" 0
	else
		not_ok "$what: every task a result" "missing: $(missing_results "$prefix" "$n")"
	fi
}

# ---------------------------------------------------------------- residue

# reap_containers RUN_DIR: kills and deletes every container of runc/runsc state below RUN_DIR.
reap_containers() {
	local run=$1 rt ids id
	for rt in runc runsc; do
		[ -d "$run/$rt" ] || continue
		ids=$($rt --root "$run/$rt" list -q 2>/dev/null) || continue
		for id in $ids; do
			$rt --root "$run/$rt" kill "$id" KILL >/dev/null 2>&1 || true
			$rt --root "$run/$rt" delete -f "$id" >/dev/null 2>&1 || true
		done
	done
}
# containers_left NAME: the containers in NAME's runtime state (ids, one a line)
containers_left() {
	local run rt
	run=$(node_run_dir "$1")
	for rt in runc runsc; do
		[ -d "$run/$rt" ] && $rt --root "$run/$rt" list -q 2>/dev/null
	done
	return 0
}
# bundles_left NAME: the bundle directories left in NAME's run dir
bundles_left() { ls -A "$(node_run_dir "$1")/bundles" 2>/dev/null; }
# cgroups_left NAME: the cgroups of NAME's sandboxes (every controller)
cgroups_left() { ls -d /sys/fs/cgroup/*/aisp/aisp-"$(node_id "$1")"-* /sys/fs/cgroup/aisp/aisp-"$(node_id "$1")"-* 2>/dev/null; }
# mounts_left NAME: mounts below NAME's dir
mounts_left() { grep -F " $(node_dir "$1")/" /proc/self/mountinfo; }
# procs_left NAME: processes of NAME's sandboxes (runtime shims, sandboxed programs: their
# command line or cgroup names the node's container prefix), excluding aispd itself
procs_left() {
	local prefix p
	prefix="aisp-$(node_id "$1")-"
	for p in /proc/[0-9]*; do
		[ "${p#/proc/}" = "${NODE_PID[$1]:-x}" ] && continue
		if tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF "$prefix" ||
			grep -qF "/aisp/$prefix" "$p/cgroup" 2>/dev/null; then
			echo "${p#/proc/} $(tr '\0' ' ' 2>/dev/null <"$p/cmdline" | head -c 200)"
		fi
	done
}
# residue NAME: prints everything NAME's sandboxes left (empty when clean). Call it after the
# node stopped (or while it is idle with no pool: a warm pool is not residue).
residue() {
	local c b g m p
	c=$(containers_left "$1")
	b=$(bundles_left "$1")
	g=$(cgroups_left "$1")
	m=$(mounts_left "$1")
	p=$(procs_left "$1")
	[ -n "$c" ] && echo "containers: $c"
	[ -n "$b" ] && echo "bundles: $b"
	[ -n "$g" ] && echo "cgroups: $g"
	[ -n "$m" ] && echo "mounts: $m"
	[ -n "$p" ] && echo "processes: $p"
	return 0
}
# fd_count PID, rss_kb PID
fd_count() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
