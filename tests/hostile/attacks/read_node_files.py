# Reads the node's key and config paths (argv[1:], host paths) and prints whatever it gets:
# the paths do not exist inside the sandbox; if they did, the canaries would show up in the
# result and the driver would see them.
import errno, json, os, sys

r = {}
for p in sys.argv[1:] + [os.path.dirname(sys.argv[1]), "/etc/aisp/aispd.conf",
                         "/etc/aisp/node-key/private.pem", "/var/lib/aisp/state/chain.json"]:
    try:
        if os.path.isdir(p):
            r[p] = "dir: " + " ".join(os.listdir(p))
        else:
            r[p] = open(p, errors="replace").read()
    except OSError as e:
        r[p] = errno.errorcode.get(e.errno, str(e.errno))
print(json.dumps(r))
