# Raw and packet sockets need CAP_NET_RAW: every one must be refused.
import errno, json, socket

r = {}
for name, fam, typ, proto in (
    ("inet_raw_icmp", socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
    ("inet_raw_tcp", socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP),
    ("inet6_raw", socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6),
    ("packet_raw", socket.AF_PACKET, socket.SOCK_RAW, 0x0300),
    ("packet_dgram", socket.AF_PACKET, socket.SOCK_DGRAM, 0x0300),
):
    try:
        socket.socket(fam, typ, proto).close()
        r[name] = "created"
    except OSError as e:
        r[name] = errno.errorcode.get(e.errno, str(e.errno))
print(json.dumps(r))
