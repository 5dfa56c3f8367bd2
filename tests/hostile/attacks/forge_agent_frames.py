# Forges the agent's channel itself: opens PID 1's stdout (/proc/1/fd/1, the pipe to the host)
# and writes an STDOUT frame and an EXIT frame (exit 42) in the agent's protocol, then exits 0.
# The agent is non-dumpable, so opening its fds must fail; the result must say exit 0 and
# carry none of the forged bytes.
import json, os, struct

r = {}
for fd in range(6):
    try:
        r[f"fd{fd}"] = os.readlink(f"/proc/1/fd/{fd}")
    except OSError as e:
        r[f"fd{fd}"] = e.strerror
try:
    f = os.open("/proc/1/fd/1", os.O_WRONLY)
    exit_payload = struct.pack(">Bi", 0, 42) + b"FORGED-EXIT"
    os.write(f, b"O" + struct.pack(">I", 13) + b"FORGED-STDOUT")
    os.write(f, b"X" + struct.pack(">I", len(exit_payload)) + exit_payload)
    r["forge"] = "written"
except OSError as e:
    r["forge"] = e.strerror
print(json.dumps(r))
