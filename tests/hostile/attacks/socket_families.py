# Socket families (issue 14 item 2): every family number, each socket type, made with the raw
# syscall (also with bits set above the int the kernel reads). Only AF_UNIX (1), AF_INET (2),
# AF_INET6 (10) and AF_NETLINK (16) may be created, on both runtimes, and an AF_VSOCK port may
# never be bound: vsock ports are the VM's, outside every network namespace.
import ctypes, errno, json, os, socket

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_socket, SYS_socketpair = 41, 53
created, pairs = {}, {}
for fam in list(range(64)) + [(1 << 32) | 40, (1 << 32) | 17, (1 << 64) - 1]:
    for typ in (1, 2, 3, 5):  # stream, dgram, raw, seqpacket
        fd = libc.syscall(ctypes.c_long(SYS_socket), ctypes.c_ulong(fam), ctypes.c_long(typ),
                          ctypes.c_long(0))
        if fd >= 0:
            os.close(fd)
            created.setdefault(str(fam & 0xffffffff), []).append(typ)
sv = (ctypes.c_int * 2)()
for fam in range(64):
    for typ in (1, 2, 5):
        if libc.syscall(ctypes.c_long(SYS_socketpair), ctypes.c_long(fam), ctypes.c_long(typ),
                        ctypes.c_long(0), sv) == 0:
            os.close(sv[0])
            os.close(sv[1])
            pairs.setdefault(str(fam), []).append(typ)
try:
    s = socket.socket(40, socket.SOCK_STREAM)
    s.bind((0xffffffff, 7777))
    bind = "bound"
except OSError as e:
    bind = errno.errorcode.get(e.errno, str(e.errno))
print(json.dumps({"created": created, "pairs": pairs, "vsock_bind": bind}))
