# Links planted in /workspace/out for the host to follow: to the node's key and config (argv),
# to /etc/shadow, /proc/1/environ, /, .., a directory link, a hard link to a root-owned file.
# Only out/real.txt may come back.
import os, sys

os.makedirs("out/sub", exist_ok=True)
for i, target in enumerate(sys.argv[1:] + ["/etc/shadow", "/etc/passwd", "/proc/1/environ",
                                            "/proc/self/root", "/", "..", "../..",
                                            "/workspace/out/real.txt"]):
    os.symlink(target, f"out/link{i}")
os.symlink("/etc", "out/etc-dir")
os.symlink("../../../../../../etc/passwd", "out/sub/deep")
try:
    os.link("/etc/passwd", "out/hardlink")  # different fs: EXDEV
except OSError as e:
    print("hardlink:", e.strerror)
open("out/real.txt", "w").write("real")
print("planted")
