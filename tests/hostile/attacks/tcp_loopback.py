# TCP to 127.0.0.1 and to other loopback and local addresses on well-known ports (Redis 6379,
# SSH 22, the node's metrics 9464): only the sandbox's own empty loopback exists.
import errno, json, socket

r = {}
for host in ("127.0.0.1", "127.0.1.1", "::1"):
    for port in (22, 6379, 9464):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect((host, port))
            r[f"{host}:{port}"] = "connected"
        except socket.timeout:
            r[f"{host}:{port}"] = "timeout"
        except OSError as e:
            r[f"{host}:{port}"] = errno.errorcode.get(e.errno, str(e.errno))
        finally:
            s.close()
print(json.dumps(r))
