#!/usr/bin/env bash
# The code author's command line (issue 16 items 3, 6, 7): output files saved with --out
# (atomically, never through a link, never outside DIR), the language from the file name,
# piped stdin, the user's own files through symbolic links, a flag for every limit,
# --reply-stream, a warning when no node is registered, distinct exit codes. Against a real
# redis-server, aispd and runc. TAP output.
# No `set -e`: a TAP suite goes on past a failing step (that test point says "not ok" and the
# remaining ones still run), and many steps test a command's exit status.
set -uo pipefail
. "$(dirname "$0")/../lib/node.sh"
need_nodes
redis_start

cat >"$TEST_TMP/files.py" <<'PY'
import os, sys
os.makedirs("out/sub", exist_ok=True)
open("out/a.txt", "w").write("alpha")
open("out/sub/b.txt", "w").write("beta:" + sys.stdin.read())
print("written")
PY
printf 'console.log(typeof process.versions.node)\n' >"$TEST_TMP/lang.js"
printf 'echo "$0 shell"\n' >"$TEST_TMP/lang.sh"

# ---------------------------------------------------------------- no node yet
"$AISP" submit --wait --wait-timeout 1 -c 'print(1)' >/dev/null 2>"$TEST_TMP/nonode.err"
is "submit --wait with no node: exit 3 (wait timeout)" "$?" 3
check "submit --wait with no node: warns that no live node is registered" \
	grep -q "no live node is registered" "$TEST_TMP/nonode.err"
AISP_REDIS=127.0.0.1:1 "$AISP" submit -c 'print(1)' >/dev/null 2>&1
is "Redis unreachable: exit 4, not the program's 1" "$?" 4
R FLUSHALL >/dev/null

SLOTS=2 RT_ENABLED=runc node_conf c1
node_start c1
wait_for 30 node_registered c1 || bail "node c1 did not register: $(node_log c1 | tail -5)"

# ---------------------------------------------------------------- --out
out=$("$AISP" submit --wait --runtime runc --stdin - --out "$TEST_TMP/o1" "$TEST_TMP/files.py" <<<"piped" 2>"$TEST_TMP/o1.err")
is "--stdin - reads piped stdin; the program ran" "$out" written
is "--out saves out/a.txt" "$(cat "$TEST_TMP/o1/a.txt" 2>/dev/null)" alpha
is "--out saves out/sub/b.txt (and the piped stdin reached it)" "$(cat "$TEST_TMP/o1/sub/b.txt" 2>/dev/null)" "beta:piped"
check "--out says where the files went" grep -q "2 output files saved in $TEST_TMP/o1" "$TEST_TMP/o1.err"
"$AISP" submit --wait --runtime runc "$TEST_TMP/files.py" </dev/null >/dev/null 2>"$TEST_TMP/o2.err"
check "without --out: says files were returned and not saved" \
	grep -q "2 output files returned, not saved (--out DIR saves them" "$TEST_TMP/o2.err"
# a link planted where a directory of the output goes: never followed
mkdir -p "$TEST_TMP/o3" "$TEST_TMP/elsewhere"
ln -s "$TEST_TMP/elsewhere" "$TEST_TMP/o3/sub"
"$AISP" submit --wait --runtime runc --out "$TEST_TMP/o3" "$TEST_TMP/files.py" </dev/null >/dev/null 2>"$TEST_TMP/o3.err"
check "--out never writes through a link in DIR" [ ! -e "$TEST_TMP/elsewhere/b.txt" ]
check "--out says why it did not save" grep -q "not a directory of ours" "$TEST_TMP/o3.err"
"$AISP" submit --wait --json --runtime runc --out "$TEST_TMP/o5" "$TEST_TMP/files.py" </dev/null >/dev/null 2>&1
is "--json --out saves the files too" "$(cat "$TEST_TMP/o5/a.txt" 2>/dev/null)" alpha
"$AISP" submit --wait --runtime runc --out "$TEST_TMP/o3" "$TEST_TMP/files.py" </dev/null >/dev/null 2>&1
is "files not saved: exit 5 though the program succeeded" "$?" 5
# a result naming a path outside DIR (a forged result in Redis): refused
R SET aisp:result:forged '{"v":1,"id":"forged","status":"ok","exit_code":0,"signal":null,"stdout":"","stderr":"","stdout_truncated":false,"stderr_truncated":false,"files":[{"path":"../escape.txt","content_b64":"eA==","size":1}],"files_truncated":false,"usage":{"wall_ms":0,"cpu_ms":0,"memory_peak_bytes":0},"node":"x","received_at_ms":0,"started_at_ms":0,"finished_at_ms":0,"attempts":1}' >/dev/null
mkdir -p "$TEST_TMP/o4"
"$AISP" wait forged --out "$TEST_TMP/o4" >/dev/null 2>"$TEST_TMP/o4.err"
check "a path with .. is never written outside DIR" [ ! -e "$TEST_TMP/escape.txt" ]

# ---------------------------------------------------------------- the small things
is "the language from .js" "$("$AISP" submit --wait --runtime runc "$TEST_TMP/lang.js" 2>/dev/null)" string
is "the language from .sh ($0 is the program's file, main.sh)" "$("$AISP" submit --wait --runtime runc "$TEST_TMP/lang.sh" 2>/dev/null)" "main.sh shell"
printf 'linked\n' >"$TEST_TMP/real-stdin"
ln -s "$TEST_TMP/real-stdin" "$TEST_TMP/link-stdin"
is "--stdin may be the user's own symlink" \
	"$("$AISP" submit --wait --runtime runc --stdin "$TEST_TMP/link-stdin" -c 'print(input())' 2>/dev/null)" linked
"$AISP" submit --id lim1 --runtime runc --pids 64 --workspace 32 --stdout-bytes 1000 --nofile 100 \
	--fsize 8 -c 'print(1)' >/dev/null
wait_result lim1 60
is "a flag for every limit reaches the task" \
	"$(rfield lim1 '.attestation.payload' | base64 -d | jq -c '.predicate.limits | [.pids, .workspace_bytes, .stdout_bytes, .nofile, .fsize_bytes]')" \
	"[64,33554432,1000,100,8388608]"
"$AISP" submit --id rs1 --runtime runc --reply-stream aisp:reply:mine -c 'print(2)' >/dev/null
wait_for 30 prints 1 R XLEN aisp:reply:mine
is "--reply-stream names the task's reply stream" "$(R XLEN aisp:reply:mine)" 1
out=$("$AISP" submit --wait --runtime runc --reply-stream aisp:reply:mine2 -c 'print(3)' 2>/dev/null)
is "--wait with --reply-stream waits on it" "$out" 3
is "... and leaves the user's own stream in place" "$(R XLEN aisp:reply:mine2)" 1
"$AISP" submit --wait --runtime runc -c 'import sys; sys.exit(124)' >/dev/null 2>"$TEST_TMP/x124.err"
is "a program's own exit 124 is 124" "$?" 124
check "... and stderr does not say timeout" bash -c "! grep -q 'aisp: timeout' '$TEST_TMP/x124.err'"
"$AISP" submit --wait --runtime runc --timeout 1 -c 'import time; time.sleep(30)' >/dev/null 2>"$TEST_TMP/t.err"
is "a timeout is 124 too" "$?" 124
check "... and stderr says timeout" grep -q 'aisp: timeout' "$TEST_TMP/t.err"
node_stop c1
done_testing
