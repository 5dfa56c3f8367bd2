# Network isolation, asserted without sending anything out: the interfaces (only lo), the IPv4
# and IPv6 routes (none), and a UDP "connect" to a documentation address (192.0.2.1,
# TEST-NET-1: connect() on UDP sends no packet, it only needs a route). Prints JSON.
import errno, json, socket

r = {"ifaces": sorted(n for _, n in socket.if_nameindex())}
r["routes4"] = [l for l in open("/proc/net/route").read().splitlines()[1:] if l.strip()]
try:
    r["routes6"] = [l for l in open("/proc/net/ipv6_route").read().splitlines()
                    if l.strip() and not l.split()[-1] == "lo"]
except OSError:
    r["routes6"] = []
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.connect(("192.0.2.1", 53))
    r["udp_route"] = "has a route"
except OSError as e:
    r["udp_route"] = errno.errorcode.get(e.errno, str(e.errno))
print(json.dumps(r))
