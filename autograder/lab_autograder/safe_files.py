"""File access on behalf of root that follows no link a student could have planted.

Every read goes through a file descriptor opened with ``O_NOFOLLOW`` (each folder on the way
with ``O_DIRECTORY | O_NOFOLLOW``), is checked to be a regular file (``O_NONBLOCK``, so a FIFO
cannot stall the grader), optionally owned by an expected uid, and is read only up to a cap.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class Refused(OSError):
    """A file root will not read; the message says why, in words a student can act on."""


def open_dir(name: str | Path, dir_fd: int | None = None) -> int:
    try:
        return os.open(name, _DIR, dir_fd=dir_fd)
    except OSError as e:
        if os.path.islink(name) if dir_fd is None else _is_link_at(dir_fd, str(name)):
            raise Refused(f"{Path(name).name} is a symbolic link; submit the folder itself") from None
        raise Refused(f"{Path(name).name}: {e.strerror}") from None


def _is_link_at(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def read_at(dir_fd: int, name: str, cap: int, owner: int | None = None) -> bytes:
    """The bytes of regular file ``name`` in the folder ``dir_fd``; refuses links, others' files
    and files over ``cap``."""
    try:
        fd = os.open(name, _FILE, dir_fd=dir_fd)
    except OSError as e:
        if _is_link_at(dir_fd, name):
            raise Refused(f"{name} is a symbolic link; submit the file itself") from None
        raise Refused(f"{name}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused(f"{name} is not a regular file")
        if owner is not None and st.st_uid != owner:
            raise Refused(f"{name} is not owned by the job's user")
        if st.st_size > cap:
            raise Refused(f"{name} is larger than {cap >> 20} MiB")
        chunks, left = [], cap + 1
        while left > 0:
            b = os.read(fd, min(left, 1 << 20))
            if not b:
                break
            chunks.append(b)
            left -= len(b)
        data = b"".join(chunks)
        if len(data) > cap:
            raise Refused(f"{name} is larger than {cap >> 20} MiB")
        return data
    finally:
        os.close(fd)


def entries(dir_fd: int) -> list[os.DirEntry]:
    """The folder's entries, sorted by name (``DirEntry.is_*`` with ``follow_symlinks=False``)."""
    with os.scandir(dir_fd) as it:
        return sorted(it, key=lambda e: e.name)


def write_new(path: Path, data: bytes, mode: int = 0o640, gid: int | None = None) -> None:
    """Create ``path`` (it must not exist: ``O_EXCL`` never follows or truncates anything)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        if gid is not None:
            os.fchown(fd, 0, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def remove_tree(path: Path) -> None:
    """Delete a folder a worker may have filled with links: ``shutil.rmtree`` walks by file
    descriptor and never follows one."""
    assert shutil.rmtree.avoids_symlink_attacks
    shutil.rmtree(path, ignore_errors=True)


def sweep_owned(folders, uid: int) -> int:
    """Remove the entries of ``folders`` (e.g. ``/tmp``) owned by ``uid``: the shared scratch of the
    setuid level, swept after every processes of ``uid`` is dead. Returns how many went."""
    n = 0
    for folder in folders:
        try:
            fd = open_dir(folder)
        except OSError:
            continue
        try:
            for e in entries(fd):
                try:
                    st = e.stat(follow_symlinks=False)
                    if st.st_uid != uid:
                        continue
                    if stat.S_ISDIR(st.st_mode):
                        shutil.rmtree(e.name, dir_fd=fd, ignore_errors=True)
                    else:
                        os.unlink(e.name, dir_fd=fd)
                    n += 1
                except OSError:
                    continue
        finally:
            os.close(fd)
    return n
