# /proc/1/environ and friends: PID 1 is the agent (non-dumpable); the host's PID 1 and aispd
# are in another pid namespace. Prints what could be read (the driver checks that the node's
# environment canary never appears).
import errno, json, os

r = {}
for p in ("/proc/1/environ", "/proc/1/cmdline", "/proc/1/maps", "/proc/1/root/etc/hostname",
          "/proc/1/cwd", "/proc/1/fd", "/proc/self/environ"):
    try:
        if p.endswith("/cwd") or p.endswith("/fd"):
            r[p] = os.listdir(p)
        else:
            with open(p, "rb") as f:
                r[p] = f.read(65536).decode(errors="replace")
    except OSError as e:
        r[p] = errno.errorcode.get(e.errno, str(e.errno))
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
r["pids"] = pids
for pid in pids:
    try:
        r[f"environ:{pid}"] = open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace")
    except OSError as e:
        r[f"environ:{pid}"] = errno.errorcode.get(e.errno, str(e.errno))
print(json.dumps(r))
