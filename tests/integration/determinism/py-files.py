import os
os.makedirs("out", exist_ok=True)
for i in range(3):
    open(f"out/f{i}.txt", "w").write(str(i) * (i + 1))
print("wrote 3 files")
