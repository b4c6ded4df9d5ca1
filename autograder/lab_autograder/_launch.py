"""Trusted launcher: runs inside the new namespaces (still root), locks the sandbox, execs the worker.

``python -I _launch.py CONFIG_JSON``. Steps: hide the grader's folders (tmpfs / /dev/null bind
mounts; only inside this private mount namespace), set resource limits, drop to the job's
unprivileged uid/gid with no supplementary groups, clear the environment, exec the worker.
Stdlib only; nothing student-controlled is read here.
"""

import ctypes
import json
import os
import resource
import sys

MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18


def _mount(libc, src, target, fstype, flags, data):
    if libc.mount(src, target, fstype, flags, data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target.decode()}: {os.strerror(err)}")


def main():
    cfg = json.loads(sys.argv[1])
    if (cfg.get("hide") or cfg.get("venv")) and os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        # make sure nothing propagates back to the host mount namespace
        _mount(libc, b"none", b"/", None, MS_REC | MS_PRIVATE, None)
        if cfg.get("venv"):  # the interpreter's environment, where the worker's uid can reach it
            _mount(libc, os.fsencode(cfg["venv"]["src"]), os.fsencode(cfg["venv"]["dst"]), None,
                   MS_BIND | MS_REC, None)
        for p in cfg.get("hide", []):
            b = os.fsencode(p)
            if os.path.isdir(p):
                _mount(libc, b"tmpfs", b, b"tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, b"size=16k,mode=555")
            elif os.path.exists(p):
                _mount(libc, b"/dev/null", b, None, MS_BIND, None)
    mem = int(cfg["memory_mb"]) * 2**20
    cpu = int(cfg["cpu_seconds"])
    limits = [(resource.RLIMIT_AS, mem), (resource.RLIMIT_CPU, cpu), (resource.RLIMIT_CORE, 0),
              (resource.RLIMIT_FSIZE, int(cfg.get("fsize_mb", 256)) * 2**20),
              (resource.RLIMIT_NOFILE, 1024)]
    if cfg.get("uid") is not None:
        limits.append((resource.RLIMIT_NPROC, int(cfg.get("nproc", 128))))
    for which, value in limits:
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            resource.setrlimit(which, (min(value, resource.getrlimit(which)[1]),) * 2)
    os.umask(0o077)
    os.chdir(cfg["workdir"])
    env = {k: str(v) for k, v in cfg["env"].items()}
    argv = [cfg["python"], "-I", os.path.join(cfg["workdir"], "worker.py"), cfg["workdir"]]
    if cfg.get("uid") is not None:
        uid = str(int(cfg["uid"]))
        setpriv = next((p for p in ("/usr/bin/setpriv", "/bin/setpriv") if os.path.exists(p)), None)
        if setpriv:  # util-linux: drop uid/gid/groups, all capabilities, and no privilege regain via exec
            argv = [setpriv, "--reuid", uid, "--regid", uid, "--clear-groups", "--no-new-privs",
                    "--inh-caps=-all", "--bounding-set=-all", "--"] + argv
        else:
            os.setgroups([])
            os.setgid(int(uid))
            os.setuid(int(uid))
            if os.getuid() == 0 or os.geteuid() == 0:
                raise SystemExit("could not drop root privileges")
    os.execve(argv[0], argv, env)


if __name__ == "__main__":
    main()
