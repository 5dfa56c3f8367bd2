# Netlink: list the links through NETLINK_ROUTE (only lo may exist) and try to create one
# (a dummy link: needs CAP_NET_ADMIN, must be refused). Prints JSON.
import errno, json, os, socket, struct

r = {}
try:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
except OSError as e:
    print(json.dumps({"socket": errno.errorcode.get(e.errno, str(e.errno)), "links": ["lo"],
                      "newlink": "no socket"}))
    raise SystemExit(0)
s.bind((0, 0))
RTM_GETLINK, RTM_NEWLINK, NLM_F_REQUEST, NLM_F_DUMP, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL = \
    18, 16, 1, 0x300, 4, 0x400, 0x200
ifinfo = struct.pack("BxHiII", socket.AF_UNSPEC, 0, 0, 0, 0)
s.send(struct.pack("=IHHII", 16 + len(ifinfo), RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + ifinfo)
links, done = [], False
while not done:
    data = s.recv(65536)
    off = 0
    while off + 16 <= len(data):
        ln, typ = struct.unpack_from("=IH", data, off)
        if typ == 3 or typ == 2:  # NLMSG_DONE, NLMSG_ERROR
            done = True
            break
        a = off + 16 + 16
        while a + 4 <= off + ln:
            alen, atyp = struct.unpack_from("=HH", data, a)
            if atyp == 3:  # IFLA_IFNAME
                links.append(data[a + 4:a + alen].rstrip(b"\0").decode())
            a += (alen + 3) & ~3
        off += (ln + 3) & ~3
r["links"] = sorted(links)


def attr(t, payload):
    return struct.pack("=HH", 4 + len(payload), t) + payload + b"\0" * ((-len(payload)) % 4)


kind = attr(1, b"dummy\0")  # IFLA_INFO_KIND
body = ifinfo + attr(3, b"aisp0\0") + attr(18, kind)  # IFLA_IFNAME, IFLA_LINKINFO
s.send(struct.pack("=IHHII", 16 + len(body), RTM_NEWLINK,
                   NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, 2, 0) + body)
data = s.recv(65536)
code = struct.unpack_from("=i", data, 16)[0] if len(data) >= 20 else None
r["newlink"] = "created" if code == 0 else errno.errorcode.get(-code, str(code)) if code else "?"
print(json.dumps(r))
