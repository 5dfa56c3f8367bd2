# Device names in /workspace/out: mknod is refused under runc (no CAP_MKNOD; gVisor creates a
# node of its own kernel's devices in its tmpfs); device nodes and links to /dev/zero,
# /dev/urandom, /dev/full and /dev/tty must not be read (endless data). Only real.txt returns.
import errno, os

os.makedirs("out", exist_ok=True)
for name, dev in (("zero", 0o020666), ("sda", 0o060666)):
    try:
        os.mknod(f"out/{name}", dev, os.makedev(1, 5))
        print("mknod", name, "ok")
    except OSError as e:
        print("mknod", name, errno.errorcode.get(e.errno, e.errno))
for d in ("zero", "urandom", "full", "tty", "stdout", "fd/0"):
    os.symlink(f"/dev/{d}", f"out/dev-{d.replace('/', '-')}")
open("out/real.txt", "w").write("real")
