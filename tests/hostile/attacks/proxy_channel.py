# Abuses the credential proxy's channel (sandbox/agent/frame.h, "The credential proxy") of a
# task that names no services: proxy_fetch to the cloud metadata address, a flood of 500
# calls, a subprocess looking for the channel's fds, a write to the response end, then garbage
# on the request pipe and a call after it. Prints JSON: what each step saw. Nothing may leave
# the node (the task has no services), the agent must refuse the garbage in the sandbox and
# close the channel, and the node must stay healthy.
import errno
import json
import os
import struct
import subprocess

from runtime import ProxyError, proxy_fetch

o = {}
try:
    proxy_fetch("https://169.254.169.254/latest/meta-data/", {"service": "metadata"})
    o["no_services"] = "answered"
except ProxyError as e:
    o["no_services"] = "refused" if "names no services" in str(e) else str(e)
n = 0
for _ in range(500):
    try:
        proxy_fetch("https://127.0.0.1/", {"service": "x"})
    except ProxyError:
        n += 1
o["flood"] = n
fds = subprocess.run(["/bin/sh", "-c", "ls /proc/self/fd"], capture_output=True, text=True).stdout
o["inherited"] = any(x in ("5", "6") for x in fds.split())
try:
    os.write(6, b"x")
    o["write_response_end"] = "written"
except OSError as e:
    o["write_response_end"] = errno.errorcode.get(e.errno, str(e.errno))
os.write(5, b"Z" * 10)
head = os.read(6, 5)
body = os.read(6, struct.unpack(">I", head[1:])[0]) if len(head) == 5 else b""
o["garbage"] = body[5:].decode("utf-8", "replace")
try:
    os.write(5, b"q\0\0\0\0")
    o["after"] = "written"
except OSError as e:
    o["after"] = errno.errorcode.get(e.errno, str(e.errno))
print(json.dumps(o))
