#!/usr/bin/env python3
"""The benchmark driver of tests/bench/run.sh (python3 standard library only).

Measures, in one run and on this machine, with the project's own binaries:
  - baselines: bare host `/usr/bin/python3 -c 'print(1+1)'`, and a cold `runc run` /
    `runsc run` of the same program per task from a plain OCI bundle (the image's rootfs,
    read-only), including the delete, the way a pool-less worker would;
  - the sandbox creation rate per runtime: `aisp run --warm N --pool-size 2` creates, starts,
    readies, runs and destroys N sandboxes one after the other through the project's pool
    (max_creating 2, as aispd); rate = N / wall time of the whole command;
  - end-to-end latency through a local redis-server and aispd, from just before XADD to the
    arrival of the result on the task's reply stream (XREAD BLOCK). The reply-stream entry is
    written by the same Lua script as the result key, so its arrival is the moment the key
    became readable. Corpus x concurrency x (warm pool | pool disabled) x runtime;
  - sustained throughput (closed loop, `slots` workers) for >= 60 s per runtime, aispd's CPU
    time (utime+stime of /proc/PID/stat) per task and RSS over it;
  - memory: RSS and PSS summed over every process of one warm sandbox per runtime and language
    (its memory cgroup's processes plus every process whose command line names the container:
    runc's init, runsc's sentry, gofer and ptrace stubs).

Every loop is bounded in count and in time. Everything started (redis-server, aispd, leftover
containers) is stopped by pid at exit. Writes raw.json, summary.json and results.md into
--out; plot.gp turns the .dat files it also writes into PNGs.
"""

import argparse
import calendar
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

CORPUS = {
    # name: (lang, code, expected stdout)
    "python": ("python", "print(1+1)", "2\n"),
    "javascript": ("javascript", "console.log(2)", "2\n"),
    "shell": ("shell", "echo hi", "hi\n"),
    "python_cpu50": (
        "python",
        "import time\nt = time.process_time()\n"
        "while time.process_time() - t < 0.05:\n    pass\nprint('done')",
        "done\n",
    ),
}
RUNTIMES = ("runc", "runsc")
# the stages a node stamps on a task's published line (daemon/task.c, stages_us=), in order
STAGES = ("admitted", "leased", "acquired", "dispatched", "ran", "signed", "published")
LANGS = ("python", "javascript", "shell")
TASK_DEADLINE_S = 120  # one task's result must arrive within this
T0 = time.monotonic()
XADD_WALL_MS = {}  # task id: wall clock just before its XADD, ms
RUN_FS = {}  # what the nodes' run_dir is on (run_tmpfs)


def log(msg):
    print("[bench %6.1fs] %s" % (time.monotonic() - T0, msg), file=sys.stderr, flush=True)


def pct(values, p):
    """Nearest-rank percentile (p in 0..100) of values; None when empty."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(math.ceil(p / 100.0 * len(v))) - 1))
    return v[k]


def stats(values):
    return {
        "n": len(values),
        "p50": pct(values, 50),
        "p95": pct(values, 95),
        "p99": pct(values, 99),
        "min": min(values) if values else None,
        "max": max(values) if values else None,
    }


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------- a minimal RESP client


class RedisError(Exception):
    pass


class Redis:
    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.sock.makefile("rb")

    def close(self):
        self.f.close()
        self.sock.close()

    def cmd(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if not isinstance(a, bytes):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self._read()

    def _read(self):
        line = self.f.readline()
        if not line.endswith(b"\r\n"):
            raise RedisError("connection closed")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RedisError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            return data[:-2]
        if t == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self._read() for _ in range(n)]
        raise RedisError("bad reply type %r" % t)


# ---------------------------------------------------------------- processes we start


class Procs:
    """Every long-lived child, stopped by pid (SIGTERM, bounded wait, SIGKILL)."""

    def __init__(self):
        self.items = []

    def start(self, argv, logpath, **kw):
        lf = open(logpath, "ab")
        p = subprocess.Popen(argv, stdout=lf, stderr=subprocess.STDOUT, **kw)
        lf.close()
        self.items.append(p)
        return p

    def stop(self, p, grace_s=30):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p in self.items:
            self.items.remove(p)

    def stop_all(self):
        for p in reversed(list(self.items)):
            self.stop(p)


def reap_containers(run_dir):
    """Kills and deletes containers a node left behind (it was killed, or outlived its grace)."""
    for rt in RUNTIMES:
        root = os.path.join(run_dir, rt)
        if not os.path.isdir(root):
            continue
        r = subprocess.run([rt, "--root", root, "list", "-q"], capture_output=True, timeout=30)
        for cid in r.stdout.decode().split():
            subprocess.run([rt, "--root", root, "kill", cid, "KILL"], capture_output=True, timeout=30)
            force = "-force" if rt == "runsc" else "-f"
            subprocess.run([rt, "--root", root, "delete", force, cid], capture_output=True, timeout=30)


def run_tmpfs(path):
    """path as a tmpfs of its own: the nodes' run_dir (bundles, the runtimes' state) and the
    baselines' runtime state live where an operator's do, in RAM: aispd.service's
    RuntimeDirectory (/run/aisp) and the runtimes' /run/runc, /run/runsc are on the tmpfs that
    systemd mounts at /run (this VM's /run is not a tmpfs). Without the rights to mount one, a
    plain directory, and the report says so."""
    os.makedirs(path, mode=0o711)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0711,size=4g", "aisp-bench-run", path], capture_output=True)
    RUN_FS["type"] = "tmpfs" if r.returncode == 0 else "the bench's temporary directory (no tmpfs: %s)" % (
        r.stderr.decode(errors="replace").strip() or "mount failed")
    return path


def umount_below(path):
    with open("/proc/mounts") as f:
        mounts = [ln.split()[1] for ln in f]
    for m in sorted((m for m in mounts if m.startswith(path + "/")), reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)


# ---------------------------------------------------------------- /proc helpers


def proc_cpu_ms(pid):
    """(own utime+stime, reaped children's cutime+cstime) of pid, in ms."""
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    fields = s[s.rindex(")") + 2 :].split()
    hz = os.sysconf("SC_CLK_TCK")
    ut, st, cut, cst = (int(fields[i]) for i in (11, 12, 13, 14))
    return (ut + st) * 1000.0 / hz, (cut + cst) * 1000.0 / hz


def proc_kb(pid, key, fname="status"):
    try:
        with open("/proc/%d/%s" % (pid, fname)) as f:
            for ln in f:
                if ln.startswith(key + ":"):
                    return int(ln.split()[1])
    except OSError:
        pass
    return 0


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def sandbox_pids(sid):
    """Every host process of container sid: its cgroups' processes, processes whose command
    line names it (runsc sentry, gofer, stubs), and their descendants."""
    pids = set()
    for ctrl in ("memory", "pids", "cpu,cpuacct"):
        try:
            with open("/sys/fs/cgroup/%s/aisp/%s/cgroup.procs" % (ctrl, sid)) as f:
                pids.update(int(x) for x in f.read().split())
        except OSError:
            pass
    parent = {}
    needle = sid.encode()
    for pid in all_pids():
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                if needle in f.read():
                    pids.add(pid)
            with open("/proc/%d/stat" % pid) as f:
                s = f.read()
            parent[pid] = int(s[s.rindex(")") + 2 :].split()[1])
        except (OSError, ValueError):
            continue
    changed = True
    while changed:  # descendants (bounded: each pass adds at least one pid or stops)
        changed = False
        for pid, pp in parent.items():
            if pp in pids and pid not in pids:
                pids.add(pid)
                changed = True
    return pids


# ---------------------------------------------------------------- baselines


def time_cmd(argv, expect, timeout=120, **kw):
    t = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, timeout=timeout, **kw)
    ms = (time.perf_counter() - t) * 1000.0
    ok = r.returncode == 0 and r.stdout.decode(errors="replace") == expect
    return ms, ok, r


def host_baseline(n):
    lat, fails = [], 0
    for _ in range(n):
        ms, ok, _ = time_cmd(["/usr/bin/python3", "-c", "print(1+1)"], "2\n")
        lat.append(ms)
        fails += 0 if ok else 1
    return dict(stats(lat), failures=fails, samples=lat)


def write_bundle(bdir, rootfs, args):
    """A plain OCI bundle: `runc spec`'s default config, the image rootfs read-only."""
    os.makedirs(bdir, exist_ok=True)
    subprocess.run(["runc", "spec", "--bundle", bdir], check=True, capture_output=True)
    path = os.path.join(bdir, "config.json")
    with open(path) as f:
        c = json.load(f)
    c["root"] = {"path": rootfs, "readonly": True}
    c["process"]["terminal"] = False
    c["process"]["args"] = args
    c["process"]["env"] = ["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "LANG=C.UTF-8"]
    c["process"]["user"] = {"uid": 65534, "gid": 65534}
    c["hostname"] = "sandbox"
    c["mounts"].append(
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "size=65536k"]}
    )
    with open(path, "w") as f:
        json.dump(c, f)


def cold_runtime_baseline(rt, n, rootfs, tmp, run_root, deadline):
    """`RT run` + `RT delete` of python3 -c 'print(1+1)' per task, sequentially."""
    bdir = os.path.join(tmp, "bundle-" + rt)
    root = os.path.join(run_root, "state-" + rt)
    write_bundle(bdir, rootfs, ["/usr/bin/python3", "-c", "print(1+1)"])
    glob = ["--root", root]
    if rt == "runsc":
        glob += ["--network=none", "--platform=ptrace"]
    force = "-force" if rt == "runsc" else "-f"
    lat, fails, err = [], 0, ""
    for i in range(n):
        if time.monotonic() > deadline and lat:
            break
        cid = "bench-%s-%d-%d" % (rt, os.getpid(), i)
        t = time.perf_counter()
        r = subprocess.run([rt] + glob + ["run", "--bundle", bdir, cid], capture_output=True, timeout=120)
        subprocess.run([rt] + glob + ["delete", force, cid], capture_output=True, timeout=60)
        lat.append((time.perf_counter() - t) * 1000.0)
        if r.returncode != 0 or r.stdout != b"2\n":
            fails += 1
            err = (r.stderr or b"").decode(errors="replace")[-300:]
    return dict(stats(lat), failures=fails, last_error=err, samples=lat)


def create_rate(aisp, rt, n, tmp):
    """Sandboxes per second through the project's pool: `aisp run --warm N --pool-size 2`
    creates, starts, readies (interpreter warm), runs and destroys N sandboxes."""
    state = os.path.join(tmp, "createrate-" + rt)
    t = time.perf_counter()
    r = subprocess.run(
        [aisp, "run", "--runtime", rt, "--warm", str(n), "--pool-size", "2", "--state-dir", state, "-c", "print(1+1)"],
        capture_output=True,
        timeout=600,
    )
    wall = time.perf_counter() - t
    out = {}
    try:
        out = json.loads(r.stdout)
    except ValueError:
        pass
    ok = r.returncode == 0 and out.get("ok") == n
    return {
        "n": n,
        "wall_s": wall,
        "per_s": n / wall if ok else None,
        "ok": ok,
        "warm_run_p50_ms": out.get("p50_ms"),
        "error": "" if ok else (r.stderr.decode(errors="replace")[-300:] or "exit %d" % r.returncode),
    }


# ---------------------------------------------------------------- redis-server and aispd


def node_metrics(port):
    """{series: value} from a node's /metrics on 127.0.0.1:port."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        text = r.read().decode()
    m = {}
    for ln in text.splitlines():
        if ln and not ln.startswith("#"):
            k, _, v = ln.rpartition(" ")
            try:
                m[k] = float(v)
            except ValueError:
                pass
    return m


def host_cpu_s():
    """CPU seconds the whole host has spent (all cores, /proc/stat's cpu line, idle and iowait
    excluded)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = sum(v[:8]) - v[3] - v[4]  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def sched_ms(pid):
    """CPU ms so far of every thread of pid, from the scheduler's own clock (/proc/PID/task/*/
    schedstat, ns), not the 10 ms ticks of /proc/PID/stat."""
    ns = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                ns += int(f.read().split()[0])
        except OSError:
            pass  # a thread that just ended
    return ns / 1e6


def host_sched_ms():
    """CPU ms so far of every task of the host, in ns resolution: the root cgroup's usage (v1
    cpuacct.usage, v2 cpu.stat usage_usec), else /proc/stat's ticks."""
    try:
        with open("/sys/fs/cgroup/cpuacct/cpuacct.usage") as f:
            return int(f.read()) / 1e6
    except OSError:
        pass
    try:
        with open("/sys/fs/cgroup/cpu.stat") as f:
            for ln in f:
                if ln.startswith("usage_usec "):
                    return int(ln.split()[1]) / 1e3
    except OSError:
        pass
    return host_cpu_s() * 1000.0


def cpu_by_process(node_pid, redis_pid):
    """CPU ms so far of: the node (aispd's threads), redis-server, this bench (its client
    threads), and the whole host (every process, the sandboxes and the runtimes included)."""
    return {
        "aispd": sched_ms(node_pid),
        "redis": sched_ms(redis_pid),
        "client": sched_ms(os.getpid()),
        "host": host_sched_ms(),
    }


def cpu_ticks():
    """(steal, total) ticks of /proc/stat's cpu line: the time the hypervisor ran something else
    while a vCPU of this machine wanted to run, out of all."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[7], sum(v[:8])


PHASES = ("create", "idle", "run", "teardown")


def sandbox_cpu_s(m, rt):
    """{phase: CPU seconds} of rt's sandboxes from a node's aisp_sandbox_cpu_seconds_total."""
    return {ph: m.get('aisp_sandbox_cpu_seconds_total{runtime="%s",phase="%s"}' % (rt, ph), 0.0) for ph in PHASES}


def pool_settled(m):
    """Every target warm, nothing being created or destroyed."""
    if m.get("aisp_pool_destroying", 0) > 0:
        return False
    for k, v in m.items():
        if k.startswith("aisp_pool_sandboxes{") and 'state="creating"' in k and v > 0:
            return False
        if k.startswith("aisp_pool_target{"):
            warm = k.replace("aisp_pool_target{", "aisp_pool_sandboxes{")[:-1] + ',state="warm"}'
            if m.get(warm, 0) < v:
                return False
    return True


def wait_settled(port, limit_s):
    """Waits up to limit_s for the node on port's pools to settle; True when they did."""
    t = time.monotonic()
    while time.monotonic() - t < limit_s:
        if pool_settled(node_metrics(port)):
            return True
        time.sleep(0.1)
    return False


class Node:
    def __init__(self, b, name, port, targets, slots, max_live):
        self.b = b
        self.name = name
        self.dir = os.path.join(b.tmp, "node-" + name)
        self.run_dir = os.path.join(b.run_root, "node-" + name)
        self.http = free_port()
        os.makedirs(self.dir)
        pool = "\n".join("%s = %d" % (k, v) for k, v in targets.items())
        conf = """[node]
id = bench-{name}
slots = {slots}
state_dir = {d}/state
run_dir = {run}
key = {key}
agent = {agent}
log_level = info
[redis]
address = 127.0.0.1:{port}
[images]
store = {store}
[runtimes]
default = runsc
enabled = runsc, runc
[pool]
max_live = {max_live}
{pool}
[http]
listen = 127.0.0.1:{http}
""".format(
            name=name,
            slots=slots,
            d=self.dir,
            run=self.run_dir,
            key=b.key,
            agent=b.agent,
            port=port,
            store=b.store,
            max_live=max_live,
            pool=pool,
            http=self.http,
        )
        self.conf = os.path.join(self.dir, "aispd.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.targets = targets
        self.proc = b.procs.start([b.aispd, "--config", self.conf], os.path.join(self.dir, "log"))
        self.pid = self.proc.pid
        self.wait_healthy()

    def wait_healthy(self):
        """Until /healthz says 200 (60 s at most); the node's exit or the limit raise."""
        end = time.monotonic() + 60
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("aispd exited %s: %s" % (self.proc.returncode, self.log_tail()))
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % self.http, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("aispd not healthy after 60 s: " + self.log_tail())

    def log_tail(self):
        try:
            with open(os.path.join(self.dir, "log"), errors="replace") as f:
                return f.read()[-1500:]
        except OSError:
            return ""

    def metrics(self):
        return node_metrics(self.http)

    def wait_settled(self, limit_s):
        return wait_settled(self.http, limit_s)

    def stages(self, tids):
        """{task id: {stage: us since the node read it}} from the published lines of this node's
        log (task.c's stages_us=) for the ids in tids."""
        out = {}
        try:
            with open(os.path.join(self.dir, "log"), errors="replace") as f:
                for ln in f:
                    if "event=published" not in ln or "stages_us=" not in ln:
                        continue
                    m = re.search(r"\btask=(\S+) .*\bstages_us=(\S+)", ln)
                    if not m or m.group(1) not in tids:
                        continue
                    st = {}
                    # the wall clock of the node's read: the line's time minus its ms=
                    w = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z .*\bms=(\d+)", ln)
                    if w:
                        t = calendar.timegm(time.strptime(w.group(1), "%Y-%m-%dT%H:%M:%S"))
                        st["read_wall_ms"] = t * 1000 + int(w.group(2)) - int(w.group(3))
                    for part in m.group(2).split(","):
                        k, _, v = part.partition(":")
                        st[k] = int(v)
                    out[m.group(1)] = st
        except OSError:
            pass
        return out

    def warm_sandboxes(self):
        """{lang: [container id, ...]} of this node's bundles (all idle when the pool settled)."""
        out = {}
        bdir = os.path.join(self.run_dir, "bundles")
        for sid in os.listdir(bdir) if os.path.isdir(bdir) else []:
            try:
                with open(os.path.join(bdir, sid, "config.json")) as f:
                    args = json.load(f)["process"]["args"]
            except (OSError, ValueError, KeyError):
                continue
            if "--lang" in args:
                out.setdefault(args[args.index("--lang") + 1], []).append(sid)
        return out

    def stop(self):
        self.b.procs.stop(self.proc, grace_s=60)
        reap_containers(self.run_dir)
        umount_below(self.dir)
        umount_below(self.run_dir)
        try:  # its log (the stages of every task) goes with the results
            shutil.copy(os.path.join(self.dir, "log"), os.path.join(self.b.out, "node-%s.log" % self.name))
        except OSError:
            pass


def submit_and_wait(r, reply, last, rt, name, tid):
    """Submits one task and waits for its result on the worker's own reply stream, read from
    last (the id of the last entry seen, so a result that arrives before XREAD is not missed).
    Returns (ms or None, ok, error, new last)."""
    lang, code, expect = CORPUS[name]
    task = json.dumps({"id": tid, "lang": lang, "code": code, "runtime": rt, "reply_stream": reply})
    t = time.perf_counter()
    XADD_WALL_MS[tid] = time.time() * 1000.0
    r.cmd("XADD", "aisp:tasks", "*", "task", task)
    end = time.monotonic() + TASK_DEADLINE_S
    while time.monotonic() < end:
        rep = r.cmd("XREAD", "BLOCK", 1000, "STREAMS", reply, last)
        if not rep:
            continue
        for _key, entries in rep:
            for eid, fields in entries:
                last = eid.decode()
                f = dict(zip(fields[::2], fields[1::2]))
                if f.get(b"id", b"").decode() != tid:
                    continue
                ms = (time.perf_counter() - t) * 1000.0
                res = json.loads(f[b"result"])
                ok = res.get("status") == "ok" and res.get("stdout") == expect
                err = "" if ok else "%s %s" % (res.get("status"), res.get("error", res.get("stdout")))
                return ms, ok, err, last
    return None, False, "no result within %d s" % TASK_DEADLINE_S, last


def stage_breakdown(stamps, lat_by_tid):
    """p50 over the tasks of each stage's own time, ms: read->admitted, ..., signed->published
    from the node's stamps, and "outside" (XADD to the node's read plus the published reply
    reaching the client: the client's latency minus the node's span)."""
    per = {k: [] for k in ("read",) + STAGES + ("outside",)}
    for tid, st in stamps.items():
        prev = 0
        if not all(k in st for k in STAGES):
            continue
        for k in STAGES:
            per[k].append((st[k] - prev) / 1000.0)
            prev = st[k]
        per["outside"].append(lat_by_tid[tid] - st["published"] / 1000.0)
        if "read_wall_ms" in st and tid in XADD_WALL_MS:
            per["read"].append(st["read_wall_ms"] - XADD_WALL_MS[tid])
    return {k: pct(v, 50) for k, v in per.items()}, len(per["outside"])


def drive(b, rt, name, conc, n_tasks, duration_s=None):
    """Closed loop: conc workers, each submits its next task when the previous result arrived.
    Stops after n_tasks, or (duration_s) when the time is up. Returns latencies and errors."""
    lock = threading.Lock()
    state = {"next": 0, "lat": [], "fails": 0, "err": "", "tids": {}}
    t0 = time.monotonic()
    stop_at = t0 + (duration_s if duration_s else 600)

    def worker(w):
        r = Redis(b.port, timeout=TASK_DEADLINE_S + 10)
        reply = "aisp:reply:bench:%d:%d:%d" % (os.getpid(), b.seq, w)
        last = "0-0"
        try:
            while True:
                with lock:
                    i = state["next"]
                    if (not duration_s and i >= n_tasks) or time.monotonic() >= stop_at:
                        return
                    state["next"] += 1
                tid = "b%d-%s-%s-%d-%d" % (b.seq, rt, name, conc, i)
                ms, ok, err, last = submit_and_wait(r, reply, last, rt, name, tid)
                with lock:
                    if ms is not None:
                        state["lat"].append(ms)
                        state["tids"][tid] = ms
                    if not ok:
                        state["fails"] += 1
                        state["err"] = err
                        if ms is None:
                            return
        finally:
            r.close()

    b.seq += 1
    ths = [threading.Thread(target=worker, args=(w,)) for w in range(conc)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    state["elapsed_s"] = time.monotonic() - t0
    return state


# ---------------------------------------------------------------- the plan


class Bench:
    def __init__(self, a):
        self.a = a
        self.quick = a.quick
        self.aisp = os.path.join(a.build, "cli", "aisp")
        self.aispd = os.path.join(a.build, "daemon", "aispd")
        self.agent = os.path.join(a.build, "sandbox", "agent", "aisp-agent")
        self.store = a.store
        self.out = a.out
        self.procs = Procs()
        self.tmp = tempfile.mkdtemp(prefix="aisp-bench.")
        os.chmod(self.tmp, 0o711)
        self.run_root = run_tmpfs(os.path.join(self.tmp, "run"))
        self.seq = 0
        self.raw = {
            "quick": self.quick,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host": {"cpus": os.cpu_count(), "kernel": os.uname().release},
            "latency": [],
            "baselines": {},
            "create_rate": {},
            "throughput": {},
            "memory": {},
            "aispd": {},
        }
        self.key = os.path.join(self.tmp, "key", "private.pem")

    def rootfs(self):
        with open(os.path.join(self.store, "names", "default")) as f:
            digest = f.read().strip()
        return os.path.join(self.store, "rootfs", digest.split(":", 1)[1], "rootfs")

    def plan(self):
        q = self.quick
        return {
            "host_n": 30 if q else 200,
            "cold_base_n": {"runc": 10 if q else 40, "runsc": 6 if q else 30},
            "create_n": 8 if q else 40,
            "concurrency": [1, 2, 4, 8, 16],
            # languages swept over every concurrency; the others run at concurrency 1 only
            "sweep": ["python"] if q else list(CORPUS),
            # tasks per warm cell, by program and concurrency: print(1+1), whose p99 at c = 8 and
            # c = 1 make a target's ratio, 100 (a nearest-rank p99 of 30 is their maximum, and
            # moved that ratio by +-0.5 from run to run; of 100 it is the second highest)
            "warm_n": (lambda name, c: (16 if c == 1 else max(8, c)) if name == "python" else 4)
            if q
            else (
                lambda name, c: max(100, 2 * c)
                if name == "python"
                else max(30, 2 * c) if name.startswith("python") else max(16, c)
            ),
            "cold_conc": [1, 4, 16] if q else [1, 2, 4, 8, 16],
            "cold_n": (lambda c: max(4, c)) if q else (lambda c: max(12, 2 * c)),
            "cold_langs": ["python"] if q else list(CORPUS),
            # (the first cells are the ones summary.json needs: python at concurrency 1)
            # warm targets: at least the largest concurrency a language is swept over
            "targets": {"python": 16, "javascript": 4 if q else 16, "shell": 4 if q else 16},
            # idle cells (a settled pool before each task, host python3 interleaved), c=1
            "idle_programs": ["python"] if q else ["python", "javascript", "shell"],
            "idle_n": 16 if q else 40,
            "slots": 16,
            "throughput_s": 15 if q else 60,
            "throughput_conc": 8,
            "settle_s": 60 if q else 120,
            # time budgets of the latency cells of one runtime: cells left when one runs out
            # are skipped (and listed in raw.json), so that the whole run stays bounded
            "warm_budget_s": 70 if q else 420,
            "cold_budget_s": 25 if q else 180,
        }

    def run(self):
        p = self.plan()
        self.raw["plan"] = {k: v for k, v in p.items() if not callable(v)}
        subprocess.run([self.aisp, "keygen", "--out", os.path.dirname(self.key)], check=True, capture_output=True)
        rootfs = self.rootfs()

        log("baseline: bare host /usr/bin/python3 -c 'print(1+1)' x%d" % p["host_n"])
        self.raw["baselines"]["host_python"] = host_baseline(p["host_n"])
        for rt in RUNTIMES:
            n = p["cold_base_n"][rt]
            log("baseline: cold `%s run` + delete of the same program x%d" % (rt, n))
            self.raw["baselines"]["cold_%s_run" % rt] = cold_runtime_baseline(
                rt, n, rootfs, self.tmp, self.run_root, time.monotonic() + (60 if self.quick else 300)
            )
        for rt in RUNTIMES:
            log("sandbox creation rate: aisp run --runtime %s --warm %d --pool-size 2" % (rt, p["create_n"]))
            self.raw["create_rate"][rt] = create_rate(self.aisp, rt, p["create_n"], self.tmp)
            log("  %s" % self.raw["create_rate"][rt])

        self.start_redis()
        for rt in RUNTIMES:
            self.warm_runtime(rt, p)
            self.cold_runtime(rt, p)

    def run_busy(self):
        """--busy-only: the host baseline and, per runtime, the idle and back-to-back cells."""
        p = self.plan()
        self.raw["plan"] = {k: v for k, v in p.items() if not callable(v)}
        self.raw["busy_only"] = True
        subprocess.run([self.aisp, "keygen", "--out", os.path.dirname(self.key)], check=True, capture_output=True)
        log("baseline: bare host /usr/bin/python3 -c 'print(1+1)' x%d" % p["host_n"])
        self.raw["baselines"]["host_python"] = host_baseline(p["host_n"])
        self.start_redis()
        for rt in RUNTIMES:
            node = self.warm_node(rt, p)
            try:
                for name in p["idle_programs"]:
                    self.cell(node, rt, "idle", name, 1, p["idle_n"], p["settle_s"])
                    self.cell(node, rt, "warm", name, 1, p["warm_n"](name, 1), p["settle_s"],
                              round_size=p["targets"][CORPUS[name][0]])
            finally:
                node.stop()

    def warm_node(self, rt, p):
        targets = {"%s/default/%s" % (rt, lang): p["targets"][lang] for lang in LANGS}
        log("aispd %s, warm pool %s" % (rt, targets))
        node = Node(self, "warm-" + rt, self.port, targets, p["slots"], sum(targets.values()) + p["slots"] + 8)
        if not node.wait_settled(p["settle_s"] * 2):
            log("  pool did not fill within %d s" % (p["settle_s"] * 2))
        return node

    def start_redis(self):
        self.port = free_port()
        d = os.path.join(self.tmp, "redis")
        os.makedirs(d)
        self.redis = self.procs.start(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", d, "--save", "", "--appendonly", "no"],
            os.path.join(d, "log"),
        )
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                r = Redis(self.port, timeout=1)
                r.cmd("PING")
                r.close()
                return
            except (OSError, RedisError):
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def cell(self, node, rt, mode, name, conc, n, settle_s, round_size=None):
        """n tasks of program name at concurrency conc. Warm cells run in rounds of at most the
        pool's target, each after the pool refilled, so that they measure the warm path while
        the pool holds (the sustained throughput run measures the pool running dry): at
        concurrency 1 that is back to back, each task while the last one's sandbox is torn down
        and the pool refills. Mode "idle": one task per round, each after the pool refilled and
        every teardown ended, with a bare host python3 run interleaved before it (host_p50)."""
        idle = mode == "idle"
        if idle:
            round_size = 1
        st = {"lat": [], "fails": 0, "err": "", "tids": {}}
        host = []
        steal = [0, 0]  # steal and all ticks while tasks ran (the settling waits left out)
        cpu = {"aispd": 0.0, "redis": 0.0, "client": 0.0, "host": 0.0}  # ms, likewise
        settled = True
        m0 = node.metrics()
        left = n
        rounds = 0
        while left > 0 and rounds < 200:
            # warm: the pool refilled; cold: no sandbox still winding down from the last cell
            if not node.wait_settled(settle_s):
                settled = False
            if idle:
                host.append(time_cmd(["/usr/bin/python3", "-c", "print(1+1)"], "2\n")[0])
            k = min(left, round_size) if round_size else left
            t0 = cpu_ticks()
            c0 = cpu_by_process(node.pid, self.redis.pid)
            r = drive(self, rt, name, min(conc, k), k)
            c1 = cpu_by_process(node.pid, self.redis.pid)
            t1 = cpu_ticks()
            for key in c0:
                cpu[key] += c1[key] - c0[key]
            steal[0] += t1[0] - t0[0]
            steal[1] += t1[1] - t0[1]
            st["lat"] += r["lat"]
            st["tids"].update(r["tids"])
            st["fails"] += r["fails"]
            st["err"] = r["err"] or st["err"]
            left -= k
            rounds += 1
        m1 = node.metrics()
        hits = m1.get("aisp_pool_hits_total", 0) - m0.get("aisp_pool_hits_total", 0)
        misses = m1.get("aisp_pool_misses_total", 0) - m0.get("aisp_pool_misses_total", 0)
        c = dict(
            stats(st["lat"]),
            runtime=rt,
            mode=mode,
            program=name,
            concurrency=conc,
            failures=st["fails"],
            last_error=st["err"],
            pool_hits=int(hits),
            pool_misses=int(misses),
            settled_before=settled,
            rounds=rounds,
            samples=st["lat"],
            steal_pct=100.0 * steal[0] / steal[1] if steal[1] else None,
            cpu_ms_per_task={key: v / len(st["lat"]) for key, v in cpu.items()} if st["lat"] else None,
        )
        if conc == 1 and mode != "cold":
            stamps = node.stages(st["tids"])
            c["stages"], c["stages_n"] = stage_breakdown(stamps, st["tids"])
            c["stamps"] = [dict(stamps.get(tid, {}), id=tid, e2e_ms=ms, xadd_wall_ms=XADD_WALL_MS.get(tid))
                           for tid, ms in st["tids"].items()]
        if idle:
            c["host_p50"] = pct(host, 50)
            c["host_samples"] = host
        self.raw["latency"].append(c)
        log(
            "  %s %-5s %-12s c=%-2d n=%-3d p50 %7.1f p95 %7.1f p99 %7.1f ms  hits %d misses %d fails %d"
            % (rt, mode, name, conc, c["n"], c["p50"] or -1, c["p95"] or -1, c["p99"] or -1, hits, misses, st["fails"])
        )
        if st["fails"]:
            log("    last error: " + st["err"])

    def warm_runtime(self, rt, p):
        node = self.warm_node(rt, p)
        try:
            self.memory(node, rt)
            for name in p["idle_programs"]:
                self.cell(node, rt, "idle", name, 1, p["idle_n"], p["settle_s"])
            end = time.monotonic() + p["warm_budget_s"]
            # every program at concurrency 1 first, then upwards: a budget cuts the high end
            for conc in p["concurrency"]:
                for name in CORPUS:
                    if conc != 1 and name not in p["sweep"]:
                        continue
                    if self.over_budget(end, rt, "warm", name, conc):
                        continue
                    self.cell(node, rt, "warm", name, conc, p["warm_n"](name, conc), p["settle_s"],
                              round_size=p["targets"][CORPUS[name][0]])
            self.throughput(node, rt, p)
        finally:
            node.stop()

    def cold_runtime(self, rt, p):
        log("aispd %s, pool disabled (no targets: every task creates its sandbox)" % rt)
        node = Node(self, "cold-" + rt, self.port, {}, p["slots"], p["slots"] + 8)
        try:
            end = time.monotonic() + p["cold_budget_s"]
            for conc in p["cold_conc"]:
                for name in p["cold_langs"]:
                    if conc != 1 and name != "python":
                        continue
                    if self.over_budget(end, rt, "cold", name, conc):
                        continue
                    self.cell(node, rt, "cold", name, conc, p["cold_n"](conc), p["settle_s"])
        finally:
            node.stop()

    def over_budget(self, end, rt, mode, name, conc):
        if time.monotonic() < end:
            return False
        log("  skipped %s %s %s c=%d: out of the time budget" % (rt, mode, name, conc))
        self.raw.setdefault("skipped", []).append({"runtime": rt, "mode": mode, "program": name, "concurrency": conc})
        return True

    def memory(self, node, rt):
        per = {}
        for lang, sids in sorted(node.warm_sandboxes().items()):
            rows = []
            for sid in sids[:3]:
                pids = sandbox_pids(sid)
                rss = sum(proc_kb(pid, "VmRSS") for pid in pids)
                pss = sum(proc_kb(pid, "Pss", "smaps_rollup") for pid in pids)
                rows.append({"id": sid, "processes": len(pids), "rss_mib": rss / 1024.0, "pss_mib": pss / 1024.0})
            if rows:
                per[lang] = {
                    "rss_mib": sum(r["rss_mib"] for r in rows) / len(rows),
                    "pss_mib": sum(r["pss_mib"] for r in rows) / len(rows),
                    "processes": rows[0]["processes"],
                    "sampled": rows,
                }
                log("  memory %s %s: RSS %.1f MiB, PSS %.1f MiB over %d processes" % (rt, lang, per[lang]["rss_mib"], per[lang]["pss_mib"], per[lang]["processes"]))
        self.raw["memory"][rt] = per
        self.raw["aispd"].setdefault(rt, {})["rss_idle_mib"] = proc_kb(node.pid, "VmRSS") / 1024.0

    def throughput(self, node, rt, p):
        node.wait_settled(p["settle_s"])
        log("sustained throughput %s: python print(1+1), %d workers, %d s" % (rt, p["throughput_conc"], p["throughput_s"]))
        m0 = node.metrics()
        cpu0, ccpu0 = proc_cpu_ms(node.pid)
        host0 = host_cpu_s()
        st = drive(self, rt, "python", p["throughput_conc"], 0, duration_s=p["throughput_s"])
        # the pool refills and the last sandboxes wind down: their teardown belongs to the run
        node.wait_settled(p["settle_s"])
        host1 = host_cpu_s()
        cpu1, ccpu1 = proc_cpu_ms(node.pid)
        m1 = node.metrics()
        done = len(st["lat"])
        created = m1.get("aisp_sandbox_creations_total", 0) - m0.get("aisp_sandbox_creations_total", 0)
        tp = {
            "duration_s": st["elapsed_s"],
            "tasks": done,
            "failures": st["fails"],
            "last_error": st["err"],
            "tps": done / st["elapsed_s"] if st["elapsed_s"] > 0 else None,
            "latency": stats(st["lat"]),
            "pool_hits": int(m1.get("aisp_pool_hits_total", 0) - m0.get("aisp_pool_hits_total", 0)),
            "pool_misses": int(m1.get("aisp_pool_misses_total", 0) - m0.get("aisp_pool_misses_total", 0)),
            "node_creations_per_s": created / st["elapsed_s"],
        }
        self.raw["throughput"][rt] = tp
        a = self.raw["aispd"].setdefault(rt, {})
        a["cpu_ms_per_task"] = (cpu1 - cpu0) / done if done else None
        a["children_cpu_ms_per_task"] = (ccpu1 - ccpu0) / done if done else None
        s0, s1 = sandbox_cpu_s(m0, rt), sandbox_cpu_s(m1, rt)
        if done:
            split = {ph: (s1[ph] - s0[ph]) * 1000.0 / done for ph in PHASES}
            split["aispd"] = (cpu1 - cpu0) / done
            split["host"] = (host1 - host0) * 1000.0 / done
            split["other"] = split["host"] - sum(split[k] for k in PHASES + ("aispd",))
            tp["cpu_ms_per_task"] = split
            log("  host CPU per task, ms: " + ", ".join("%s %.1f" % kv for kv in split.items()))
        a["rss_after_throughput_mib"] = proc_kb(node.pid, "VmRSS") / 1024.0
        a["rss_peak_mib"] = proc_kb(node.pid, "VmHWM") / 1024.0
        log("  %d tasks in %.1f s: %.2f tasks/s (fails %d), aispd %.2f ms CPU/task" % (done, st["elapsed_s"], tp["tps"] or 0, st["fails"], a["cpu_ms_per_task"] or -1))

    def cleanup(self):
        self.procs.stop_all()
        for d in os.listdir(self.run_root) if os.path.isdir(self.run_root) else []:
            if d.startswith("node-"):
                reap_containers(os.path.join(self.run_root, d))
        for rt in RUNTIMES:
            reap_containers(os.path.join(self.run_root, "state-" + rt))
        umount_below(self.tmp)
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---------------------------------------------------------------- outputs


def find_cell(raw, rt, mode, name, conc):
    for c in raw["latency"]:
        if (c["runtime"], c["mode"], c["program"], c["concurrency"]) == (rt, mode, name, conc):
            return c
    return None


def summarize(raw):
    def cell(rt, mode, name, conc, k):
        c = find_cell(raw, rt, mode, name, conc)
        return c[k] if c and c["n"] else None

    b = raw["baselines"]
    s = {
        "host_python_p50": b["host_python"]["p50"],
        "warm_runsc_python_p50": cell("runsc", "warm", "python", 1, "p50"),
        "warm_runsc_python_p99": cell("runsc", "warm", "python", 1, "p99"),
        "warm_runc_python_p50": cell("runc", "warm", "python", 1, "p50"),
        "warm_runc_python_p99": cell("runc", "warm", "python", 1, "p99"),
        "cold_runsc_python_p50": cell("runsc", "cold", "python", 1, "p50"),
        "cold_runc_python_p50": cell("runc", "cold", "python", 1, "p50"),
        "cold_runsc_run_python_p50": b.get("cold_runsc_run", {}).get("p50"),
        "cold_runc_run_python_p50": b.get("cold_runc_run", {}).get("p50"),
    }
    for rt in RUNTIMES:
        tp = raw["throughput"].get(rt, {})
        cr = raw["create_rate"].get(rt, {})
        mem = raw["memory"].get(rt, {})
        s["throughput_%s_tps" % rt] = tp.get("tps")
        s["create_rate_%s_per_s" % rt] = cr.get("per_s")
        s["warm_sandbox_rss_%s_mib" % rt] = mem.get("python", {}).get("rss_mib")
        for lang in LANGS:
            s["warm_sandbox_rss_%s_%s_mib" % (rt, lang)] = mem.get(lang, {}).get("rss_mib")
            s["warm_sandbox_pss_%s_%s_mib" % (rt, lang)] = mem.get(lang, {}).get("pss_mib")
        s["warm_%s_python_p99_c8" % rt] = cell(rt, "warm", "python", 8, "p99")
        s["aispd_rss_%s_mib" % rt] = raw["aispd"].get(rt, {}).get("rss_after_throughput_mib")
        s["aispd_cpu_ms_per_task_%s" % rt] = raw["aispd"].get(rt, {}).get("cpu_ms_per_task")
    per = [raw["aispd"].get(rt, {}).get("cpu_ms_per_task") for rt in RUNTIMES]
    per = [x for x in per if x is not None]
    s["aispd_cpu_ms_per_task"] = sum(per) / len(per) if per else None

    def ratio(a, bb):
        return a / bb if a is not None and bb else None

    s["ratios"] = {
        "warm_runsc_python_p50 / host_python_p50 (target < 1)": ratio(s["warm_runsc_python_p50"], s["host_python_p50"]),
        "warm_runc_python_p50 / host_python_p50 (target < 0.5)": ratio(s["warm_runc_python_p50"], s["host_python_p50"]),
        "cold_runsc_python_p50 / warm_runsc_python_p50 (target > 20)": ratio(s["cold_runsc_python_p50"], s["warm_runsc_python_p50"]),
        "cold_runsc_run_python_p50 / warm_runsc_python_p50 (target > 20)": ratio(s["cold_runsc_run_python_p50"], s["warm_runsc_python_p50"]),
        "throughput_runsc_tps / create_rate_runsc_per_s (target > 0.9)": ratio(s["throughput_runsc_tps"], s["create_rate_runsc_per_s"]),
        "throughput_runc_tps / create_rate_runc_per_s (target > 0.9)": ratio(s["throughput_runc_tps"], s["create_rate_runc_per_s"]),
        "warm_runsc_python_p99 c8 / c1 (target <= 2)": ratio(s["warm_runsc_python_p99_c8"], s["warm_runsc_python_p99"]),
        "warm_runc_python_p99 c8 / c1 (target <= 2)": ratio(s["warm_runc_python_p99_c8"], s["warm_runc_python_p99"]),
    }
    s["busy"] = busy_rows(raw)
    for row in s["busy"]:
        if row["program"] == "python":
            for k in ("idle_host", "b2b_host", "b2b_idle"):
                s["ratios"]["warm_%s_python %s" % (row["runtime"], k)] = row[k]
    s["quick"] = raw["quick"]
    s["started_at"] = raw["started_at"]
    return s


def busy_rows(raw):
    """Per runtime and program: the idle cell, the back-to-back cell (warm, c=1) and the host
    python3 runs interleaved with the idle cell, as ratios; and both cells' stage breakdowns."""
    rows = []
    for rt in RUNTIMES:
        for name in CORPUS:
            idle = find_cell(raw, rt, "idle", name, 1)
            b2b = find_cell(raw, rt, "warm", name, 1)
            if not idle or not idle["n"]:
                continue
            host = idle.get("host_p50")
            ip, bp = idle["p50"], b2b["p50"] if b2b and b2b["n"] else None

            def ratio(a, bb):
                return a / bb if a is not None and bb else None

            rows.append({
                "runtime": rt, "program": name, "host_p50": host, "idle_p50": ip, "b2b_p50": bp,
                "idle_p99": idle["p99"], "b2b_p99": b2b["p99"] if bp else None,
                "idle_host": ratio(ip, host), "b2b_host": ratio(bp, host), "b2b_idle": ratio(bp, ip),
                "idle_stages": idle.get("stages"), "b2b_stages": b2b.get("stages") if b2b else None,
                "idle_steal": idle.get("steal_pct"), "b2b_steal": b2b.get("steal_pct") if b2b else None,
            })
    return rows


def f1(v, fmt="%.1f"):
    return "-" if v is None else fmt % v


def markdown(raw, s):
    L = []
    L.append("Measured %s on %d cores (kernel %s)%s. Latency: XADD to result readable, ms. The nodes' "
             "run_dir (bundles, runtime state): %s; their state_dir (the chain state): the disk."
             % (raw["started_at"], raw["host"]["cpus"], raw["host"]["kernel"], ", `--quick`" if raw["quick"] else "",
                raw.get("run_dir_fs", "the bench's temporary directory")))
    L.append("")
    L.append("| figure | value | ratio | target |")
    L.append("| --- | --- | --- | --- |")
    r = s["ratios"]
    L.append("| bare host `python3 -c 'print(1+1)'` p50 | %s ms | 1 | |" % f1(s["host_python_p50"]))
    L.append("| warm runsc, Python p50 / p99 | %s / %s ms | %s x host | <= 0.5 idle, <= 1.0 back to back (table below) |" % (
        f1(s["warm_runsc_python_p50"]), f1(s["warm_runsc_python_p99"]), f1(r["warm_runsc_python_p50 / host_python_p50 (target < 1)"], "%.2f")))
    L.append("| warm runc, Python p50 / p99 | %s / %s ms | %s x host | <= 0.3 idle, <= 0.6 back to back (table below) |" % (
        f1(s["warm_runc_python_p50"]), f1(s["warm_runc_python_p99"]), f1(r["warm_runc_python_p50 / host_python_p50 (target < 0.5)"], "%.2f")))
    L.append("| cold runsc (pool disabled), Python p50 | %s ms | %s x warm | > 20 |" % (
        f1(s["cold_runsc_python_p50"]), f1(r["cold_runsc_python_p50 / warm_runsc_python_p50 (target > 20)"])))
    L.append("| cold runc (pool disabled), Python p50 | %s ms | | |" % f1(s["cold_runc_python_p50"]))
    L.append("| `runsc run` + delete per task, p50 | %s ms | %s x warm runsc | > 20 |" % (
        f1(s["cold_runsc_run_python_p50"]), f1(r["cold_runsc_run_python_p50 / warm_runsc_python_p50 (target > 20)"])))
    L.append("| `runc run` + delete per task, p50 | %s ms | | |" % f1(s["cold_runc_run_python_p50"]))
    for rt in RUNTIMES:
        L.append("| %s sustained throughput / creation rate | %s / %s per s | %s | > 0.9 |" % (
            rt, f1(s["throughput_%s_tps" % rt], "%.2f"), f1(s["create_rate_%s_per_s" % rt], "%.2f"),
            f1(r["throughput_%s_tps / create_rate_%s_per_s (target > 0.9)" % (rt, rt)], "%.2f")))
    for rt in RUNTIMES:
        L.append("| warm %s Python p99 at concurrency 8 vs 1 | %s / %s ms | %s | <= 2 |" % (
            rt, f1(s["warm_%s_python_p99_c8" % rt]), f1(s["warm_%s_python_p99" % rt]),
            f1(r["warm_%s_python_p99 c8 / c1 (target <= 2)" % rt], "%.2f")))
    L.append("| aispd CPU per task (runc / runsc) | %s / %s ms | | |" % (
        f1(s["aispd_cpu_ms_per_task_runc"], "%.2f"), f1(s["aispd_cpu_ms_per_task_runsc"], "%.2f")))
    L.append("| aispd RSS (runc / runsc node) | %s / %s MiB | | |" % (f1(s["aispd_rss_runc_mib"]), f1(s["aispd_rss_runsc_mib"])))
    L.append("")
    L.append("Memory of one warm sandbox (sum over its host processes; RSS counts shared pages in each, PSS splits them):")
    L.append("")
    L.append("| runtime | " + " | ".join(LANGS) + " |")
    L.append("| --- |" + " --- |" * len(LANGS))
    for rt in RUNTIMES:
        L.append("| %s | %s |" % (rt, " | ".join(
            "RSS %s / PSS %s MiB" % (f1(s["warm_sandbox_rss_%s_%s_mib" % (rt, lang)]), f1(s["warm_sandbox_pss_%s_%s_mib" % (rt, lang)]))
            for lang in LANGS)))
    L.append("")
    if s.get("busy"):
        L.append("Idle versus busy, concurrency 1: *idle* waits before each task until the pool is full and no "
                 "teardown runs, with a bare host `python3 -c 'print(1+1)'` run interleaved (*host*); "
                 "*back to back* sends each task when the last result arrived, in rounds of up to the "
                 "pool's target; the used sandboxes of a round wait for their teardown until no task "
                 "has run for 10 ms (the node's default `[pool] max_used = 16` holds a round), and so "
                 "do its refills until the pool is below half its target (pool/pool.h): the first "
                 "half of a round runs beside neither, the second beside refills (under a load that "
                 "never pauses, as in the sustained throughput figure, teardowns and refills run "
                 "beside tasks). p50 (p99), ms; *steal*: the share of this VM's CPU time "
                 "that its hypervisor gave to something else while the cell's tasks ran (/proc/stat), %:")
        L.append("")
        L.append("| runtime | program | host | idle | back to back | idle / host | b2b / host | b2b / idle "
                 "| steal idle / b2b |")
        L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for row in s["busy"]:
            L.append("| %s | %s | %s | %s (%s) | %s (%s) | %s | %s | %s | %s / %s |" % (
                row["runtime"], row["program"], f1(row["host_p50"]), f1(row["idle_p50"]), f1(row["idle_p99"]),
                f1(row["b2b_p50"]), f1(row["b2b_p99"]), f1(row["idle_host"], "%.2f"),
                f1(row["b2b_host"], "%.2f"), f1(row["b2b_idle"], "%.2f"),
                f1(row.get("idle_steal")), f1(row.get("b2b_steal"))))
        L.append("")
        L.append("Where the time goes (p50 of each stage's own time, ms, from the stamps the node logs on each "
                 "task's published line; *read*: XADD to the node's read, from wall clocks, 1 ms resolution; "
                 "*outside*: the client's latency minus the node's span from its read to the publish's reply, "
                 "negative when the client had the result before the node handled that reply):")
        L.append("")
        L.append("| runtime | program | cell | read | " + " | ".join(STAGES) + " | outside |")
        L.append("| --- | --- | --- |" + " --- |" * (len(STAGES) + 2))
        for row in s["busy"]:
            for cell, key in (("idle", "idle_stages"), ("back to back", "b2b_stages")):
                st = row[key] or {}
                L.append("| %s | %s | %s | %s |" % (row["runtime"], row["program"], cell, " | ".join(
                    f1(st.get(k), "%.2f") for k in ("read",) + STAGES + ("outside",))))
        L.append("")
    cpu = [(rt, raw["throughput"].get(rt, {}).get("cpu_ms_per_task")) for rt in RUNTIMES]
    if any(c for _, c in cpu):
        L.append("Host CPU per task over the sustained run (ms; the node's `aisp_sandbox_cpu_seconds_total`: "
                 "*create* = the runtime's `run --detach` and the sandbox's processes until READY, *idle* = warm "
                 "and waiting, *run* = the task, *teardown* = wind-down and `delete`; *aispd* = the daemon's own; "
                 "*host* = /proc/stat over the run, until the pool had refilled; *other* = host minus the rest: "
                 "Redis, the bench client, the kernel's share outside the sandboxes' cgroups):")
        L.append("")
        cols = PHASES + ("aispd", "other", "host")
        L.append("| runtime | " + " | ".join(cols) + " |")
        L.append("| --- |" + " --- |" * len(cols))
        for rt, c in cpu:
            if c:
                L.append("| %s | %s |" % (rt, " | ".join(f1(c.get(k)) for k in cols)))
        L.append("")
    L += concurrency_cpu_rows(raw)
    L.append("End-to-end latency, ms (p50 / p95 / p99; pool hits/misses during the cell):")
    L.append("")
    L.append("| runtime | pool | program | concurrency | n | p50 | p95 | p99 | hits/misses | failures |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    order = {name: i for i, name in enumerate(CORPUS)}
    modes = {"idle": 0, "warm": 1, "cold": 2}
    for c in sorted(raw["latency"], key=lambda c: (c["runtime"], modes[c["mode"]], order[c["program"]], c["concurrency"])):
        L.append("| %s | %s | %s | %d | %d | %s | %s | %s | %d/%d | %d |" % (
            c["runtime"], c["mode"], c["program"], c["concurrency"], c["n"], f1(c["p50"]), f1(c["p95"]),
            f1(c["p99"]), c["pool_hits"], c["pool_misses"], c["failures"]))
    L.append("")
    return "\n".join(L)


def concurrency_cpu_rows(raw):
    """Warm Python by concurrency: the CPU each task cost (ms, while the cells' tasks ran) and
    what it makes of p50 when the cell is CPU-bound: c tasks in flight, each needing host CPU,
    on the host's cores: about c x host / cores (Little's law)."""
    cores = raw["host"]["cpus"]
    cells = [c for c in raw["latency"] if c["mode"] == "warm" and c["program"] == "python" and c.get("cpu_ms_per_task")]
    if not cells:
        return []
    L = ["Warm Python by concurrency: CPU per task, ms, while the cell's tasks ran (*aispd* its own, "
         "*redis* redis-server's, *client* this bench's client threads, *host* every task of the host: "
         "the root cgroup's CPU usage, the sandboxes and the refills included; the scheduler's ns "
         "clocks) and what that CPU alone makes of p50 on %d cores when the cell is CPU-bound: "
         "*c x host / cores*, c tasks in flight that each need *host* (Little's law; the rounds "
         "start all c at once and end with fewer in flight, so it is an estimate, not a bound):" % cores, ""]
    L.append("| runtime | concurrency | p50 | p99 | host | aispd | redis | client | c x host / cores |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for c in sorted(cells, key=lambda c: (c["runtime"], c["concurrency"])):
        u = c["cpu_ms_per_task"]
        L.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s |" % (
            c["runtime"], c["concurrency"], f1(c["p50"]), f1(c["p99"]), f1(u["host"], "%.2f"), f1(u["aispd"], "%.2f"),
            f1(u["redis"], "%.2f"), f1(u["client"], "%.2f"), f1(c["concurrency"] * u["host"] / cores)))
    L.append("")
    return L


def write_dat(raw, out):
    """latency_<rt>_<mode>.dat: concurrency p50 p95 p99 (python print(1+1)); warm_vs_cold.dat."""
    for rt in RUNTIMES:
        for mode in ("warm", "cold"):
            with open(os.path.join(out, "latency_%s_%s.dat" % (rt, mode)), "w") as f:
                f.write("# concurrency p50 p95 p99 (ms)\n")
                for c in sorted((c for c in raw["latency"] if (c["runtime"], c["mode"], c["program"]) == (rt, mode, "python")),
                                key=lambda c: c["concurrency"]):
                    if c["n"]:
                        f.write("%d %.3f %.3f %.3f\n" % (c["concurrency"], c["p50"], c["p95"], c["p99"]))
    with open(os.path.join(out, "warm_vs_cold.dat"), "w") as f:
        f.write("# label p50_ms (concurrency 1, python print(1+1))\n")
        b = raw["baselines"]
        rows = [("host python3", b["host_python"]["p50"])]
        for rt in RUNTIMES:
            w = find_cell(raw, rt, "warm", "python", 1)
            c = find_cell(raw, rt, "cold", "python", 1)
            rows.append(("warm %s" % rt, w["p50"] if w else None))
            rows.append(("cold %s (aispd)" % rt, c["p50"] if c else None))
            rows.append(("%s run+delete" % rt, b.get("cold_%s_run" % rt, {}).get("p50")))
        for label, v in rows:
            if v is not None:
                f.write('"%s" %.3f\n' % (label, v))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--build", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--store", default="/var/lib/aisp/images")
    ap.add_argument("--report-only", action="store_true", help="rewrite outputs from OUT/raw.json")
    ap.add_argument("--busy-only", action="store_true", help="only the idle and back-to-back cells")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    if a.report_only:
        with open(os.path.join(a.out, "raw.json")) as f:
            raw = json.load(f)
    else:
        b = Bench(a)

        def on_signal(sig, _frm):
            raise SystemExit(128 + sig)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        try:
            b.run_busy() if a.busy_only else b.run()
        finally:
            b.raw["elapsed_s"] = time.monotonic() - T0
            b.raw["run_dir_fs"] = RUN_FS.get("type")
            b.cleanup()
            with open(os.path.join(a.out, "raw.json"), "w") as f:
                json.dump(b.raw, f, indent=1)
        raw = b.raw
    s = summarize(raw)
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(s, f, indent=2, sort_keys=True)
    with open(os.path.join(a.out, "results.md"), "w") as f:
        f.write(markdown(raw, s))
    write_dat(raw, a.out)
    failures = sum(c["failures"] for c in raw["latency"]) + sum(t.get("failures", 0) for t in raw["throughput"].values())
    log("done in %.0f s; %d failed tasks" % (raw.get("elapsed_s", 0), failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
