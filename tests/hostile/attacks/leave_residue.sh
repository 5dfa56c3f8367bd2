# Leaves everything it can behind for the next task to find: files in /workspace, /tmp,
# /dev/shm and /workspace/out, a detached background process with a marker in its command
# line and environment. The next task's probe must find none of it.
mkdir -p out
for d in /workspace /tmp /dev/shm /workspace/out; do
	echo "AISP-RESIDUE-MARK" >"$d/residue-mark" 2>/dev/null
done
AISP_RESIDUE=AISP-RESIDUE-MARK setsid sh -c 'sleep 1000; :' AISP-RESIDUE-MARK </dev/null >/dev/null 2>&1 &
nohup sleep 999 >/dev/null 2>&1 &
echo "left residue"
