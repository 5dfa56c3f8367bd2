# keyctl / add_key / request_key (x86_64 nr 250, 248, 249): the kernel keyring is not
# namespaced; denied by runc's seccomp deny-list, not implemented by gVisor.
import ctypes, errno, json

libc = ctypes.CDLL(None, use_errno=True)


def sysc(nr, *args):
    ctypes.set_errno(0)
    rc = libc.syscall(nr, *args)
    return "ok" if rc >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))


r = {
    "keyctl_get_keyring": sysc(250, 0, -3, 0),  # KEYCTL_GET_KEYRING_ID, session keyring
    "add_key": sysc(248, b"user", b"aisp-hostile", b"secret", 6, -3),
    "request_key": sysc(249, b"user", b"aisp-hostile", None, 0),
}
print(json.dumps(r))
