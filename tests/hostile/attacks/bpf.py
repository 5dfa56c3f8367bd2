# bpf (x86_64 nr 321): create a map and load a socket filter program. Denied.
import ctypes, errno, json

libc = ctypes.CDLL(None, use_errno=True)


def sysc(nr, *args):
    ctypes.set_errno(0)
    rc = libc.syscall(nr, *args)
    return "ok" if rc >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))


# BPF_MAP_CREATE with an array map; BPF_PROG_LOAD of "r0 = 0; exit"
attr = ctypes.create_string_buffer(128)
ctypes.memmove(attr, (ctypes.c_uint32 * 4)(2, 4, 4, 1), 16)
r = {"map_create": sysc(321, 0, attr, 128)}
insns = (ctypes.c_uint64 * 2)(0x00000000000000b7, 0x0000000000000095)
lic = ctypes.create_string_buffer(b"GPL")
attr2 = ctypes.create_string_buffer(128)
ctypes.memmove(attr2, (ctypes.c_uint32 * 2)(1, 2), 8)  # prog_type SOCKET_FILTER, insn_cnt 2
ctypes.memmove(ctypes.byref(attr2, 8), (ctypes.c_uint64 * 2)(ctypes.addressof(insns), ctypes.addressof(lic)), 16)
r["prog_load"] = sysc(321, 5, attr2, 128)
print(json.dumps(r))
