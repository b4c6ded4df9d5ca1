"""Whose submission is this: nbgrader's ``submitted/<student>/<assignment>/``, Gradescope's
``/autograder/submission`` (+ ``submission_metadata.json``), or a plain folder or notebook.

The student id names the results folder and the ``grades.csv`` row, so that a class collected by
nbgrader keeps who is who (every ``submitted/*/transformer_lab`` would otherwise be called
``transformer_lab``). ``timestamp.txt`` (what the student's nbgrader client says) is recorded; the
arrival time that decides lateness comes from ``course.stamp_arrivals``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .safe_files import Refused, open_dir, read_at

ASSIGNMENT = "transformer_lab"
_MAX_TIMESTAMP_BYTES = 200


@dataclass(frozen=True)
class Entry:
    """One submission to grade and the identity it is graded under."""

    path: Path
    student_id: str
    #: what the student's client wrote (nbgrader's ``timestamp.txt``): shown, never trusted
    timestamp: str = ""
    #: when the submission arrived by a clock the student does not hold (ISO 8601), and whose
    arrived: str = ""
    arrived_from: str = ""


def read_timestamp(folder: Path) -> str:
    """nbgrader's ``timestamp.txt`` in ``folder`` (read without following links), or ``""``."""
    try:
        fd = open_dir(folder)
    except (Refused, OSError):
        return ""
    try:
        raw = read_at(fd, "timestamp.txt", _MAX_TIMESTAMP_BYTES)
    except (Refused, OSError):
        return ""
    finally:
        os.close(fd)
    text = raw.decode("utf-8", "replace").strip().splitlines()
    return "".join(ch for ch in (text[0] if text else "") if ch.isprintable())[:64]


def _course_students(root: Path, assignment: str) -> list[Path]:
    """``root/<student>/<assignment>/`` folders when ``root`` is nbgrader's ``submitted/`` folder."""
    if not root.is_dir() or root.is_symlink() or any(root.glob("*.ipynb")):
        return []
    return sorted(
        d / assignment
        for d in root.iterdir()
        if d.is_dir()
        and not d.is_symlink()
        and (d / assignment).is_dir()
        and not (d / assignment).is_symlink()
    )


def expand(paths: list[Path], assignment: str = ASSIGNMENT) -> list[Entry]:
    """The submissions named by ``paths``, each with its student id.

    * ``submitted/`` (nbgrader's folder of ``<student>/<assignment>/``): one entry per student;
    * ``submitted/<student>/<assignment>``: that student;
    * any other folder or notebook: named after itself (folder name or notebook stem).
    """
    out = []
    for p in map(Path, paths):
        students = _course_students(p, assignment)
        if students:
            out += [Entry(d, d.parent.name, read_timestamp(d)) for d in students]
        elif p.is_dir() and p.name == assignment and p.parent.name not in ("", ".", "/"):
            out.append(Entry(p, p.resolve().parent.name, read_timestamp(p)))
        else:
            out.append(Entry(p, p.name if p.is_dir() else p.stem, read_timestamp(p) if p.is_dir() else ""))
    return out


def gradescope_entry(submission: Path, metadata: Path) -> Entry:
    """Gradescope's submission, named after its submitters' ids (``submission_metadata.json``)."""
    student, when = "submission", ""
    try:
        meta = json.loads(Path(metadata).read_text())
        users = [
            str(u.get("id") or u.get("email") or "") for u in meta.get("users", []) if isinstance(u, dict)
        ]
        student = "+".join(u for u in users if u) or student
        when = str(meta.get("created_at") or "")[:64]
    except (OSError, ValueError, AttributeError):
        pass  # grading a submission must not depend on the metadata (local runs have none)
    return Entry(Path(submission), student, when, when, "gradescope" if when else "")
