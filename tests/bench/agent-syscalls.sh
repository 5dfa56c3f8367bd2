#!/usr/bin/env bash
# Counts the syscalls of a warm task inside the sandbox, from the TASK frame to the last result
# frame (issue 17 item 3), per runtime and language. Counts are stable where times are not.
#
#   tests/bench/agent-syscalls.sh [BUILD_DIR]      (root; default build/)
#
# runc: `strace -f` attached to every process of the container once it is READY (the agent and
#       the warm interpreter), counted up to the agent's last write to fd 1 (the EXIT frame).
# runsc: the sentry's own strace (`runsc --strace`), counted from the agent's read of the TASK
#       (its only read of fd 0 that returns data) to its last write to fd 1. The task goes
#       AGENT_SYSCALLS_AGE_S (default 2) seconds after READY, as to a sandbox that waited in the
#       pool: gVisor's vDSO answers clock reads only once the sentry has calibrated its clock,
#       from two samples 1 s apart; before that, every clock_gettime is a syscall (0.4 s after
#       READY, a warm JavaScript task made 618 of them, Python 9). 0 measures a fresh sandbox.
# Both count every syscall the agent, the interpreter and the program make in that window.
# Output: a table (runtime, language, mode, total, the top syscalls); AGENT_SYSCALLS_RAW=DIR
# keeps the traces there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build}
drv=$build/tests/agent-syscalls
export AISP_AGENT=${AISP_AGENT:-$build/sandbox/agent/aisp-agent}
[ -x "$drv" ] || { echo "agent-syscalls.sh: $drv is missing (ninja -C $build)" >&2; exit 1; }
command -v strace >/dev/null || { echo "agent-syscalls.sh: strace is missing" >&2; exit 1; }
raw=${AGENT_SYSCALLS_RAW:-$(mktemp -d /tmp/aisp-syscalls.XXXXXX)}
mkdir -p "$raw"
export RAW=$raw

# runc: attach to every process of the container, wait until each is traced.
cat >"$raw/before-runc.sh" <<'EOF'
pids=$(ps -e -o pid=,ppid= | awk -v root="$AISP_SB_PID" '
	{ parent[$1] = $2 } END {
	  for (p in parent) { q = p; while (q != "" && q != root && q != 1 && q != 0) q = parent[q];
	    if (q == root) print p } print root }' | sort -u)
echo "$AISP_SB_PID" >"$RAW/agent.pid"
args=()
for p in $pids; do args+=(-p "$p"); done
strace -f -qq -o "$RAW/trace" "${args[@]}" &
echo $! >"$RAW/strace.pid"
for i in $(seq 100); do
	n=0
	for p in $pids; do
		t=$(awk '/^TracerPid/ {print $2}' /proc/$p/status 2>/dev/null || echo 0)
		[ "${t:-0}" != 0 ] && n=$((n + 1))
	done
	[ $n = $(echo $pids | wc -w) ] && exit 0
	sleep 0.05
done
exit 1
EOF
cat >"$raw/after-runc.sh" <<'EOF'
p=$(cat "$RAW/strace.pid")
kill -INT "$p"
while kill -0 "$p" 2>/dev/null; do sleep 0.05; done
EOF

count_runc() { # the trace in $raw/trace, agent pid $1 -> "name count" lines
	/usr/bin/python3 - "$raw/trace" "$1" <<'EOF'
import collections, re, sys
lines = open(sys.argv[1], errors="replace").read().splitlines()
agent = sys.argv[2]
end = max(i for i, l in enumerate(lines) if re.match(r"%s\s+(write|writev)\(1," % agent, l))
c = collections.Counter()
for l in lines[:end + 1]:
    m = re.match(r"\d+\s+(?:<\.\.\. )?(\w+)(\(| resumed>)", l)
    if m and " resumed>" not in l:
        c[m.group(1)] += 1
print(sum(c.values()), " ".join("%s:%d" % kv for kv in c.most_common(8)))
EOF
}

# runsc: the count, from the boot log in $raw/logs -> "total top..." (0 until the sentry has
# logged the agent's last write to fd 1 after the TASK read)
cat >"$raw/count-runsc.py" <<'EOF'
import collections, glob, os, re, sys
logs = glob.glob(os.path.join(sys.argv[1], "*boot*"))
lines = open(logs[0], errors="replace").read().splitlines() if logs else []
ev = []
for l in lines:
    m = re.search(r"\[\s*(\d+):\s*(\d+)\] \S+ ([EX]) (\w+)\((.*)", l)
    if m:
        ev.append((m.group(2), m.group(3), m.group(4), m.group(5)))
start = next(i for i, e in enumerate(ev) if e[0] == "1" and e[1] == "X" and e[2] == "read"
             and e[3].startswith("0x0 ") and not re.search(r"= 0 \(0x0\)|= -1", e[3]))
end = max(i for i, e in enumerate(ev) if e[0] == "1" and e[1] == "X" and e[2] in ("write", "writev")
          and e[3].startswith("0x1 "))
c = collections.Counter(e[2] for e in ev[start + 1:end + 1] if e[1] == "E")
print(sum(c.values()), " ".join("%s:%d" % kv for kv in c.most_common(8)))
EOF
count_runsc() { /usr/bin/python3 "$raw/count-runsc.py" "$raw/logs" 2>/dev/null || echo 0; }
# Before the sandbox goes: wait (up to 5 s) until the sentry has logged the task's end, i.e.
# the count is above 0 and the same twice 150 ms apart. The host has the last frame before
# the sentry logs the write that sent it: without the wait the count was 0 now and then.
cat >"$raw/after-runsc.sh" <<'EOF'
last=-1
for i in $(seq 33); do
	n=$(/usr/bin/python3 "$RAW/count-runsc.py" "$RAW/logs" 2>/dev/null | cut -d' ' -f1)
	[ "${n:-0}" -gt 0 ] && [ "$n" = "$last" ] && exit 0
	last=${n:-0}
	sleep 0.15
done
EOF

printf '%-6s %-11s %-8s %6s  %s\n' runtime language mode total "top syscalls"
while IFS='|' read -r lang mode code; do
	fnargs=()
	[ "$mode" = function ] && fnargs=(--function --args '{"a":1}')
	# runc
	rm -f "$raw/trace"
	out=$("$drv" --runtime runc --lang "$lang" --code "$code" "${fnargs[@]}" \
		--before "bash $raw/before-runc.sh" --after "bash $raw/after-runc.sh")
	printf '%-6s %-11s %-8s %s\n' runc "$lang" "$mode" "$(count_runc "$(cat "$raw/agent.pid")")"
	cp "$raw/trace" "$raw/trace-runc-$lang-$mode"
	# runsc
	rm -rf "$raw/logs"
	mkdir -p "$raw/logs"
	out=$("$drv" --runtime runsc --lang "$lang" --code "$code" "${fnargs[@]}" \
		--flag --strace --flag --debug --flag "--debug-log=$raw/logs/" \
		--before "sleep ${AGENT_SYSCALLS_AGE_S:-2}" --after "bash $raw/after-runsc.sh")
	printf '%-6s %-11s %-8s %s\n' runsc "$lang" "$mode" "$(count_runsc)"
	mv "$raw/logs" "$raw/logs-runsc-$lang-$mode"
done <<'EOF'
python|script|print(1+1)
python|function|def main(a): return a["a"] + 1
javascript|script|console.log(1+1)
javascript|function|function main(a) { return a.a + 1 }
shell|script|echo 2
EOF
[ -n "${AGENT_SYSCALLS_RAW:-}" ] || rm -rf "$raw"
