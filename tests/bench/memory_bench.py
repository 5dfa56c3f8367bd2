#!/usr/bin/env python3
"""Memory per warm sandbox, by host process role, for candidate runsc flag sets (issue 17).

For each flag set: one aispd node (its own config; the set's flags go into
[runtime.runsc] flags, its environment into aispd's, which runsc inherits) with a warm pool of
--per-lang sandboxes per language; when the pool settled (and --quiet-s later) every warm
sandbox's host processes are read: RSS (status VmRSS) and PSS (smaps_rollup Pss) by role:

  sentry   runsc's sandbox process (argv[0] "runsc-sandbox"): the Go sentry, and (ptrace
           platform) the application memory file it maps;
  gofer    runsc's file proxy (argv[0] "runsc-gofer");
  stubs    the ptrace stubs (the sentry's children: the application's address spaces);
  other    anything else of the container (runc's init and the agent, for runc).

averaged over the sandboxes of each language. Then a few tasks run on the same node (each
language's program, a write/read of /tmp, an import, a refused network connect) to check
that the set still works: status ok and the exact stdout. Writes a markdown table and a JSON.
Uses tests/bench/bench.py's helpers; python3 standard library only; everything it started is
stopped by pid at exit.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

# Flag sets: name -> (runtime, runsc flags, environment for aispd, platform or None). Every one
# keeps --network=none, seccomp and the gofer (the runtime adds --network=none and --platform
# itself). runsc starts its sentry and gofer with an empty environment, so GOGC/GOMEMLIMIT
# reach only the short-lived `runsc create`: the gogc25 set shows that.
SETS = {
    "runc": ("runc", "", {}, None),
    "default": ("runsc", "", {}, None),
    "gogc25": ("runsc", "", {"GOGC": "25", "GOMEMLIMIT": "8MiB"}, None),
    "no-buffer-pooling": ("runsc", "--buffer-pooling=false", {}, None),
    "dcache64": ("runsc", "--dcache=64", {}, None),
    "file-access-shared": ("runsc", "--file-access=shared", {}, None),
    "overlay-root-memory": ("runsc", "--overlay2=root:memory", {}, None),
    "fdlimit1024": ("runsc", "--fdlimit=1024", {}, None),
    "kvm": ("runsc", "", {}, "kvm"),
}
# what runs without --sets: all but kvm (which needs /dev/kvm that works, and otherwise waits
# out --settle-s)
DEFAULT_SETS = [n for n in SETS if n != "kvm"]

# extra programs run on each node: (lang, code, expected stdout)
CHECKS = {
    "py_tmp": ("python", "open('/tmp/m','w').write('x'*4096)\nprint(len(open('/tmp/m').read()))", "4096\n"),
    "py_import": ("python", "import json, hashlib\nprint(json.dumps(hashlib.sha256(b'a').hexdigest()[:8]))",
                  '"ca978112"\n'),
    "py_net": ("python", "import socket\ns = socket.socket()\ns.settimeout(2)\n"
               "try:\n    s.connect(('1.1.1.1', 80))\n    print('connected')\nexcept OSError:\n    print('blocked')",
               "blocked\n"),
    "sh_tmp": ("shell", "echo abc > /tmp/f && cat /tmp/f", "abc\n"),
}
ROLES = ("sentry", "gofer", "stubs", "other")
LANGS = bench.LANGS


def log(msg):
    bench.log(msg)


def cmd0(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


def ppid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
        return int(s[s.rindex(")") + 2:].split()[1])
    except (OSError, ValueError):
        return 0


def roles_of(pids):
    """{pid: role} for one sandbox's host processes: the sentry is the runsc-sandbox process
    none of whose ancestors is one; its descendants (the ptrace stubs, forked from it) are stubs."""
    cand = {p for p in pids if os.path.basename(cmd0(p)) == "runsc-sandbox"}
    parent = {p: ppid(p) for p in pids}

    def ancestors(p):
        seen = []
        q = parent.get(p, 0)
        while q in parent and q not in seen:
            seen.append(q)
            q = parent[q]
        return seen + [q]

    sentry = {p for p in cand if not any(q in cand for q in ancestors(p))}
    out = {}
    for p in pids:
        if p in sentry:
            out[p] = "sentry"
        elif any(q in sentry for q in ancestors(p)):
            out[p] = "stubs"
        elif os.path.basename(cmd0(p)) == "runsc-gofer":
            out[p] = "gofer"
        else:
            out[p] = "other"
    return out


def measure(sid):
    """{role: {rss, pss, anon, file, shmem (KiB), n}} of container sid."""
    per = {r: {"rss": 0, "pss": 0, "uss": 0, "anon": 0, "file": 0, "shmem": 0, "n": 0} for r in ROLES}
    for pid, role in roles_of(bench.sandbox_pids(sid)).items():
        d = per[role]
        d["n"] += 1
        d["rss"] += bench.proc_kb(pid, "VmRSS")
        d["anon"] += bench.proc_kb(pid, "RssAnon")
        d["file"] += bench.proc_kb(pid, "RssFile")
        d["shmem"] += bench.proc_kb(pid, "RssShmem")
        d["pss"] += bench.proc_kb(pid, "Pss", "smaps_rollup")
        d["uss"] += sum(bench.proc_kb(pid, k, "smaps_rollup") for k in ("Private_Clean", "Private_Dirty"))
    return per


class MemNode(bench.Node):
    """bench.Node with a [runtime.runsc] flags line and an environment of its own."""

    def __init__(self, b, name, port, rt, targets, flags, env, platform):
        self.b = b
        self.name = name
        self.dir = os.path.join(b.tmp, "node-" + name)
        self.run_dir = os.path.join(self.dir, "run")
        self.http = bench.free_port()
        os.makedirs(self.dir)
        pool = "\n".join("%s = %d" % (k, v) for k, v in targets.items())
        rtsec = "[runtime.runsc]\n" if flags or platform else ""
        rtsec += "flags = %s\n" % flags if flags else ""
        rtsec += "platform = %s\n" % platform if platform else ""
        conf = (
            "[node]\nid = mem-{name}\nslots = 4\nstate_dir = {d}/state\nrun_dir = {run}\n"
            "key = {key}\nagent = {agent}\nlog_level = info\n[redis]\naddress = 127.0.0.1:{port}\n"
            "[images]\nstore = {store}\n[runtimes]\ndefault = {rt}\nenabled = {rt}\n{rtsec}"
            "[pool]\nmax_live = {max_live}\n{pool}\n[http]\nlisten = 127.0.0.1:{http}\n"
        ).format(name=name, d=self.dir, run=self.run_dir, key=b.key, agent=b.agent, port=port,
                 store=b.store, rt=rt, rtsec=rtsec, max_live=sum(targets.values()) + 8, pool=pool,
                 http=self.http)
        self.conf = os.path.join(self.dir, "aispd.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.targets = targets
        e = dict(os.environ)
        for k in ("GOGC", "GOMEMLIMIT", "GODEBUG", "GOMAXPROCS"):
            e.pop(k, None)
        e.update(env)
        self.proc = b.procs.start([b.aispd, "--config", self.conf], os.path.join(self.dir, "log"), env=e)
        self.pid = self.proc.pid
        self.wait_healthy()


def run_checks(b, rt, n):
    """n rounds of every language's program and of CHECKS; returns (ok, failed, last error)."""
    r = bench.Redis(b.port, timeout=bench.TASK_DEADLINE_S + 10)
    reply = "aisp:reply:mem:%d:%d" % (os.getpid(), b.seq)
    b.seq += 1
    last, ok, bad, err = "0-0", 0, 0, ""
    try:
        for i in range(n):
            for name in list(LANGS) + list(CHECKS):
                tid = "m%d-%s-%d" % (b.seq, name, i)
                b.seq += 1
                ms, good, e, last = bench.submit_and_wait(r, reply, last, rt, name, tid)
                ok += 1 if good else 0
                bad += 0 if good else 1
                err = e or err
    finally:
        r.close()
    return ok, bad, err


def creation_error(node):
    """The last "sandbox creation failed" warning of node's log, if any."""
    last = ""
    try:
        with open(os.path.join(node.dir, "log"), errors="replace") as f:
            for ln in f:
                if "creation failed" in ln:
                    last = ln.strip()
    except OSError:
        pass
    return last[-400:]


def one_set(b, name, a):
    rt, flags, env, platform = SETS[name]
    targets = {"%s/default/%s" % (rt, lang): a.per_lang for lang in LANGS}
    log("set %s: %s %s %s %s" % (name, rt, flags or "(no extra flags)", env or "", platform or ""))
    node = MemNode(b, name, b.port, rt, targets, flags, env, platform)
    res = {"runtime": rt, "flags": flags, "env": env, "platform": platform, "per_lang": {}}
    try:
        res["settled"] = node.wait_settled(a.settle_s)
        if not res["settled"]:
            raise RuntimeError("the pool did not fill within %d s: %s" % (a.settle_s, creation_error(node)))
        time.sleep(a.quiet_s)
        for lang, sids in sorted(node.warm_sandboxes().items()):
            rows = [measure(sid) for sid in sids]
            avg = {r: {k: sum(x[r][k] for x in rows) / len(rows) for k in rows[0][r]} for r in ROLES}
            res["per_lang"][lang] = {"sandboxes": len(rows), "roles": avg, "samples": rows}
            tot = sum(avg[r]["rss"] for r in ROLES) / 1024.0
            tpss = sum(avg[r]["pss"] for r in ROLES) / 1024.0
            tuss = sum(avg[r]["uss"] for r in ROLES) / 1024.0
            log("  %s: RSS %.1f / PSS %.1f / USS %.1f MiB (%s)" % (lang, tot, tpss, tuss, ", ".join(
                "%s %.1f/%.1f" % (r, avg[r]["rss"] / 1024.0, avg[r]["pss"] / 1024.0) for r in ROLES if avg[r]["n"])))
        res["aispd_rss_mib"] = bench.proc_kb(node.pid, "VmRSS") / 1024.0
        ok, bad, err = run_checks(b, rt, a.rounds)
        res["checks"] = {"ok": ok, "failed": bad, "last_error": err}
        log("  checks: %d ok, %d failed %s" % (ok, bad, err))
    finally:
        node.stop()
    return res


def kill_strays(tmp):
    """SIGKILLs any process still naming our temporary directory (a sandbox whose runtime could
    not kill or delete it, e.g. a sentry stuck in boot): ours by construction."""
    for pid in bench.all_pids():
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                if tmp.encode() + b"/" in f.read():
                    os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def mib(kb):
    return "%.1f" % (kb / 1024.0)


def label(name, res):
    words = ([res["flags"]] if res["flags"] else []) + ["%s=%s" % kv for kv in res["env"].items()]
    if res.get("platform"):
        words.append("platform = %s" % res["platform"])
    return name + (" (`%s`)" % " ".join(words) if words else "")


def markdown(raw):
    L = ["Measured %s on %d cores (kernel %s), runsc `%s`, %d warm sandboxes per language "
         "(all three languages warm at once), %s s after the pool settled. RSS / PSS in MiB per "
         "sandbox and role, averaged over its language's sandboxes; USS: its private pages "
         "(smaps_rollup Private_Clean + Private_Dirty), what one more sandbox costs at least."
         % (raw["started_at"], raw["host"]["cpus"], raw["host"]["kernel"], raw["runsc_version"],
            raw["per_lang"], raw["quiet_s"]), ""]
    for lang in LANGS:
        L.append("%s:" % lang)
        L.append("")
        L.append("| flag set | " + " | ".join(ROLES) + " | total RSS / PSS | USS | checks |")
        L.append("| --- |" + " --- |" * (len(ROLES) + 3))
        for name, res in raw["sets"].items():
            p = res.get("per_lang", {}).get(lang)
            if not p:
                if res.get("error") and lang == LANGS[0]:
                    L.append("| %s | did not start: %s |" % (label(name, res), res["error"][-200:].replace("|", "/").replace("\n", " ")))
                continue
            ro = p["roles"]
            cells = [("%s / %s" % (mib(ro[r]["rss"]), mib(ro[r]["pss"]))) if ro[r]["n"] else "-" for r in ROLES]
            tr, tp, tu = (sum(ro[r][k] for r in ROLES) for k in ("rss", "pss", "uss"))
            ch = res.get("checks", {})
            L.append("| %s | %s | **%s / %s** | %s | %s/%s ok |" % (
                label(name, res), " | ".join(cells), mib(tr), mib(tp), mib(tu), ch.get("ok", 0),
                ch.get("ok", 0) + ch.get("failed", 0)))
        L.append("")
    L.append("What the RSS is made of, per role (MiB; status RssAnon / RssFile / RssShmem: anonymous, "
             "file-backed such as the runsc binary and the image's libraries, and shared memory such "
             "as runsc's application memory file):")
    L.append("")
    L.append("| flag set | language | " + " | ".join(ROLES) + " |")
    L.append("| --- | --- |" + " --- |" * len(ROLES))
    for name, res in raw["sets"].items():
        for lang in LANGS:
            p = res.get("per_lang", {}).get(lang)
            if not p:
                continue
            ro = p["roles"]
            L.append("| %s | %s | %s |" % (name, lang, " | ".join(
                "%s / %s / %s" % (mib(ro[r]["anon"]), mib(ro[r]["file"]), mib(ro[r]["shmem"])) if ro[r]["n"] else "-"
                for r in ROLES)))
    L.append("")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--out", required=True, help="the markdown file; the JSON goes beside it")
    ap.add_argument("--store", default="/var/lib/aisp/images")
    ap.add_argument("--sets", default=",".join(DEFAULT_SETS), help="comma-separated names of SETS")
    ap.add_argument("--set", action="append", default=[],
                    help="an extra set NAME=FLAGS (runsc; FLAGS may hold ENV=V words for the environment)")
    ap.add_argument("--per-lang", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="rounds of check tasks per set")
    ap.add_argument("--settle-s", type=int, default=90)
    ap.add_argument("--quiet-s", type=float, default=5.0)
    a = ap.parse_args()
    names = [n for n in a.sets.split(",") if n]
    for s in a.set:
        n, _, fl = s.partition("=")
        words = fl.split()
        env = dict(w.split("=", 1) for w in words if not w.startswith("-") and "=" in w)
        SETS[n] = ("runsc", " ".join(w for w in words if w.startswith("-")), env, None)
        names.append(n)
    for n in names:
        if n not in SETS:
            ap.error("unknown set %s" % n)
    bench.CORPUS.update(CHECKS)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    bargs = argparse.Namespace(quick=True, build=a.build, store=a.store, out=os.path.dirname(os.path.abspath(a.out)))
    b = bench.Bench(bargs)

    def on_signal(sig, _frm):
        raise SystemExit(128 + sig)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ver = subprocess.run(["runsc", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    raw = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "host": {"cpus": os.cpu_count(), "kernel": os.uname().release}, "runsc_version": ver,
           "per_lang": a.per_lang, "quiet_s": a.quiet_s, "sets": {}}
    failed = 0
    try:
        subprocess.run([b.aisp, "keygen", "--out", os.path.dirname(b.key)], check=True, capture_output=True)
        b.start_redis()
        for n in names:
            try:
                raw["sets"][n] = one_set(b, n, a)
            except Exception as e:  # one set that fails to start is reported, the others run
                log("  set %s failed: %s" % (n, e))
                raw["sets"][n] = {"runtime": SETS[n][0], "flags": SETS[n][1], "env": SETS[n][2],
                                  "platform": SETS[n][3], "error": str(e)[-800:]}
            failed += 1 if raw["sets"][n].get("checks", {}).get("failed", 1) else 0
    finally:
        b.cleanup()
        kill_strays(b.tmp)
        with open(os.path.splitext(a.out)[0] + ".json", "w") as f:
            json.dump(raw, f, indent=1)
        with open(a.out, "w") as f:
            f.write(markdown(raw))
    log("wrote %s; %d set(s) with failed checks or no start" % (a.out, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
