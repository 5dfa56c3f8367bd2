# Memory bomb: allocate and touch memory without end; the memory cgroup must kill it (oom).
b = []
while True:
    b.append(bytearray(16 << 20))
