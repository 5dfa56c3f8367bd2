# A hostile program against the proxy channel (tests/integration/test-proxy.sh): many calls the
# node refuses, then a frame that claims 2 GiB, then garbage; each step prints what it saw.
import os
import struct
import sys

from runtime import ProxyError, proxy_fetch

refused = 0
for i in range(300):
    try:
        proxy_fetch("https://localhost/v1/echo", service="other")
    except ProxyError:
        refused += 1
print("flood-refused:", refused)
os.write(5, b"q" + struct.pack(">I", 2**31))
head = os.read(6, 5)
n = struct.unpack(">I", head[1:])[0]
msg = os.read(6, n)
print("huge:", head[:1].decode(), msg[5:].decode())
try:
    proxy_fetch("https://localhost/v1/echo", service="echo")
    print("after: answered")
except ProxyError as e:
    print("after:", type(e).__name__, e)
