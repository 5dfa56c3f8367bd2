# Ignores SIGTERM (and SIGINT, SIGHUP) and sleeps: the host must still end it at the timeout.
import signal, time
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(s, signal.SIG_IGN)
print("ignoring SIGTERM", flush=True)
while True:
    try:
        time.sleep(1)
    except BaseException:
        pass
