"""Faults of the grader's own are never charged to a student (fault injection).

A launcher put in front of every launch (``autograder_fixtures/faulty_launcher.py``) fails the way
loaded grading machines were seen to fail: ``unshare`` exiting before anything ran, ``unshare``
dying under a running worker, the host killing the worker. A fault on one try must cost nothing
(the same score as without it); a fault on every try leaves the submission *not graded*: no
score written, a non-zero exit, a line in the summary, and the next run grades it.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from autograder_fixtures import catalog, checkpoints  # noqa: E402
from lab_autograder import cli, grade, sandbox  # noqa: E402
from lab_autograder.grade import Settings, grade_all  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not catalog.SOURCE.is_file(), reason="source notebook not built yet")]

FAULTY = Path(__file__).parent / "autograder_fixtures" / "faulty_launcher.py"
BLAME = ("stopped every attempt", "infinite loop, a memory bomb", "NOT GRADED")


@pytest.fixture(scope="module")
def subs(tmp_path_factory):
    """The solution and a one-bug submission, with their scores on a launcher that does not fail."""
    root = tmp_path_factory.mktemp("faults")
    ck = {f"{k}.ckpt": v for k, v in checkpoints.ensure().items()}
    src = catalog.load_source()
    bug = next(v for v in catalog.BUGS if v.part == "scaled_dot_product")
    made = {"solution": catalog.write_submission(root / "subs", "solution", src, ck),
            "bug": catalog.write_submission(root / "subs", "bug", catalog.apply_edits(src, bug.edits), ck)}
    baseline = grade_all(list(made.values()), _settings(root / "baseline"))
    return made, {r["extra_data"]["submission"]: r["score"] for r in baseline}


def _settings(out):
    return Settings(out=out, quiet=True, anomaly_features=checkpoints.FEATURES_SPEC)


@pytest.fixture
def faulty(monkeypatch, tmp_path):
    """``faulty(MODE)``: every launch from now on goes through the faulty launcher; returns the launch counter."""
    monkeypatch.setattr(grade, "RETRY_BACKOFF", (0.2, 0.2, 0.2))

    def use(mode):
        counter = tmp_path / f"launches-{mode}"
        monkeypatch.setattr(sandbox, "WRAPPER", [sys.executable, str(FAULTY), mode, str(counter)])
        return counter

    return use


def _feedback(res) -> str:
    return res["output"] + "\n".join(t["output"] for t in res["tests"])


@pytest.mark.parametrize("mode, name", [("fail-first", "solution"), ("die-mid-first", "bug"),
                                        ("kill-worker-first", "solution"), ("kill-imports-first", "bug")])
def test_a_fault_on_one_try_costs_nothing(subs, faulty, tmp_path, mode, name):
    made, baseline = subs
    counter = faulty(mode)
    (res,) = grade_all([made[name]], _settings(tmp_path / "out"))
    assert int(counter.read_text()) >= 2, "the faulty launch was tried again"
    assert res["score"] == baseline[name], _feedback(res)
    assert not any(b in _feedback(res) for b in BLAME), _feedback(res)
    if mode == "kill-worker-first":  # a kill the grader did not send: the same place runs again, not skipped
        assert re.search(r"killed \(signal 9\) during cell \d+; run again", res["output"]), res["output"]
    elif mode == "kill-imports-first":  # before any student code ran: the machine's, retried uncounted
        (fault,) = res["extra_data"]["grader_faults"]
        assert "in the release's own cell imports, before any student code ran" in fault
        assert "skipped" not in res["output"]
    else:
        assert len(res["extra_data"]["grader_faults"]) == 1 and "unshare" in res["extra_data"]["grader_faults"][0]


def test_a_fault_on_every_try_leaves_the_submission_not_graded(subs, faulty, tmp_path, capsys):
    made, baseline = subs
    out = tmp_path / "out"
    counter = faulty("fail-always")
    code = cli.main(["grade", str(made["bug"]), "--out", str(out), "--anomaly-features", checkpoints.FEATURES_SPEC])
    printed = capsys.readouterr().out
    assert code == cli.GRADER_FAULT
    assert int(counter.read_text()) == 1 + len(grade.RETRY_BACKOFF)
    folder = out / "bug"
    assert not (folder / "results.json").exists() and not (folder / "feedback.md").exists()
    reason = json.loads((folder / "grader_fault.json").read_text())["not_graded"]
    assert "the sandbox did not start" in reason and "sigprocmask" in reason
    assert "1 submission(s) NOT GRADED because of a grader fault (bug" in printed
    assert "bug" not in (out / "grades.csv").read_text()  # no score stands for it in the gradebook
    assert json.loads((out / "run.json").read_text())["not_graded"] == {"bug": reason}

    sandbox.WRAPPER[:] = []  # the machine recovered: the next run grades it, as if it were new
    assert cli.main(["grade", str(made["bug"]), "--out", str(out), "--anomaly-features",
                     checkpoints.FEATURES_SPEC]) == 0
    assert json.loads((folder / "results.json").read_text())["score"] == baseline["bug"]
    assert not (folder / "grader_fault.json").exists()


def test_a_death_in_the_releases_own_cells_is_never_a_score(subs, faulty, tmp_path):
    """The 2/25 of issue 19: the worker died in the given imports cell, the grader skipped that cell
    and graded the rest without imports. Such a death, every time, now leaves no score at all."""
    made, _ = subs
    counter = faulty("kill-imports-always")
    run = grade_all([made["solution"]], _settings(tmp_path / "out"))
    assert not run and "release's own cell imports" in run.not_graded["solution"]
    assert int(counter.read_text()) == 1 + len(grade.RETRY_BACKOFF)
    assert not (tmp_path / "out" / "solution" / "results.json").exists()


def test_gradescope_reports_a_grader_fault_as_the_autograders_failure(subs, faulty, tmp_path, capsys):
    made, _ = subs
    faulty("fail-always")
    results = tmp_path / "results" / "results.json"
    meta = tmp_path / "submission_metadata.json"
    meta.write_text(json.dumps({"id": 7, "created_at": "2026-11-30T10:00:00-08:00", "users": [{"id": 42}]}))
    code = cli.main(["gradescope", "--submission", str(made["solution"]), "--results", str(results),
                     "--metadata", str(meta), "--anomaly-features", checkpoints.FEATURES_SPEC])
    assert code == cli.GRADER_FAULT  # run_autograder execs this: Gradescope shows a failed autograder run
    assert not results.exists()  # no score at all, rather than a low one
    assert "NOT GRADED, a grader fault (not the student's)" in capsys.readouterr().err
