# Hardening probe: prints one JSON object describing what the sandbox lets a program see and do.
# Run by tests/integration/test-sandbox.sh under each runtime; the test asserts on the fields.
import ctypes, errno, json, os, socket, sys

r = {}
status = open("/proc/self/status").read()
caps = {l.split(":")[0]: l.split()[1] for l in status.splitlines() if l.startswith("Cap")}
r["caps"] = {k: int(caps.get(k, "ffff"), 16) for k in ("CapEff", "CapPrm", "CapBnd")}
r["uid"], r["gid"], r["euid"] = os.getuid(), os.getgid(), os.geteuid()
libc = ctypes.CDLL(None, use_errno=True)
r["no_new_privs"] = libc.prctl(39, 0, 0, 0, 0)  # PR_GET_NO_NEW_PRIVS


def write(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        return "written"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


r["write_rootfs"] = write("/etc/aisp-probe")
r["write_usr"] = write("/usr/bin/aisp-probe")
r["write_proc_sys"] = write("/proc/sys/kernel/hostname")
r["write_sys"] = write("/sys/kernel/uevent_helper")
r["write_workspace"] = write("/workspace/probe.txt")
r["write_tmp"] = write("/tmp/probe.txt")


def read(path):
    try:
        with open(path, "rb") as f:
            return len(f.read(4096))
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


r["read_kcore"] = read("/proc/kcore")
r["read_keys"] = read("/proc/keys")
r["read_shadow"] = read("/etc/shadow")
r["hostname"] = socket.gethostname()
r["env"] = dict(os.environ)
r["cwd"] = os.getcwd()
try:
    r["ifaces"] = sorted(n for _, n in socket.if_nameindex())
except OSError:
    r["ifaces"] = []
try:
    r["routes"] = [l for l in open("/proc/net/route").read().splitlines()[1:] if l.strip()]
except OSError:
    r["routes"] = []


def connect(host, port):
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((host, port))
        return "connected"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else "timeout"
    finally:
        s.close()


r["tcp_host_port"] = connect("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 6379)


def sysc(nr, *args):
    ctypes.set_errno(0)
    rc = libc.syscall(nr, *args)
    return "ok" if rc >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))


# x86_64 numbers: keyctl 250, bpf 321, ptrace 101, mount 165, unshare 272, io_uring_setup 425
r["syscalls"] = {
    "keyctl": sysc(250, 0, 0, 0, 0),
    "bpf": sysc(321, 0, 0, 0),
    "ptrace": sysc(101, 16, 1, 0, 0),  # PTRACE_ATTACH to PID 1 (the agent)
    "mount": sysc(165, b"none", b"/tmp", b"tmpfs", 0, 0),
    "unshare": sysc(272, 0x10000000),  # CLONE_NEWUSER
    "io_uring_setup": sysc(425, 1, ctypes.create_string_buffer(120)),
}
try:
    r["uid_map"] = open("/proc/self/uid_map").read().split()
except OSError:
    r["uid_map"] = []
print(json.dumps(r))
