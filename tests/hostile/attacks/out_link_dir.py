# out/ itself replaced by a link to a directory (issue 14 item 3): /etc, /proc/self or /.aisp
# (argv). gVisor follows a link to a directory when O_DIRECTORY is combined with O_NOFOLLOW; the
# agent's walk must never read through it, on either runtime: no output file comes back.
import os, sys

os.rmdir("out")
os.symlink(sys.argv[1], "out")
print("out ->", os.readlink("out"))
