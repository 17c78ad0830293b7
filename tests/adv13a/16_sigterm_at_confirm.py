#!/usr/bin/env python3
"""SIGTERM while the engine waits at a `confirm` prompt (on a terminal), with a parallel step
running. Does the engine stop (exit 130, run interrupted), or ignore the signal until someone answers?"""
import os, pty, signal, subprocess, sys, tempfile, time
B = os.environ.get("B", "/work/wt/adv13a/target/debug/runbook")
d = tempfile.mkdtemp(prefix="adv13a-16.", dir="/tmp")
open(f"{d}/r.toml", "w").write('''[runbook]
name = "confirm-sigterm"

[steps.slow]
run = "echo slow-start >> trace; sleep 20; echo slow-end >> trace"

[steps.ask]
needs = []
run = "echo ask >> trace"
confirm = "really?"
''')
pid, fd = pty.fork()
if pid == 0:
    os.chdir(d)
    os.execv(B, [B, "run", "r.toml", "--state", "state.db", "--as", "oncall"])
buf = b""
t0 = time.time()
while time.time() - t0 < 10 and b"really" not in buf:
    try:
        buf += os.read(fd, 4096)
    except OSError:
        break
print("prompt seen:", b"really" in buf)
time.sleep(0.5)
os.kill(pid, signal.SIGTERM)
t1 = time.time()
status = None
while time.time() - t1 < 8:
    r, st = os.waitpid(pid, os.WNOHANG)
    if r:
        status = st; break
    try:
        import select
        if select.select([fd], [], [], 0.1)[0]:
            buf += os.read(fd, 4096)
    except OSError:
        pass
if status is None:
    print("BROKEN: engine still running 8s after SIGTERM at the confirm prompt; answering y")
    os.write(fd, b"y\n")
    _, status = os.waitpid(pid, 0)
print("exit:", os.waitstatus_to_exitcode(status), "after", round(time.time() - t1, 1), "s")
print(buf.decode(errors="replace")[-600:])
print(subprocess.run([B, "show", os.listdir(f"{d}/runs")[0], "--state", f"{d}/state.db"], capture_output=True, text=True).stdout)
print(subprocess.run([B, "audit", os.listdir(f"{d}/runs")[0], "--state", f"{d}/state.db"], capture_output=True, text=True).stdout)
print("trace:", open(f"{d}/trace").read() if os.path.exists(f"{d}/trace") else "")
