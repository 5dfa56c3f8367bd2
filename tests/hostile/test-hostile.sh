#!/usr/bin/env bash
# The hostile suite (issue 7): every program in attacks/ runs through aispd on runc and on runsc.
# After each attack: the status is one of the expected ones, the attack's own check holds, no
# canary (the node's key, a line of its config, a variable of aispd's environment, the host's
# /etc/shadow digest) appears anywhere in the result, the node is alive with /healthz 200, and
# a probe task in a fresh sandbox of the same runtime finds nothing of the attack (files,
# processes, environment). At the end: no containers, bundle dirs, cgroups, mounts or
# processes left, the key and config untouched, the image's rootfs unchanged, and a summary
# table attack x runtime -> status, contained.
#
# Environment: AISPD_BIN, AISP_BIN, AISP_AGENT (meson passes them); HOSTILE_ONLY=regex runs
# the matching attacks only; HOSTILE_RUNTIMES (default "runc runsc").
# The programs in attacks/ are sandbox inputs run by the image's /bin/sh (dash), not test
# scripts: no `set -e` there, each attempt is meant to fail and the program must go on.
# No `set -e`: a TAP suite goes on past a failing step (that test point says "not ok" and the
# remaining ones still run), and many steps test a command's exit status.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/node.sh"
need_nodes sha256sum

RUNTIMES=${HOSTILE_RUNTIMES:-runc runsc}
A=$here/attacks

# Canaries: content at the node's key path (the key itself) and config path (a comment line),
# in aispd's environment, and the skills' secrets (below). None may ever show up in a result.
CONF_CANARY=AISP-CONF-CANARY-$RANDOM$RANDOM
ENV_CANARY=AISP-ENV-CANARY-$RANDOM$RANDOM
HTTP_PORT=$(free_port)
redis_start
# Skills and secrets (issue 18): run_code tasks that mount "leaky" receive its secret (the
# operator allows it), the salesforce skill's secrets are the victim's; both values are canaries
# (and the attacker's base64), so redaction and isolation are checked like every other leak.
SKILLS=$TEST_TMP/skills
SECRETS=$TEST_TMP/secrets
LEAKY_CANARY=leaky-$RANDOM$RANDOM-token
VICTIM_CANARY=sk-victim-$RANDOM$RANDOM
LEAKY_B64=$(printf '%s' "$LEAKY_CANARY" | base64)
for s in leaky salesforce; do
	"$AISP" skill add "$here/../data/skills/$s" --store "$SKILLS" >/dev/null || bail "skill add $s"
done
install -d -m 0700 "$SECRETS" "$SECRETS/skills" "$SECRETS/skills/leaky" "$SECRETS/skills/salesforce"
printf '%s\n' "$LEAKY_CANARY" >"$SECRETS/skills/leaky/LEAKY_TOKEN"
printf '%s\n' "$VICTIM_CANARY" >"$SECRETS/skills/salesforce/SALESFORCE_API_KEY"
printf '%s\n' "00D5e0000012345XYZ" >"$SECRETS/skills/salesforce/SALESFORCE_ORG_ID"
chmod 600 "$SECRETS"/skills/*/*
SLOTS=2 POOL=$'runc/default/python = 1\nrunsc/default/python = 1' \
	EXTRA_SECTIONS="# canary: $CONF_CANARY
[skills]
store = $SKILLS
[secrets]
dir = $SECRETS
run_code_skills = leaky" node_conf h
KEY=$TEST_TMP/key/private.pem
CONF=$(node_dir h)/aispd.conf
KEY_CANARY=$(sed -n 2p "$KEY") # the base64 body of the private key
KEY_SUM=$(sha256sum <"$KEY")
CONF_SUM=$(sha256sum <"$CONF")
HOST_SHADOW=sha256:$(sha256sum </etc/shadow | cut -d' ' -f1)
[ -n "$KEY_CANARY" ] || bail "no key canary"

AISP_HOSTILE_CANARY=$ENV_CANARY node_start h
wait_for 30 node_registered h || bail "the node did not register: $(node_log h | tail -5)"
check "node up, /healthz 200" wait_for 60 prints 200 healthz "$HTTP_PORT"

# The attack table. One line per attack:
#   name | lang | limits (JSON) | args (JSON; @REDIS_PORT@ @HTTP_PORT@ @KEY@ @CONF@ @SHADOW@
#   are filled in: an array is the task's args, an object is merged into the task, e.g.
#   {"mode":"function","args":...}) | expected statuses | check: a jq expression over the
#   result document, with $o = stdout parsed as JSON (null when it is not), $rt = the runtime,
#   $files = the output file paths without "out/"; or "fn:NAME", a shell function given the
#   result file
# The program is attacks/<name>.<py|js|sh>; a name may carry a variant, NAME@VARIANT, which
# runs the same program (with other args). When a function during_NAME exists, it runs on the
# host while the task runs (from before the submission to the result), writing to the file it
# is given, which a check finds at <result file>.during.
ALL_OUT='(.stdout // "" | test("WROTE") | not)'
NOT_OK='([$o[] | select(. == "ok" or . == "created" or . == "read")] == [])'
# a return value the result cannot carry as it is: error with the reason, never ok without it
RV_ERR='(.status == "error" and .return_value == null and (.error // "" | test("^return value")))'
TABLE=$(
	cat <<'EOF'
fork_bomb           | shell      | {"timeout_s":5,"pids":64}           | []  | timeout ok   | .status == "timeout" or (.signal == 9 and (.error // "" | test("process limit"))) or (.status == "ok" and (.stderr | test("Cannot fork")))
thread_bomb         | python     | {"timeout_s":10,"pids":64,"memory_mb":256} | [] | ok oom timeout | true
memory_bomb         | python     | {"timeout_s":30,"memory_mb":64}     | []  | oom          | .exit_code == null
disk_fill_workspace | python     | {"timeout_s":30,"workspace_mb":16}  | []  | ok           | (.stdout | test("^(ENOSPC|EFBIG) after 1[0-9] MiB"))
disk_fill_tmp       | python     | {"timeout_s":30,"workspace_mb":16}  | []  | ok           | (.stdout | test("^(ENOSPC|EFBIG) after 1[0-9] MiB"))
inode_exhaustion    | python     | {"timeout_s":6,"workspace_mb":8}    | []  | ok timeout   | true
stdout_flood        | python     | {"timeout_s":30,"stdout_bytes":65536} | [] | output_limit | .stdout_truncated and (.stdout | length) == 65536
stderr_flood        | shell      | {"timeout_s":30,"stderr_bytes":65536} | [] | output_limit | .stderr_truncated and (.stderr | length) <= 65536
infinite_loop       | javascript | {"timeout_s":2}                     | []  | timeout      | .usage.wall_ms < 20000
sleep_timeout       | shell      | {"timeout_s":2}                     | []  | timeout      | .usage.wall_ms < 20000 and (.stdout | test("never") | not)
ignore_sigterm      | python     | {"timeout_s":2}                     | []  | timeout      | .usage.wall_ms < 20000
tcp_redis           | python     | {"timeout_s":30}                    | ["@REDIS_PORT@","@HTTP_PORT@"] | ok | ($o.redis | startswith("connected") | not) and ($o.http | startswith("connected") | not)
tcp_loopback        | python     | {"timeout_s":60}                    | []  | ok           | ([$o[] | select(. == "connected")] == [])
net_isolation       | python     | {"timeout_s":30}                    | []  | ok           | $o.ifaces == ["lo"] and $o.routes4 == [] and $o.routes6 == [] and $o.udp_route != "has a route"
dns_lookup          | python     | {"timeout_s":60}                    | []  | ok           | .exit_code == 0 and $o["aisp-hostile.invalid"] == "gaierror" and $o["example.com"] == "gaierror"
raw_socket          | python     | {"timeout_s":30}                    | []  | ok           | NOT_OK
netlink_socket      | python     | {"timeout_s":30}                    | []  | ok           | $o.links == ["lo"] and $o.newlink != "created"
read_node_files     | python     | {"timeout_s":30}                    | ["@KEY@","@CONF@"] | ok | $o["@KEY@"] == "ENOENT" and $o["@CONF@"] == "ENOENT"
read_proc1_environ  | python     | {"timeout_s":30}                    | []  | ok           | .exit_code == 0
read_shadow         | python     | {"timeout_s":30}                    | ["@SHADOW@"] | ok  | ([$o[] | select(. == "@SHADOW@")] == [])
write_rootfs        | shell      | {"timeout_s":30}                    | []  | ok           | .stdout == "written: 0\n"
write_proc_sys      | shell      | {"timeout_s":30}                    | []  | ok           | .stdout == "written: 0\n"
write_sys           | shell      | {"timeout_s":30}                    | []  | ok           | .stdout == "written: 0\n"
setuid              | python     | {"timeout_s":30}                    | []  | ok           | $o.setuid != "ok" and $o.setgid != "ok" and $o.setgroups != "ok" and $o.setresuid != "ok" and $o.euid == 65534 and $o.no_new_privs == 1
unshare             | python     | {"timeout_s":30}                    | []  | ok           | $rt == "runsc" or NOT_OK
mount               | python     | {"timeout_s":30}                    | []  | ok           | NOT_OK
ptrace              | python     | {"timeout_s":30}                    | []  | ok           | $o.attach_pid1 != "ok" and $o.seize_pid1 != "ok" and $o.proc1_mem != "read"
bpf                 | python     | {"timeout_s":30}                    | []  | ok           | NOT_OK
keyctl              | python     | {"timeout_s":30}                    | []  | ok           | NOT_OK
io_uring            | python     | {"timeout_s":30}                    | []  | ok           | $rt == "runsc" or NOT_OK
kill_all            | python     | {"timeout_s":30}                    | []  | ok           | .exit_code == 0 and (.stdout | startswith("survived"))
signal_pid1         | python     | {"timeout_s":30}                    | []  | ok           | .exit_code == 0 and $o.pid1_state != null
close_stdout        | python     | {"timeout_s":30}                    | []  | ok           | .exit_code == 5 and .stdout == "before close\n"
exit_byte           | python     | {"timeout_s":30}                    | []  | ok           | .exit_code == 7 and .stdout == "before the byte\n"
binary_garbage      | python     | {"timeout_s":30}                    | []  | ok           | fn:check_garbage
fake_frames         | python     | {"timeout_s":30}                    | []  | ok           | .exit_code == 3 and .files == [] and .stdout_b64 != null and .stderr_b64 != null
proxy_channel       | python     | {"timeout_s":60}                    | []  | ok           | .exit_code == 0 and $o.no_services == "refused" and $o.flood == 500 and $o.inherited == false and $o.write_response_end == "EBADF" and ($o.garbage | test("not a proxy request frame")) and $o.after == "EPIPE"
out_symlinks        | python     | {"timeout_s":30}                    | ["@KEY@","@CONF@"] | ok | $files == ["real.txt"]
out_fifo            | python     | {"timeout_s":30}                    | []  | ok           | $files == ["real.txt"] and .usage.wall_ms < 20000
out_devices         | python     | {"timeout_s":30}                    | []  | ok           | $files == ["real.txt"] and ($rt == "runsc" or (.stdout | test(" ok") | not))
out_dotdot          | python     | {"timeout_s":30}                    | []  | ok           | $files == ([".hidden", "....", "..a", "a..b", ". .", ".../x../f", "back\\slash"] | sort)
out_many_files      | python     | {"timeout_s":60}                    | []  | ok           | .files_truncated and (.files | length) <= 100 and (.files | length) > 0
forge_agent_frames  | python     | {"timeout_s":30}                    | []  | ok           | .exit_code == 0 and $o.forge != "written" and ((.stdout + (.error // "")) | test("FORGED") | not)
leave_residue       | shell      | {"timeout_s":30}                    | []  | ok           | .stdout == "left residue\n"
kernel_quotas       | python     | {"timeout_s":60}                    | ["4"] | ok         | fn:check_quotas
socket_families     | python     | {"timeout_s":30}                    | []  | ok           | ([$o.created | keys[] | tonumber] - [1, 2, 10, 16]) == [] and ([$o.pairs | keys[] | tonumber] - [1]) == [] and $o.vsock_bind != "bound"
out_link_dir@etc    | python     | {"timeout_s":30}                    | ["/etc"] | ok      | .files == [] and (.stdout | startswith("out -> /etc"))
out_link_dir@proc   | python     | {"timeout_s":30}                    | ["/proc/self"] | ok | .files == []
out_link_dir@aisp   | python     | {"timeout_s":30}                    | ["/.aisp"] | ok    | .files == []
agent_view          | python     | {"timeout_s":30}                    | []  | ok           | fn:check_agent_view
return_values@dup   | python     | {"timeout_s":30}                    | {"mode":"function","args":{"k":"dup"}} | error | RV_ERR
return_values@nul   | python     | {"timeout_s":30}                    | {"mode":"function","args":{"k":"nul"}} | error | RV_ERR
return_values@deep  | python     | {"timeout_s":30}                    | {"mode":"function","args":{"k":"deep"}} | error | RV_ERR and (.error | test("nests 32 levels"))
return_values@surrogate | python | {"timeout_s":30}                    | {"mode":"function","args":{"k":"surrogate"}} | error | RV_ERR
return_values@garbage | python   | {"timeout_s":30}                    | {"mode":"function","args":{"k":"garbage"}} | error | RV_ERR and (.error | test("not JSON"))
return_values@js-nul | javascript | {"timeout_s":30}                   | {"mode":"function","args":{"k":"nul"}} | error | RV_ERR
return_values@js-deep | javascript | {"timeout_s":30}                  | {"mode":"function","args":{"k":"deep"}} | error | RV_ERR
return_values@js-surrogate | javascript | {"timeout_s":30}             | {"mode":"function","args":{"k":"surrogate"}} | error | RV_ERR
result_caps         | python     | {"timeout_s":60}                    | []  | ok           | .files_truncated and ([.files[].path | length] | max // 0) <= 255 and ((.stdout_b64 // .stdout) != null)
secret_print        | python     | {"timeout_s":30}                    | {"mount_skills":["leaky"]} | ok | (.stdout | split("\n")[0] | fromjson | .have) and (.stdout | test("raw [*]{3}\nb64 [*]{3} [*]{3}\nb64-embedded [^\n]*[*]{3}")) and (.stderr | test("hex [*]{3} [*]{3}"))
secret_other        | python     | {"timeout_s":30}                    | {"mount_skills":["leaky"]} | ok | $o.env == null and $o.skills == ["leaky"] and ([$o.files[] | select(startswith("/.aisp/skills/leaky/") | not)] == [])
skills_write        | python     | {"timeout_s":30}                    | {"mount_skills":["leaky"]} | ok | ([$o | to_entries[] | select(.key != "listing" and .value == "ok")] == []) and $o.listing == ["leaky"]
out_first_by_path   | python     | {"timeout_s":170}                   | []  | ok           | .files_truncated and [.files[].path] == [range(100) | "f" + ((1000000 + .) | tostring | .[1:])]
EOF
)

# Known bugs (reported, not fixed here): a failure of these is printed as "not ok ... # TODO"
# (TAP: an expected failure) with the reason, and shown in the summary.
declare -A KNOWN=(
)
# fail_or_todo NAME/RT DESCRIPTION [DIAGNOSTIC...]
fail_or_todo() {
	local key=$1
	shift
	if [ -n "${KNOWN[$key]:-}" ]; then
		not_ok_todo "known bug: ${KNOWN[$key]}" "$@"
	else
		not_ok "$@"
	fi
}

# kernel_quotas: root on the host takes one of each per-user count, over and over, while the
# attack holds all it could get; every failure is written to the file ($1) once.
during_kernel_quotas() {
	exec /usr/bin/python3 - "$1" <<'PY'
import ctypes, errno, os, signal, sys, time
libc = ctypes.CDLL(None, use_errno=True)
rt = ctypes.CDLL("librt.so.1", use_errno=True)
out = open(sys.argv[1], "a", buffering=1)
seen = set()
def fail(what):
    if what not in seen:
        seen.add(what)
        out.write("%s %s\n" % (what, errno.errorcode.get(ctypes.get_errno(), "?")))
class A(ctypes.Structure):
    _fields_ = [("f", ctypes.c_long), ("m", ctypes.c_long), ("s", ctypes.c_long),
                ("c", ctypes.c_long), ("p", ctypes.c_long * 4)]
class V(ctypes.Union):
    _fields_ = [("i", ctypes.c_int), ("p", ctypes.c_void_p)]
sig = signal.SIGRTMIN + 1
signal.pthread_sigmask(signal.SIG_BLOCK, [sig])
name = b"/aisp-hostile-%d" % os.getpid()
while True:
    fd = libc.inotify_init1(0)
    if fd < 0:
        fail("inotify_init1")
    else:
        if libc.inotify_add_watch(fd, b"/tmp", 2) < 0:
            fail("inotify_add_watch")
        os.close(fd)
    fd = libc.fanotify_init(0x200, 0)
    if fd < 0:
        fail("fanotify_init")
    else:
        os.close(fd)
    q = rt.mq_open(name, os.O_CREAT | os.O_RDWR, 0o600, ctypes.byref(A(0, 10, 8192, 0)))
    if q < 0:
        fail("mq_open")
    else:
        os.close(q)
        rt.mq_unlink(name)
    if libc.sigqueue(os.getpid(), sig, V(1)) < 0:
        fail("sigqueue")
    else:
        signal.sigtimedwait([sig], 0)
    time.sleep(0.05)
PY
}
check_quotas() { # the host's root never ran short while the attack held what it could get
	local failed
	failed=$(cat "$1.during" 2>/dev/null)
	[ -z "$failed" ] || { echo "# host root ran short: $failed"; return 1; }
	# (gVisor makes user namespaces of its own, inside the sentry: nothing the host counts)
	jq -e '(.stdout | fromjson) as $o | $o.inotify_instances[0] > 0 and $o.mqueues[0] > 0
		and $o.pending_signals[0] > 0 and (.runtime == "runsc" or $o.unshare_user != "ok")
		and $o.add_key != "ok"' "$1" >/dev/null
}
check_agent_view() { # what the program can read of the agent holds nothing; its pipes stay shut
	# (fd2_open "devnull": runsc lets it open the agent's stderr, which is /dev/null)
	jq -e '(.stdout | fromjson) as $o | $o.environ_text == "" and $o.sigstop != "ok" and
		$o.prlimit != "ok" and $o.mem != "ok" and ($o.mem | length) < 16 and
		($o.root | type) == "string" and $o.fd0_open != "ok" and $o.fd1_open != "ok" and
		$o.fd2_open != "ok"' "$1" >/dev/null
}

check_garbage() { # the stdout bytes are exactly what the program wrote
	local got want
	got=$(jq -r '.stdout_b64' "$1" | base64 -d | sha256sum | cut -d' ' -f1)
	want=$(python3 -c 'import hashlib,random; d=random.Random(7).randbytes(200000)+b"\x00\xff\xfe\x1b[2J\x1b]0;pwned\x07"; print(hashlib.sha256(d).hexdigest())')
	[ "$got" = "$want" ]
}

ext() { case $1 in python) echo py ;; javascript) echo js ;; shell) echo sh ;; esac; }
subst() {
	sed -e "s|@REDIS_PORT@|$REDIS_PORT|g" -e "s|@HTTP_PORT@|$HTTP_PORT|g" -e "s|@KEY@|$KEY|g" \
		-e "s|@CONF@|$CONF|g" -e "s|@SHADOW@|$HOST_SHADOW|g"
}
# canaries FILE: prints the canaries found anywhere in the result (decoded outputs and files)
canaries() {
	jq -r '[.stdout, .stderr, .error, .logs_preview, (.logs // [] | tostring), (.stdout_b64 // "" | @base64d), (.stderr_b64 // "" | @base64d),
		(.files[]? | .path, (.content_b64 | @base64d))] | map(select(. != null)) | join("\n")' "$1" |
		grep -oF -e "$KEY_CANARY" -e "$CONF_CANARY" -e "$ENV_CANARY" -e "$HOST_SHADOW" \
			-e "$LEAKY_CANARY" -e "$LEAKY_B64" -e "$VICTIM_CANARY" | sort -u
}

declare -A SUMMARY=()
NAMES=()
seq=0
probe() { # probe RT: a fresh sandbox of RT finds nothing left; prints the probe's JSON on failure
	local id=probe-$NODE_TAG-$seq
	run_task "$id" python "$here/probe_clean.py" "$1" '{"timeout_s":30}' '{}' 120 || {
		echo "no probe result"
		return 1
	}
	[ "$(rfield "$id" '.stdout | fromjson | .clean')" = true ] || {
		rfield "$id" '.status + " " + .stdout + .stderr'
		return 1
	}
}

while IFS='|' read -r name lang limits args expect chk; do
	name=$(echo $name)
	[ -n "$name" ] || continue
	[[ "$name" =~ ${HOSTILE_ONLY:-.} ]] || continue
	lang=$(echo $lang)
	limits=$(echo "$limits" | subst)
	args=$(echo "$args" | subst)
	chk=$(echo "$chk" | sed -e 's/^ *//' | subst)
	chk=${chk//NOT_OK/$NOT_OK}
	chk=${chk//RV_ERR/$RV_ERR}
	file=$A/${name%%@*}.$(ext "$lang")
	NAMES+=("$name")
	for rt in $RUNTIMES; do
		seq=$((seq + 1))
		id=h-${name//@/.}-$rt-$NODE_TAG
		what="$name on $rt"
		extra=$(jq -nc --argjson a "$args" 'if ($a | type) == "object" then $a elif $a == [] then {} else {args: $a} end')
		res=$TEST_TMP/result-$name-$rt.json
		during=
		if declare -F "during_${name%%@*}" >/dev/null; then
			"during_${name%%@*}" "$res.during" &
			during=$!
		fi
		run_task "$id" "$lang" "$file" "$rt" "$limits" "$extra" 180
		got=$?
		[ -n "$during" ] && { kill "$during"; wait "$during"; } 2>/dev/null
		if [ $got != 0 ]; then
			not_ok "$what: a result" "$(node_log h | tail -5)"
			SUMMARY[$name/$rt]="none no no"
			continue
		fi
		result "$id" >"$res"
		st=$(jq -r .status "$res")
		contained=yes
		stok=yes
		# 1. status
		if [[ " $(echo $expect) " == *" $st "* ]]; then
			ok "$what: status $st (expected: $(echo $expect))"
		else
			stok=no
			fail_or_todo "$name/$rt" "$what: status $st, expected one of: $(echo $expect)" "$(jq -c '{exit_code,signal,error,stdout:(.stdout // "")[:300],stderr:(.stderr // "")[:300]}' "$res")"
		fi
		# 2. the attack's own check
		if [[ "$chk" == fn:* ]]; then
			"${chk#fn:}" "$res"
		else
			jq -e --arg rt "$rt" "(.stdout // \"\" | try fromjson catch null) as \$o |
				[.files[]?.path | sub(\"^out/\"; \"\")] as \$files | $chk" "$res" >/dev/null
		fi
		if [ $? = 0 ]; then
			ok "$what: contained ($(jq -r '(.stdout // ("b64:" + (.stdout_b64 // "" | .[:40])))[:160] | gsub("\n"; " ")' "$res"))"
		else
			contained=no
			fail_or_todo "$name/$rt" "$what: check failed: $chk" "$(jq -c '{status,exit_code,signal,error,stdout:(.stdout // "")[:600],stderr:(.stderr // "")[:300],files:[.files[]?.path][:10],files_truncated}' "$res")"
		fi
		# 3. canaries
		found=$(canaries "$res")
		if [ -z "$found" ]; then
			ok "$what: no canary (key, config, node environment, host shadow) in the result"
		else
			contained=no
			not_ok "$what: canary leaked into the result" "$found"
		fi
		# 4. the project's own tools read and verify what the node published
		if vout=$("$AISP" verify "$res" --redis "127.0.0.1:$REDIS_PORT" 2>&1); then
			ok "$what: the result parses and verifies (aisp verify)"
		else
			contained=no
			not_ok "$what: aisp verify fails on the published result" "$vout"
		fi
		# 5. the node
		if node_alive h && wait_for 30 prints 200 healthz "$HTTP_PORT"; then
			ok "$what: node alive, /healthz 200"
		else
			contained=no
			not_ok "$what: node alive, /healthz 200" "$(curl -s "http://127.0.0.1:$HTTP_PORT/healthz")" "$(node_log h | tail -5)"
		fi
		# 6. the next task is clean
		seq=$((seq + 1))
		if out=$(probe "$rt"); then
			ok "$what: the next task ($rt) finds nothing left"
		else
			contained=no
			not_ok "$what: the next task finds residue" "$out"
		fi
		SUMMARY[$name/$rt]="$st $stok $contained"
	done
done <<<"$TABLE"

# After the suite: the node stops cleanly and leaves nothing.
check "node drains and exits 0 on SIGTERM" node_stop h
left=$(residue h)
if [ -z "$left" ]; then
	ok "no containers, bundle dirs, cgroups, mounts or processes left"
else
	not_ok "residue after the suite" "$left"
fi
is "the node key is untouched" "$(sha256sum <"$KEY")" "$KEY_SUM"
is "the node config is untouched" "$(sha256sum <"$CONF")" "$CONF_SUM"
# what the write attacks tried to create, in every unpacked rootfs of the store
planted=$(ls -d "$STORE"/rootfs/*/{etc/aisp-hostile,usr/bin/aisp-hostile,aisp-hostile,aisp-hostile-dir,root/x} 2>/dev/null)
is "nothing written into the image store's rootfs" "$planted" ""
check "no residue marker in any host process" bash -c "! grep -qs 'AISP-RESIDUE-MAR[K]' /proc/[0-9]*/cmdline"

# The summary: attack x runtime -> status, contained.
{
	printf '%-26s' attack
	for rt in $RUNTIMES; do printf ' %-34s' "$rt: status, contained"; done
	echo
	n_ok=0
	n_st=0
	n_all=0
	for name in "${NAMES[@]}"; do
		printf '%-26s' "$name"
		for rt in $RUNTIMES; do
			read -r st sok c <<<"${SUMMARY[$name/$rt]:-none no no}"
			[ "$sok" = yes ] || st="$st(!)"
			[ -n "${KNOWN[$name/$rt]:-}" ] && [ "$sok$c" != yesyes ] && c="$c (known bug)"
			printf ' %-34s' "$st, $c"
			n_all=$((n_all + 1))
			[ "${c%% *}" = yes ] && n_ok=$((n_ok + 1))
			[ "$sok" = yes ] && n_st=$((n_st + 1))
		done
		echo
	done
	echo "(!) = status not among the expected ones"
	echo "${#NAMES[@]} attacks x $(echo $RUNTIMES | wc -w) runtimes = $n_all runs: $n_ok contained, $n_st with the expected status"
	for k in "${!KNOWN[@]}"; do echo "known bug $k: ${KNOWN[$k]}"; done
} | sed 's/^/# /'
done_testing
