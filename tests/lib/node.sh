# Shared helpers of the hostile, faults and soak suites (TAP output): a redis-server of their
# own on a free loopback port and its own directory, aispd nodes with generated configs in a
# temp dir, task submission through Redis, result checks, and residue checks (containers,
# bundle dirs, cgroups, mounts, processes). Factored from tests/integration/test-daemon.sh.
#
# Source it after setting AISPD_BIN, AISP_BIN, AISP_AGENT (meson passes them). Every process a
# helper starts is recorded by pid; the EXIT trap stops exactly those, reaps the containers the
# nodes left, unmounts what the test mounted below its temp dir and removes the temp dir
# (KEEP_TMP=1 keeps it).
set -uo pipefail

AISPD=${AISPD_BIN:-aispd}
AISP=${AISP_BIN:-aisp}
AGENT=${AISP_AGENT:-/usr/libexec/aisp/aisp-agent}
STORE=${AISP_IMAGE_STORE:-/var/lib/aisp/images}

# ---------------------------------------------------------------- TAP

TAP_N=0
TAP_FAIL=0
ok() {
	TAP_N=$((TAP_N + 1))
	echo "ok $TAP_N - $1"
}
# not_ok DESCRIPTION [DIAGNOSTIC LINE...]
not_ok() {
	TAP_N=$((TAP_N + 1))
	TAP_FAIL=$((TAP_FAIL + 1))
	echo "not ok $TAP_N - $1"
	shift
	local line
	for line in "$@"; do printf '%s\n' "$line" | head -c 4000 | sed 's/^/#   /'; done
}
skip() {
	TAP_N=$((TAP_N + 1))
	echo "ok $TAP_N - $1 # SKIP $2"
}
diag() { printf '%s\n' "$*" | sed 's/^/# /'; }
# check DESCRIPTION COMMAND...: ok when COMMAND succeeds
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}
# is DESCRIPTION GOT WANT
is() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got:  $2" "want: $3"; fi
}
done_testing() {
	echo "1..$TAP_N"
	[ "$TAP_FAIL" -eq 0 ]
}
bail() {
	echo "Bail out! $*"
	exit 1
}

# Preconditions shared by every suite: root, the tools, the default image.
nl_require() {
	if [ "$(id -u)" != 0 ]; then
		echo "1..0 # SKIP needs root (sandboxes, cgroups)"
		exit 0
	fi
	local b
	for b in "$AISPD" "$AISP"; do
		command -v "$b" >/dev/null || bail "$b is missing (set AISPD_BIN and AISP_BIN)"
	done
	[ -f "$AGENT" ] || bail "the agent $AGENT is missing (set AISP_AGENT)"
	for b in redis-server redis-cli python3 curl jq runc runsc "$@"; do
		if ! command -v "$b" >/dev/null; then
			echo "1..0 # SKIP $b is missing"
			exit 0
		fi
	done
	if [ ! -f "$STORE/names/default" ] && ! "$AISP" image build default --store "$STORE" >/dev/null 2>&1; then
		echo "1..0 # SKIP the default image is not in $STORE and could not be built"
		exit 0
	fi
}

# ---------------------------------------------------------------- temp dir, cleanup

NL_TMP=$(mktemp -d /tmp/aisp-nl.XXXXXX)
# runc's user namespace (container root = host uid 100000) must traverse to a rootfs or state
# dir placed below it (the image store copy of the faults suite)
chmod 0711 "$NL_TMP"
# A tag unique to this run: node ids (and so container ids and cgroups) carry it.
NL_TAG=t$$
declare -A NODE_PID=()
REDIS_PID=
NL_PIDS=()
NL_CLEANUP_HOOKS=()

nl_cleanup() {
	local name h p
	for h in "${NL_CLEANUP_HOOKS[@]}"; do "$h"; done
	for name in "${!NODE_PID[@]}"; do
		kill -CONT "${NODE_PID[$name]}" 2>/dev/null
		kill -KILL "${NODE_PID[$name]}" 2>/dev/null
		wait "${NODE_PID[$name]}" 2>/dev/null
	done
	for p in "${NL_PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	[ -n "$REDIS_PID" ] && kill -KILL "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null
	for d in "$NL_TMP"/node-*/run; do
		[ -d "$d" ] && reap_containers "$d"
	done
	grep -o " $NL_TMP[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
	if [ -n "${KEEP_TMP:-}" ]; then echo "# kept $NL_TMP"; else rm -rf "$NL_TMP"; fi
}
trap nl_cleanup EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_for SECONDS COMMAND...: polls COMMAND every 0.1 s; fails after SECONDS.
wait_for() {
	local limit=$(($1 * 10)) i=0
	shift
	until "$@"; do
		i=$((i + 1))
		[ $i -ge $limit ] && return 1
		sleep 0.1
	done
}
# prints VALUE COMMAND...: true when COMMAND prints VALUE (for wait_for).
prints() {
	local want=$1
	shift
	[ "$("$@" 2>/dev/null)" = "$want" ]
}

# ---------------------------------------------------------------- redis-server

REDIS_PORT=$(free_port)
export AISP_REDIS=127.0.0.1:$REDIS_PORT
R() { redis-cli -p "$REDIS_PORT" "$@"; }
redis_up() { [ "$(R PING 2>/dev/null)" = PONG ]; }
# redis_start: on REDIS_PORT, its own dir, AOF fsync always (a restart keeps the results).
redis_start() {
	mkdir -p "$NL_TMP/redis"
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$NL_TMP/redis" --save '' \
		--appendonly yes --appendfsync always --logfile "$NL_TMP/redis/log" >/dev/null 2>&1 &
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

# ---------------------------------------------------------------- aispd nodes

# Node names are local to a test; the node id in Redis is <name>-<NL_TAG> so that sandboxes
# of parallel runs never share container ids or cgroups.
node_id() { echo "$1-$NL_TAG"; }
node_dir() { echo "$NL_TMP/node-$1"; }
node_run_dir() { echo "$NL_TMP/node-$1/run"; }

# node_conf NAME: writes NAME's config. Knobs (environment): SLOTS (2), RT_DEFAULT (runc),
# RT_ENABLED (runc, runsc), POOL (lines of [pool]), LIMITS (lines of [limits]), RECLAIM_MS
# (3000), MAX_DELIVERIES (3), HTTP_PORT (empty: no HTTP), NODE_AGENT, NODE_STORE, STATE_DIR,
# EXTRA_SECTIONS (appended verbatim).
node_conf() {
	local name=$1 d
	d=$(node_dir "$1")
	mkdir -p "$d"
	[ -f "$NL_TMP/key/private.pem" ] || "$AISP" keygen --out "$NL_TMP/key" >/dev/null 2>&1
	cat >"$d/aispd.conf" <<EOF
[node]
id = $(node_id "$name")
slots = ${SLOTS:-2}
state_dir = ${STATE_DIR:-$d/state}
run_dir = $d/run
key = $NL_TMP/key/private.pem
agent = ${NODE_AGENT:-$AGENT}
log_level = debug
heartbeat_ms = 500
drain_s = 5
[redis]
address = 127.0.0.1:$REDIS_PORT
reclaim_ms = ${RECLAIM_MS:-3000}
max_deliveries = ${MAX_DELIVERIES:-3}
timeout_ms = 2000
block_ms = ${BLOCK_MS:-500}
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
	"$AISPD" --config "$d/aispd.conf" >>"$d/log" 2>&1 &
	NODE_PID[$name]=$!
}
node_pid() { echo "${NODE_PID[$1]:-}"; }
node_alive() { kill -0 "${NODE_PID[$1]}" 2>/dev/null; }
node_registered() { [ "$(R SISMEMBER aisp:nodes "$(node_id "$1")")" = 1 ]; }
# node_stop NAME: SIGTERM (drain), returns aispd's exit status.
node_stop() {
	local name=$1 pid=${NODE_PID[$1]} rc
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
	unset "NODE_PID[$name]"
	return $rc
}
# node_kill NAME: SIGKILL, then its leftover containers are reaped.
node_kill() {
	local name=$1 pid=${NODE_PID[$1]}
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
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

# ---------------------------------------------------------------- residue

# reap_containers RUN_DIR: kills and deletes every container of runc/runsc state below RUN_DIR.
reap_containers() {
	local run=$1 rt ids id
	for rt in runc runsc; do
		[ -d "$run/$rt" ] || continue
		ids=$($rt --root "$run/$rt" list -q 2>/dev/null) || continue
		for id in $ids; do
			$rt --root "$run/$rt" kill "$id" KILL >/dev/null 2>&1
			$rt --root "$run/$rt" delete -f "$id" >/dev/null 2>&1
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
