#!/bin/bash
# build-image.sh NAME STORE: builds sandbox image NAME from images/NAME.recipe (Debian packages,
# mmdebstrap) into a reproducible OCI image (umoci), then adds it to the image store STORE
# (layout in lib.sh). Everything is built in a temporary directory; the store only changes at
# the end, so a failed build leaves it as it was. Prints "image NAME sha256:<hex>" on success.
#
# Recipe keys (sourced by bash; see default.recipe): SUITE, SOURCES, SOURCE_DATE_EPOCH,
# PACKAGES, DROP, LINKS, REMOVE, PYCOMPILE, OCI_USER, OCI_WORKDIR, OCI_ENV, and an optional
# function customize, called with the rootfs as $1 (on the host, errexit on) after REMOVE.
#
# Environment: AISP_RECIPE (a recipe file instead of images/NAME.recipe), TMPDIR,
# AISP_IMAGE_CACHED_OK=1: do nothing when the store already holds NAME built from this very
# recipe and these scripts (the SHA-256 of the recipe's values and the scripts is kept in
# <store>/recipes/NAME.sha256), so a changed recipe is rebuilt while an unchanged one is never
# rebuilt.
set -euo pipefail
shopt -s inherit_errexit

prog=build-image
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=images/lib.sh
. "$here/lib.sh"

[[ $# -eq 2 ]] || die "usage: build-image.sh NAME STORE"
name=$1
store=$2
valid_name "$name" || die "invalid image name \"$name\" (expected [a-z0-9][a-z0-9._-]{0,63})"
recipe=${AISP_RECIPE:-$here/$name.recipe}
[[ -f $recipe ]] || die "no recipe for image $name (looked for $recipe)"

SUITE=bookworm SOURCES= SOURCE_DATE_EPOCH= PACKAGES= DROP= LINKS= REMOVE= PYCOMPILE=
OCI_USER= OCI_WORKDIR= OCI_ENV=
# shellcheck disable=SC1090
. "$recipe"
[[ -n $PACKAGES && -n $SOURCE_DATE_EPOCH ]] || die "$recipe: PACKAGES and SOURCE_DATE_EPOCH are required"
[[ -z $SOURCES || -r $SOURCES ]] || die "$recipe: apt sources $SOURCES are not readable"

# What the build depends on: the recipe's values as sourced (so also those of a recipe it
# sources in turn, as datascience does default's) and these scripts.
fingerprint=$({
	declare -p SUITE SOURCES SOURCE_DATE_EPOCH PACKAGES DROP LINKS REMOVE PYCOMPILE OCI_USER \
		OCI_WORKDIR OCI_ENV
	declare -f customize || true
	cat "$here/build-image.sh" "$here/lib.sh"
} | sha256sum | cut -d' ' -f1)
if [[ ${AISP_IMAGE_CACHED_OK:-0} == 1 && -f $store/names/$name && -f $store/recipes/$name.sha256 ]]; then
	cached=$(<"$store/names/$name")
	if [[ $(<"$store/recipes/$name.sha256") == "$fingerprint" && -d $store/rootfs/${cached#sha256:}/rootfs ]]; then
		echo "image $name $cached (cached)"
		exit 0
	fi
fi

need_tool mmdebstrap mmdebstrap
need_tool dpkg-deb dpkg
need_tool umoci umoci
need_tool jq jq
need_tool flock util-linux
store_prepare "$store"

export SOURCE_DATE_EPOCH
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
arch=$(dpkg --print-architecture)

tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/aisp-image.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log=$tmp/build.log
start=$(date +%s)

fail()
{
	die "build failed: $1"$'\n'"$(tail -n 15 "$log")"
}

# drop_package ROOTFS PKG: removes the files and symlinks of package PKG (its .deb is in the
# rootfs's apt cache), then those of its directories that are left empty. For dependencies that
# nothing needs at run time (a compiler that Debian's scipy depends on, Tk); a name that was
# not installed is an error, so that a recipe never silently keeps what it means to drop.
drop_package()
{
	local r=$1 pkg=$2 debs path
	debs=("$r/var/cache/apt/archives/${pkg}_"*.deb)
	[[ ${#debs[@]} -eq 1 && -f ${debs[0]} ]] || {
		echo "build-image: DROP: package $pkg is not in the build"
		return 1
	}
	dpkg-deb --fsys-tarfile "${debs[0]}" | tar -t >"$tmp/drop.list"
	while IFS= read -r path; do
		path=${path#./}
		if [[ -n $path && $path != */ ]]; then
			rm -f -- "${r:?}/$path"
		fi
	done <"$tmp/drop.list"
	# Deepest first; a directory another package still fills (or a merged-/usr link) stays.
	while IFS= read -r path; do
		path=${path#./}
		if [[ -n $path && -d $r/$path && ! -L $r/${path%/} ]]; then
			rmdir --ignore-fail-on-non-empty -- "$r/$path"
		fi
	done < <(grep '/$' "$tmp/drop.list" | sort -r)
}

# 1. Packages, extracted (no maintainer scripts, no dpkg database), onto a merged /usr. The
# .deb files stay in /var/cache/apt/archives for DROP; step 2 deletes them.
mkdir -p "$tmp/rootfs"
# shellcheck disable=SC2016
mmdebstrap --mode=root --variant=extract --format=directory --aptopt='Acquire::Retries "3"' \
	--skip=cleanup/apt/cache \
	--include="${PACKAGES// /,}" \
	--setup-hook='for d in bin sbin lib lib64; do mkdir -p "$1/usr/$d"; ln -s "usr/$d" "$1/$d"; done' \
	"$SUITE" "$tmp/rootfs" ${SOURCES:+"$SOURCES"} </dev/null >"$log" 2>&1 ||
	fail "mmdebstrap exited $?"

# 2. Trim and harden the rootfs, in a subshell that is a plain command, not part of an ||
# list: errexit is off for everything inside such a list (a failing compileall or ldconfig
# went unnoticed when this was "{ ... } || fail"). The subshell stops at the first failing
# command and logs it; the ERR trap out here then fails the build.
r=$tmp/rootfs
trap 'fail "post-processing the rootfs"' ERR
(
	set -E # the ERR trap also in drop_package and the recipe's customize
	trap 'echo "build-image: step 2: \"$BASH_COMMAND\" exited $?"' ERR
	for pkg in $DROP; do
		drop_package "$r" "$pkg"
	done
	rm -f "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/apt/*.bin
	for link in $LINKS; do
		ln -sfn "${link#*=}" "$r/${link%%=*}"
	done
	# REMOVE holds globs relative to the rootfs (** matches any depth): expand them inside it.
	(cd "$r" && shopt -s globstar && for p in $REMOVE; do rm -rf -- ./$p; done)
	if declare -F customize >/dev/null; then
		customize "$r"
	fi
	find "$r" -xdev -perm /6000 -exec chmod ug-s {} +
	find "$r" -xdev -name '__pycache__' -type d -prune -exec rm -rf {} +
	# Byte-compile Python once here: the rootfs is read-only in the sandbox, and an
	# unchecked-hash .pyc is reproducible (no source mtime in it) and never re-validated.
	if [[ -n $PYCOMPILE ]]; then
		PYTHONHASHSEED=0 chroot "$r" /usr/bin/python3 -m compileall -q -j1 \
			--invalidation-mode unchecked-hash $PYCOMPILE
	fi
	cat >"$r/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
PASSWD
	cat >"$r/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP
	printf '127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$r/etc/hosts"
	printf 'include /etc/ld.so.conf.d/*.conf\n' >"$r/etc/ld.so.conf"
	ldconfig -r "$r"
	rm -rf "$r/var/cache/ldconfig"
	# Empty mount points: the rootfs is shared and read-only, the runtime mounts onto these.
	for d in workspace tmp proc dev sys .aisp; do
		rm -rf "${r:?}/$d"
		mkdir -m 0755 "$r/$d"
	done
	# runc gives a tmpfs the mode of the directory it is mounted on, so the writable mount
	# points must carry the mode the sandbox user needs.
	chmod 1777 "$r/tmp" "$r/workspace"
	mkdir -p "$r/root"
	chmod 0700 "$r/root"
) >>"$log" 2>&1
trap - ERR
for tool in python3 node sh; do
	[[ -e $r/usr/bin/$tool ]] || fail "the rootfs has no /usr/bin/$tool"
done

# 3. One layer, byte-for-byte reproducible: sorted names, fixed mtimes, numeric owners, no
# atime/ctime, no xattrs.
tar -C "$r" --sort=name --format=pax --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
	--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
	-cf "$tmp/layer.tar" . >>"$log" 2>&1 || fail "tar of the rootfs"

# 4. The OCI image: no history, created = the recipe's epoch.
env_args=()
for kv in $OCI_ENV; do
	env_args+=("--config.env=$kv")
done
{
	umoci init --layout "$tmp/oci" &&
		umoci new --image "$tmp/oci:$name" &&
		umoci raw add-layer --no-history --image "$tmp/oci:$name" "$tmp/layer.tar" &&
		umoci config --no-history --image "$tmp/oci:$name" --created="$created" \
			--architecture="$arch" --os=linux ${OCI_USER:+--config.user="$OCI_USER"} \
			${OCI_WORKDIR:+--config.workingdir="$OCI_WORKDIR"} "${env_args[@]}" &&
		umoci gc --layout "$tmp/oci"
} >>"$log" 2>&1 || fail "umoci"
rm -rf "$r" "$tmp/layer.tar"

# 5. Into the store.
digest=$(store_commit "$tmp/oci" "$name" "$store")
mkdir -p "$store/recipes"
printf '%s\n' "$fingerprint" >"$store/recipes/.$name.sha256.tmp"
mv -f "$store/recipes/.$name.sha256.tmp" "$store/recipes/$name.sha256"
echo "image $name $digest (built in $(($(date +%s) - start)) s)"
