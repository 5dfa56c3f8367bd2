#!/bin/bash
# Integration test of the image store: aisp image build / ls / export / import against the real
# mmdebstrap and umoci, checks of the default image's rootfs (hardening, shell tools, time
# zones), and of the datascience image, whose libraries and charts are tried in real runc and
# runsc sandboxes (aisp run). TAP output.
#
# The default store (/var/lib/aisp/images, or $AISP_IMAGE_CACHE) is the cache: the images are
# built there once and reused by later runs. Every run builds each image once more, into a
# temporary store with --force, to check that the build is reproducible (same manifest digest
# as the cached one, as long as the Debian archive has the same package versions).
#
# Environment: AISP_BIN (the aisp binary; meson passes it), AISP_IMAGES_DIR (the scripts).
# No `set -e`: a TAP suite goes on past a failing step (that test point says "not ok" and the
# remaining ones still run), and many steps test a command's exit status.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
TEST_TMP_PARENT=/var/tmp # image tarballs and rootfs copies: not a tmpfs
. "$here/../lib/host.sh"

images=${AISP_IMAGES_DIR:-$here/../../images}
CACHE=${AISP_IMAGE_CACHE:-/var/lib/aisp/images}
need_root "mmdebstrap, chroot, umoci unpack"
command -v "$AISP" >/dev/null || bail "no aisp binary ($AISP); set AISP_BIN"

tmp=$TEST_TMP
export AISP_IMAGE_STORE=$tmp/unused-default-store

# 1. Build into the cache (a no-op when it already has the image).
out=$("$AISP" image build default --store "$CACHE" 2>&1) || bail "aisp image build default: $out"
echo "# $out"
digest=$(awk '{print $3}' <<<"$out")
[[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || bail "no digest in \"$out\""
ok "build default into the cache store $CACHE: $digest"

out=$("$AISP" image build default --store "$CACHE" 2>&1)
if [[ $out == "image default $digest (cached)" ]]; then
	ok "a second build is skipped (cached)"
else
	not_ok "a second build is skipped (cached)" "$out"
fi

# 2. Reproducible: a fresh build into an empty store gives the same manifest digest.
start=$(date +%s)
out=$("$AISP" image build default --force --store "$tmp/fresh" 2>&1)
fresh=$(awk '{print $3}' <<<"$out")
if [[ $fresh == "$digest" ]]; then
	ok "rebuild with --force gives the same digest ($(($(date +%s) - start)) s)"
else
	not_ok "rebuild with --force gives the same digest" "cache: $digest" "fresh: $out" \
		"(a different digest is expected only when the Debian archive changed since the cache was built)"
fi

# 3. The store layout.
hex=${digest#sha256:}
check "names/default holds the digest" test "$(cat "$CACHE/names/default")" = "$digest"
check "the rootfs is unpacked at rootfs/<hex>/rootfs" test -d "$CACHE/rootfs/$hex/rootfs"
check "oci/index.json tags the manifest as default" test "$(jq -r --arg d "$digest" \
	'.manifests[] | select(.digest == $d) | .annotations["org.opencontainers.image.ref.name"]' \
	"$CACHE/oci/index.json")" = default

# 4. ls.
out=$("$AISP" image ls --store "$CACHE" 2>&1)
if grep -Eq "^default +$digest +[0-9.]+ MiB$" <<<"$out" && head -n 1 <<<"$out" | grep -Eq '^NAME +DIGEST +SIZE$'; then
	ok "ls shows NAME DIGEST SIZE: $(grep '^default ' <<<"$out" | awk '{print $3, $4}')"
else
	not_ok "ls shows NAME DIGEST SIZE" "$out"
fi
out=$("$AISP" image ls --store "$tmp/empty" 2>&1)
check "ls of an empty store prints only the header" test "$out" = "$(printf '%-24s %-71s %s' NAME DIGEST SIZE)"

# 5. The rootfs.
r=$CACHE/rootfs/$hex/rootfs
out=$(find "$r" -xdev -perm /6000 2>&1)
if [[ -z $out ]]; then ok "no setuid/setgid files"; else not_ok "no setuid/setgid files" "$out"; fi
out=$(find "$r/usr/bin" "$r/usr/sbin" \( -name 'dpkg*' -o -name 'apt*' \) -print 2>&1)
if [[ -z $out ]]; then ok "no apt/dpkg binaries"; else not_ok "no apt/dpkg binaries" "$out"; fi
check "no apt/dpkg state" test ! -e "$r/var/lib/dpkg" -a ! -e "$r/var/lib/apt" -a ! -e "$r/etc/apt"
check "no docs, man pages or locales" test ! -e "$r/usr/share/doc" -a ! -e "$r/usr/share/man" -a ! -e "$r/usr/share/locale"
check "uid 65534 is nobody" grep -q '^nobody:x:65534:65534:' "$r/etc/passwd"
check "gid 65534 is nogroup" grep -q '^nogroup:x:65534:' "$r/etc/group"
check "/bin/sh is dash" test "$(readlink -f "$r/bin/sh")" = "$(readlink -f "$r/usr/bin/dash")"
for d in workspace tmp proc dev sys .aisp; do
	check "/$d is an empty directory" test -d "$r/$d" -a ! -L "$r/$d" -a -z "$(ls -A "$r/$d")"
done
run()
{
	chroot --userspec=65534:65534 "$r" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/ "$@"
}
check "python3 runs (json hashlib os sys resource)" test "$(run python3 -c \
	'import json, hashlib, os, sys, resource; print(json.dumps([hashlib.sha256(b"x").hexdigest()[:8], os.getuid()]))')" \
	= '["2d711642", 65534]'
check "node runs" test "$(run node -e 'console.log(JSON.stringify([1 + 1, process.version.startsWith("v")]))')" = '[2,true]'
check "sh runs coreutils" test "$(run /bin/sh -c 'echo a b | wc -w')" = 2
# sh_check TOOL EXPECTED SCRIPT: SCRIPT (sh, in the image as nobody) prints EXPECTED.
sh_check()
{
	local got
	got=$(run /bin/sh -c "$3" 2>&1)
	if [[ $got == "$2" ]]; then
		ok "$1 runs in the image"
	else
		not_ok "$1 runs in the image" "script: $3" "expected: $2" "got: $got"
	fi
}
# shellcheck disable=SC2016 # the scripts are for the image's sh
{
	sh_check grep 1 'printf "a\nb\n" | grep -c b'
	sh_check sed aXc 'echo abc | sed s/b/X/'
	sh_check "awk (GNU awk)" "3 one 2" 'echo 1 2 | awk "{ print \$1 + \$2, gensub(/1/, \"one\", 1) }"'
	sh_check find /usr/bin/jq 'find /usr/bin -name jq'
	sh_check xargs 2 'xargs -n 1 -a /etc/group echo | wc -l' # (-a: no /dev/null in a chroot)
	sh_check diff 1,2c1,2 'diff /etc/group /etc/group && diff /etc/passwd /etc/group | head -n 1'
	sh_check gzip hi 'echo hi | gzip | gzip -d'
	sh_check bzip2 hi 'echo hi | bzip2 | bzip2 -d'
	sh_check xz hi 'echo hi | xz | xz -d'
	sh_check jq 3 "echo '{\"a\": [1, 2]}' | jq -c '.a | add'"
	sh_check bc .333 "echo 'scale=3; 1/3' | bc"
	sh_check "TZ=Europe/Paris date" "CET CEST" 'echo $(TZ=Europe/Paris date -d @1704067200 +%Z) $(TZ=Europe/Paris date -d @1720000000 +%Z)'
}
check "awk is GNU awk" test "$(readlink "$r/usr/bin/awk")" = gawk
check "python3 zoneinfo knows Europe/Paris" test "$(run python3 -c 'import datetime, zoneinfo
t = datetime.datetime(2024, 7, 1, 12, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))
print(t.tzname(), t.utcoffset())')" = "CEST 2:00:00"
size=$(du -sb "$r" | cut -f1)
if ((size < 160 * 1000 * 1000)); then
	ok "unpacked size $((size / 1024 / 1024)) MiB ($size bytes)"
else
	not_ok "unpacked size below 160 MB" "$size bytes"
fi

# 6. Export, then import into a fresh store.
out=$("$AISP" image export default "$tmp/default.tar" --store "$CACHE" 2>&1)
check "export default" test -s "$tmp/default.tar"
out=$("$AISP" image import "$tmp/default.tar" --store "$tmp/imported" 2>&1)
if [[ $out == "image default $digest" ]]; then
	ok "import prints the same digest"
else
	not_ok "import prints the same digest" "$out"
fi
check "the imported rootfs is unpacked" test -x "$tmp/imported/rootfs/$hex/rootfs/usr/bin/python3.11"
out=$("$AISP" image ls --store "$tmp/imported" 2>&1)
check "ls of the imported store" grep -Eq "^default +$digest " <<<"$out"
"$AISP" image export default "$tmp/again.tar" --store "$tmp/imported" >/dev/null 2>&1
check "export is reproducible (byte-identical tarballs)" cmp -s "$tmp/default.tar" "$tmp/again.tar"

# 7. A corrupted blob is refused, and the store is left as it was.
mkdir "$tmp/bad"
tar -xf "$tmp/default.tar" -C "$tmp/bad"
cfg=$(jq -r .config.digest "$tmp/bad/blobs/sha256/$hex")
cfg=${cfg#sha256:}
sed -i 's/65534:65534/0:0/' "$tmp/bad/blobs/sha256/$cfg"
tar -C "$tmp/bad" -cf "$tmp/bad.tar" oci-layout index.json blobs
out=$("$AISP" image import "$tmp/bad.tar" --store "$tmp/corrupt" 2>&1)
rc=$?
if [[ $rc -ne 0 && $out == *"blob sha256:$cfg is corrupt"* ]]; then
	ok "import of a corrupted blob fails: $out"
else
	not_ok "import of a corrupted blob fails with a clear message" "exit $rc: $out"
fi
check "the failed import added no name" test ! -e "$tmp/corrupt/names/default"

tar -C "$tmp/bad" -cf "$tmp/evil.tar" oci-layout index.json blobs --transform 's|^index.json|../index.json|'
out=$("$AISP" image import "$tmp/evil.tar" --store "$tmp/corrupt" 2>&1)
rc=$?
if [[ $rc -ne 0 && $out == *"unexpected member"* ]]; then
	ok "import of a tarball with a ../ member fails: $out"
else
	not_ok "import of a tarball with a ../ member fails" "exit $rc: $out"
fi

# 8. Names: symlinks in names/ are never followed; invalid names are refused.
ln -s default "$tmp/imported/names/evil"
out=$("$AISP" image ls --store "$tmp/imported" 2>&1)
rc=$?
if [[ $rc -ne 0 && $out == *"names: open evil"* && $out == *"default "* ]]; then
	ok "a symlink in names/ is refused"
else
	not_ok "a symlink in names/ is refused" "exit $rc: $out"
fi
rm -f "$tmp/imported/names/evil"
out=$("$AISP" image build ../etc --store "$tmp/x" 2>&1)
rc=$?
if [[ $rc -eq 2 && $out == *"invalid image name"* ]]; then
	ok "an invalid name is refused"
else
	not_ok "an invalid name is refused" "exit $rc: $out"
fi
out=$("$AISP" image export nosuch "$tmp/x.tar" --store "$CACHE" 2>&1)
rc=$?
if [[ $rc -ne 0 && $out == *"image nosuch is not in the store at $CACHE"* ]]; then
	ok "export of a missing image fails"
else
	not_ok "export of a missing image fails" "exit $rc: $out"
fi

# 9. An unwritable store fails early with a clear message.
out=$("$AISP" image build default --force --store /proc/aisp-images 2>&1)
rc=$?
if [[ $rc -ne 0 && $out == *"image store /proc/aisp-images is not writable"* ]]; then
	ok "build into an unwritable store fails: $out"
else
	not_ok "build into an unwritable store fails clearly" "exit $rc: $out"
fi
mkdir -p "$tmp/ro"
if mount --bind -o ro "$tmp/ro" "$tmp/ro" 2>/dev/null || { mount --bind "$tmp/ro" "$tmp/ro" && mount -o remount,bind,ro "$tmp/ro"; }; then
	out=$("$AISP" image import "$tmp/default.tar" --store "$tmp/ro" 2>&1)
	rc=$?
	umount "$tmp/ro"
	if [[ $rc -ne 0 && $out == *"is not writable"* ]]; then
		ok "import into a read-only bind mount fails: $out"
	else
		not_ok "import into a read-only bind mount fails clearly" "exit $rc: $out"
	fi
else
	skip "import into a read-only bind mount fails clearly" "read-only bind mount not available"
fi

# 10. A failing step-2 command (here compileall of a file that is not Python) fails the build,
# and the store gains no name.
# shellcheck disable=SC2016 # the recipe expands $LINKS and $PYCOMPILE
{
	cat "$images/default.recipe"
	echo 'LINKS="$LINKS usr/lib/aisp-bad.py=/etc/issue"'
	echo 'PYCOMPILE="$PYCOMPILE /usr/lib/aisp-bad.py"'
} >"$tmp/bad.recipe"
out=$(AISP_RECIPE=$tmp/bad.recipe "$AISP" image build badstep2 --force --store "$tmp/badstep2" 2>&1)
rc=$?
if [[ $rc -ne 0 && $out == *"post-processing the rootfs"* && $out == *"compileall"*"exited 1"* ]]; then
	ok "a failing compileall fails the build"
else
	not_ok "a failing compileall fails the build" "exit $rc: $out"
fi
check "the failed build added no name" test ! -e "$tmp/badstep2/names/badstep2"
{
	cat "$images/default.recipe"
	echo 'DROP="no-such-package"'
} >"$tmp/baddrop.recipe"
out=$(AISP_RECIPE=$tmp/baddrop.recipe "$AISP" image build baddrop --force --store "$tmp/baddrop" 2>&1)
rc=$?
if [[ $rc -ne 0 && $out == *"DROP: package no-such-package is not in the build"* ]]; then
	ok "dropping a package that is not installed fails the build"
else
	not_ok "dropping a package that is not installed fails the build" "exit $rc: $out"
fi

# 11. The datascience image: cached, reproducible, trimmed; its libraries import and a
# matplotlib chart comes back as an output file from real sandboxes (aisp run --json).
out=$("$AISP" image build datascience --store "$CACHE" 2>&1)
echo "# $out"
ds=$(awk '{print $3}' <<<"$out")
if [[ $ds =~ ^sha256:[0-9a-f]{64}$ ]]; then
	ok "build datascience into the cache store: $ds"
else
	not_ok "build datascience into the cache store" "$out"
fi
start=$(date +%s)
out=$("$AISP" image build datascience --force --store "$tmp/fresh" 2>&1)
if [[ $(awk '{print $3}' <<<"$out") == "$ds" ]]; then
	ok "datascience rebuilt with --force gives the same digest ($(($(date +%s) - start)) s)"
else
	not_ok "datascience rebuilt with --force gives the same digest" "cache: $ds" "fresh: $out"
fi
r=$CACHE/rootfs/${ds#sha256:}/rootfs
out=$(find "$r" -xdev -perm /6000 2>&1)
if [[ -z $out ]]; then ok "datascience: no setuid/setgid files"; else not_ok "datascience: no setuid/setgid files" "$out"; fi
out=$(find "$r/usr/bin" "$r/usr/sbin" \( -name 'dpkg*' -o -name 'apt*' -o -name 'gcc*' -o -name 'g++*' \
	-o -name 'ld' -o -name 'as' -o -name 'wish*' \) -print 2>&1; find "$r/usr/lib/python3/dist-packages" \
	-type d \( -name tests -o -name pythran -o -name tkinter \) -print 2>&1)
if [[ -z $out ]]; then
	ok "datascience: no apt/dpkg, compiler, Tk or tests directories"
else
	not_ok "datascience: no apt/dpkg, compiler, Tk or tests directories" "$out"
fi
check "datascience: uid 65534 is nobody" grep -q '^nobody:x:65534:65534:' "$r/etc/passwd"
check "datascience: matplotlib's rc file says Agg" grep -qx 'backend: Agg' "$r/etc/matplotlibrc"
# Every ELF file's libraries resolve (DROP removed nothing a library needs), in the image.
# shellcheck disable=SC2016 # for the image's sh
out=$(chroot "$r" /bin/sh -c 'find /usr/lib /usr/bin -type f \( -name "*.so*" -o -perm -u+x \) |
	while read -r f; do
		[ "$(head -c 4 "$f" | od -An -c | tr -d " ")" = 177ELF ] || continue
		/lib64/ld-linux-x86-64.so.2 --list "$f" 2>&1 | grep -E "not found|cannot open" | sed "s|^|$f: |"
	done' 2>&1)
if [[ -z $out ]]; then ok "datascience: every shared library resolves"; else not_ok "datascience: every shared library resolves" "$out"; fi
size=$(du -sb "$r" | cut -f1)
if ((size < 500 * 1000 * 1000)); then
	ok "datascience: unpacked size $((size / 1024 / 1024)) MiB ($size bytes)"
else
	not_ok "datascience: unpacked size below 500 MB" "$size bytes"
fi

cat >"$tmp/imports.py" <<'PY'
import gc, sys
warm = [m for m in ("numpy", "pandas", "matplotlib.pyplot") if m in sys.modules]
import io, sqlite3, time
t = time.perf_counter()
import pandas as pd
t = time.perf_counter() - t
import numpy as np, matplotlib, scipy.optimize, scipy.stats, sympy, PIL.Image, yaml, openpyxl
x = np.linalg.solve(np.array([[3.0, 1.0], [1.0, 2.0]]), np.array([9.0, 8.0]))
df = pd.DataFrame({"k": ["a", "b", "a"], "v": [1, 2, 3]}).groupby("k")["v"].sum()
root = scipy.optimize.brentq(lambda z: z * z - 2, 0, 2)
wb = openpyxl.Workbook()
wb.active["A1"] = 42
buf = io.BytesIO()
wb.save(buf)
db = sqlite3.connect(":memory:")
print(warm, gc.get_freeze_count() > 0, matplotlib.get_backend(), list(x), df.to_dict(), round(root, 6),
      sympy.factorint(360), PIL.Image.new("RGB", (3, 2)).size, yaml.safe_load("a: [1, 2]"),
      openpyxl.load_workbook(buf).active["A1"].value, db.execute("select 6 * 7").fetchone()[0],
      round(scipy.stats.norm.cdf(0), 2))
print(f"import pandas {t:.4f} s", file=sys.stderr)
PY
cat >"$tmp/chart.py" <<'PY'
import matplotlib.pyplot as plt
import pandas as pd
df = pd.DataFrame({"day": range(10), "price": [100 + 3 * d - d * d / 4 for d in range(10)]})
fig, ax = plt.subplots(figsize=(4, 3), dpi=100)
df.plot(x="day", y="price", ax=ax, title="price")
fig.savefig("out/chart.png")
PY
want="['numpy', 'pandas', 'matplotlib.pyplot'] True agg [2.0, 3.0] {'a': 4, 'b': 2} 1.414214 {2: 3, 3: 2, 5: 1} (3, 2) {'a': [1, 2]} 42 42 0.5"
for rt in runc runsc; do
	out=$("$AISP" run --runtime "$rt" --image datascience --store "$CACHE" --json "$tmp/imports.py" 2>&1)
	got=$(jq -r .stdout <<<"$out" 2>/dev/null)
	err=$(jq -r .stderr <<<"$out" 2>/dev/null)
	# stderr holds the task's one line only: warm-up printed nothing
	if [[ $got == "$want" && $err =~ ^import\ pandas\ [0-9.]+\ s$ ]]; then
		ok "datascience on $rt: the libraries import (pre-warmed) and compute; $err"
	else
		not_ok "datascience on $rt: the libraries import (pre-warmed) and compute" "expected: $want" "$out"
	fi
	out=$("$AISP" run --runtime "$rt" --image datascience --store "$CACHE" --json "$tmp/chart.py" 2>&1)
	rm -f "$tmp/chart.png"
	jq -r '.files[] | select(.path == "chart.png") | .content_b64' <<<"$out" 2>/dev/null |
		base64 -d >"$tmp/chart.png" 2>/dev/null
	sig=$(head -c 8 "$tmp/chart.png" | od -An -tx1 | tr -d ' \n')
	chunk=$(head -c 16 "$tmp/chart.png" | tail -c 4)
	w=$(head -c 20 "$tmp/chart.png" | tail -c 4 | od -An -tx1 | tr -d ' \n')
	h=$(head -c 24 "$tmp/chart.png" | tail -c 4 | od -An -tx1 | tr -d ' \n')
	w=$((16#${w:-0})) h=$((16#${h:-0})) # IHDR: width and height, u32 big-endian
	if [[ $sig == 89504e470d0a1a0a && $chunk == IHDR && $w == 400 && $h == 300 ]]; then
		ok "datascience on $rt: out/chart.png comes back as a 400x300 PNG ($(stat -c %s "$tmp/chart.png") bytes)"
	else
		not_ok "datascience on $rt: out/chart.png comes back as a 400x300 PNG" "signature $sig, $chunk ${w}x$h" "${out:0:2000}"
	fi
done
out=$("$AISP" run --runtime runc --image datascience --store "$CACHE" --lang javascript -c 'console.log(6 * 7)' 2>&1)
check "datascience: javascript runs (node)" test "$out" = 42

done_testing
