"""Due dates and late work: when each submission arrived, by a clock the student does not hold, and
a stated policy that turns lateness into a penalty on the total.

Arrival time, in order of trust:

1. the instructor's data: ``--submitted-at FILE.csv`` (``student_id,submitted_at``, e.g. an LMS
   export);
2. nbgrader's exchange: the newest kernel change time (``st_ctime``) over the files of the
   submission the student put in the course's ``inbound/`` folder. Nobody but root can set a
   ctime, and every write moves it forward, so a student can make a submission look later, never
   earlier;
3. nothing: lateness is *unknown*. ``timestamp.txt`` is recorded as what the student's client
   claimed, and never decides lateness (the student can write it).

The due date: ``--due`` or the assignment's ``duedate`` in nbgrader's gradebook database.
The policy (``--late-policy``, comma-separated terms), e.g. ``10%/day, zero-after=7d, grace=15m``:

* ``P%/hour`` or ``P%/day``: the total loses P percent per started hour/day past the due date;
* ``zero-after=N(h|d)``: no points when later than that;
* ``grace=N(m|h)``: lateness under this counts as on time;
* ``none`` (the default): lateness is shown, nothing is deducted.
"""

from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

_UNITS = {"m": 60.0, "h": 3600.0, "d": 86400.0, "hour": 3600.0, "day": 86400.0}


class PolicyError(ValueError):
    """A late policy, due date or arrival-times file that cannot be read; the message says why."""


@dataclass(frozen=True)
class Policy:
    """How lateness costs points. ``rate`` is a fraction of the total per ``per`` seconds started."""

    rate: float = 0.0
    per: float = 86400.0
    zero_after: float | None = None
    grace: float = 0.0
    text: str = "none"

    def penalty(self, late_seconds: float) -> float:
        """The fraction of the total lost at ``late_seconds`` past the due date (0 to 1)."""
        if late_seconds <= self.grace:
            return 0.0
        if self.zero_after is not None and late_seconds > self.zero_after:
            return 1.0
        return min(1.0, self.rate * math.ceil(late_seconds / self.per))

    def describe(self) -> str:
        parts = []
        if self.rate:
            parts.append(f"{self.rate:.0%} of the total per {'day' if self.per == 86400 else 'hour'} started")
        if self.zero_after is not None:
            parts.append(f"no points after {_duration(self.zero_after)}")
        if self.grace:
            parts.append(f"{_duration(self.grace)} of grace")
        return ", ".join(parts) or "no deduction (lateness is only shown)"


def _duration(seconds: float) -> str:
    for name, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{name}"
    return f"{seconds / 60:.0f}m"


def _seconds(text: str, term: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(m|h|d)", text.strip())
    if not m:
        raise PolicyError(f"late policy term {term!r}: a duration is a number and m, h or d (e.g. 7d)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_policy(spec: str | None) -> Policy:
    """``--late-policy``'s text as a :class:`Policy` (see the module's docstring for the terms)."""
    spec = (spec or "none").strip()
    if spec.lower() == "none":
        return Policy()
    rate, per, zero_after, grace = 0.0, 86400.0, None, 0.0
    for term in (t.strip() for t in spec.split(",") if t.strip()):
        if m := re.fullmatch(r"(\d+(?:\.\d+)?)\s*%\s*/\s*(hour|day)", term):
            rate, per = float(m.group(1)) / 100, _UNITS[m.group(2)]
        elif term.startswith("zero-after="):
            zero_after = _seconds(term.split("=", 1)[1], term)
        elif term.startswith("grace="):
            grace = _seconds(term.split("=", 1)[1], term)
        else:
            raise PolicyError(
                f"late policy term {term!r} not understood: use P%/hour, P%/day, zero-after=7d, "
                "grace=15m, or none"
            )
    return Policy(rate, per, zero_after, grace, spec)


def parse_time(text: str, what: str) -> datetime:
    """An ISO 8601 time (``2026-12-01T23:59``, with or without zone: none means UTC) or nbgrader's
    ``2026-12-01 23:59:00.123456 UTC``, as an aware UTC datetime."""
    t = text.strip().removesuffix(" UTC").replace("Z", "+00:00")
    try:
        when = datetime.fromisoformat(t)
    except ValueError:
        raise PolicyError(f"{what}: {text[:60]!r} is not a time (use ISO 8601, e.g. 2026-12-01T23:59+01:00)")
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def read_arrivals(path: Path) -> dict[str, datetime]:
    """``--submitted-at``: the instructor's ``student_id,submitted_at`` CSV (a header row is allowed)."""
    out = {}
    with open(path, newline="") as f:
        for row in csv.reader(f):
            if len(row) < 2 or not row[0].strip() or row[0].strip().lower() in ("student_id", "student"):
                continue
            out[row[0].strip()] = parse_time(row[1], f"{path}: {row[0].strip()}")
    return out


def exchange_arrival(inbound: Path, student: str, assignment: str, claimed: str) -> datetime | None:
    """When nbgrader's exchange received ``student``'s submission: the newest ctime over the inbound
    record that nbgrader collected (its folder name carries the client's ``claimed`` timestamp;
    the newest record when none matches)."""
    try:
        records = sorted(inbound.glob(f"{glob_escape(student)}+{glob_escape(assignment)}+*"))
    except OSError:
        return None
    if not records:
        return None
    stamp = claimed.replace(" UTC", "")
    chosen = [r for r in records if stamp and stamp in r.name] or records[-1:]
    newest = 0.0
    for root, dirs, files in os.walk(chosen[-1]):
        for name in [".", *dirs, *files]:
            try:
                newest = max(newest, os.lstat(os.path.join(root, name)).st_ctime)
            except OSError:
                continue
    return datetime.fromtimestamp(newest, timezone.utc) if newest else None


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def lateness(arrived: datetime | None, due: datetime | None, policy: Policy) -> dict:
    """``{late_hours, late, penalty}`` for one submission (``None`` values when either time is unknown)."""
    if arrived is None or due is None:
        return {"late_hours": None, "late": False, "penalty": 0.0}
    late = (arrived - due).total_seconds()
    return {
        "late_hours": round(max(0.0, late) / 3600, 2),
        "late": late > 0,
        "penalty": policy.penalty(late) if late > 0 else 0.0,
    }
