# kill(-1, SIGKILL): every process the program may signal, except itself and its namespace's
# init (the agent). The agent must survive and report the program's normal exit.
import os, signal, subprocess, time

kids = [subprocess.Popen(["sleep", "30"]) for _ in range(3)]
os.kill(-1, signal.SIGKILL)
time.sleep(0.2)
print("survived; children:", [k.wait() for k in kids])
