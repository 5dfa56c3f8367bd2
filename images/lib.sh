# Shared by build-image.sh, import-image.sh and export-image.sh (sourced, bash): error
# reporting, name validation, tool checks, and the one place that adds an image to a store.
#
# Store layout (also in sandbox/image.h):
#   <store>/oci/                  an OCI image layout holding every image (tag = name)
#   <store>/rootfs/<hex>/rootfs/  the unpacked rootfs of manifest sha256:<hex> (umoci bundle)
#   <store>/names/<name>          "sha256:<hex>\n", written atomically (tmp + rename)
#   <store>/.lock                 flock(1) held while the store changes

# The command name used in messages; set by the sourcing script.
: "${prog:=aisp-image}"

die()
{
	echo "$prog: $*" >&2
	exit 1
}

# Image names: [a-z0-9][a-z0-9._-]{0,63} (the same rule as sandbox/image.c).
valid_name()
{
	[[ $1 =~ ^[a-z0-9][a-z0-9._-]{0,63}$ ]]
}

need_tool()
{
	command -v "$1" >/dev/null 2>&1 || die "$1 is not installed (apt-get install $2)"
}

# Creates the store's folders; fails with a clear message when the store cannot be written.
store_prepare()
{
	local store=$1 probe
	mkdir -p "$store/oci" "$store/rootfs" "$store/names" 2>/dev/null &&
		probe=$(mktemp -p "$store" .probe.XXXXXX 2>/dev/null) ||
		die "image store $store is not writable"
	rm -f "$probe"
}

# The manifest digest ("sha256:<hex>") tagged NAME in the layout, or nothing.
layout_digest()
{
	jq -r --arg n "$2" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $n)
		| .digest' "$1/index.json"
}

# The digests of every blob an image needs: the manifest, its config and its layers.
image_blobs()
{
	local layout=$1 digest=$2
	echo "$digest"
	jq -r '.config.digest, .layers[].digest' "$layout/blobs/sha256/${digest#sha256:}"
}

# Adds image NAME from the OCI layout LAYOUT to STORE: blobs, the tag in <store>/oci, the
# unpacked rootfs, then the name index last, so that a reader never sees a name whose rootfs
# is missing. Prints the manifest digest.
store_commit()
{
	local layout=$1 name=$2 store=$3 digest hex b staging desc
	digest=$(layout_digest "$layout" "$name")
	[[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || die "no image $name in $layout"
	hex=${digest#sha256:}

	exec 9>"$store/.lock"
	flock 9
	if [[ ! -f $store/oci/index.json ]]; then
		rm -rf "$store/oci"
		umoci init --layout "$store/oci" || die "umoci init $store/oci failed"
	fi
	for b in $(image_blobs "$layout" "$digest"); do
		b=${b#sha256:}
		[[ -f $store/oci/blobs/sha256/$b ]] && continue
		cp "$layout/blobs/sha256/$b" "$store/oci/blobs/sha256/.$b.tmp"
		chmod 0644 "$store/oci/blobs/sha256/.$b.tmp"
		mv -f "$store/oci/blobs/sha256/.$b.tmp" "$store/oci/blobs/sha256/$b"
	done

	if [[ ! -d $store/rootfs/$hex/rootfs ]]; then
		staging=$(mktemp -d -p "$store/rootfs" .staging.XXXXXX)
		if ! umoci unpack --image "$layout:$name" "$staging/bundle" >"$staging.log" 2>&1; then
			local msg
			msg=$(tail -n 5 "$staging.log")
			rm -rf "$staging" "$staging.log"
			die "unpacking $name failed: $msg"
		fi
		rm -rf "$store/rootfs/$hex"
		# traversable (not listable) for the runtime's mapped root under a user namespace
		chmod 0711 "$staging/bundle"
		mv -T "$staging/bundle" "$store/rootfs/$hex"
		rm -rf "$staging" "$staging.log"
	fi

	desc=$(jq -c --arg d "$digest" '.manifests[] | select(.digest == $d)' "$layout/index.json" | head -n 1)
	jq --arg n "$name" --argjson desc "$desc" '.manifests = ([(.manifests // [])[]
		| select(.annotations["org.opencontainers.image.ref.name"] != $n)] + [$desc])' \
		"$store/oci/index.json" >"$store/oci/.index.json.tmp"
	mv -f "$store/oci/.index.json.tmp" "$store/oci/index.json"

	printf '%s\n' "$digest" >"$store/names/.$name.tmp"
	sync "$store/names/.$name.tmp" 2>/dev/null || true
	mv -f "$store/names/.$name.tmp" "$store/names/$name"
	flock -u 9
	exec 9>&-
	echo "$digest"
}
