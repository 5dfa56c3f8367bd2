#!/usr/bin/env bash
# Prepares the host's cgroups for every OCI runtime aisp-node drives. On a "hybrid" host
# (cgroup v1 hierarchies plus a v2 hierarchy at /sys/fs/cgroup/unified), a controller that no
# v1 hierarchy mounts stays attached to v2. runc and runsc cope with that; crun refuses
# ("cgroups in hybrid mode not supported, drop all controllers from cgroupv2"). Mounting such
# an unused controller as a v1 hierarchy moves it off v2, which is what crun needs and changes
# nothing for runc or runsc. Idempotent; does nothing on pure v1 or pure v2 hosts.
set -euo pipefail
unified=/sys/fs/cgroup/unified
[ -r "$unified/cgroup.controllers" ] || exit 0
read -r -a ctrls <"$unified/cgroup.controllers" || true
for c in "${ctrls[@]}"; do
	if [ -n "$(cat "$unified/cgroup.subtree_control")" ]; then
		echo "prepare-host: $c is in use on cgroup v2 here; crun will not run (runc and runsc will)" >&2
		continue
	fi
	mkdir -p "/sys/fs/cgroup/$c"
	if mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"; then
		echo "prepare-host: mounted the $c controller as a cgroup v1 hierarchy (for crun)"
	else
		echo "prepare-host: could not move $c off cgroup v2; crun will not run" >&2
	fi
done
