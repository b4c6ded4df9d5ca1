"""One submission's job folder, laid out so that root never touches a path the worker can change.

    job/            root:<job gid> 0750   (only this job's uid may enter; nobody but root writes)
      in/           root:<job gid> 0750   worker/ (package), job.json, inputs.pt: read-only inputs; oracles.py
                                           (root 0600): read by the launcher, handed over on a pipe
      root/         root 0755              the jail's mount point (namespaces level)
      log-N         root 0600              stdout/stderr of launch N
      work-N/       <uid> 0700             launch N's notebook folder (nb/: the given modules, checkpoints/)
                                           and scratch
      out-N/        <uid> 0700             launch N's outputs, read back by fd (O_NOFOLLOW, owner, cap)

Every launch gets fresh ``work-N`` and ``out-N`` folders, made and filled by root while no
process of the job's uid is alive, then handed over; nothing a worker wrote is ever written
again, opened by path or followed by root. The grader keeps its own snapshot of the checkpoints
(bytes in memory); ``work-N/nb/checkpoints`` holds copies for the notebook's cells only, and
``work-N/nb`` the assignment's given modules (``lab_data.py``) that the notebook imports.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .safe_files import Refused, open_dir, read_at, remove_tree, write_new


class Job:
    def __init__(self, base: str | Path, slot: int, uid: int | None):
        self.uid = uid
        self.dir = Path(tempfile.mkdtemp(prefix=f"job{slot}_", dir=base))  # 0700, root's
        self.in_dir = self.dir / "in"
        self.in_dir.mkdir(mode=0o750)
        (self.dir / "root").mkdir(mode=0o755)
        if uid is not None:  # the job's uid may enter (group) and read its inputs, nothing more
            for d in (self.dir, self.in_dir):
                os.chown(d, 0, uid)
                os.chmod(d, 0o750)
        self.launches = 0

    def put(self, name: str, data: bytes, private: bool = False) -> None:
        """(Re)place an input: written in root's ``in/`` under a fresh name, then renamed over.
        ``private``: root's alone (mode 0600): only the trusted launcher reads it (the stand-ins)."""
        tmp = self.in_dir / f".{name}.{self.launches}.tmp"
        write_new(tmp, data, 0o600 if private else 0o640, gid=None if private else self.uid)
        os.replace(tmp, self.in_dir / name)

    def put_package(self, name: str, folder: Path) -> None:
        """Ship the Python package ``folder`` (its ``.py`` files, subpackages included) as ``in/<name>/``:
        readable by the job's uid, written by root alone, once, before any launch."""
        for src in sorted(folder.rglob("*.py")):
            rel = Path(name) / src.relative_to(folder)
            for d in reversed(rel.parents[:-1]):  # in/<name>/, then its subfolders
                if not (self.in_dir / d).is_dir():
                    (self.in_dir / d).mkdir(mode=0o750)
                    if self.uid is not None:
                        os.chown(self.in_dir / d, 0, self.uid)
            write_new(self.in_dir / rel, src.read_bytes(), 0o640, gid=self.uid)

    def drop(self, name: str) -> None:
        try:
            os.unlink(self.in_dir / name)
        except FileNotFoundError:
            pass

    def new_launch(
        self, checkpoints: dict[str, bytes], given: dict[str, bytes] | None = None
    ) -> tuple[dict[str, Path], Path]:
        """Fresh ``work-N`` (with the notebook's ``checkpoints/`` and ``given`` modules) and ``out-N``;
        returns the paths and the log's path."""
        self.launches += 1
        n = self.launches
        work, out = self.dir / f"work-{n}", self.dir / f"out-{n}"
        for d in (work, out, work / "nb", work / "nb" / "checkpoints", work / "tmp", work / ".mpl"):
            d.mkdir(mode=0o700)
        for name, data in checkpoints.items():
            write_new(work / "nb" / "checkpoints" / name, data, 0o600)
        for name, data in (given or {}).items():
            write_new(work / "nb" / name, data, 0o600)
        if self.uid is not None:
            for top in (work, out):
                for root, dirs, files in os.walk(top):
                    for name in dirs + files:
                        os.lchown(os.path.join(root, name), self.uid, self.uid)
                os.chown(top, self.uid, self.uid)
        return {"in": self.in_dir, "work": work, "out": out}, self.dir / f"log-{n}"

    def read_outputs(self, out: Path, names: list[str], cap: int) -> dict[str, bytes | str]:
        """The worker's output files ``names`` of one launch: bytes, or the reason one was refused."""
        got = {}
        try:
            fd = open_dir(out)
        except OSError as e:
            return {n: f"output folder unreadable ({e})" for n in names}
        try:
            for name in names:
                try:
                    got[name] = read_at(fd, name, cap, owner=self.uid)
                except Refused as e:
                    if "No such file" not in str(e):
                        got[name] = f"output refused: {e}"
        finally:
            os.close(fd)
        return got

    def cleanup(self) -> None:
        remove_tree(self.dir)
