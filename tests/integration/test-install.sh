#!/usr/bin/env bash
# A complete install, and the README's operator section walked through (issue 15 item 8 and
# "Done when"), as far as it goes without systemd as PID 1. TAP output.
#
# It follows the commands of README.md's "For node operators" block, each checked to be there
# verbatim, with these substitutions: the prefix is a temp dir (meson setup --prefix=$T/usr
# --sysconfdir=$T/etc), the machine's image store is used read-only (`aisp image ls` instead
# of `aisp image build`), the example config gets the temp dir's paths and a redis-server of
# the test's own, and `systemctl enable --now aispd` becomes the installed unit's own
# ExecStartPre and ExecStart lines, run with what of the unit works without systemd: its
# CapabilityBoundingSet, NoNewPrivileges and UMask (setpriv). Then a task through
# `aisp submit --wait`, `aisp nodes`, /healthz, and SIGTERM (systemctl stop). On the way it
# checks the installed files, `systemd-analyze verify` and `security` of the installed units,
# the man pages (rendered with man -l, and each names every command or key its program has),
# and the bash completion. (-e is off on purpose: a TAP suite goes on after a failing check.)
set -uo pipefail
. "$(dirname "$0")/../lib/node.sh"
SRC=${AISP_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
need_nodes meson setpriv systemd-analyze man bash
redis_start
T=$TEST_TMP/root
P=$T/usr
mkdir -p "$T"

block=$(awk '/^## For node operators/ {f = 1} f && /^```sh/ {g = 1; next} g && /^```/ {exit} g' "$SRC/README.md")
# readme LINE: the README's operator block has LINE (a command, before its comment)
readme() {
	if printf '%s\n' "$block" | sed 's/[[:space:]]*#.*//' | grep -qxF -- "$1"; then
		ok "README: $1"
	else
		not_ok "README: $1" "the operator block of README.md no longer says this; update the test"
	fi
}

# ---------------------------------------------------------------- install
readme "./deploy/install-deps.sh && ./deploy/prepare-host.sh"
(cd "$SRC" && ./deploy/install-deps.sh >"$TEST_TMP/deps.out" 2>&1 && ./deploy/prepare-host.sh >>"$TEST_TMP/deps.out" 2>&1)
is "install-deps and prepare-host succeed" "$?" 0
readme "meson setup build --prefix=/usr && meson install -C build"
if meson setup "$T/build" "$SRC" --prefix="$P" --sysconfdir="$T/etc" -Dtests=false >"$TEST_TMP/setup.out" 2>&1 &&
	meson install -C "$T/build" >"$TEST_TMP/install.out" 2>&1; then
	ok "meson setup and meson install into a prefix"
else
	bail "meson install failed: $(tail -20 "$TEST_TMP/setup.out" "$TEST_TMP/install.out")"
fi
unit=$P/lib/systemd/system/aispd.service
for f in "$P/sbin/aispd" "$P/bin/aisp" "$P/sbin/aisp-gateway" "$P/libexec/aisp/aisp-agent" \
	"$unit" "$P/lib/systemd/system/aisp-gateway.service" \
	"$P/share/doc/aisp/README.md" "$P/share/doc/aisp/PROTOCOL.md" "$P/share/doc/aisp/ATTESTATION.md" \
	"$P/share/doc/aisp/gateway/README.md" "$P/share/doc/aisp/examples/aispd.conf" \
	"$P/share/doc/aisp/examples/redis.conf" "$P/share/doc/aisp/examples/aisp-gateway.conf" \
	"$P/share/man/man1/aisp.1" "$P/share/man/man5/aispd.conf.5" "$P/share/man/man8/aispd.8" \
	"$P/share/bash-completion/completions/aisp" "$P/share/aisp/images/build-image.sh"; do
	check "installed: ${f#"$T"/}" test -s "$f"
done
check "the example config is the repository's" cmp -s "$P/share/doc/aisp/examples/aispd.conf" "$SRC/deploy/aispd.conf.example"
is "the unit runs the installed aispd with the installed config" \
	"$(grep '^ExecStart=' "$unit")" "ExecStart=$P/sbin/aispd --config $T/etc/aisp/aispd.conf"

# ---------------------------------------------------------------- the units
export MANPATH=$P/share/man
for u in aispd aisp-gateway; do
	if out=$(systemd-analyze verify "$P/lib/systemd/system/$u.service" 2>&1) && [ -z "$out" ]; then
		ok "systemd-analyze verify $u.service: clean"
	else
		not_ok "systemd-analyze verify $u.service: clean" "$out"
	fi
done
docs=$(sed -n 's/^Documentation=//p' "$unit" | tr ' ' '\n')
for d in $docs; do
	case $d in
	file://*) check "the unit's Documentation= $d is installed" test -s "${d#file://}" ;;
	man:*)
		n=${d#man:}
		sec=${n#*(}
		check "the unit's Documentation= $d is installed" man -w "${sec%)}" "${n%%(*}"
		;;
	esac
done
exposure=$(systemd-analyze security --offline=true "$unit" 2>/dev/null | sed -n 's/.*Overall exposure level for aispd.service: \([0-9.]*\).*/\1/p')
readme_exposure=$(sed -n 's/.*`systemd-analyze security aispd` rates the unit \([0-9.]*\).*/\1/p' "$SRC/README.md")
is "systemd-analyze security: the exposure README.md states ($readme_exposure)" "$exposure" "$readme_exposure"

# ---------------------------------------------------------------- man pages and completion
render() { MANWIDTH=100 man --warnings -l "$1" 2>"$TEST_TMP/man.err"; }
for page in man1/aisp.1 man5/aispd.conf.5 man8/aispd.8; do
	text=$(render "$P/share/man/$page")
	if [ -n "$text" ] && [ ! -s "$TEST_TMP/man.err" ] && [[ "$text" == *NAME* ]] && [[ "$text" == *"SEE ALSO"* ]]; then
		ok "man -l $page renders without warnings"
	else
		not_ok "man -l $page renders without warnings" "$(head -c 2000 "$TEST_TMP/man.err")"
	fi
done
page=$(render "$P/share/man/man1/aisp.1")
missing=$(for c in $("$P/bin/aisp" --help 2>&1 | sed -nE 's/^  ([a-z][a-z-]*)  .*/\1/p'); do
	grep -qE "^ {7}$c( |$)" <<<"$page" || echo "$c"
done)
is "aisp(1) describes every command of aisp --help" "$missing" ""
page=$(render "$P/share/man/man8/aispd.8")
missing=$(for o in $("$P/sbin/aispd" --help 2>&1 | grep -oE -- '--[a-z-]+' | sort -u); do
	grep -qE -- "^ {7}$o( |$)" <<<"$page" || echo "$o"
done)
is "aispd(8) describes every option of aispd --help" "$missing" ""
page=$(render "$P/share/man/man5/aispd.conf.5")
missing=$(grep -oE '^;?[a-z_/]+ =' "$SRC/deploy/aispd.conf.example" | tr -d ';=' | while read -r k; do
	grep -qE "^ +$k( |$)" <<<"$page" || echo "$k" # a key's entry, or a line of an example
done)
is "aispd.conf(5) describes every key of the example config" "$missing" ""
comp=$(bash --norc --noprofile -c '
	. "$1/share/bash-completion/completions/aisp" || exit 1
	complete -p aisp >/dev/null || exit 1
	PATH=$1/bin:$PATH
	c() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _aisp; echo "${COMPREPLY[*]}"; }
	c aisp su; c aisp image ""; c aisp submit --wai; c aisp run --lang j' _ "$P" 2>&1)
is "the bash completion loads and completes commands, subcommands, options and values" \
	"$comp" $'submit\nbuild ls export import\n--wait --wait-timeout\njavascript'

# ---------------------------------------------------------------- key, config, check
readme "aisp image build default"
check "the sandbox image is in the store (the machine's, used read-only)" \
	bash -c "'$P/bin/aisp' image ls --store '$STORE' | grep -q '^default '"
readme "aisp keygen --out /etc/aisp/node-key"
"$P/bin/aisp" keygen --out "$T/etc/aisp/node-key" >/dev/null
is "the node key is 0600" "$(stat -c %a "$T/etc/aisp/node-key/private.pem")" 600
readme "cp /usr/share/doc/aisp/examples/aispd.conf /etc/aisp/aispd.conf"
conf=$T/etc/aisp/aispd.conf
cp "$P/share/doc/aisp/examples/aispd.conf" "$conf"
hport=$(free_port)
sed -i -e "s|^;id = .*|id = $(node_id readme)|" -e "s|^state_dir = .*|state_dir = $T/var/lib/aisp/state|" \
	-e "s|^run_dir = .*|run_dir = $T/run/aisp|" -e "s|^key = .*|key = $T/etc/aisp/node-key/private.pem|" \
	-e "s|^agent = .*|agent = $P/libexec/aisp/aisp-agent|" -e "s|^address = .*|address = 127.0.0.1:$REDIS_PORT|" \
	-e "s|^store = .*|store = $STORE|" -e "s|^listen = .*|listen = 127.0.0.1:$hport|" "$conf"
# The directories systemd makes for the unit (StateDirectory=, RuntimeDirectory=, their modes)
# below ones like /var/lib and /run; runc's user namespace traverses to the run dir.
chmod 0711 "$T"
install -d -m 0755 "$T/var/lib" "$T/run"
install -d -m "$(sed -n 's/^StateDirectoryMode=//p' "$unit")" "$T/var/lib/aisp"
install -d -m "$(sed -n 's/^RuntimeDirectoryMode=//p' "$unit")" "$T/run/aisp"
mkdir -p "$(node_dir readme)"
ln -s "$T/run/aisp" "$(node_run_dir readme)" # residue checks and the cleanup find it there
readme "aispd --check"
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit" | tr ' ' '\n' | sed 's/^CAP_//' | tr 'A-Z' 'a-z' | paste -sd,)
caps="-all,+${caps//,/,+}"
umask_=$(sed -n 's/^UMask=//p' "$unit")
# unit LINE-NAME: the installed unit's ExecStartPre / ExecStart command line
unit_cmd() { sed -n "s/^$1=//p" "$unit"; }
# as_unit COMMAND...: execs COMMAND under the unit's UMask, bounding set and NoNewPrivileges
# (call it in a subshell: its pid is then COMMAND's, so that a signal reaches aispd itself)
as_unit() { umask "$umask_" && exec setpriv --no-new-privs --bounding-set "$caps" "$@"; }
# shellcheck disable=SC2046
(as_unit $(unit_cmd ExecStartPre)) >"$TEST_TMP/check.out" 2>&1
rc=$?
if [ $rc = 0 ] && grep -q "runtime runsc: a sandbox was created, ran a task and was destroyed" "$TEST_TMP/check.out" &&
	grep -q "runtime runc: a sandbox was created, ran a task and was destroyed" "$TEST_TMP/check.out"; then
	ok "the unit's ExecStartPre (aispd --check) passes under its bounding set, NoNewPrivileges, UMask $umask_"
else
	not_ok "the unit's ExecStartPre (aispd --check) passes under the unit's limits" "exit $rc" "$(cat "$TEST_TMP/check.out")"
fi

# ---------------------------------------------------------------- start, a task, stop
readme "systemctl daemon-reload && systemctl enable --now aispd"
# shellcheck disable=SC2046
(as_unit $(unit_cmd ExecStart)) >"$TEST_TMP/aispd.log" 2>&1 &
apid=$!
track_pid "$apid"
if wait_for 60 prints 200 healthz "$hport"; then
	ok "aispd runs as the unit's ExecStart and reports healthy"
else
	not_ok "aispd runs as the unit's ExecStart" "$(tail -20 "$TEST_TMP/aispd.log")"
fi
readme "aisp submit --wait -c 'print(1+1)'"
out=$("$P/bin/aisp" submit --wait --wait-timeout 120 -c 'print(1+1)' 2>"$TEST_TMP/submit.err")
rc=$?
is "aisp submit --wait -c 'print(1+1)' prints 2 (exit $rc)" "$out" 2
readme "aisp nodes"
check "aisp nodes lists the node" bash -c "'$P/bin/aisp' nodes | grep -q '^$(node_id readme) '"
kill -TERM "$apid"
wait "$apid"
is "SIGTERM (systemctl stop): aispd drains and exits 0" "$?" 0
is "... and deregisters" "$(R SISMEMBER aisp:nodes "$(node_id readme)")" 0
is "nothing left behind" "$(residue readme)" ""

done_testing
