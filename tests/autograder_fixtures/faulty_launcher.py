"""A launcher that fails the way grading machines were seen to fail: the fault-injection tests put
it in front of every launch (``sandbox.WRAPPER = [python, this file, MODE, COUNTER]``).

    python faulty_launcher.py MODE COUNTER CMD...

``COUNTER`` counts the launches; MODE says which fail and how:

* ``fail-first`` / ``fail-always``: exit 1 with the message ``unshare`` printed on a loaded machine,
  before anything starts (the first launch / every launch);
* ``die-mid-first``: on the first launch, start CMD and, once the worker runs the notebook's third
  cell, SIGKILL CMD itself (``unshare`` or the trusted launcher), as when ``unshare`` crashed;
* ``kill-worker-first``: on the first launch, SIGKILL the worker process once it runs the ninth
  cell (after the student's first solution cell), as a host's OOM killer would;
* ``kill-imports-first`` / ``kill-imports-always``: SIGKILL the worker while it runs the third cell
  (the release's imports, before any student code), on the first launch / on every one.
"""

import json
import os
import signal
import subprocess
import sys
import time

UNSHARE_ERROR = "unshare: sigprocmask unblock failed: Invalid argument"


def _out_dir(cmd):
    cfg = json.loads(cmd[-1])
    if cfg.get("jail"):
        return next(src for src, dst, _ in cfg["jail"]["binds"] if dst == "/job/out")
    return cfg["argv"][-1]


def _descendants(pid):
    kids = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    found, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            found.append(k)
            todo.append(k)
    return found


def _worker_of(pid):
    for p in _descendants(pid):
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                if any(arg.endswith(b"/worker/__main__.py") for arg in f.read().split(b"\0")):
                    return p  # the worker itself, not a launcher whose config names it
        except OSError:
            continue
    return None


def main():
    mode, counter, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
    n = int(open(counter).read() or 0) + 1 if os.path.exists(counter) else 1
    with open(counter, "w") as f:
        f.write(str(n))
    if mode == "fail-always" or (mode == "fail-first" and n == 1):
        print(UNSHARE_ERROR, file=sys.stderr)
        sys.exit(1)
    proc = subprocess.Popen(cmd, pass_fds=[int(json.loads(cmd[-1])["status_fd"])])
    if mode in ("die-mid-first", "kill-worker-first", "kill-imports-first") and n == 1 or (
        mode == "kill-imports-always"
    ):
        progress = os.path.join(_out_dir(cmd), "progress.log")
        at = "cell 8\n" if mode == "kill-worker-first" else "cell 2\n"
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if at in open(progress).read():
                    break
            except OSError:
                pass
            time.sleep(0.05)
        victim = proc.pid if mode == "die-mid-first" else _worker_of(proc.pid)
        if victim is not None:
            os.kill(victim, signal.SIGKILL)
        if mode == "die-mid-first":
            proc.wait()
            print(UNSHARE_ERROR, file=sys.stderr)
            sys.exit(1)
    sys.exit(proc.wait())


if __name__ == "__main__":
    main()
