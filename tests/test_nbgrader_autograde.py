"""``nbgrader autograde`` scores every part as ``autograder grade`` does (one owner per check): the
hidden block of each test cell is the grader's own checks of the part, its value nbgrader's partial
credit. A course made from the source notebook with nbgrader's own commands; the reference and a
student with bugs the public tests miss submit the checkpoints the notebook itself trained; the
gradebook and the autograder's results must agree part by part.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from autograder_fixtures import catalog  # noqa: E402
from lab_autograder.registry import GIVEN_FILES, PARTS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # trains in quick mode, then two notebook runs and two sandboxed grades: minutes

#: bugs in four parts that the public tests do not catch: nbgrader's score is the grader's checks alone
QUIET_BUGS = ("sdp_tutorial_fill_value", "block_mask_not_passed", "plot_wrong_batch_element",
              "prediction_view_no_probabilities")


def _sh(args, cwd, env):
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, f"{args}: {proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def _trained_checkpoints(work: Path, env: dict) -> Path:
    """``checkpoints/`` as the source notebook's own quick-mode training writes it."""
    from nbclient import NotebookClient

    for name in ("transformer_lab.ipynb", *GIVEN_FILES):
        shutil.copy(catalog.SOURCE.with_name(name), work / name)
    nb = nbformat.read(work / "transformer_lab.ipynb", as_version=4)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env, TL_QUICK="1")
    try:
        NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return work / "checkpoints"


def _submit(course: Path, student: str, nb, ckpts: Path) -> None:
    folder = course / "submitted" / student / "transformer_lab"
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / "transformer_lab.ipynb")
    for name in GIVEN_FILES:
        shutil.copy(catalog.SOURCE.with_name(name), folder / name)
    shutil.copytree(ckpts, folder / "checkpoints")
    (folder / "timestamp.txt").write_text("2026-12-01 10:00:00.000000 UTC")


def _nbgrader_scores(course: Path) -> dict[str, dict[str, float]]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'build' / 'nbgrader' / 'gradebook.db'}") as gb:
        return {
            sub.student.id: {g.name.removeprefix("test_"): g.auto_score for nb in sub.notebooks for g in nb.grades
                             if g.name.startswith("test_")}
            for sub in gb.assignment_submissions("transformer_lab")
        }


def test_nbgrader_and_the_autograder_give_each_part_the_same_score(tmp_path):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", MPLBACKEND="Agg")
    for name in ("NBGRADER_EXECUTION", "TL_GRADEBOOK", "TL_FEATURES"):
        env.pop(name, None)
    (tmp_path / "train").mkdir()
    ckpts = _trained_checkpoints(tmp_path / "train", env)

    course = tmp_path / "course"
    (course / "source").mkdir(parents=True)
    shutil.copytree(catalog.SOURCE.parent, course / "source" / "transformer_lab",
                    ignore=shutil.ignore_patterns("checkpoints", "data", ".ipynb_checkpoints"))
    shutil.copy(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")  # root: the folder it is in
    _sh(["nbgrader", "generate_assignment", "transformer_lab", "--force", "--log-level=WARN"], course, env)
    bugs = [v for v in catalog.BUGS if v.id in QUIET_BUGS]
    buggy = catalog.apply_edits(catalog.load_source(), [e for v in bugs for e in v.edits])
    for student, nb in (("alice", catalog.load_source()), ("bob", buggy)):
        _sh(["nbgrader", "db", "student", "add", student, "--log-level=WARN"], course, env)
        _submit(course, student, nb, ckpts)
    _sh(["nbgrader", "autograde", "transformer_lab", "--log-level=WARN"], course, env)
    by_nbgrader = _nbgrader_scores(course)

    out = tmp_path / "graded"
    _sh([str(Path(sys.executable).parent / "autograder"), "grade", str(course / "submitted"), "--out", str(out),
         "--jobs", "2", "--anomaly-features", "synthetic"], ROOT, env)
    by_autograder = {s: json.loads((out / s / "results.json").read_text())["extra_data"]["parts"]
                     for s in ("alice", "bob")}

    for student in ("alice", "bob"):
        print(student, "nbgrader:", by_nbgrader[student], "autograder:", by_autograder[student])
        for part in PARTS:
            assert by_nbgrader[student][part] == pytest.approx(by_autograder[student][part], abs=1e-3), (
                student, part, by_nbgrader[student], by_autograder[student])
    assert sum(by_nbgrader["alice"].values()) == pytest.approx(25)
    lost = {p for p in PARTS if by_nbgrader["bob"][p] < PARTS[p].points}
    assert lost == {v.part for v in bugs}, by_nbgrader["bob"]
