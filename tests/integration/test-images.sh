#!/bin/bash
# Integration test of the image store: aisp image build / ls / export / import against the real
# mmdebstrap and umoci, and checks of the default image's rootfs. TAP output.
#
# The default store (/var/lib/aisp/images, or $AISP_IMAGE_CACHE) is the cache: the image is
# built there once and reused by later runs. Every run builds the image once more, into a
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

done_testing
