# TCP to the node's Redis port (argv[1]) and its HTTP port (argv[2]) on 127.0.0.1: the sandbox
# has its own loopback, so nothing answers. Prints one JSON object.
import errno, json, socket, sys


def connect(port):
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(b"PING\r\n")
        return "connected:" + s.recv(64).decode(errors="replace")
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    finally:
        s.close()


print(json.dumps({"redis": connect(int(sys.argv[1])), "http": connect(int(sys.argv[2]))}))
