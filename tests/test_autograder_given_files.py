"""The notebook imports given code (``lab_data.py``); the grader supplies its own copy to every job.

A student's copy in the submission folder is never read, and a grader without the assignment's
copy refuses to start with a message that says where it must be.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from lab_autograder.cli import main as cli_main
from lab_autograder.grade import Settings, given_files, grade_all
from lab_autograder.registry import GIVEN_FILES

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "source" / "transformer_lab" / "transformer_lab.ipynb"
RELEASE = ROOT / "release" / "transformer_lab" / "transformer_lab.ipynb"


def test_given_files_come_from_beside_the_points_notebook(tmp_path):
    assert given_files(SOURCE) == {n: SOURCE.with_name(n).read_bytes() for n in GIVEN_FILES}
    assert given_files(RELEASE) == given_files(SOURCE)  # the release ships the same copy
    lone = tmp_path / "transformer_lab.ipynb"
    shutil.copy(RELEASE, lone)
    with pytest.raises(FileNotFoundError, match=r"lab_data.py not found in .*make release"):
        given_files(lone)


def test_cli_refuses_to_grade_without_the_given_files(tmp_path, capsys):
    lone = tmp_path / "points" / "transformer_lab.ipynb"
    lone.parent.mkdir()
    shutil.copy(RELEASE, lone)
    sub = tmp_path / "alice"
    sub.mkdir()
    shutil.copy(RELEASE, sub / "transformer_lab.ipynb")
    assert cli_main(["grade", str(sub), "--out", str(tmp_path / "out"), "--source", str(lone),
                     "--anomaly-features", "synthetic"]) == 2
    assert "lab_data.py not found in" in capsys.readouterr().err
    assert not (tmp_path / "out" / "alice").exists()


@pytest.mark.slow
def test_a_students_own_lab_data_is_never_used(tmp_path):
    """A submission folder whose lab_data.py would wreck every part still runs on the grader's copy."""
    sub = tmp_path / "subs" / "mallory"
    sub.mkdir(parents=True)
    shutil.copy(SOURCE, sub / "transformer_lab.ipynb")
    (sub / "lab_data.py").write_text(
        "raise SystemExit('the grader imported the student copy of lab_data.py')\n"
    )
    parts = ["scaled_dot_product", "positional_encoding"]
    out = tmp_path / "out"
    (res,) = grade_all([sub], Settings(out=out, quiet=True, parts=parts))
    assert res["score"] == 5, json.dumps(res["tests"], indent=1)[:2000]
    assert "student copy" not in (out / "mallory" / "feedback.md").read_text()
    assert res["extra_data"]["grader"]["given_sha256"].keys() == set(GIVEN_FILES)
