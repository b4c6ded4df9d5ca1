"""Trusted launcher: runs inside the new namespaces (still root), builds the jail, execs the worker.

``python -I _launch.py CONFIG_JSON``; the config is written by the grader, never by student code.

With ``jail`` (the ``namespaces`` level) the worker gets a root of its own: a fresh tmpfs holding
read-only binds of the system (``/usr`` and the links or folders beside it), the interpreter and
its packages, the job's ``in`` (read-only), ``work`` and ``out`` folders under ``/job``, a small
``/etc`` (a ``passwd`` naming only the job's user), ``/dev`` with the harmless devices, and fresh
private ``/tmp``, ``/var/tmp`` and ``/dev/shm``. Then ``pivot_root`` and the old root is detached:
the checkout, its ``.git``, home folders, other jobs and the output folder do not exist in there.
No ``/proc`` and no ``/sys`` are mounted, so nothing lists the host's mounts (``mountinfo`` would
name the folders the binds came from). Then resource limits, and the drop to the job's
unprivileged uid/gid (no groups, no capabilities, ``no_new_privs``) before ``exec``.

The launcher does not become the worker: it forks it and waits, so that it can tell the grader,
on a pipe the worker never holds (``status_fd``, close-on-exec), how far the launch got:
``started PID`` once the worker process exists, ``exec-failed ...`` if it could not be started,
``exit CODE CPU_SECONDS`` when it ended. A launch that ends without ``exit`` died in the
grader's own machinery (``unshare``, the jail, the host), never in student code. In a PID
namespace the launcher is PID 1: it reaps every orphan, and when it exits the kernel kills the
rest. Stdlib only.
"""

import ctypes
import json
import os
import platform
import resource
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
DEVICES = ("null", "zero", "full", "random", "urandom")

_libc = ctypes.CDLL(None, use_errno=True)


def _mount(src, target, fstype, flags, data=None):
    enc = [None if s is None else os.fsencode(s) for s in (src, target, fstype, data)]
    if _libc.mount(enc[0], enc[1], enc[2], flags, enc[3]) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _bind(src, dst, writable=False, device=False):
    """Bind ``src`` at ``dst`` (created as a folder or an empty file), read-only unless ``writable``."""
    if os.path.isdir(src):
        os.makedirs(dst, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        open(dst, "a").close()
    _mount(src, dst, None, MS_BIND | MS_REC)
    flags = MS_REMOUNT | MS_BIND | MS_NOSUID | (0 if device else MS_NODEV) | (0 if writable else MS_RDONLY)
    _mount(None, dst, None, flags)


def _tmpfs(dst, options):
    os.makedirs(dst, exist_ok=True)
    _mount("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV, options)


def build_jail(jail: dict) -> None:
    """Mount the worker's root under ``jail['root']`` and make it ``/`` (see the module docstring)."""
    new = jail["root"]
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing propagates back to the host
    _tmpfs(new, "size=8m,mode=755")
    for name in jail["system"]:  # /usr and /bin, /lib, ... (links on merged-/usr systems)
        host, dst = "/" + name, os.path.join(new, name)
        if os.path.islink(host):
            os.symlink(os.readlink(host), dst)
        elif os.path.isdir(host):
            _bind(host, dst)
    for src, dst, writable in jail["binds"]:
        _bind(src, new + dst, writable)
    for dst in jail.get("masks", []):  # e.g. the reference package inside a non-editable install
        _mount("tmpfs", new + dst, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "size=4k,mode=555")
    for dst, options in jail["tmpfs"]:
        _tmpfs(new + dst, options)
    for dev in DEVICES:
        _bind("/dev/" + dev, os.path.join(new, "dev", dev), writable=True, device=True)
    for dst, text in jail["files"].items():
        path = new + dst
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
    os.chdir(new)
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is None or _libc.syscall(number, b".", b".") != 0:
        raise OSError(ctypes.get_errno(), "pivot_root failed")
    if _libc.umount2(b".", MNT_DETACH) != 0:  # the old root, stacked under the new one
        raise OSError(ctypes.get_errno(), "could not detach the old root")
    os.chdir("/")
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def set_limits(cfg: dict) -> None:
    limits = [
        (resource.RLIMIT_AS, int(cfg["memory_mb"]) * 2**20),
        (resource.RLIMIT_CPU, int(cfg["cpu_seconds"])),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_FSIZE, int(cfg.get("fsize_mb", 256)) * 2**20),
        (resource.RLIMIT_NOFILE, 1024),
    ]
    if cfg.get("uid") is not None:
        limits.append((resource.RLIMIT_NPROC, int(cfg.get("nproc", 128))))
    for which, value in limits:
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            resource.setrlimit(which, (min(value, resource.getrlimit(which)[1]),) * 2)


def drop_privileges(uid: int) -> None:
    """Become ``uid``/``uid`` with no groups, an empty bounding set and ``no_new_privs``."""
    PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 24, 38
    cap = 0
    while _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)  # from root to another uid: permitted and effective capabilities go
    if 0 in os.getresuid() or 0 in os.getresgid():
        raise SystemExit("could not drop root privileges")


def _report(fd, line: str) -> None:
    try:
        os.write(fd, (line + "\n").encode())
    except OSError:  # the grader stopped listening: nothing to tell
        pass


def _stand_ins(path) -> int | None:
    """The stand-ins' source (root's alone), read here and put in a pipe whose read end the worker
    inherits: it reads it once, before any student code, and closes it; no file stays readable."""
    if not path:
        return None
    with open(path, "rb") as f:
        data = f.read()
    if len(data) > 60000:  # what a pipe holds without a reader
        raise SystemExit("oracles.py is larger than a pipe's buffer")
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    return r


def _exec_worker(cfg: dict, fd: int, oracle_fd: int | None) -> None:
    """In the forked child: limits, the drop to the job's uid, then ``exec`` (which closes ``fd``)."""
    try:
        env = {k: str(v) for k, v in cfg["env"].items()}
        if oracle_fd is not None:
            os.set_inheritable(oracle_fd, True)
            env["LAB_ORACLE_FD"] = str(oracle_fd)
        set_limits(cfg)
        os.umask(0o077)
        if cfg.get("uid") is not None and os.geteuid() == 0:
            drop_privileges(int(cfg["uid"]))
        os.chdir(cfg["cwd"])
        os.execve(cfg["argv"][0], cfg["argv"], env)
    except BaseException as e:  # noqa: BLE001 - whatever it was, the grader must hear of it
        _report(fd, f"exec-failed {type(e).__name__}: {e}"[:500])
    os._exit(127)


def main():
    cfg = json.loads(sys.argv[1])
    fd = int(cfg.get("status_fd", -1))
    if fd >= 0:
        os.set_inheritable(fd, False)  # the worker's exec closes it: student code never holds it
    if cfg.get("jail"):
        build_jail(cfg["jail"])
    oracle_fd = _stand_ins(cfg.get("oracles"))
    pid = os.fork()
    if pid == 0:
        _exec_worker(cfg, fd, oracle_fd)
    if oracle_fd is not None:
        os.close(oracle_fd)
    _report(fd, f"started {pid}")
    while True:  # reap orphans too (PID 1), until the worker itself has ended
        try:
            done, status, usage = os.wait4(-1, 0)
        except ChildProcessError:
            sys.exit(1)
        if done == pid:
            break
    code = os.waitstatus_to_exitcode(status)
    _report(fd, f"exit {code} {usage.ru_utime + usage.ru_stime:.3f}")
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
