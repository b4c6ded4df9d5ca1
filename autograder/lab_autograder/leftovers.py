"""What a job's uid can leave behind on a shared machine, found and removed after each launch
(the ``setuid`` level: no private ``/tmp``, no IPC namespace).

A uid with no groups can write only where every uid may: folders with the ``o+w`` bit (``/tmp``,
``/var/tmp``, ``/dev/shm``, ``/run/lock``, ... whatever this machine has: they are found, not
listed), and System V IPC objects (shared memory, semaphores, message queues). POSIX shared memory
and message queues are files in ``/dev/shm`` and ``/dev/mqueue``, so the folder sweep covers them.
"""

from __future__ import annotations

import functools
import os
import stat
import subprocess

from .safe_files import sweep_owned

#: pseudo filesystems: nothing a job writes lives there
PRUNE = ("/proc", "/sys")
IPC_KINDS = {"shm": ("-m", "shmid"), "sem": ("-s", "semid"), "msg": ("-q", "msqid")}


def _read_only_mounts() -> set[str]:
    found = set()
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                bits = line.split()
                if len(bits) > 5 and "ro" in bits[5].split(","):
                    found.add(bits[4].encode().decode("unicode_escape"))
    except OSError:
        pass
    return found


@functools.lru_cache(maxsize=1)
def writable_by_all() -> tuple[str, ...]:
    """Every folder with the ``o+w`` bit on this machine's writable filesystems (walked once per
    grading process, as root, following no link)."""
    skip = set(PRUNE) | _read_only_mounts()
    found, todo = [], ["/"]
    while todo:
        folder = todo.pop()
        try:
            with os.scandir(folder) as it:
                subdirs = [e for e in it if e.is_dir(follow_symlinks=False)]
        except OSError:
            continue
        for e in subdirs:
            if e.path in skip:
                continue
            try:
                if e.stat(follow_symlinks=False).st_mode & stat.S_IWOTH:
                    found.append(e.path)
            except OSError:
                continue
            todo.append(e.path)
    return tuple(sorted(found))


def ipc_objects(uid: int) -> list[tuple[str, str]]:
    """``[(kind, id)]``: the System V IPC objects that ``uid`` owns or created (``/proc/sysvipc``)."""
    found = []
    for kind, (_, id_col) in IPC_KINDS.items():
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                head, *rows = [line.split() for line in f]
        except (OSError, ValueError):
            continue
        idx = {name: i for i, name in enumerate(head)}
        for row in rows:
            if str(uid) in (row[idx["uid"]], row[idx["cuid"]]):
                found.append((kind, row[idx[id_col]]))
    return found


def remove_leftovers(uid: int) -> int:
    """Remove every file and IPC object ``uid`` left (call once no process of ``uid`` is alive)."""
    n = sweep_owned(writable_by_all(), uid)
    for kind, ident in ipc_objects(uid):
        subprocess.run(["ipcrm", IPC_KINDS[kind][0], ident], capture_output=True)
        n += 1
    return n
