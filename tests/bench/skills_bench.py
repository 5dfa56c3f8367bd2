#!/usr/bin/python3
"""A warm execute_skill call against a plain warm task (issue 18), side by side in one run.
Each round, in turn, once the node's pools refilled (every one takes a warm sandbox):
  skill   {"skill": "salesforce", "blobs": [CSV], "args": {"input_blob": CSV}} through Redis
          (XADD with a reply stream, XREAD BLOCK on it), end to end: the skill resolved and
          hashed again, its 5 files and the blob sent to the warm sandbox's agent, its two
          secrets injected, the entrypoint imported and called, its log and output blob
          collected, redacted and stored (SET NX) before the result;
  mounted the same files as a run_code task that mounts the skill and imports nothing (the
          delivery alone, no secrets, no blobs);
  plain   a plain warm Python task (print(2)), the sandbox path alone.
Prints one JSON object per runtime: the distributions (ms) and, paired within a round and given
as the p50 over rounds, skill_minus_plain_ms (what execute_skill adds), mounted_minus_plain_ms
(what delivering the skill's files adds) and skill_vs_plain. Never asserted: a bench reports.
Standard library only."""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import Redis, wait_settled  # noqa: E402  (the bench's RESP client, pool wait)
from gateway_bench import dist, redis_path as through_redis  # noqa: E402


def p50(xs):
    return round(statistics.median(xs), 3)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--redis-port", type=int, required=True)
    p.add_argument("--metrics-port", type=int, required=True, help="the node's [http] port")
    p.add_argument("--runtime", default="runc")
    p.add_argument("--blob", required=True, help="the CSV's blob id")
    p.add_argument("-n", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    a = p.parse_args()
    r = Redis(a.redis_port, timeout=120)
    run = f"{int(time.time())}-{a.runtime}"
    stream = f"aisp:reply:bench-skill-{run}"
    last = "0-0"
    unsettled = 0

    def task(tid, **kw):
        nonlocal unsettled
        unsettled += not wait_settled(a.metrics_port, 30)
        return dict(kw, id=f"{tid}-{run}", runtime=a.runtime, reply_stream=stream)

    rows = {"skill": [], "mounted": [], "plain": []}
    for i in range(a.warmup + a.n):
        t_s, last = through_redis(r, task(f"bk-{i}", skill="salesforce", blobs=[a.blob],
                                          args={"input_blob": a.blob}), stream, last)
        t_m, last = through_redis(r, task(f"bm-{i}", lang="python", code="print(2)",
                                          mount_skills=["salesforce"]), stream, last)
        t_p, last = through_redis(r, task(f"bp-{i}", lang="python", code="print(2)"), stream,
                                  last)
        if i >= a.warmup:
            for k, t in (("skill", t_s), ("mounted", t_m), ("plain", t_p)):
                rows[k].append(t)
    s, m, pl = rows["skill"], rows["mounted"], rows["plain"]
    print(json.dumps({
        "runtime": a.runtime, "rounds": a.n, "unsettled": unsettled,
        **{k: dist(v) for k, v in rows.items()},
        "skill_minus_plain_ms": p50([(x - y) * 1000 for x, y in zip(s, pl)]),
        "mounted_minus_plain_ms": p50([(x - y) * 1000 for x, y in zip(m, pl)]),
        "skill_vs_plain": p50([x / y for x, y in zip(s, pl)]),
    }))


if __name__ == "__main__":
    sys.exit(main())
