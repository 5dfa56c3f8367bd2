#!/usr/bin/env bash
# Sandboxes under the real runtimes (issue 3): languages and modes, file I/O, hardening probes,
# limits (oom, timeout, output limit), usage, host-side safety, crun as the generic OCI
# profile, and clean teardown after 50 runs per runtime. Drives `aisp run --json`.
# No `set -e`: a TAP suite goes on past a failing step (that test point says "not ok" and the
# remaining ones still run), and many steps test a command's exit status.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/host.sh"
need_image
run() { "$AISP" run --json "$@" 2>"$TEST_TMP/stderr"; }
field() { jq -r "$1"; }

for rt in runc runsc; do
	diag "runtime $rt"
	is "$rt python script" "$(run --runtime $rt -c 'import sys; print(sum(range(10))); sys.exit(3)' | field '[.status,.stdout,.exit_code]|@json')" '["ok","45\n",3]'
	is "$rt javascript script" "$(run --runtime $rt --lang javascript -c 'console.log([1,2,3].map(x=>x*2).join(","))' | field .stdout)" "2,4,6"
	is "$rt shell script with argv and stdin" "$(printf 'in-data' >"$TEST_TMP/in"; run --runtime $rt --lang shell --stdin "$TEST_TMP/in" --args '["a","b c"]' -c 'echo "$#:$2:$(cat)"' | field .stdout)" "2:b c:in-data"
	is "$rt python function" "$(run --runtime $rt --function --args '{"a":2,"b":40}' -c 'def main(args): return {"sum": args["a"] + args["b"]}' | field '.return_value|@json')" '{"sum":42}'
	is "$rt javascript async function" "$(run --runtime $rt --lang javascript --function --args '[5]' -c 'async function main(a){ return a[0]*3 }' | field '.return_value')" "15"
	is "$rt function that raises -> error" "$(run --runtime $rt --function -c 'def main(a): raise ValueError("boom")' | field '[.status,.error]|@json')" '["error","ValueError: boom"]'
	is "$rt env exactly the documented one plus the task's" \
		"$(run --runtime $rt --env FOO=bar -c 'import os,json; print(json.dumps(sorted(os.environ.items())))' | field .stdout | tr -d '\n')" \
		'[["FOO", "bar"], ["HOME", "/workspace"], ["HOSTNAME", "sandbox"], ["LANG", "C.UTF-8"], ["PATH", "/usr/local/bin:/usr/bin:/bin"], ["PYTHONDONTWRITEBYTECODE", "1"], ["PYTHONHASHSEED", "0"], ["PYTHONUNBUFFERED", "1"], ["TMPDIR", "/tmp"], ["TZ", "UTC"]]'

	# file I/O: an input file in, an output file back
	printf 'hello file' >"$TEST_TMP/data.txt"
	out=$(run --runtime $rt --file data/in.txt="$TEST_TMP/data.txt" -c '
import os
s = open("data/in.txt").read()
os.makedirs("out/sub", exist_ok=True)
open("out/sub/result.txt", "w").write(s.upper())')
	is "$rt output file returned" "$(echo "$out" | field '[.files[0].path, (.files[0].content_b64|@base64d)]|@json')" '["sub/result.txt","HELLO FILE"]'

	# the end of a program that ran to completion is the interpreter's, also on the bootstrap's
	# fast exit: threads left running are waited for, atexit functions run, a file left open
	# is flushed, a cycle's finaliser runs
	out=$(run --runtime $rt -c '
import atexit, os, threading, time
os.makedirs("out", exist_ok=True)
f = open("out/open.txt", "w")
f.write("left open")
class C:
    def __del__(self):
        open("out/cycle.txt", "w").write("finalised")
c = C()
c.me = c
del c
def late():
    time.sleep(0.2)
    print("thread")
threading.Thread(target=late).start()
atexit.register(lambda: print("atexit"))
print("main")')
	is "$rt exit: thread waited for, atexit ran" "$(echo "$out" | field '[.status,.exit_code,.stdout]|@json')" '["ok",0,"main\nthread\natexit\n"]'
	is "$rt exit: open file flushed, cycle finalised" "$(echo "$out" | field '[.files[]|[.path,(.content_b64|@base64d)]]|sort|@json')" '[["cycle.txt","finalised"],["open.txt","left open"]]'
	# ... a thread that already ended is not waited for again; an executor's worker still
	# running is, through threading's own exit callbacks
	out=$(run --runtime $rt -c '
import concurrent.futures, threading, time
t = threading.Thread(target=lambda: print("early"))
t.start()
t.join()
def slow():
    time.sleep(0.2)
    print("pool")
concurrent.futures.ThreadPoolExecutor(1).submit(slow)
print("main")')
	is "$rt exit: executor worker waited for" "$(echo "$out" | field '[.status,.exit_code,.stdout]|@json')" '["ok",0,"early\nmain\npool\n"]'
	out=$(run --runtime $rt --function -c '
import atexit
f = open("out/fn.txt", "w")
f.write("function")
atexit.register(lambda: print("bye"))
def main(a):
    return 7')
	is "$rt function exit: value, atexit, open file" "$(echo "$out" | field '[.return_value,.stdout,(.files[0].content_b64|@base64d)]|@json')" '[7,"bye\n","function"]'

	# host-side safety: links, FIFOs and devices planted in /workspace/out are not followed
	echo "host secret $rt" >"$TEST_TMP/secret"
	out=$(run --runtime $rt -c "
import os
os.makedirs('out', exist_ok=True)
os.symlink('$TEST_TMP/secret', 'out/link-to-host')
os.symlink('/etc/passwd', 'out/link-to-passwd')
os.symlink('..', 'out/dotdot')
os.symlink('/', 'out/root')
os.mkfifo('out/fifo')
open('out/real.txt', 'w').write('real')
print('planted')")
	is "$rt planted links/FIFOs skipped, regular file returned" "$(echo "$out" | field '[.status, ([.files[].path]|join(","))]|@json')" '["ok","real.txt"]'
	check "$rt host secret never read" bash -c "! grep -q 'host secret' <<<'$out'"
	is "$rt host file untouched" "$(cat "$TEST_TMP/secret")" "host secret $rt"

	# hardening probe
	port=$(free_port)
	python3 -m http.server --bind 127.0.0.1 "$port" >/dev/null 2>&1 &
	track_pid $!
	sleep 0.3
	p=$(run --runtime $rt --args "[\"$port\"]" "$here/probes/hardening.py" | field .stdout)
	is "$rt capabilities all zero" "$(jq -c .caps <<<"$p")" '{"CapEff":0,"CapPrm":0,"CapBnd":0}'
	is "$rt uid/gid 65534" "$(jq -c '[.uid,.gid,.euid]' <<<"$p")" '[65534,65534,65534]'
	is "$rt no_new_privs" "$(jq .no_new_privs <<<"$p")" 1
	check "$rt rootfs read-only" bash -c "jq -e '.write_rootfs != \"written\" and .write_usr != \"written\"' <<<'$p' >/dev/null"
	check "$rt /proc/sys and /sys read-only" bash -c "jq -e '.write_proc_sys != \"written\" and .write_sys != \"written\"' <<<'$p' >/dev/null"
	check "$rt /workspace and /tmp writable" bash -c "jq -e '.write_workspace == \"written\" and .write_tmp == \"written\"' <<<'$p' >/dev/null"
	check "$rt /proc/kcore and /proc/keys masked" bash -c "jq -e '(.read_kcore|type) == \"string\" or .read_kcore == 0' <<<'$p' >/dev/null && jq -e '.read_keys == 0 or (.read_keys|type) == \"string\"' <<<'$p' >/dev/null"
	is "$rt hostname" "$(jq -r .hostname <<<"$p")" sandbox
	is "$rt cwd" "$(jq -r .cwd <<<"$p")" /workspace
	is "$rt network: only lo, no routes" "$(jq -c '[.ifaces,.routes]' <<<"$p")" '[["lo"],[]]'
	is "$rt host's loopback service unreachable" "$(jq -r .tcp_host_port <<<"$p")" ECONNREFUSED
	check "$rt mount/ptrace/bpf/keyctl denied" bash -c "jq -e '.syscalls.mount != \"ok\" and .syscalls.ptrace != \"ok\" and .syscalls.bpf != \"ok\" and .syscalls.keyctl != \"ok\"' <<<'$p' >/dev/null"
	if [ $rt = runc ]; then
		is "runc seccomp deny-list" "$(jq -c .syscalls <<<"$p")" '{"keyctl":"EPERM","bpf":"EPERM","ptrace":"EPERM","mount":"EPERM","unshare":"EPERM","io_uring_setup":"EPERM"}'
		is "runc user namespace (uid 0 -> host 100000)" "$(jq -c .uid_map <<<"$p")" '["0","100000","65536"]'
	fi

	# limits
	out=$(run --runtime $rt --memory 64 -c '
b = []
while True:
    b.append(bytearray(10**7))')
	is "$rt memory bomb -> oom" "$(echo "$out" | field .status)" oom
	out=$(run --runtime $rt --timeout 1 -c 'while True: pass')
	is "$rt infinite loop -> timeout" "$(echo "$out" | field .status)" timeout
	out=$(run --runtime $rt -c '
import sys
while True: sys.stdout.write("x" * 65536)')
	is "$rt stdout flood -> output_limit, truncated at the cap" "$(echo "$out" | field '[.status,.stdout_truncated,(.stdout|length)]|@json')" '["output_limit",true,1048576]'
	out=$(run --runtime $rt --lang shell -c 'while :; do echo errerrerrerr >&2; done')
	is "$rt stderr flood -> output_limit" "$(echo "$out" | field '[.status,.stderr_truncated]|@json')" '["output_limit",true]'
	out=$(run --runtime $rt -c 'x = sum(i*i for i in range(3_000_000)); print(x)')
	check "$rt usage measured on the host" bash -c "jq -e '.usage.wall_ms > 0 and .usage.cpu_ms > 0 and .usage.memory_peak_bytes > 1000000' >/dev/null <<<'$out'"

	# plain output mode: stdout/stderr passed through, exit code mapped
	"$AISP" run --runtime $rt --lang shell -c 'echo plain; echo oops >&2; exit 7' >"$TEST_TMP/o" 2>"$TEST_TMP/e"
	is "$rt plain mode exit code" "$?" 7
	is "$rt plain mode stdout" "$(cat "$TEST_TMP/o")" plain
	"$AISP" run --runtime $rt --timeout 1 -c 'import time; time.sleep(30)' >/dev/null 2>&1
	is "$rt plain mode timeout exit status" "$?" 124
done

# the generic OCI profile, proven with crun
is "crun shell" "$("$AISP" run --runtime crun --lang shell -c 'echo hi')" hi
is "crun python json" "$(run --runtime crun -c 'print(6*7)' | field '[.status,.stdout,.runtime]|@json')" '["ok","42\n","crun"]'
run --runtime no-such-runtime -c 'print(1)' >/dev/null
is "missing runtime -> sandbox error exit 126" "$?" 126
check "missing runtime named in the message" grep -q "runtime no-such-runtime is not usable" "$TEST_TMP/stderr"

# teardown: 50 sandboxes per runtime through a pool, then nothing left (checked for this run's
# sandboxes only: their ids carry the pid of the aisp process, other runs may be live)
for rt in runc runsc; do
	st=$TEST_TMP/state-$rt
	"$AISP" run --runtime $rt --state-dir "$st" --warm 50 --pool-size 2 -c 'print(1+1)' >"$TEST_TMP/warm.json" &
	wpid=$!
	wait $wpid
	is "$rt 50 runs all ok" "$(jq -c '[.runs,.ok]' "$TEST_TMP/warm.json")" '[50,50]'
	is "$rt no container state left" "$($rt --root "$st/$rt" list -q 2>/dev/null | wc -l)" 0
	is "$rt no bundle directories left" "$(ls "$st/bundles" | wc -l)" 0
	is "$rt no cgroups left" "$(ls -d /sys/fs/cgroup/*/aisp/aisp-run-$wpid-* 2>/dev/null | wc -l)" 0
	is "$rt no mounts left" "$(grep -c "$st" /proc/self/mountinfo)" 0
	is "$rt no processes left" "$(pgrep -f "$st|aisp-run-$wpid-" | wc -l)" 0
done
done_testing
