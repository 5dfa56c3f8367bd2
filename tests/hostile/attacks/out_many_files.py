# 10,000 files in /workspace/out: the result carries at most 100 and says files_truncated.
import os

os.makedirs("out", exist_ok=True)
for i in range(10000):
    with open(f"out/f{i:05d}", "w") as f:
        f.write(str(i))
print("made 10000")
