# Thread bomb: start threads until the pids limit says no, then report how many were made.
import threading, time

n = 0
try:
    while True:
        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
        n += 1
except (RuntimeError, OSError) as e:
    print("stopped after", n, "threads:", type(e).__name__)
