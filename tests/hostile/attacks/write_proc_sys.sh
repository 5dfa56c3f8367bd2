# Writes to /proc/sys, /proc/sysrq-trigger and other /proc knobs: every attempt must fail.
n=0
for p in /proc/sys/kernel/hostname /proc/sys/kernel/core_pattern /proc/sys/vm/drop_caches \
	/proc/sys/net/ipv4/ip_forward /proc/sysrq-trigger /proc/1/oom_score_adj /proc/self/attr/current; do
	if (echo 1 >"$p") 2>/dev/null; then echo "WROTE $p"; n=$((n + 1)); fi
done
echo "written: $n"
