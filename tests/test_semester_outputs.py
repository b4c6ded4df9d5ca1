"""The class outputs around grading (issue 20): lateness by a clock the student does not hold, a
stated late policy, gradebooks for Canvas and Moodle with per-part columns, feedback where nbgrader
releases it, and a class sharded over machines and merged. Results are written as the grader writes
them; the grading itself is the slow tier's (``test_instructor_guide.py`` runs all of it for real)."""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "autograder"))
from lab_autograder import parts as P  # noqa: E402
from lab_autograder.cli import main  # noqa: E402
from lab_autograder.course import load_course, stamp_arrivals  # noqa: E402
from lab_autograder.late import PolicyError, exchange_arrival, parse_policy  # noqa: E402
from lab_autograder.layout import Entry, expand  # noqa: E402
from lab_autograder.report import LateRule, rebuild  # noqa: E402
from lab_autograder.shards import shard_index, shard_of  # noqa: E402
from lab_autograder.submission import snapshot  # noqa: E402

DUE = datetime(2026, 12, 1, 23, 59, tzinfo=timezone.utc)


def test_policies_read_and_cost_what_they_say():
    p = parse_policy("10%/day, zero-after=7d, grace=15m")
    assert p.penalty(10 * 60) == 0  # in the grace
    assert p.penalty(3600) == pytest.approx(0.1)  # one day started
    assert p.penalty(86400 + 1) == pytest.approx(0.2)
    assert p.penalty(8 * 86400) == 1.0
    assert parse_policy("5%/hour").penalty(2.5 * 3600) == pytest.approx(0.15)
    assert parse_policy(None).penalty(10**6) == 0 and parse_policy("none").describe().startswith("no deduction")
    assert "10% of the total per day started" in p.describe() and "no points after 7d" in p.describe()
    for bad in ("10 per day", "zero-after=soon", "grace=15"):
        with pytest.raises(PolicyError, match="late policy term"):
            parse_policy(bad)


def _result(out: Path, student: str, parts: dict[str, float], arrived: str = "", claimed: str = "",
            content: str = "") -> None:
    d = out / student
    d.mkdir(parents=True, exist_ok=True)
    tests = [{"name": P.TITLES[p], "score": v, "max_score": float(P.DEFAULT_POINTS[p]), "tags": [p], "output": ""}
             for p, v in parts.items()]
    res = {"score": sum(parts.values()), "output": f"{student}: graded", "tests": tests,
           "extra_data": {"submission": student, "student_id": student, "timestamp": claimed,
                          "arrived": arrived, "arrived_from": "exchange" if arrived else "",
                          "max_score": float(sum(P.DEFAULT_POINTS[p] for p in parts)), "parts": parts,
                          "content_sha256": content or student}}
    (d / "results.json").write_text(json.dumps(res))


def _rows(path: Path) -> list[list[str]]:
    return list(csv.reader(path.open(newline="")))


def test_late_work_costs_the_total_and_every_output_says_so(tmp_path, capsys):
    out = tmp_path / "out"
    full = {"scaled_dot_product": 3.0, "multihead_attention": 3.0}
    _result(out, "alice", full, arrived=(DUE - timedelta(hours=1)).isoformat())
    _result(out, "bob", full, arrived=(DUE + timedelta(hours=30)).isoformat(), claimed="2026-11-30 10:00:00 UTC")
    _result(out, "carol", {"scaled_dot_product": 1.5, "multihead_attention": 0.0})  # arrival unknown
    rep = rebuild(out, LateRule(DUE, parse_policy("10%/day, zero-after=7d"), "--due"))
    grades = {r["student_id"]: r for r in csv.DictReader((out / "grades.csv").open())}
    assert {s: (r["late_hours"], r["late_penalty"], r["final"]) for s, r in grades.items()} == {
        "alice": ("0", "0", "6"), "bob": ("30", "0.2", "4.8"), "carol": ("", "0", "1.5")}
    assert grades["bob"]["timestamp"] == "2026-11-30 10:00:00 UTC"  # what the client claimed, shown, not used
    assert _rows(out / "lms_grades.csv") == [["student_id", "score"], ["alice", "6"], ["bob", "4.8"], ["carol", "1.5"]]
    bob_feedback = (out / "bob" / "feedback.md").read_text()
    assert "**Late work:** Due 2026-12-01 23:59 UTC; submitted 2026-12-03 05:59 UTC, 30 h late" in bob_feedback
    assert "20% of the total" in bob_feedback and "Final: 4.8 / 6" in bob_feedback
    assert "Late work" in (out / "bob" / "feedback.html").read_text()
    assert "not known to the grader" in (out / "carol" / "feedback.md").read_text()
    assert any("1 late, 1 with no known arrival time" in line for line in rep["summary"])
    # the rule is kept: a later run (or `report`) without one applies the same
    rebuild(out)
    assert {r["student_id"]: r["final"] for r in csv.DictReader((out / "grades.csv").open())}["bob"] == "4.8"
    assert main(["report", str(out), "--late-policy", "none", "--due", DUE.isoformat()]) == 0
    assert {r["student_id"]: r["final"] for r in csv.DictReader((out / "grades.csv").open())}["bob"] == "6"
    assert main(["report", str(out), "--late-policy", "3 per day"]) == 2
    assert "late policy term" in capsys.readouterr().err


def test_lms_exports_have_a_column_per_part_in_canvas_and_moodle_shapes(tmp_path):
    out = tmp_path / "out"
    _result(out, "=alice", {"scaled_dot_product": 3.0, "warmup_factor": 1.0})
    _result(out, "bob", {"scaled_dot_product": 1.5, "warmup_factor": 2.0})
    rebuild(out, LateRule())
    canvas = _rows(out / "canvas_grades.csv")
    assert canvas[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section",
                         "Transformer lab: Scaled dot-product attention", "Transformer lab: Cosine warm-up learning-rate factor",
                         "Transformer lab (total)"]
    assert canvas[1] == ["Points Possible", "", "", "", "", "3", "2", "5"]
    assert canvas[2] == ["'=alice", "", "", "'=alice", "", "3", "1", "4"]  # a student's text is never a formula
    moodle = _rows(out / "moodle_grades.csv")
    assert moodle[0][0] == "Username" and moodle[0][1:] == canvas[0][5:]
    assert moodle[2] == ["bob", "1.5", "2", "3.5"]


def test_arrival_comes_from_the_exchanges_clock_not_the_students_files(tmp_path):
    inbound = tmp_path / "exchange" / "course" / "inbound"
    record = inbound / "alice+transformer_lab+2026-11-20 10:00:00.000000 UTC+abc123"
    record.mkdir(parents=True)
    (record / "transformer_lab.ipynb").write_text("{}")
    (record / "timestamp.txt").write_text("2026-11-20 10:00:00.000000 UTC")  # claims long before the due date
    old = time.time() - 30 * 86400
    for f in [record, *record.iterdir()]:
        os.utime(f, (old, old))  # a student can back-date mtimes; the kernel's ctime moves on regardless
    got = exchange_arrival(inbound, "alice", "transformer_lab", "2026-11-20 10:00:00.000000 UTC")
    assert abs((got - datetime.now(timezone.utc)).total_seconds()) < 120
    assert exchange_arrival(inbound, "bob", "transformer_lab", "") is None


def _course(root: Path, exchange: Path, due: datetime | None) -> Path:
    from nbgrader.api import Gradebook

    root.mkdir(parents=True)
    db = f"sqlite:///{root / 'gradebook.db'}"
    (root / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(root)!r}\nc.CourseDirectory.course_id = 'ml101'\n"
        f"c.CourseDirectory.db_url = {db!r}\nc.Exchange.root = {str(exchange)!r}\n")
    with Gradebook(db) as gb:
        gb.add_assignment("transformer_lab", duedate=None if due is None else due.replace(tzinfo=None))
    return root


def test_the_course_gives_exchange_and_due_date_and_the_instructor_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")  # nbgrader runs alembic
    exchange = tmp_path / "exchange"
    course = load_course(_course(tmp_path / "course", exchange, DUE))
    assert (course.course_id, course.exchange, course.inbound) == ("ml101", exchange, exchange / "ml101" / "inbound")
    assert course.due("transformer_lab") == DUE and course.due("other") is None
    (course.inbound / "alice+transformer_lab+2026-11-20 10:00:00 UTC+x").mkdir(parents=True)
    (course.inbound / "bob+transformer_lab+2026-11-20 10:00:00 UTC+y").mkdir(parents=True)
    given = tmp_path / "times.csv"
    given.write_text("student_id,submitted_at\nbob,2026-12-01T12:00:00+01:00\n")
    entries = [Entry(tmp_path / s, s, "2026-11-20 10:00:00 UTC") for s in ("alice", "bob", "carol")]
    stamped = {e.student_id: (e.arrived_from, e.arrived[:10]) for e in stamp_arrivals(entries, "transformer_lab",
                                                                                       course, given)}
    today = datetime.now(timezone.utc).isoformat()[:10]
    assert stamped == {"alice": ("exchange", today), "bob": ("--submitted-at", "2026-12-01"), "carol": ("", "")}


def test_feedback_goes_where_nbgrader_release_feedback_takes_it(tmp_path, capsys):
    course, out = tmp_path / "course", tmp_path / "out"
    for student in ("alice", "bob"):
        d = course / "submitted" / student / "transformer_lab"
        d.mkdir(parents=True)
        (d / "transformer_lab.ipynb").write_text(json.dumps({"cells": [], "nbformat": 4, "nbformat_minor": 5}))
        (d / "timestamp.txt").write_text("2026-11-30 10:00:00.000000 UTC")
        (d / "submission_secret.txt").write_text(f"secret-{student}")
        (entry,) = expand([d])
        _result(out, student, {"warmup_factor": 2.0}, content=snapshot(entry.path, student).content_sha256())
    rebuild(out, LateRule())
    (course / "submitted" / "bob" / "transformer_lab" / "transformer_lab.ipynb").write_text("{}")  # resubmitted
    assert main(["feedback", str(out), "--nbgrader", str(course)]) == 0
    printed = capsys.readouterr().out
    given = course / "feedback" / "alice" / "transformer_lab"
    assert sorted(p.name for p in given.iterdir()) == ["submission_secret.txt", "timestamp.txt", "transformer_lab.html"]
    assert (given / "submission_secret.txt").read_text() == "secret-alice"
    assert (given / "transformer_lab.html").read_text() == (out / "alice" / "feedback.html").read_text()
    assert not (course / "feedback" / "bob").exists()
    assert "feedback of 1 student(s)" in printed and "changed since graded (grade again first): bob" in printed


def test_shards_cover_the_class_once_and_merge_into_one_gradebook(tmp_path, capsys):
    students = [f"s{i:03d}" for i in range(300)]
    entries = [Entry(tmp_path / s, s) for s in students]
    shares = [shard_of(entries, i, 3) for i in (1, 2, 3)]
    assert sorted(e.student_id for share in shares for e in share) == students
    assert all(80 < len(share) < 120 for share in shares)  # balanced enough for three machines
    assert shard_index("s007", 3) == shard_index("s007", 3)  # stable: a new student moves nobody
    outs = [tmp_path / f"shard-{i}" for i in (1, 2)]
    for s in students[:10]:
        _result(outs[shard_index(s, 2) - 1], s, {"warmup_factor": 2.0})
    _result(outs[0], "s000", {"warmup_factor": 0.0})  # graded on both machines: the newer one is kept
    later = time.time() + 5
    os.utime(outs[0] / "s000" / "results.json", (later, later))
    assert main(["merge", *map(str, outs), "--out", str(tmp_path / "merged")]) == 0
    rows = {r["student_id"]: r for r in csv.DictReader((tmp_path / "merged" / "grades.csv").open())}
    assert sorted(rows) == students[:10] and rows["s000"]["total"] == "0"
    assert "merged 10 student(s) from 2 folder(s)" in capsys.readouterr().out
    assert main(["grade", str(tmp_path), "--out", str(tmp_path / "x"), "--shard", "3/2", "--parts",
                 "warmup_factor"]) == 2
