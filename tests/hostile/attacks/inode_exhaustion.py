# Inode exhaustion: create empty files (and directories) in /workspace until the tmpfs refuses,
# or the wall timeout ends it.
import errno, os

n = 0
try:
    os.makedirs("/workspace/inodes", exist_ok=True)
    while True:
        d = f"/workspace/inodes/{n // 10000}"
        if n % 10000 == 0:
            os.mkdir(d)
        os.close(os.open(f"{d}/{n}", os.O_CREAT | os.O_WRONLY, 0o644))
        n += 1
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno), "after", n, "files")
