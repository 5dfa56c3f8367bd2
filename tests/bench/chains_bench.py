#!/usr/bin/python3
"""A warm three-step chain's overhead beyond the mock's answer time (issue 19), measured side by
side in one run. Each round, in turn:
  chain   the seed's chain (llm -> script -> llm) through Redis (XADD with a reply stream,
          XREAD BLOCK on it), end to end;
  mock    the two requests that chain's llm steps sent, byte for byte (recorded by the mock in a
          first chain), straight to the mock, one fresh connection each as the node's client
          makes them: the mock's answer time for one chain;
  script  a one-step chain (the same script step alone, its input given);
  plain   a plain warm JavaScript task (console.log(2)), the sandbox path alone.
Each measurement starts once the node's pools refilled (its /metrics: every target warm,
nothing created or destroyed), so that every one takes a warm sandbox; "unsettled" counts the
waits that gave up after 30 s (0 in a clean run).
Prints one JSON object per runtime: the distributions (ms), the node's own step records (each
step's wall_ms, from the results), and the figures, every one paired within a round and given
as the p50 over rounds:
  overhead_ms        chain - mock: what the node adds to the mock's answers (two llm calls on
                     the loop, one script step in the chain's warm sandbox, records, signature)
  chain_vs_mock      chain / mock
  chain_vs_separate  chain / (mock + plain): the chain against its two llm calls made by hand
                     plus a separate warm task for its script
  script_vs_plain    script / plain: a script step in a chain's one warm sandbox against a
                     separate task
Never asserted: a bench reports. Standard library only (bench.py's RESP client, gateway_bench.py's
Redis path and distribution)."""
import argparse
import json
import os
import statistics
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import Redis, wait_settled  # noqa: E402  (the bench's RESP client, pool wait)
from gateway_bench import dist, redis_path as through_redis  # noqa: E402

INPUT = {"items": [{"price": 10}, {"price": 20.5}, {"price": 4.5}], "currency": "EUR"}
SCRIPT = ("const data = JSON.parse(input);\n"
          "const total = data.items.reduce((sum, item) => sum + item.price, 0);\n"
          "return JSON.stringify({total, count: data.items.length});")
STEPS = [
    {"type": "llm", "model": "anthropic/claude-sonnet-4", "system_prompt": "[[mock echo]]",
     "temperature": 0},
    {"type": "script", "code": SCRIPT, "timeout_ms": 10000},
    {"type": "llm", "model": "openai/gpt-4o-mini", "system_prompt": "Summarise.",
     "temperature": 0.7},
]


def http(mock, path, key=None, body=None):
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    rq = urllib.request.Request(mock + path, data=body, headers=headers)
    with urllib.request.urlopen(rq, timeout=60) as resp:
        return json.loads(resp.read())


def recorded_requests(mock, r, task, stream, last):
    """Runs one chain with the mock's log cleared; returns the chat bodies it sent, in order."""
    http(mock, "/_mock/reset", body=b"{}")
    _, last = through_redis(r, task, stream, last)
    reqs = http(mock, "/_mock/requests")["requests"]
    bodies = [q["body"].encode() for q in reqs if q["path"].endswith("/chat/completions")]
    if len(bodies) != 2:
        raise RuntimeError(f"the chain sent {len(bodies)} llm requests, not 2")
    return bodies, last


def mock_answers(mock, key, bodies):
    """The chain's llm requests, straight to the mock, one after the other."""
    t0 = time.monotonic()
    for b in bodies:
        if not http(mock, "/v1/chat/completions", key, b)["choices"][0]["message"]["content"]:
            raise RuntimeError("the mock gave an empty answer")
    return time.monotonic() - t0


def step_walls(r, tid):
    """Each step's wall_ms as the node recorded it in the result."""
    res = json.loads(r.cmd("GET", "aisp:result:" + tid))
    return [s["usage"]["wall_ms"] for s in res["steps"]]


def p50(xs):
    return round(statistics.median(xs), 3)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--redis-port", type=int, required=True)
    p.add_argument("--mock", required=True, help="http://127.0.0.1:PORT")
    p.add_argument("--key-file", required=True)
    p.add_argument("--metrics-port", type=int, required=True, help="the node's [http] port")
    p.add_argument("--runtime", default="runc")
    p.add_argument("-n", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    a = p.parse_args()
    key = open(a.key_file).read().split("\n")[0]
    r = Redis(a.redis_port, timeout=120)
    run = f"{int(time.time())}-{a.runtime}"
    stream = f"aisp:reply:bench-chain-{run}"
    last = "0-0"  # the stream is new
    unsettled = 0

    def settle():
        nonlocal unsettled
        unsettled += not wait_settled(a.metrics_port, 30)

    def task(tid, **kw):
        settle()
        return dict(kw, id=f"{tid}-{run}", runtime=a.runtime, reply_stream=stream)

    bodies, last = recorded_requests(a.mock, r, task("bc-rec", input=INPUT, steps=STEPS),
                                     stream, last)
    rows = {"chain": [], "mock": [], "script": [], "plain": []}
    walls = []
    for i in range(a.warmup + a.n):
        tc = task(f"bc-{i}", input=INPUT, steps=STEPS)
        t_c, last = through_redis(r, tc, stream, last)
        settle()  # the chain's sandbox is replaced: not while the mock answers
        t_m = mock_answers(a.mock, key, bodies)
        t_s, last = through_redis(r, task(f"bs-{i}", input=json.dumps(INPUT),
                                          steps=[STEPS[1]]), stream, last)
        t_p, last = through_redis(r, task(f"bp-{i}", lang="javascript", code="console.log(2)"),
                                  stream, last)
        if i >= a.warmup:
            for k, t in (("chain", t_c), ("mock", t_m), ("script", t_s), ("plain", t_p)):
                rows[k].append(t)
            walls.append(step_walls(r, tc["id"]))
    c, m, s, pl = rows["chain"], rows["mock"], rows["script"], rows["plain"]
    print(json.dumps({
        "runtime": a.runtime, "rounds": a.n, "unsettled": unsettled,
        **{k: dist(v) for k, v in rows.items()},
        "chain_step_wall_p50_ms": [p50([w[j] for w in walls]) for j in range(len(STEPS))],
        "overhead_ms": p50([(x - y) * 1000 for x, y in zip(c, m)]),
        "chain_vs_mock": p50([x / y for x, y in zip(c, m)]),
        "chain_vs_separate": p50([x / (y + z) for x, y, z in zip(c, m, pl)]),
        "script_vs_plain": p50([x / y for x, y in zip(s, pl)]),
    }))


if __name__ == "__main__":
    sys.exit(main())
