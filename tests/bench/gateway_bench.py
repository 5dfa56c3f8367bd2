#!/usr/bin/python3
"""The gateway's overhead over the Redis path (issue 22): the same warm task, print(1+1),
alternately through Redis as a scheduler does it (XADD aisp:tasks with a reply stream, then
XREAD BLOCK on it) and through aisp-gateway (POST /v1/exec on a keep-alive connection).
Prints one JSON object with both distributions. Standard library only (bench.py's RESP client)."""
import argparse
import http.client
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import Redis  # noqa: E402  (the bench's own RESP client)


def redis_path(r, task, stream, last):
    t0 = time.monotonic()
    r.cmd("XADD", "aisp:tasks", "*", "task", json.dumps(task))
    while True:
        rep = r.cmd("XREAD", "BLOCK", 60000, "STREAMS", stream, last)
        if not rep:
            raise RuntimeError("no result within 60 s")
        for eid, fields in rep[0][1]:
            last = eid
            f = dict(zip(fields[::2], fields[1::2]))
            if f.get(b"id", b"").decode() == task["id"] and b"result" in f:
                st = json.loads(f[b"result"])["status"]
                if st != "ok":
                    raise RuntimeError(f"status {st}")
                return time.monotonic() - t0, last


def http_path(c, key, task):
    t0 = time.monotonic()
    c.request("POST", "/v1/exec", body=json.dumps(task),
              headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    r = c.getresponse()
    body = json.loads(r.read())
    if r.status != 200 or body["status"] != "completed":
        raise RuntimeError(f"{r.status} {body.get('status')}")
    return time.monotonic() - t0


def dist(xs):
    xs = sorted(x * 1000 for x in xs)
    q = lambda p: round(xs[min(len(xs) - 1, int(p * len(xs)))], 2)  # noqa: E731
    return {"n": len(xs), "p50_ms": q(0.5), "p90_ms": q(0.9), "p99_ms": q(0.99),
            "mean_ms": round(statistics.mean(xs), 2)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--redis-port", type=int, required=True)
    p.add_argument("--gateway", required=True, help="host:port")
    p.add_argument("--key", required=True)
    p.add_argument("--runtime", default="runc")
    p.add_argument("-n", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    a = p.parse_args()
    r = Redis(a.redis_port, timeout=120)
    host, port = a.gateway.split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=120)
    run = f"{int(time.time())}"
    stream = f"aisp:reply:bench-{run}"
    last = "0-0"  # the stream is new: nothing before the first task
    rl, hl = [], []
    for i in range(a.warmup + a.n):
        base = {"lang": "python", "code": "print(1+1)", "runtime": a.runtime}
        t_r, last = redis_path(r, dict(base, id=f"bench-r-{run}-{i}", reply_stream=stream), stream,
                               last)
        t_h = http_path(c, a.key, dict(base, id=f"bench-h-{run}-{i}"))
        if i >= a.warmup:
            rl.append(t_r)
            hl.append(t_h)
    rd, hd = dist(rl), dist(hl)
    print(json.dumps({"runtime": a.runtime, "redis": rd, "http": hd,
                      "overhead_p50_ms": round(hd["p50_ms"] - rd["p50_ms"], 2),
                      "ratio_p50": round(hd["p50_ms"] / rd["p50_ms"], 3)}))


if __name__ == "__main__":
    sys.exit(main())
