# Names with dots in /workspace/out: "....", "..a", "a..b", ". .", a directory named "..." with a
# file in it, a file whose name holds a newline and one with a backslash. All are regular files
# inside out/ and come back under their own names, except the newline one (a control character
# is not a valid result path: it is left out); nothing outside out/ comes back.
import os

os.makedirs("out/.../x..", exist_ok=True)
names = ["....", "..a", "a..b", ". .", ".../x../f", "new\nline", "back\\slash", ".hidden"]
for n in names:
    open(f"out/{n}", "w").write(n)
open("escape.txt", "w").write("outside out/")
open("/tmp/escape.txt", "w").write("outside out/")
print(len(names))
