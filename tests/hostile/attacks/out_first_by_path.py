# 100,010 output files (issue 14 item 7): the result carries the first 100 by path and says
# files_truncated, whatever order the directory lists them in.
import os

for i in range(100010):
    open("out/f%06d" % i, "w").close()
print("made 100010")
