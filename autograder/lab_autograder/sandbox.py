"""Starting the worker in a sandbox, and killing everything it started.

Levels, best first (``sandbox_level()`` says which one this machine gives):

* ``namespaces``: root with util-linux ``unshare``: new mount, PID, network, IPC and UTS
  namespaces, and a jail of its own as ``/`` (``_launch.py``): the system and the interpreter
  read-only, the job's folders, private ``/tmp``, ``/var/tmp`` and ``/dev/shm``, nothing else;
  the worker runs as an unprivileged per-job uid; when the worker's PID namespace ends, the
  kernel kills every process it started (``setsid`` or double forks do not escape).
* ``setuid``: root without namespaces (e.g. a container without CAP_SYS_ADMIN): unprivileged
  per-job uid, resource limits, process-group kill plus a kill of every process of that uid, and
  the removal of what that uid left: its files in every world-writable folder and its System V
  IPC objects (``leftovers.py``). Files stay hidden only by their permissions (see
  autograder/README.md).
* ``rlimits``: not root: resource limits and a process-group kill only.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .leftovers import remove_leftovers

LAUNCHER = Path(__file__).with_name("_launch.py")
UID_BASE = 61000
#: job slots per machine: slot ``k`` runs as uid ``UID_BASE + k``, leased by one grading job at a time
MAX_SLOTS = 64
_UNSHARE = [
    "unshare",
    "--mount",
    "--pid",
    "--net",
    "--ipc",
    "--uts",
    "--fork",
    "--kill-child",
    "--mount-proc",
]


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


def _lock_dir() -> Path:
    """Root's own folder of slot locks (``/run/lab-autograder``, mode 0700): no worker can reach it."""
    for d in ([Path("/run/lab-autograder")] if os.geteuid() == 0 else []) + [
        Path(tempfile.gettempdir()) / f"lab-autograder-locks-{os.geteuid()}"
    ]:
        try:
            d.mkdir(mode=0o700, exist_ok=True)
            st = os.lstat(d)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077:
            return d
    raise RuntimeError("no private folder for the autograder's slot locks (/run or the temporary folder)")


@contextlib.contextmanager
def lease_slot():
    """An exclusive job slot across every grading process on this machine.

    Each slot's uid is killed with ``kill(-1)`` after every launch; two grading runs on one machine
    (two terminals, parallel tests) sharing a uid would kill each other's workers. A slot is held
    by an ``flock`` that the kernel releases when its process dies, so a crashed run leaks nothing.
    """
    d = _lock_dir()
    for slot in range(MAX_SLOTS):
        fd = os.open(d / f"slot-{slot}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            yield slot
        finally:
            os.close(fd)  # releases the lock
        return
    raise RuntimeError(f"all {MAX_SLOTS} autograder job slots are in use on this machine")


#: prepended to every launch command; the fault-injection tests put a failing launcher here
WRAPPER: list[str] = []


@dataclass
class RunResult:
    returncode: int | None
    timed_out: bool
    seconds: float
    log_tail: str
    #: what the trusted launcher reported on its own pipe (``_launch.py``): how far the launch got
    status: list[str] = field(default_factory=list)

    @property
    def started(self) -> bool:
        return any(line.startswith("started ") for line in self.status)

    @property
    def exec_error(self) -> str:
        return next((line for line in self.status if line.startswith("exec-failed")), "")

    @property
    def worker_exit(self) -> int | None:
        """The worker's own exit code (negative: killed by that signal); None if the launcher never saw
        it end."""
        line = next((line for line in self.status if line.startswith("exit ")), None)
        try:
            return int(line.split()[1]) if line else None
        except (IndexError, ValueError):
            return None

    def grader_fault(self, progress: list[str]) -> str:
        """Why this launch failed in the grader's own machinery, or ``""``: student code never ran
        (the sandbox or the worker's start-up failed), or the launcher died under a running worker
        (``unshare`` crashed, the host killed it). ``progress``: the worker's ``progress.log``."""
        tail = " ".join(self.log_tail.split()[-40:])[-300:]
        if self.exec_error:
            return f"the worker could not be started: {self.exec_error[len('exec-failed '):]}"
        if not self.started:
            why = "timed out" if self.timed_out else f"exit {self.returncode}"
            return f"the sandbox did not start ({why}): {tail}"
        if "ready" not in progress:
            why = "timed out" if self.timed_out else f"exit {self.worker_exit}"
            return f"the worker stopped before it reached the notebook ({why}): {tail}"
        if self.worker_exit is None and not self.timed_out:
            return f"the launcher died while the worker ran (exit {self.returncode}): {tail}"
        return ""


def _read_status(fd: int, cap: int = 4096) -> list[str]:
    """The launcher's report, read once every writer is gone (non-blocking, capped)."""
    os.set_blocking(fd, False)
    data = b""
    try:
        while len(data) < cap:
            chunk = os.read(fd, cap - len(data))
            if not chunk:
                break
            data += chunk
    except BlockingIOError:
        pass
    finally:
        os.close(fd)
    return data.decode("utf-8", "replace").splitlines()


def _kill_uid(uid: int) -> None:
    """Kill every process of ``uid`` (a process running as that uid sends ``kill(-1, SIGKILL)``)."""
    if os.geteuid() != 0:
        return
    code = (
        f"import os,signal; os.setgroups([]); os.setgid({uid}); os.setuid({uid}); os.kill(-1, signal.SIGKILL)"
    )
    try:
        subprocess.run([sys.executable, "-I", "-c", code], timeout=10, capture_output=True)
    except (OSError, subprocess.SubprocessError):
        pass


#: top-level system folders bound read-only into the jail (links are recreated as links)
SYSTEM = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
#: single host files the worker's libraries read (the loader cache, fonts, CPU features for torch)
HOST_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/fonts",
    "/etc/localtime",
    "/proc/cpuinfo",
)
VENV_VIEW = "/opt/venv"
JOB_VIEW = {"in": "/job/in", "work": "/job/work", "out": "/job/out"}


def grader_packages() -> list[str]:
    """Where the solution and the grader are installed: hidden in the jail if they sit among its packages."""
    import lab_autograder
    import transformer_lab

    return [os.path.realpath(os.path.dirname(m.__file__)) for m in (transformer_lab, lab_autograder)]


def _inside(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def _jail(root: Path, paths: dict, uid: int) -> tuple[dict, str]:
    """The jail's description for ``_launch.py``, and the interpreter's path inside it."""
    binds, views = [], [("/usr", "/usr")]  # (host prefix, where the jail shows it)
    base = os.path.realpath(sys.base_prefix)
    if not _inside(base, "/usr"):
        binds.append([base, base, False])  # the interpreter's own files, where its links point
        views.append((base, base))
    python = sys.executable
    if sys.prefix != sys.base_prefix:  # a venv: bound at a neutral path, so no grader path shows
        binds.append([sys.prefix, VENV_VIEW, False])
        views.append((os.path.realpath(sys.prefix), VENV_VIEW))
        python = f"{VENV_VIEW}/bin/{Path(sys.executable).name}"
    # a non-editable install puts the reference solution among the packages: an empty folder over it
    masks = [
        view + pkg[len(host) :] for pkg in grader_packages() for host, view in views if _inside(pkg, host)
    ]
    binds += [[f, f, False] for f in HOST_FILES if os.path.exists(f)]
    binds += [
        [str(paths["in"]), JOB_VIEW["in"], False],
        [str(paths["work"]), JOB_VIEW["work"], True],
        [str(paths["out"]), JOB_VIEW["out"], True],
    ]
    passwd = (
        f"root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
        f"student:x:{uid}:{uid}:student:{JOB_VIEW['work']}:/usr/sbin/nologin\n"
    )
    jail = {
        "root": str(root),
        "system": list(SYSTEM),
        "binds": binds,
        "masks": masks,
        "tmpfs": [
            ["/tmp", "size=256m,mode=1777"],
            ["/var/tmp", "size=64m,mode=1777"],
            ["/dev/shm", "size=64m,mode=1777"],
        ],
        "files": {
            "/etc/passwd": passwd,
            "/etc/group": f"root:x:0:\nstudent:x:{uid}:\n",
            "/etc/hostname": "sandbox\n",
        },
    }
    return jail, python


def _worker_env(view: dict, tmp: str) -> dict:
    """The worker's whole environment: nothing of the grader's leaks in."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": view["work"],
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": os.path.join(view["work"], ".mpl"),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NBGRADER_EXECUTION": "autograde",
        "TL_QUICK": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "LANG": "C.UTF-8",
        "TMPDIR": tmp,
        "USER": "student",
    }


def _tail(log_path: Path) -> str:
    """The last 4000 bytes of a launch's log."""
    try:
        with open(log_path, "rb") as f:
            f.seek(max(0, os.path.getsize(log_path) - 4000))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _launch(cmd, log_path: Path, status: tuple, timeout: float, uid, level) -> RunResult:
    """Start the launcher, wait at most ``timeout``, then kill everything the job started."""
    status_r, status_w = status
    t0 = time.monotonic()
    timed_out = False
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as log:
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                pass_fds=(status_w,),
            )
        except OSError as e:  # e.g. no such launcher, too many processes on the host
            os.close(status_w)
            _read_status(status_r)
            return RunResult(None, False, time.monotonic() - t0, f"could not launch: {e}")
        os.close(status_w)  # the launcher holds the only write end now
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
            if level == "setuid":
                remove_leftovers(uid)
    return RunResult(
        proc.returncode, timed_out, time.monotonic() - t0, _tail(log_path), _read_status(status_r)
    )


def run_worker(
    job_dir: Path, paths: dict, *, slot: int, timeout: float, memory_mb: int, log_path: Path
) -> RunResult:
    """Run ``IN/worker/__main__.py IN WORK OUT`` sandboxed; the wall-clock ``timeout`` kills the whole job.

    ``paths``: the job's ``in`` (root-owned, read-only for the worker), ``work`` and ``out``
    folders (the worker's own); ``job_dir/root`` is the jail's mount point. ``log_path`` (root's,
    outside the worker's folders) receives its stdout and stderr.
    """
    level = sandbox_level()
    uid = UID_BASE + slot if level in ("namespaces", "setuid") else None
    if level == "namespaces":
        jail, python = _jail(job_dir / "root", paths, uid)
        view = dict(JOB_VIEW)
        tmp = "/tmp"
    else:
        jail, python = None, sys.executable
        view = {k: str(v) for k, v in paths.items()}
        tmp = os.path.join(view["work"], "tmp")
    env = _worker_env(view, tmp)
    entry = os.path.join(view["in"], "worker", "__main__.py")
    argv = [python, "-I", entry, view["in"], view["work"], view["out"]]
    cfg = {
        "jail": jail,
        "oracles": os.path.join(view["in"], "oracles.py") if (paths["in"] / "oracles.py").exists() else None,
        "uid": uid,
        "memory_mb": memory_mb,
        "cpu_seconds": int(timeout) + 5,
        "env": env,
        "cwd": view["work"],
        "argv": argv,
    }
    status_r, status_w = os.pipe()
    cfg["status_fd"] = status_w
    cmd = [sys.executable, "-I", str(LAUNCHER), json.dumps(cfg)]
    if level == "namespaces":
        cmd = _UNSHARE + cmd
    cmd = WRAPPER + cmd
    return _launch(cmd, log_path, (status_r, status_w), timeout, uid, level)
