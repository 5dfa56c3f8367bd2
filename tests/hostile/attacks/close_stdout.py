# Closes stdout and stderr early, then keeps working and exits 5: the agent must still collect
# the exit code (and what was printed before the close).
import os, time
os.write(1, b"before close\n")
os.close(1)
os.close(2)
time.sleep(0.5)
x = sum(range(10**6))
os._exit(5)
