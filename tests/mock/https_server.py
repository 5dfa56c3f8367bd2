#!/usr/bin/python3
"""A loopback HTTPS API for the credential proxy's tests (tests/integration/test-proxy.sh and
tests/bench/proxy.sh): real TLS with a certificate of the test's own CA, real HTTP/1.1.

  /v1/echo        JSON {method, path, query, auth_ok, x_test, body_len, headers}: auth_ok says
                  whether Authorization was "Bearer <the key file's value>"; the value itself is
                  never sent back (headers lists the names only)
  /v1/big?n=N     N bytes of "x"
  /v1/slow        headers, then one byte a second for 60 s (a slow-loris server)
  /v1/redirect    302 to https://169.254.169.254/latest/meta-data/
  /v1/cookie      200 with Set-Cookie
  anything else   404
Every request is appended to --log as "METHOD PATH" (no query), so a test can tell that a
refused call never reached the server."""

import argparse
import json
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARGS = None
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # one write per response, no Nagle: otherwise delayed ACKs add 40 ms to every answer
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def log_message(self, fmt, *a):
        pass

    def _record(self):
        u = urllib.parse.urlsplit(self.path)
        with LOCK, open(ARGS.log, "a") as f:
            f.write("%s %s\n" % (self.command, u.path))
        return u

    def _send(self, status, body, ctype="application/json", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _handle(self):
        u = self._record()
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        q = urllib.parse.parse_qs(u.query)
        if u.path == "/v1/echo":
            key = open(ARGS.key_file).read().strip()
            doc = {"method": self.command, "path": u.path, "query": u.query,
                   "auth_ok": self.headers.get("Authorization") == "Bearer " + key,
                   "x_test": self.headers.get("X-Test"), "body_len": len(body),
                   "headers": sorted(k.lower() for k in self.headers.keys())}
            return self._send(200, json.dumps(doc).encode())
        if u.path == "/v1/big":
            return self._send(200, b"x" * int(q.get("n", ["0"])[0]), "text/plain")
        if u.path == "/v1/slow":
            self.send_response(200)
            self.send_header("Content-Length", "60")
            self.end_headers()
            self.wfile.flush()
            for _ in range(60):
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(1)
            return
        if u.path == "/v1/redirect":
            return self._send(302, b"", extra=[("Location",
                                                "https://169.254.169.254/latest/meta-data/")])
        if u.path == "/v1/cookie":
            return self._send(200, b"{}", extra=[("Set-Cookie", "session=stolen; Path=/"),
                                                 ("X-Kept", "yes")])
        return self._send(404, b"{}")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--key-file", required=True, help="the API key the server expects")
    p.add_argument("--log", required=True)
    ARGS = p.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    srv.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(ARGS.cert, ARGS.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    open(ARGS.log, "a").close()
    with open(ARGS.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    import os
    os.rename(ARGS.port_file + ".tmp", ARGS.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
