# Writes to /sys: every attempt must fail (read-only sysfs, masked paths).
n=0
for p in /sys/kernel/uevent_helper /sys/kernel/mm/transparent_hugepage/enabled /sys/fs/cgroup/x \
	/sys/class/net/lo/mtu /sys/power/state /sys/kernel/profiling; do
	if (echo 1 >"$p") 2>/dev/null; then echo "WROTE $p"; n=$((n + 1)); fi
done
echo "written: $n"
