# What the program can see of the agent, PID 1 (issue 14 item 4). Under runc the agent is
# another user and non-dumpable: everything below fails. gVisor (2022) ignores non-dumpable
# for /proc/1/{environ,auxv,maps,smaps,fd,fdinfo} and checks nothing for setpriority,
# sched_setaffinity or get_robust_list on another process: what the program gets there must
# be harmless (addresses, fd numbers, the agent's scheduling inside the sandbox's own CPU
# quota), the agent's environment must hold nothing at all (it clears it at start), and the
# agent's pipes, memory and files must stay closed to it.
import ctypes, errno, json, os, signal, stat

libc = ctypes.CDLL(None, use_errno=True)
r = {}


def code(e):
    return errno.errorcode.get(e.errno, str(e.errno))


for f in ("environ", "cmdline", "auxv", "maps", "smaps", "status", "stat", "mem", "pagemap",
          "stack", "syscall", "io"):
    try:
        with open("/proc/1/" + f, "rb") as fh:
            r[f] = fh.read(65536).decode(errors="replace")
    except OSError as e:
        r[f] = code(e)
for d in ("fd", "fdinfo", "root", "cwd", "map_files", "ns"):
    try:
        r[d] = sorted(os.listdir("/proc/1/" + d))
    except OSError as e:
        r[d] = code(e)
for n, fl in (("fd0_open", os.O_RDONLY), ("fd1_open", os.O_WRONLY), ("fd2_open", os.O_WRONLY)):
    try:
        fd = os.open("/proc/1/fd/" + n[2], fl)
        st = os.fstat(fd)
        os.close(fd)
        # the agent's own stderr is /dev/null: opening that reaches nothing of the agent's
        null = stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
        r[n] = "devnull" if null else "ok"
    except OSError as e:
        r[n] = code(e)
try:
    r["exe"] = os.readlink("/proc/1/exe")
except OSError as e:
    r["exe"] = code(e)
for name, fn in (("kill0", lambda: os.kill(1, 0)), ("sigstop", lambda: os.kill(1, signal.SIGSTOP)),
                 ("setpriority", lambda: os.setpriority(os.PRIO_PROCESS, 1, 19)),
                 ("setaffinity", lambda: os.sched_setaffinity(1, {0})),
                 ("prlimit", lambda: __import__("resource").prlimit(1, 7, (16, 16)))):
    try:
        fn()
        r[name] = "ok"
    except OSError as e:
        r[name] = code(e)
head, ln = ctypes.c_void_p(), ctypes.c_size_t()
r["get_robust_list"] = "ok" if libc.syscall(274, 1, ctypes.byref(head), ctypes.byref(ln)) == 0 \
    else errno.errorcode.get(ctypes.get_errno(), "?")
r["environ_text"] = r["environ"].replace("\x00", "") if r["environ"] != "EACCES" else ""
print(json.dumps(r))
