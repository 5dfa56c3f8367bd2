# DNS lookup. Only attempted when the sandbox has no interface but lo (so that a query can
# never leave the machine, whatever the resolver configuration says); resolves a name under
# the reserved .invalid TLD and example.com; both must fail.
import json, socket

ifaces = sorted(n for _, n in socket.if_nameindex())
if ifaces != ["lo"]:
    print(json.dumps({"unsafe": ifaces}))
    raise SystemExit(3)
r = {"ifaces": ifaces}
for name in ("aisp-hostile.invalid", "example.com"):
    try:
        r[name] = socket.getaddrinfo(name, 80)[0][4][0]
    except socket.gaierror as e:
        r[name] = "gaierror"
print(json.dumps(r))
