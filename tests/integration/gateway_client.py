#!/usr/bin/python3
"""HTTP client of tests/integration/test-gateway.sh: requests whose responses are validated
against gateway/openapi.yaml (and through it proto/schemas/*.json), raw-socket cases (malformed
HTTP, keep-alive and pipelined connections, slow clients, the connection cap), a bounded load
test and a keep-alive flood. Standard library plus Debian's
python3-jsonschema and python3-yaml. Each command exits 0 when every check passed and prints
what it saw on stdout (diagnostics on stderr)."""
import argparse
import http.client
import json
import os
import pathlib
import socket
import statistics
import sys
import threading
import time

import jsonschema
import yaml

SRC = pathlib.Path(os.environ.get("AISP_SOURCE_ROOT", pathlib.Path(__file__).resolve().parents[2]))
OPENAPI = SRC / "gateway" / "openapi.yaml"


def _registry():
    doc = yaml.safe_load(OPENAPI.read_text())
    store = {OPENAPI.as_uri(): doc}
    for p in (SRC / "proto" / "schemas").glob("*.json"):
        s = json.loads(p.read_text())
        store[p.as_uri()] = s
        store[s["$id"]] = s
    return doc, store


DOC, STORE = _registry()


def validate(name, value):
    """Validates value against components/schemas/<name> of the OpenAPI document."""
    schema = {"$ref": OPENAPI.as_uri() + "#/components/schemas/" + name}
    resolver = jsonschema.RefResolver(OPENAPI.as_uri(), DOC, store=STORE)
    jsonschema.Draft202012Validator(schema, resolver=resolver).validate(value)


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def request(base, method, path, key=None, body=None, ctype="application/json", accept=None,
            headers=None):
    u = base.split("//", 1)[1]
    host, port = u.split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=120)
    h = dict(headers or {})
    if key:
        h["Authorization"] = "Bearer " + key
    if body is not None and ctype:
        h["Content-Type"] = ctype
    if accept:
        h["Accept"] = accept
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data


def cmd_req(a):
    body = None
    if a.body is not None:
        body = open(a.body[1:], "rb").read() if a.body.startswith("@") else a.body.encode()
    st, h, data = request(a.url, a.method, a.path, a.key, body, a.ctype)
    if a.out:
        open(a.out, "wb").write(data)
    sys.stdout.write(data.decode(errors="replace") + "\n")
    if st != a.status:
        fail(f"status {st}, want {a.status}")
    ct = h.get("content-type", "")
    if "html" in ct.lower() or data.lstrip().startswith(b"<"):
        fail("an HTML response")
    if not h.get("x-call-id") and a.path not in ("/metrics", "/healthz"):
        fail("no X-Call-Id")
    if st >= 400:
        if ct != "application/problem+json":
            fail(f"error with Content-Type {ct!r}")
        validate("Problem", json.loads(data))
    if a.schema:
        try:
            validate(a.schema, json.loads(data))
        except jsonschema.ValidationError as e:
            fail(f"not a {a.schema}: {e.message} at {list(e.absolute_path)}")


def raw_exchange(host, port, payload, timeout=10):
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(payload)
    except OSError:
        pass
    data = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    except OSError:
        pass
    s.close()
    return data


def check_problem_reply(data, want):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    if not lines[0].startswith("HTTP/1.1 "):
        fail(f"no HTTP reply: {data[:200]!r}")
    st = int(lines[0].split()[1])
    hdr = dict(l.split(": ", 1) for l in lines[1:] if ": " in l)
    print(lines[0], body.decode(errors="replace"))
    if want and st not in want:
        fail(f"status {st}, want one of {want}")
    if hdr.get("Content-Type") != "application/problem+json":
        fail(f"Content-Type {hdr.get('Content-Type')!r}")
    validate("Problem", json.loads(body))
    return st


def cmd_raw(a):
    payload = a.payload.encode().decode("unicode_escape").encode("latin-1")
    if a.repeat:
        payload = payload.replace(b"@@", b"a" * a.repeat)
    check_problem_reply(raw_exchange("127.0.0.1", a.port, payload), a.status)


def cmd_slowloris(a):
    """n connections that send one header byte per second: each must be closed by the server
    (with a 408 problem) before a.limit seconds, while a normal request still succeeds."""
    conns = []
    for _ in range(a.n):
        s = socket.create_connection(("127.0.0.1", a.port), timeout=a.limit)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        s.setblocking(False)
        conns.append(s)
    start = time.monotonic()
    closed, replies = {}, {}
    while len(closed) < len(conns) and time.monotonic() - start < a.limit:
        for i, s in enumerate(conns):
            if i in closed:
                continue
            try:
                s.send(b"a")
            except OSError:
                closed[i] = time.monotonic() - start
                continue
            try:
                d = s.recv(65536)
                replies[i] = replies.get(i, b"") + d
                if not d:
                    closed[i] = time.monotonic() - start
            except BlockingIOError:
                pass
            except OSError:
                closed[i] = time.monotonic() - start
        st, _, _ = request(f"http://127.0.0.1:{a.port}", "GET", "/health")
        if st != 200:
            fail(f"/health answered {st} while slow clients were connected")
        time.sleep(1)
    for s in conns:
        s.close()
    print(f"{len(closed)}/{len(conns)} slow connections closed by the gateway, after "
          f"{max(closed.values()) if closed else 0:.1f} s at most")
    if len(closed) != len(conns):
        fail("some slow connections were never closed")
    for i, d in replies.items():
        if d:
            check_problem_reply(d, [408])


def cmd_conncap(a):
    """a.n idle connections to a gateway whose cap is below n: the extra ones get 503."""
    conns = [socket.create_connection(("127.0.0.1", a.port), timeout=5) for _ in range(a.n)]
    time.sleep(1)
    refused = 0
    for s in conns:
        s.setblocking(False)
        try:
            d = s.recv(65536)
        except BlockingIOError:
            continue
        if d:
            check_problem_reply(d, [503])
            refused += 1
    for s in conns:
        s.close()
    print(f"{refused} of {a.n} connections refused with 503")
    if refused != a.want:
        fail(f"want {a.want} refused")


def cmd_ndjson(a):
    u = a.url.split("//", 1)[1]
    host, port = u.split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=120)
    c.request("POST", "/v1/exec", body=open(a.body, "rb").read(),
              headers={"Authorization": "Bearer " + a.key, "Content-Type": "application/json",
                       "Accept": "application/x-ndjson"})
    r = c.getresponse()
    if r.status != 200 or r.getheader("Content-Type") != "application/x-ndjson":
        fail(f"status {r.status} {r.getheader('Content-Type')}")
    events = []
    while True:
        line = r.readline()  # chunked transfer decoded by http.client
        if not line:
            break
        line = line.strip()
        if not line:
            continue
        ev = json.loads(line)
        validate("StreamEvent", ev)
        if ev["event"] == "queued" and a.mark:
            open(a.mark, "w").write(ev["jobId"])
        if ev["event"] == "result":
            validate("ExecResponse", {k: v for k, v in ev.items() if k != "event"})
        events.append(ev["event"])
        print(json.dumps(ev), flush=True)
    print("events:", " ".join(events))


def cmd_load(a):
    """a.clients threads, each with its own keep-alive connection, a.total requests in all."""
    body = open(a.body, "rb").read()
    lat, errors, bodies, lock = [], [], [], threading.Lock()
    per = a.total // a.clients
    barrier = threading.Barrier(a.clients)

    def worker():
        u = a.url.split("//", 1)[1]
        host, port = u.split(":")
        c = http.client.HTTPConnection(host, int(port), timeout=120)
        barrier.wait()
        for _ in range(per):
            t0 = time.monotonic()
            t1 = None
            try:
                c.request("POST", a.path, body=body,
                          headers={"Authorization": "Bearer " + a.key,
                                   "Content-Type": "application/json"})
                r = c.getresponse()
                data = r.read()
                t1 = time.monotonic()
                ok = r.status == a.status
                if ok and a.schema:  # validated after the run: the GIL would skew latencies
                    with lock:
                        bodies.append(data)
            except Exception as e:  # noqa: BLE001 - every failure counts
                ok, data = False, str(e).encode()
                c.close()
                c = http.client.HTTPConnection(host, int(port), timeout=120)
            with lock:
                lat.append((t1 or time.monotonic()) - t0)
                if not ok:
                    errors.append(data[:200])
        c.close()

    threads = [threading.Thread(target=worker) for _ in range(a.clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    for data in bodies:
        try:
            validate(a.schema, json.loads(data))
        except (ValueError, jsonschema.ValidationError) as e:
            errors.append(f"not a {a.schema}: {e}".encode()[:200])
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000  # noqa: E731
    print(f"{len(lat)} requests from {a.clients} concurrent clients in {wall:.2f} s: "
          f"{len(lat) / wall:.0f} req/s; latency p50 {q(0.5):.1f} ms, p90 {q(0.9):.1f} ms, "
          f"p99 {q(0.99):.1f} ms, max {lat[-1] * 1000:.1f} ms, mean "
          f"{statistics.mean(lat) * 1000:.1f} ms; {len(errors)} errors")
    if errors:
        fail(f"first errors: {errors[:3]}")


def read_replies(s, n, buf=b""):
    """n HTTP/1.1 replies (Content-Length framed, as the gateway sends them) from socket s:
    a list of (status, headers, body) and what was read past them."""
    out = []
    while len(out) < n:
        head_end = buf.find(b"\r\n\r\n")
        if head_end >= 0:
            lines = buf[:head_end].decode(errors="replace").split("\r\n")
            hdr = dict((k.lower(), v) for k, v in
                       (l.split(": ", 1) for l in lines[1:] if ": " in l))
            end = head_end + 4 + int(hdr.get("content-length", "0"))
            if len(buf) >= end:
                out.append((int(lines[0].split()[1]), hdr, buf[head_end + 4:end]))
                buf = buf[end:]
                continue
        d = s.recv(1 << 20)
        if not d:
            fail(f"the connection closed after {len(out)} of {n} replies: {buf[:200]!r}")
        buf += d
    return out, buf


def cmd_keepalive(a):
    """One connection, the payloads sent one after the other (each after the previous reply,
    or all at once with --pipeline); every reply must have the wanted status in order, and
    none may be HTML."""
    steps = [p.encode().decode("unicode_escape").encode("latin-1") for p in a.step]
    if len(a.status) != len(steps):
        fail("one --status per --step")
    s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
    replies, rest = [], b""
    if a.pipeline:
        s.sendall(b"".join(steps))
        replies, rest = read_replies(s, len(steps))
    else:
        for p in steps:
            s.sendall(p)
            got, rest = read_replies(s, 1, rest)
            replies += got
    s.close()
    for (st, hdr, body), want in zip(replies, a.status):
        ct = hdr.get("content-type", "")
        print(st, ct, body.decode(errors="replace"))
        if st != want:
            fail(f"status {st}, want {want}")
        if "html" in ct.lower() or body.lstrip().startswith(b"<"):
            fail("an HTML reply")
        if st >= 400:
            if ct != "application/problem+json":
                fail(f"error with Content-Type {ct!r}")
            validate("Problem", json.loads(body))


def cmd_flood(a):
    """a.n requests for a.path (padded to a.path_len bytes) on one keep-alive connection,
    a.depth at a time (1: each after the previous reply), as fast as the gateway answers; each
    reply must be a.status."""
    path = a.path + "x" * max(0, a.path_len - len(a.path))
    hdr = f"Authorization: Bearer {a.key}\r\n" if a.key else ""
    one = f"GET {path} HTTP/1.1\r\nHost: x\r\n{hdr}\r\n".encode()
    s = socket.create_connection(("127.0.0.1", a.port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    done, rest, bad, t0 = 0, b"", 0, time.monotonic()
    while done < a.n:
        k = min(a.depth, a.n - done)
        s.sendall(one * k)
        got, rest = read_replies(s, k, rest)
        bad += sum(1 for st, _, _ in got if st != a.status)
        done += k
    wall = time.monotonic() - t0
    s.close()
    print(f"{done} requests of {len(path)}-byte paths on one connection in {wall:.2f} s: "
          f"{done / wall:.0f} req/s")
    if bad:
        fail(f"{bad} replies were not {a.status}")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("req")
    r.add_argument("method")
    r.add_argument("url")
    r.add_argument("path")
    r.add_argument("--key")
    r.add_argument("--body")
    r.add_argument("--ctype", default="application/json")
    r.add_argument("--status", type=int, default=200)
    r.add_argument("--schema")
    r.add_argument("--out")
    r = sub.add_parser("raw")
    r.add_argument("port", type=int)
    r.add_argument("payload")
    r.add_argument("--repeat", type=int, default=0)
    r.add_argument("--status", type=int, action="append")
    r = sub.add_parser("slowloris")
    r.add_argument("port", type=int)
    r.add_argument("--n", type=int, default=5)
    r.add_argument("--limit", type=float, default=30)
    r = sub.add_parser("conncap")
    r.add_argument("port", type=int)
    r.add_argument("--n", type=int)
    r.add_argument("--want", type=int)
    r = sub.add_parser("ndjson")
    r.add_argument("url")
    r.add_argument("key")
    r.add_argument("body")
    r.add_argument("--mark")
    r = sub.add_parser("load")
    r.add_argument("url")
    r.add_argument("key")
    r.add_argument("path")
    r.add_argument("body")
    r.add_argument("--clients", type=int, default=200)
    r.add_argument("--total", type=int, default=2000)
    r.add_argument("--status", type=int, default=200)
    r.add_argument("--schema")
    r = sub.add_parser("keepalive")
    r.add_argument("port", type=int)
    r.add_argument("--step", action="append", required=True)
    r.add_argument("--status", type=int, action="append", required=True)
    r.add_argument("--pipeline", action="store_true")
    r = sub.add_parser("flood")
    r.add_argument("port", type=int)
    r.add_argument("path")
    r.add_argument("--n", type=int, default=1000)
    r.add_argument("--path-len", type=int, default=0)
    r.add_argument("--depth", type=int, default=1)
    r.add_argument("--key")
    r.add_argument("--status", type=int, default=404)
    a = p.parse_args()
    {"req": cmd_req, "raw": cmd_raw, "slowloris": cmd_slowloris, "conncap": cmd_conncap,
     "ndjson": cmd_ndjson, "load": cmd_load, "keepalive": cmd_keepalive,
     "flood": cmd_flood}[a.cmd](a)


if __name__ == "__main__":
    main()
