"""An nbgrader course as the grader needs it: where its exchange and gradebook are, from the course's
own ``nbgrader_config.py`` (read with nbgrader's config loader, so a course's settings mean what
they mean to nbgrader), and when each submission arrived."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from .late import exchange_arrival, read_arrivals
from .layout import Entry

DEFAULT_EXCHANGE = "/srv/nbgrader/exchange"  # nbgrader's own default (Exchange.root)


def nbgrader_due(db_url: str, assignment: str) -> datetime | None:
    """The assignment's ``duedate`` in nbgrader's gradebook (``nbgrader db assignment add --duedate``)."""
    from nbgrader.api import Gradebook, MissingEntry

    if db_url.startswith("sqlite:///") and not Path(db_url.removeprefix("sqlite:///")).is_file():
        return None  # no gradebook yet (and opening one would create it)
    try:
        with Gradebook(db_url) as gb:
            due = gb.find_assignment(assignment).duedate
    except MissingEntry:
        return None
    return None if due is None else due.replace(tzinfo=timezone.utc)  # nbgrader stores naive UTC


@dataclass(frozen=True)
class Course:
    root: Path
    course_id: str
    exchange: Path
    db_url: str

    @property
    def inbound(self) -> Path:
        return self.exchange / self.course_id / "inbound"

    def due(self, assignment: str):
        return nbgrader_due(self.db_url, assignment)


def load_course(root: Path) -> Course:
    """The course whose ``nbgrader_config.py`` is in ``root``."""
    from traitlets.config.loader import PyFileConfigLoader

    root = Path(root).resolve()
    cfg = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    course_root = Path(cfg.CourseDirectory.get("root", str(root)))
    return Course(
        root=course_root,
        course_id=str(cfg.CourseDirectory.get("course_id", "")),
        exchange=Path(cfg.Exchange.get("root", DEFAULT_EXCHANGE)),
        db_url=str(cfg.CourseDirectory.get("db_url", f"sqlite:///{course_root / 'gradebook.db'}")),
    )


def course_of(submissions: list[Path]) -> Path | None:
    """The course folder when a submission is its ``submitted/`` (or a student's folder in it)."""
    for p in map(Path, submissions):
        for d in [p.resolve(), *p.resolve().parents][:4]:
            if d.name == "submitted" and (d.parent / "nbgrader_config.py").is_file():
                return d.parent
    return None


def stamp_arrivals(entries: list[Entry], assignment: str, course: Course | None, arrivals_csv: Path | None):
    """Each entry with its arrival time and where that came from (see ``late``'s order of trust)."""
    given = read_arrivals(arrivals_csv) if arrivals_csv else {}
    out = []
    for e in entries:
        when, source = given.get(e.student_id), "--submitted-at"
        if when is None and course is not None and course.course_id:
            when, source = exchange_arrival(course.inbound, e.student_id, assignment, e.timestamp), "exchange"
        out.append(replace(e, arrived=when.isoformat() if when else "", arrived_from=source if when else ""))
    return out
