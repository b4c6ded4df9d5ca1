"""What a student is given back: ``feedback.md`` and ``feedback.html`` (the class's files are
``report.py``'s), and the helpers both write with.

Every text in a report that came from the worker already went through ``untrusted.clean_text``;
the HTML escapes everything once more, so a submission cannot add markup to its own report.
"""

from __future__ import annotations

import html
import os
import threading
from pathlib import Path

from . import parts as P


def _intro(res: dict) -> str:
    feats = res["extra_data"].get("anomaly_features", {})
    return (
        "Every part is checked by running your code on hidden inputs and comparing with the reference; "
        f"trained checkpoints must reach {P.REVERSE_THRESHOLD:.0%} token accuracy (reverse) and "
        f"{feats.get('threshold', P.ANOMALY_THRESHOLD):.0%} accuracy on test sets of "
        f"{feats.get('described', 'the instructor’s features')} (set anomaly)."
    )


def _notes(res: dict) -> str:
    other = res["output"].split("\n", 1)
    return other[1] if len(other) > 1 else ""


def feedback_md(res: dict, late: str = "") -> str:
    """The student's report. Worker texts sit in code blocks, so the headings, the table and the
    one total are the grader's alone."""
    ex = res["extra_data"]
    lines = [
        f"# Autograder feedback: {ex['submission']}",
        "",
        f"**Total: {res['score']:g} / {ex['max_score']:g}**",
        "",
        *([f"**Late work:** {late}", ""] if late else []),
        _intro(res),
        "",
        "| part | score | max |",
        "|---|---:|---:|",
    ]
    lines += [f"| {t['name']} | {t['score']:g} | {t['max_score']:g} |" for t in res["tests"]]
    lines.append("")
    for t in res["tests"]:
        lines += [f"## {t['name']}: {t['score']:g} / {t['max_score']:g}", "", "```", t["output"], "```", ""]
    if _notes(res):
        lines += ["## Notes", "", "```", _notes(res), "```", ""]
    return "\n".join(lines)


def feedback_html(res: dict, late: str = "") -> str:
    """The same report as a standalone HTML page (for an LMS or nbgrader's ``feedback/`` folder)."""
    e = html.escape
    ex = res["extra_data"]
    rows = "".join(
        f"<tr><td>{e(t['name'])}</td><td>{t['score']:g}</td><td>{t['max_score']:g}</td></tr>"
        for t in res["tests"]
    )
    parts = "".join(
        f"<h2>{e(t['name'])}: {t['score']:g} / {t['max_score']:g}</h2><pre>{e(t['output'])}</pre>"
        for t in res["tests"]
    )
    notes = f"<h2>Notes</h2><pre>{e(_notes(res))}</pre>" if _notes(res) else ""
    return (
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
        f"<title>Autograder feedback: {e(ex['submission'])}</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}pre{background:#f6f6f6;"
        "padding:.5em;white-space:pre-wrap}td,th{padding:.2em .8em;text-align:left}</style></head><body>"
        f"<h1>Autograder feedback: {e(ex['submission'])}</h1>"
        f"<p><strong>Total: {res['score']:g} / {ex['max_score']:g}</strong></p>"
        + (f"<p><strong>Late work:</strong> {e(late)}</p>" if late else "")
        + f"<p>{e(_intro(res))}</p>"
        f"<table><tr><th>part</th><th>score</th><th>max</th></tr>{rows}</table>{parts}{notes}</body></html>\n"
    )


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


#: what makes a spreadsheet read a cell as a formula (OWASP's CSV injection list)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value) -> str:
    """A cell of text a student controls (a folder name, a timestamp): never a formula in a
    spreadsheet. A leading ``= + - @``, tab or carriage return gets a ``'`` in front (OWASP)."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text
