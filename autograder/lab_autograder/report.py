"""A class summary of a grading run: per-part score histograms (PNG) and a gradebook CSV for an LMS.

autograder report OUT      ->  OUT/scores.png, OUT/lms_grades.csv, and a per-part table on stdout
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from . import parts as P
from .feedback import atomic_write, csv_text, read_results


def class_scores(out: Path) -> tuple[list[dict], dict[str, float]]:
    """Per student ``{student_id, total, parts}`` and the points of each part, from OUT's results."""
    rows, maxima = [], {}
    for r in read_results(out):
        ex = r.get("extra_data", {})
        rows.append(
            {
                "student_id": str(ex.get("student_id", ex.get("submission", "?"))),
                "total": float(r.get("score", 0)),
                "max": float(ex.get("max_score", 0)),
                "parts": {p: float(v) for p, v in ex.get("parts", {}).items()},
            }
        )
        for t in r.get("tests", []):
            part = (t.get("tags") or [None])[0]
            if part in P.TITLES:
                maxima[part] = float(t.get("max_score", 0))
    return rows, maxima


def write_lms_csv(rows: list[dict], path: Path) -> Path:
    """Two columns an LMS gradebook imports (Canvas, Moodle, Blackboard): the student's id and the total."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["student_id", "score"])
    for r in sorted(rows, key=lambda r: r["student_id"]):
        w.writerow([csv_text(r["student_id"]), f"{r['total']:g}"])
    atomic_write(path, buf.getvalue())
    return path


def plot_histograms(rows: list[dict], maxima: dict[str, float], path: Path) -> Path:
    """One small histogram per part (points earned, one bar per score seen) and one of the totals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        (P.TITLES[p], [r["parts"].get(p, 0.0) for r in rows], maxima[p]) for p in P.PART_ORDER if p in maxima
    ]
    panels.append(("total", [r["total"] for r in rows], max((r["max"] for r in rows), default=0.0)))
    cols = 4
    nrows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 2.6 * nrows), squeeze=False)
    from matplotlib.ticker import MaxNLocator

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


def summary_lines(rows: list[dict], maxima: dict[str, float]) -> list[str]:
    """Mean points and share at full marks per part: which part the class found hard."""
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
    return lines


def write_report(out: Path) -> dict:
    """The class summary of ``OUT``: ``scores.png`` and ``lms_grades.csv`` beside ``grades.csv``, and
    the per-part table (``summary``, lines of text)."""
    out = Path(out)
    rows, maxima = class_scores(out)
    if not rows:
        raise FileNotFoundError(f"no results.json under {out}: run `autograder grade ... --out {out}` first")
    return {
        "png": plot_histograms(rows, maxima, out / "scores.png"),
        "lms_csv": write_lms_csv(rows, out / "lms_grades.csv"),
        "summary": summary_lines(rows, maxima),
    }
