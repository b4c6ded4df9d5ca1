"""Snapshot a submission before any student code runs: its notebook and checkpoints, as bytes.

A SUBMISSION is a notebook, or a folder holding one with ``checkpoints/`` beside it (which
notebook: :func:`choose_notebook`). Nothing inside it is followed if it is a link: a linked notebook,
``checkpoints/`` folder or checkpoint is refused with a note (a link could point at the grader's
own solution, or at another student's files). The grader grades these bytes only; the trusted
evaluation of the checkpoints reads the same snapshot.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from .notebook import MAX_NOTEBOOK_BYTES
from .safe_files import Refused, entries, open_dir, read_at

MAX_CKPT_BYTES = 200 * 2**20
CHECKPOINTS = ("reverse.ckpt", "anomaly.ckpt")
_MAX_ENTRIES, _MAX_DEPTH = 2000, 4


@dataclass
class Submission:
    name: str
    notebook: bytes | None = None
    notebook_name: str = ""
    checkpoints: dict[str, bytes] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def content_sha256(self) -> str:
        """What was submitted, as one hash (notebook + checkpoints): a resubmission is detected by it."""
        h = hashlib.sha256()
        for name, data in [("notebook", self.notebook or b""), *sorted(self.checkpoints.items())]:
            h.update(f"{name}:{len(data)}:".encode() + data)
        return h.hexdigest()[:16]


def _find_notebooks(root_fd: int) -> tuple[list[tuple[str, ...]], list[str]]:
    """Relative paths of the ``.ipynb`` files (no link followed) and the names of linked ones."""
    found, linked, seen = [], [], 0
    stack = [((), os.dup(root_fd))]
    while stack:
        rel, fd = stack.pop()
        try:
            for e in entries(fd):
                seen += 1
                if seen > _MAX_ENTRIES:
                    break
                if e.is_symlink():
                    if e.name.endswith(".ipynb"):
                        linked.append("/".join(rel + (e.name,)))
                elif e.is_dir(follow_symlinks=False):
                    if e.name != ".ipynb_checkpoints" and len(rel) < _MAX_DEPTH:
                        try:
                            stack.append((rel + (e.name,), open_dir(e.name, fd)))
                        except OSError:
                            continue
                elif e.name.endswith(".ipynb") and e.is_file(follow_symlinks=False):
                    found.append(rel + (e.name,))
        finally:
            os.close(fd)
    return sorted(found), linked


def choose_notebook(found: list[tuple[str, ...]]) -> tuple[tuple[str, ...] | None, str]:
    """Which of a folder's notebooks is graded, by one rule: the top level first, then the whole tree;
    at that level ``transformer_lab.ipynb``, or the only notebook there. Two candidates at the level
    that decides are refused (which would be graded is the student's to say). Returns the chosen
    path (None: none) and a note for the feedback."""
    for level in ([p for p in found if len(p) == 1], found):
        named = [p for p in level if p[-1] == "transformer_lab.ipynb"]
        pick = named if named else level
        if len(pick) == 1:
            others = sorted("/".join(p) for p in found if p != pick[0])
            note = f"graded {'/'.join(pick[0])}; not graded: {', '.join(others[:5])}" if others else ""
            return pick[0], note
        if len(pick) > 1:
            names = ", ".join(sorted("/".join(p) for p in pick)[:5])
            return None, (
                f"more than one notebook could be the submission ({names}); submit one "
                "transformer_lab.ipynb at the top level of the folder; nothing was graded"
            )
    return None, ""


def _read_checkpoints(folder_fd: int, sub: Submission, beside: bool = False) -> None:
    """``checkpoints/<name>``; with ``beside``, a checkpoint missing there is also looked for next to
    the notebook (Gradescope's upload puts every file at the top level unless the student zips)."""
    try:
        ck = open_dir("checkpoints", folder_fd)
    except Refused as e:
        if "symbolic link" in str(e):
            sub.notes.append("checkpoints/ is a symbolic link and was not read; submit the folder itself")
        ck = None
    try:
        for name in CHECKPOINTS:
            try:
                if ck is not None:
                    sub.checkpoints[name] = read_at(ck, name, MAX_CKPT_BYTES)
            except Refused as e:
                if "No such file" not in str(e):
                    sub.notes.append(f"checkpoints/{name} was not used: {e}")
            if beside and name not in sub.checkpoints:
                try:
                    sub.checkpoints[name] = read_at(folder_fd, name, MAX_CKPT_BYTES)
                    sub.notes.append(f"{name} found beside the notebook (not in checkpoints/): graded")
                except Refused as e:
                    if "No such file" not in str(e):
                        sub.notes.append(f"{name} was not used: {e}")
    finally:
        if ck is not None:
            os.close(ck)


def snapshot(path: Path, name: str) -> Submission:
    """Read ``path`` once, following no link inside it."""
    path = Path(path)
    sub = Submission(name)
    try:
        if path.is_dir():
            root = open_dir(path)
            try:
                found, linked = _find_notebooks(root)
                for ln in linked:
                    sub.notes.append(
                        f"{ln} is a symbolic link and was not read; submit the notebook file itself"
                    )
                rel, note = choose_notebook(found)
                if note:
                    sub.notes.append(note)
                if rel is None:
                    if not linked and not found:
                        sub.notes.append(f"no notebook found in {path.name}")
                    return sub
                folder = root if len(rel) == 1 else _descend(root, rel[:-1])
                try:
                    sub.notebook, sub.notebook_name = (
                        read_at(folder, rel[-1], MAX_NOTEBOOK_BYTES),
                        "/".join(rel),
                    )
                    _read_checkpoints(folder, sub, beside=True)
                finally:
                    if folder != root:
                        os.close(folder)
            finally:
                os.close(root)
        else:
            parent = open_dir(path.parent)
            try:
                sub.notebook, sub.notebook_name = read_at(parent, path.name, MAX_NOTEBOOK_BYTES), path.name
                _read_checkpoints(parent, sub)
            finally:
                os.close(parent)
    except Refused as e:
        sub.notebook = None
        sub.notes.append(f"{e}; the notebook was not graded")
    return sub


def _descend(root_fd: int, rel: tuple[str, ...]) -> int:
    fd = os.dup(root_fd)
    for d in rel:
        nxt = open_dir(d, fd)
        os.close(fd)
        fd = nxt
    return fd
