# ptrace (x86_64 nr 101): attach to PID 1 (the agent), PTRACE_TRACEME. Denied: EPERM.
import ctypes, errno, json

libc = ctypes.CDLL(None, use_errno=True)


def sysc(nr, *args):
    ctypes.set_errno(0)
    rc = libc.syscall(nr, *args)
    return "ok" if rc >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))


r = {
    "attach_pid1": sysc(101, 16, 1, 0, 0),  # PTRACE_ATTACH
    "seize_pid1": sysc(101, 0x4206, 1, 0, 0),  # PTRACE_SEIZE
    "traceme": sysc(101, 0, 0, 0, 0),  # PTRACE_TRACEME
}
try:
    open("/proc/1/mem", "rb").read(1)
    r["proc1_mem"] = "read"
except OSError as e:
    r["proc1_mem"] = errno.errorcode.get(e.errno, str(e.errno))
print(json.dumps(r))
