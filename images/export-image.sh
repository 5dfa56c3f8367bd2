#!/bin/bash
# export-image.sh NAME FILE STORE: writes image NAME of the store STORE to FILE as a tarball of
# an OCI image layout that holds just that image (tag = NAME): oci-layout, index.json and the
# image's blobs. The tarball is reproducible (sorted names, zero mtimes, numeric owners).
set -euo pipefail
shopt -s inherit_errexit

prog=export-image
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=images/lib.sh
. "$here/lib.sh"

[[ $# -eq 3 ]] || die "usage: export-image.sh NAME FILE STORE"
name=$1
file=$2
store=$3
valid_name "$name" || die "invalid image name \"$name\" (expected [a-z0-9][a-z0-9._-]{0,63})"
need_tool jq jq
[[ -f $store/names/$name && ! -L $store/names/$name ]] || die "image $name is not in the store at $store"
digest=$(head -n 1 "$store/names/$name")
[[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || die "$store/names/$name: not a digest"
[[ -f $store/oci/blobs/sha256/${digest#sha256:} ]] || die "image $name: manifest $digest is missing from $store/oci"

tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/aisp-export.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
l=$tmp/layout
mkdir -p "$l/blobs/sha256"
cp "$store/oci/oci-layout" "$l/oci-layout"
for b in $(image_blobs "$store/oci" "$digest"); do
	b=${b#sha256:}
	[[ -f $store/oci/blobs/sha256/$b ]] || die "image $name: blob sha256:$b is missing from $store/oci"
	cp "$store/oci/blobs/sha256/$b" "$l/blobs/sha256/$b"
done
desc=$(jq -c --arg d "$digest" '[.manifests[] | select(.digest == $d)][0]' "$store/oci/index.json")
[[ $desc != null ]] || die "image $name: $digest is not in $store/oci/index.json"
jq -n --arg n "$name" --argjson desc "$desc" \
	'{schemaVersion: 2, manifests: [$desc | .annotations["org.opencontainers.image.ref.name"] = $n]}' \
	>"$l/index.json"
chmod -R u=rwX,go=rX "$l"

out_dir=$(dirname "$file")
part=$(mktemp -p "$out_dir" ".$(basename "$file").XXXXXX") || die "cannot write to $out_dir"
trap 'rm -rf "$tmp" "$part"' EXIT
tar -C "$l" --sort=name --format=pax --owner=0 --group=0 --numeric-owner --mtime=@0 \
	--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
	-cf "$part" oci-layout index.json blobs || die "tar to $file failed"
chmod 0644 "$part"
mv -f "$part" "$file"
echo "exported $name $digest to $file"
