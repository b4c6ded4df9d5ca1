"""The class outputs of a grading folder, rebuilt from every ``OUT/<student>/results.json`` at the
end of each grading run (and by ``autograder report OUT``), so none of them is ever older than the
scores:

* ``grades.csv``: one row per student: the client's timestamp, points per part, total, lateness
  (arrival by a clock the student does not hold, hours late, penalty), the final total and the
  number of provenance flags;
* ``lms_grades.csv``: student id and final total (any LMS);
* ``canvas_grades.csv``: Canvas's gradebook import (``Student, ID, SIS User ID, SIS Login ID,
  Section``, a ``Points Possible`` row, one column per part and the final total; new columns
  become new assignments);
* ``moodle_grades.csv``: Moodle's *Import grades from CSV* (``Username`` to map the user, then one
  column per part and the final total, each mapped to a grade item at import);
* ``scores.png``: a histogram per part; ``provenance.csv``: the instructor's copy flags;
* each student's ``feedback.md``/``.html``, with the late-work line when there is one.

Late penalties apply to the total only; the per-part columns are the points earned.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from . import parts as P
from .feedback import atomic_write, csv_text, feedback_html, feedback_md
from .late import Policy, PolicyError, lateness, parse_policy, parse_time
from .provenance import class_flags

ASSIGNMENT_TITLE = "Transformer lab"
LATE_FILE = "late_policy.json"


@dataclass
class LateRule:
    """The due date and policy a grading folder applies (kept in ``OUT/late_policy.json``)."""

    due: datetime | None = None
    #: None (in a command's rule): the policy OUT already has
    policy: Policy | None = field(default_factory=Policy)
    due_from: str = ""

    def save(self, out: Path) -> None:
        data = {"due": self.due.isoformat() if self.due else None, "policy": (self.policy or Policy()).text}
        atomic_write(Path(out) / LATE_FILE, json.dumps({**data, "due_from": self.due_from}, indent=1))

    @classmethod
    def load(cls, out: Path) -> "LateRule":
        try:
            data = json.loads((Path(out) / LATE_FILE).read_text())
        except (OSError, ValueError):
            return cls()
        due = parse_time(data["due"], LATE_FILE) if data.get("due") else None
        return cls(due, parse_policy(data.get("policy")), str(data.get("due_from", "")))


def class_rows(out: Path, rule: LateRule) -> tuple[list[dict], dict[str, float]]:
    """Per student its results, lateness and final total; and the points of each part."""
    rows, maxima = [], {}
    for folder, r in graded_folders(out):
        ex = r.get("extra_data", {})
        arrived = _arrival(ex.get("arrived"))
        late = lateness(arrived, rule.due, rule.policy)
        total = float(r.get("score", 0))
        rows.append(
            {
                "student_id": str(ex.get("student_id", ex.get("submission", "?"))),
                "folder": folder,
                "timestamp": str(ex.get("timestamp", "")),
                "arrived": arrived.isoformat() if arrived else "",
                "arrived_from": str(ex.get("arrived_from", "")),
                "total": total,
                "max": float(ex.get("max_score", 0)),
                "parts": {p: float(v) for p, v in ex.get("parts", {}).items()},
                "late_hours": late["late_hours"],
                "late": late["late"],
                "penalty": late["penalty"],
                "final": round(total * (1 - late["penalty"]), 4),
                "content_sha256": ex.get("content_sha256", ""),
                "checkpoints": ex.get("provenance", {}).get("checkpoints", {}),
                "result": r,
            }
        )
        for t in r.get("tests", []):
            part = (t.get("tags") or [None])[0]
            if part in P.TITLES:
                maxima[part] = float(t.get("max_score", 0))
    return sorted(rows, key=lambda r: r["student_id"]), maxima


def graded_folders(out: Path):
    """``(folder name, results)`` of every ``OUT/<folder>/results.json`` that can be read."""
    for d in sorted(p for p in Path(out).iterdir() if p.is_dir()):
        try:
            yield d.name, json.loads((d / "results.json").read_text())
        except (OSError, ValueError):
            continue


def _arrival(text) -> datetime | None:
    try:
        return parse_time(text, "arrived") if isinstance(text, str) and text else None
    except PolicyError:
        return None


def _late_cell(row: dict) -> str:
    return "" if row["late_hours"] is None else f"{row['late_hours']:g}"


def _csv(rows: list[list]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue()


def write_grades_csv(rows: list[dict], flags: dict[str, int], path: Path, part_order=P.PART_ORDER) -> Path:
    head = ["student_id", "timestamp", *part_order, "total", "max"]
    head += ["submitted_at", "submitted_at_from", "late_hours", "late_penalty", "final", "provenance_flags"]
    body = [
        [
            csv_text(r["student_id"]),
            csv_text(r["timestamp"]),
            *[f"{r['parts'].get(p, 0):g}" for p in part_order],
            f"{r['total']:g}",
            f"{r['max']:g}",
            r["arrived"],
            r["arrived_from"],
            _late_cell(r),
            f"{r['penalty']:g}",
            f"{r['final']:g}",
            str(flags.get(r["folder"], 0)),
        ]
        for r in rows
    ]
    atomic_write(path, _csv([head, *body]))
    return path


def write_lms_csv(rows: list[dict], path: Path) -> Path:
    """Two columns any LMS gradebook imports: the student's id and the final total."""
    atomic_write(
        path, _csv([["student_id", "score"], *[[csv_text(r["student_id"]), f"{r['final']:g}"] for r in rows]])
    )
    return path


def _grade_columns(maxima: dict[str, float]) -> list[tuple[str, str | None, float]]:
    """``(header, part or None for the total, points possible)`` of the per-part LMS exports."""
    cols = [(f"{ASSIGNMENT_TITLE}: {P.TITLES[p]}", p, maxima[p]) for p in P.PART_ORDER if p in maxima]
    return cols + [(f"{ASSIGNMENT_TITLE} (total)", None, sum(maxima.values()))]


def _scores(r: dict, cols) -> list[str]:
    return [f"{(r['final'] if p is None else r['parts'].get(p, 0.0)):g}" for _, p, _ in cols]


def write_canvas_csv(rows: list[dict], maxima: dict[str, float], path: Path) -> Path:
    """Canvas's gradebook import: the student's id in ``SIS Login ID`` (a JupyterHub user name is
    the login), a ``Points Possible`` row, one column per part and the total."""
    cols = _grade_columns(maxima)
    ids = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    table = [
        ids + [c for c, _, _ in cols],
        ["Points Possible", "", "", "", ""] + [f"{m:g}" for _, _, m in cols],
    ]
    for r in rows:
        sid = csv_text(r["student_id"])
        table.append([sid, "", "", sid, ""] + _scores(r, cols))
    atomic_write(path, _csv(table))
    return path


def write_moodle_csv(rows: list[dict], maxima: dict[str, float], path: Path) -> Path:
    """Moodle's *Import grades from CSV*: map ``Username`` to the user, each column to a grade item."""
    cols = _grade_columns(maxima)
    table = [["Username"] + [c for c, _, _ in cols]]
    table += [[csv_text(r["student_id"])] + _scores(r, cols) for r in rows]
    atomic_write(path, _csv(table))
    return path


def write_provenance_csv(flags: list[dict], path: Path) -> Path:
    table = [["kind", "students", "detail"]]
    table += [[f["kind"], " ".join(csv_text(s) for s in f["students"]), csv_text(f["detail"])] for f in flags]
    atomic_write(path, _csv(table))
    return path


def _boilerplate() -> str:
    """The code the course hands out or published (release and reference notebooks' code cells)."""
    from .grade import DEFAULT_SOURCE, PROJECT_ROOT
    from .notebook import code_cells

    release = PROJECT_ROOT / "release" / "transformer_lab" / "transformer_lab.ipynb"
    return "\n\n".join("\n\n".join(code_cells(nb)) for nb in (release, DEFAULT_SOURCE) if nb.is_file())


def provenance_flags(out: Path, rows: list[dict]) -> list[dict]:
    codes = {}
    for r in rows:
        try:
            codes[r["folder"]] = (Path(out) / r["folder"] / "own_code.py").read_text()
        except OSError:
            continue
    records = [
        {"student": r["folder"], "content_sha256": r["content_sha256"], "checkpoints": r["checkpoints"]}
        for r in rows
    ]
    return class_flags(records, codes, _boilerplate())


def late_line(row: dict, rule: LateRule) -> str:
    """The feedback's words on lateness, or ``""`` when the folder has no due date."""
    if rule.due is None:
        return ""
    due = rule.due.strftime("%Y-%m-%d %H:%M UTC")
    if row["late_hours"] is None:
        return (
            f"Due {due}; the arrival time of this submission is not known to the grader, so no late penalty."
        )
    arrived = f"{datetime.fromisoformat(row['arrived']):%Y-%m-%d %H:%M} UTC"
    if not row["late"]:
        return f"Due {due}; submitted {arrived}: on time."
    cost = f"{row['penalty']:.0%} of the total ({rule.policy.describe()})"
    return (
        f"Due {due}; submitted {arrived}, {row['late_hours']:g} h late: late penalty "
        f"{cost}. Final: {row['final']:g} / {row['max']:g}."
    )


def rebuild(out: Path, rule: LateRule | None = None) -> dict:
    """Every class output of ``OUT`` from its results (see the module's docstring). ``rule``: the
    due date and policy (saved for later runs); ``None`` keeps the one saved in ``OUT``."""
    out = Path(out)
    saved = LateRule.load(out)
    if rule is None:
        rule = saved
    else:  # what the command states, the rest as saved
        rule = LateRule(
            rule.due or saved.due,
            rule.policy if rule.policy is not None else saved.policy,
            rule.due_from if rule.due else saved.due_from,
        )
        rule.save(out)
    rows, maxima = class_rows(out, rule)
    flags = provenance_flags(out, rows) if rows else []
    per_student: dict[str, int] = {}
    for f in flags:
        for s in f["students"]:
            per_student[s] = per_student.get(s, 0) + 1
    for r in (
        r for r in rows if "output" in r["result"] and "submission" in r["result"].get("extra_data", {})
    ):
        line = late_line(r, rule)
        atomic_write(out / r["folder"] / "feedback.md", feedback_md(r["result"], line))
        atomic_write(out / r["folder"] / "feedback.html", feedback_html(r["result"], line))
    written = {
        "grades_csv": write_grades_csv(rows, per_student, out / "grades.csv"),
        "lms_csv": write_lms_csv(rows, out / "lms_grades.csv"),
        "canvas_csv": write_canvas_csv(rows, maxima, out / "canvas_grades.csv"),
        "moodle_csv": write_moodle_csv(rows, maxima, out / "moodle_grades.csv"),
        "provenance_csv": write_provenance_csv(flags, out / "provenance.csv"),
    }
    if rows:
        written["png"] = plot_histograms(rows, maxima, out / "scores.png")
    return {**written, "rows": rows, "flags": flags, "summary": summary_lines(rows, maxima, flags, rule)}


def plot_histograms(rows: list[dict], maxima: dict[str, float], path: Path) -> Path:
    """One small histogram per part (points earned, one bar per score seen) and one of the totals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = [
        (P.TITLES[p], [r["parts"].get(p, 0.0) for r in rows], maxima[p]) for p in P.PART_ORDER if p in maxima
    ]
    panels.append(("total", [r["total"] for r in rows], max((r["max"] for r in rows), default=0.0)))
    cols = 4
    nrows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 2.6 * nrows), squeeze=False)
    for ax, (title, values, top) in zip(axes.flat, panels):
        step = 0.25 if top <= 5 else 1.0  # one bar per score a part can give (its checks' weights)
        edges = [step * (i - 0.5) for i in range(int(round((top or 1) / step)) + 2)]
        ax.hist(values, bins=edges, color="tab:blue", edgecolor="white")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{title} (max {top:g})", fontsize=9)
        ax.set_xlabel("points", fontsize=8)
        ax.set_ylabel("students", fontsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(f"{len(rows)} submissions")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def summary_lines(
    rows: list[dict], maxima: dict[str, float], flags=(), rule: LateRule | None = None
) -> list[str]:
    """Mean points and share at full marks per part (which part the class found hard), lateness
    and the provenance flags."""
    w = max(len(t) for t in P.TITLES.values())
    lines = [f"{'part':<{w}} {'mean':>6} {'max':>5}  full marks"]
    n = max(1, len(rows))
    for p in P.PART_ORDER:
        if p in maxima:
            vals = [r["parts"].get(p, 0.0) for r in rows]
            full = sum(v >= maxima[p] for v in vals)
            lines.append(f"{P.TITLES[p]:<{w}} {sum(vals) / n:>6.2f} {maxima[p]:>5g}  {full}/{len(rows)}")
    totals = [r["total"] for r in rows]
    lines.append(f"{'total':<{w}} {sum(totals) / n:>6.2f} {max((r['max'] for r in rows), default=0):>5g}")
    if rule is not None and rule.due is not None:
        late = [r for r in rows if r["late"]]
        unknown = [r for r in rows if r["late_hours"] is None]
        lines.append(
            f"due {rule.due:%Y-%m-%d %H:%M} UTC ({rule.due_from or 'given'}), "
            f"policy: {rule.policy.describe()}: "
            f"{len(late)} late, {len(unknown)} with no known arrival time"
        )
    if flags:
        lines.append(f"{len(flags)} provenance flag(s) for you to look at: provenance.csv (scores unchanged)")
    return lines


def write_report(out: Path, rule: LateRule | None = None) -> dict:
    """``autograder report OUT``: :func:`rebuild`, refusing a folder with nothing graded in it."""
    if not any(Path(out).glob("*/results.json")):
        raise FileNotFoundError(f"no results.json under {out}: run `autograder grade ... --out {out}` first")
    return rebuild(out, rule)
