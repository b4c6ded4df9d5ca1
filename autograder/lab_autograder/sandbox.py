"""Starting the worker in a sandbox, and killing everything it started.

Levels, best first (``sandbox_level()`` says which one this machine gives):

* ``namespaces``: root with util-linux ``unshare``: new mount, PID, network, IPC and UTS
  namespaces; the grader's folders are hidden by mounts inside the private mount namespace;
  the worker runs as an unprivileged per-job uid; when the worker's PID namespace ends, the
  kernel kills every process it started (``setsid`` or double forks do not escape).
* ``setuid``: root without namespaces (e.g. a container without CAP_SYS_ADMIN): unprivileged
  per-job uid, resource limits, process-group kill plus a kill of every process of that uid.
  Files stay hidden only by their permissions (see autograder/README.md).
* ``rlimits``: not root: resource limits and a process-group kill only.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

LAUNCHER = Path(__file__).with_name("_launch.py")
UID_BASE = 61000
_UNSHARE = ["unshare", "--mount", "--pid", "--net", "--ipc", "--uts", "--fork", "--kill-child", "--mount-proc"]


@functools.lru_cache(maxsize=1)
def sandbox_level() -> str:
    if os.name != "posix" or os.geteuid() != 0:
        return "rlimits"
    if os.environ.get("LAB_AUTOGRADER_NO_NAMESPACES"):
        return "setuid"
    if shutil.which("unshare"):
        try:
            r = subprocess.run(_UNSHARE + ["true"], capture_output=True, timeout=20)
            if r.returncode == 0:
                return "namespaces"
        except (OSError, subprocess.SubprocessError):
            pass
    return "setuid"


@dataclass
class RunResult:
    returncode: int | None
    timed_out: bool
    seconds: float
    log_tail: str


def _kill_uid(uid: int) -> None:
    """Kill every process of ``uid`` (a process running as that uid sends ``kill(-1, SIGKILL)``)."""
    if os.geteuid() != 0:
        return
    code = f"import os,signal; os.setgroups([]); os.setgid({uid}); os.setuid({uid}); os.kill(-1, signal.SIGKILL)"
    try:
        subprocess.run([sys.executable, "-I", "-c", code], timeout=10, capture_output=True)
    except (OSError, subprocess.SubprocessError):
        pass


def run_worker(workdir: Path, *, slot: int, timeout: float, memory_mb: int, hide: list[str]) -> RunResult:
    """Run ``workdir/worker.py`` sandboxed; wall-clock ``timeout`` kills the whole job."""
    level = sandbox_level()
    uid = UID_BASE + slot if level in ("namespaces", "setuid") else None
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(workdir), "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": str(workdir / ".mpl"), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        "NBGRADER_EXECUTION": "autograde", "TL_QUICK": "1", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
        "CUDA_VISIBLE_DEVICES": "", "LANG": "C.UTF-8", "TMPDIR": str(workdir / "tmp"),
    }
    cfg = {"workdir": str(workdir), "python": sys.executable, "uid": uid, "memory_mb": memory_mb,
           "cpu_seconds": int(timeout) + 5, "env": env, "hide": hide if level == "namespaces" else []}
    if level == "namespaces" and sys.prefix != sys.base_prefix:
        # The worker's uid may not be able to reach the grader's virtual environment (a clone
        # under a mode-700 folder, say). The launcher bind-mounts it here, in the job's private
        # mount namespace, where every parent folder is traversable.
        venv_view = workdir.parent / f"{workdir.name}.venv"
        venv_view.mkdir(mode=0o755, exist_ok=True)
        cfg["venv"] = {"src": sys.prefix, "dst": str(venv_view)}
        cfg["python"] = str(venv_view / "bin" / Path(sys.executable).name)
    cmd = [sys.executable, "-I", str(LAUNCHER), json.dumps(cfg)]
    if level == "namespaces":
        cmd = _UNSHARE + cmd
    log_path = workdir.parent / f"{workdir.name}.log"  # outside the worker's folder: root-owned
    t0 = time.monotonic()
    timed_out = False
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if uid is not None:
                _kill_uid(uid)
    try:
        with open(log_path, "rb") as f:
            f.seek(max(0, os.path.getsize(log_path) - 4000))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        tail = ""
    return RunResult(proc.returncode, timed_out, time.monotonic() - t0, tail)
