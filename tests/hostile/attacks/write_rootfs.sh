# Writes to the read-only root file system and the agent's mount: every attempt must fail.
n=0
for p in /etc/aisp-hostile /usr/bin/aisp-hostile /bin/sh /.aisp/aisp-agent /.aisp/x /aisp-hostile /root/x; do
	if (echo pwned >"$p") 2>/dev/null; then echo "WROTE $p"; n=$((n + 1)); fi
done
if mkdir /aisp-hostile-dir 2>/dev/null; then echo "WROTE /aisp-hostile-dir"; n=$((n + 1)); fi
if touch -c /etc/passwd 2>/dev/null && [ -w /etc/passwd ]; then echo "WROTE /etc/passwd"; n=$((n + 1)); fi
echo "written: $n"
