# FIFOs and sockets in /workspace/out: a host (or agent) that opened them would block forever.
# Only out/real.txt may come back, promptly.
import os, socket

os.makedirs("out", exist_ok=True)
os.mkfifo("out/fifo")
os.mkfifo("out/fifo.txt")
s = socket.socket(socket.AF_UNIX)
s.bind("out/sock")
open("out/real.txt", "w").write("real")
print("planted")
