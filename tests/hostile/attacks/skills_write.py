# Writes to the skills tree (root-owned, read-only to the program: proto/PROTOCOL.md,
# "Skills"): a new file, appending to a skill's file, replacing it, a new directory, chmod.
import json, os

base = "/.aisp/skills/leaky"
def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return type(e).__name__
r = {
    "create": attempt(lambda: open(base + "/planted.py", "w").write("x")),
    "append": attempt(lambda: open(base + "/code/leak.py", "a").write("x")),
    "rename": attempt(lambda: os.rename(base + "/code/leak.py", base + "/code/gone.py")),
    "unlink": attempt(lambda: os.unlink(base + "/skill.toml")),
    "mkdir": attempt(lambda: os.mkdir("/.aisp/skills/other")),
    "chmod": attempt(lambda: os.chmod(base + "/code/leak.py", 0o777)),
    "blobs": attempt(lambda: open("/.aisp/blobs/x", "w").write("x")),
    "listing": sorted(os.listdir("/.aisp/skills")),
}
print(json.dumps(r))
