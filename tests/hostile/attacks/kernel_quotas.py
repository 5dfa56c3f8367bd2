# Per-user kernel quotas (issue 14 item 1): takes as much as it can of every per-user count the
# kernel keeps (inotify instances and watches, fanotify groups, POSIX message queue bytes,
# pending signals; user namespaces and keys it may not make at all) and holds them for a few
# seconds, while the suite checks from the host that root can still take its own. Prints what
# it got.
import ctypes, ctypes.util, errno, json, os, signal, sys, time

libc = ctypes.CDLL(None, use_errno=True)
rt = ctypes.CDLL("librt.so.1", use_errno=True)
r = {}


def err():
    e = ctypes.get_errno()
    return errno.errorcode.get(e, str(e))


fds = []
while len(fds) < 400:  # > 128, the kernel's default per user; < the fd limit
    fd = libc.inotify_init1(0)
    if fd < 0:
        break
    fds.append(fd)
r["inotify_instances"] = [len(fds), err()]
os.makedirs("/tmp/w", exist_ok=True)
watches = 0
if fds:
    for i in range(20000):
        p = b"/tmp/w/%d" % i
        open(p, "w").close()
        if libc.inotify_add_watch(fds[0], p, 2) < 0:
            break
        watches += 1
r["inotify_watches"] = [watches, err()]
fan = []
while len(fan) < 200:
    fd = libc.fanotify_init(0x200, 0)  # FAN_REPORT_FID: what an unprivileged caller may ask
    if fd < 0:
        break
    fan.append(fd)
r["fanotify_groups"] = [len(fan), err()]


class MqAttr(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_long), ("maxmsg", ctypes.c_long),
                ("msgsize", ctypes.c_long), ("curmsgs", ctypes.c_long),
                ("pad", ctypes.c_long * 4)]


mqs = 0
while mqs < 256:
    a = MqAttr(0, 10, 8192, 0)
    q = rt.mq_open(b"/aisp-q%d" % mqs, os.O_CREAT | os.O_RDWR, 0o600, ctypes.byref(a))
    if q < 0:
        break
    mqs += 1
r["mqueues"] = [mqs, err()]

signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN])


class SigVal(ctypes.Union):
    _fields_ = [("i", ctypes.c_int), ("p", ctypes.c_void_p)]


queued = 0
while queued < 1000000:
    if libc.sigqueue(os.getpid(), signal.SIGRTMIN, SigVal(1)) < 0:
        break
    queued += 1
r["pending_signals"] = [queued, err()]
r["unshare_user"] = "ok" if libc.unshare(0x10000000) == 0 else err()
r["add_key"] = "ok" if libc.syscall(248, b"user", b"aisp", b"x", 1, -3) >= 0 else err()
print(json.dumps(r), flush=True)
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 4)
