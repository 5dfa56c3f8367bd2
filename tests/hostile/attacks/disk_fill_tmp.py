# Fill /tmp until the tmpfs is full: ENOSPC (or EFBIG from RLIMIT_FSIZE), never the host.
import errno, os

total = 0
chunk = b"\xaa" * (1 << 20)
i = 0
try:
    while True:
        with open(f"/tmp/fill-{i}", "wb") as f:
            for _ in range(8):
                f.write(chunk)
                total += len(chunk)
        i += 1
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno), "after", total >> 20, "MiB")
