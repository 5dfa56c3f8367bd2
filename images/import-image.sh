#!/bin/bash
# import-image.sh FILE STORE: adds the image in FILE (a tarball of an OCI image layout holding
# exactly one image, tagged with its name, as export-image.sh writes) to the store STORE.
# Nothing in FILE is trusted: only oci-layout, index.json and blobs/sha256/<hex> regular files
# are accepted, every blob must hash to its name, the manifest must be the one index.json
# names, and everything the manifest references must be present. Prints "image NAME DIGEST".
set -euo pipefail
shopt -s inherit_errexit

prog=import-image
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=images/lib.sh
. "$here/lib.sh"

[[ $# -eq 2 ]] || die "usage: import-image.sh FILE STORE"
file=$1
store=$2
need_tool umoci umoci
need_tool jq jq
need_tool flock util-linux
[[ -f $file ]] || die "$file: no such file"
store_prepare "$store"

tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/aisp-import.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
l=$tmp/layout
mkdir "$l"

members=$(tar -tf "$file" 2>"$tmp/tar.err") || die "$file is not a tar archive: $(head -n 3 "$tmp/tar.err")"
while IFS= read -r m; do
	m=${m#./}
	[[ -z $m || $m =~ ^(oci-layout|index\.json|blobs/?|blobs/sha256/?|blobs/sha256/[0-9a-f]{64})$ ]] ||
		die "$file is not an OCI layout tarball: unexpected member \"$m\""
done <<<"$members"
tar -xf "$file" -C "$l" --no-same-owner --no-same-permissions --no-overwrite-dir 2>"$tmp/tar.err" ||
	die "extracting $file failed: $(head -n 3 "$tmp/tar.err")"
odd=$(find "$l" ! -type f ! -type d -print -quit)
[[ -z $odd ]] || die "$file: ${odd#"$l"/} is not a regular file"
[[ -f $l/oci-layout && -f $l/index.json ]] || die "$file is not an OCI layout tarball (no oci-layout or index.json)"

# Every blob hashes to its name. The sums are all taken before the first is checked: a die
# while sha256sum still ran (in a process substitution) removed the layout under it.
if [[ -d $l/blobs/sha256 ]]; then
	sums=$(cd "$l/blobs/sha256" && find . -type f -printf '%f\0' | sort -z | xargs -0 -r sha256sum) ||
		die "$file: hashing its blobs failed"
	while read -r sum path; do
		b=${path##*/}
		[[ $sum == "$b" ]] || die "blob sha256:$b is corrupt (its content hashes to sha256:$sum)"
	done <<<"$sums"
fi

jq -e '.manifests | type == "array" and length == 1' "$l/index.json" >/dev/null 2>&1 ||
	die "$file: index.json must list exactly one manifest"
name=$(jq -r '.manifests[0].annotations["org.opencontainers.image.ref.name"] // ""' "$l/index.json")
digest=$(jq -r '.manifests[0].digest' "$l/index.json")
valid_name "$name" || die "$file: invalid or missing image name \"$name\" in index.json"
[[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || die "$file: manifest digest \"$digest\" is not sha256:<hex>"
[[ -f $l/blobs/sha256/${digest#sha256:} ]] || die "$file: manifest $digest is missing"
size=$(jq -r '.manifests[0].size' "$l/index.json")
[[ $size == "$(stat -c %s "$l/blobs/sha256/${digest#sha256:}")" ]] ||
	die "$file: manifest $digest has size $(stat -c %s "$l/blobs/sha256/${digest#sha256:}"), index.json says $size"
blobs=$(image_blobs "$l" "$digest" 2>/dev/null) || die "$file: manifest $digest is not an image manifest"
for b in $blobs; do
	[[ $b =~ ^sha256:[0-9a-f]{64}$ ]] || die "$file: manifest $digest references \"$b\""
	[[ -f $l/blobs/sha256/${b#sha256:} ]] || die "$file: blob $b (referenced by $digest) is missing"
done

digest=$(store_commit "$l" "$name" "$store")
echo "image $name $digest"
