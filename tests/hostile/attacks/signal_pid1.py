# Signals to PID 1 (the agent): from inside its pid namespace only signals it handles can reach
# it, and SIGKILL/SIGSTOP never do. The agent must still report this program's exit.
import errno, json, os, signal, time

r = {}
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGPIPE,
          signal.SIGSTOP, signal.SIGKILL, signal.SIGSEGV, signal.SIGCHLD):
    try:
        os.kill(1, s)
        r[s.name] = "sent"
    except OSError as e:
        r[s.name] = errno.errorcode.get(e.errno, str(e.errno))
    time.sleep(0.05)
os.kill(1, signal.SIGCONT)
r["pid1_state"] = [l.split()[1] for l in open("/proc/1/status") if l.startswith("State")][0]
print(json.dumps(r))
