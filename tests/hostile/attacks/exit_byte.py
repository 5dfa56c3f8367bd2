# Writes the bootstrap's exit-status byte (fd 7) itself, lets go of stdout and stderr, leaves a
# detached process behind and spins: the agent takes the byte as the program's end (exit code
# 7, with what was printed before it), reports without waiting for the spinning program, and
# kills all of it right after (at the host's hang-up, 250 ms after EXIT at the latest).
import os, subprocess
subprocess.Popen(["sh", "-c", "sleep 1000"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL, start_new_session=True)
os.write(1, b"before the byte\n")
os.write(7, b"\x07")
os.close(1)
os.close(2)
while True:
    pass
