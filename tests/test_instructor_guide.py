"""``docs/instructors.md``, run: every ``<!-- run: NAME -->`` block verbatim, as a semester would.

A temporary course folder (this repository's ``nbgrader_config.py``, ``source/`` and ``release/``)
and a temporary nbgrader exchange; two students fetch and submit through nbgrader's own commands
(alice: the solution with its checkpoints; bob: the untouched release, then a resubmission).
Blocks marked ``exercised by`` must name files (and test functions) that exist.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from autograder_fixtures import catalog, checkpoints  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "instructors.md"
BLOCK = re.compile(r"<!-- (run|exercised by): ([^>]*?) -->\n```bash\n(.*?)```", re.S)


def blocks() -> dict[str, list[tuple[str, str]]]:
    """``{"run": [(name, script)], "exercised by": [(refs, script)]}`` of the guide."""
    out = {"run": [], "exercised by": []}
    for kind, ref, body in BLOCK.findall(GUIDE.read_text()):
        out[kind].append((ref.strip(), body))
    return out


def test_every_command_block_is_run_or_names_what_exercises_it():
    text = GUIDE.read_text()
    assert text.count("```bash") == sum(len(v) for v in blocks().values()), "a bash block without a marker"
    for refs, _ in blocks()["exercised by"]:
        for ref in refs.split():
            path, _, func = ref.partition("::")
            assert (ROOT / path).is_file(), ref
            if func:
                assert re.search(rf"^def {func}\(", (ROOT / path).read_text(), re.M), ref
    assert {name for name, _ in blocks()["run"]} == {"publish", "grade", "regrade", "one-student"}
    assert "docs/instructors.md" in (ROOT / "README.md").read_text()


def _bash(script: str, cwd: Path, env: dict) -> str:
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, f"{script}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def _submit(student: str, home: Path, env: dict, notebook=None, ckpts: dict | None = None) -> None:
    """What a student does in Jupyter: fetch, work, submit (nbgrader's commands, as that student)."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "nbgrader_config.py", home)
    if not (home / "transformer_lab").exists():
        _bash("nbgrader fetch_assignment transformer_lab --log-level=WARN", home, env)
    if notebook is not None:
        catalog.write_submission(home, "transformer_lab", notebook, ckpts)
    _bash(f"nbgrader submit transformer_lab --student {student} --log-level=WARN", home, env)


@pytest.mark.slow
def test_the_guides_semester_runs(tmp_path):
    course, exchange = tmp_path / "course", tmp_path / "exchange"
    course.mkdir()
    exchange.mkdir(mode=0o777)
    os.chmod(exchange, 0o777)
    for name in ("source", "release"):
        shutil.copytree(ROOT / name, course / name)
    shutil.copy(ROOT / "nbgrader_config.py", course)
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        NBGRADER_EXCHANGE=str(exchange),
        TL_GRADEBOOK=str(tmp_path / "gradebook.db"),
    )
    # the instructor's CIFAR features, stood in for by the tests' synthetic ones in the real file format
    from transformer_lab.features import save_feature_file
    from transformer_lab.set_anomaly import synthetic_features

    s = checkpoints.SYNTHETIC
    feats, labels = synthetic_features(
        num_classes=s["num_classes"], per_class=20, dim=s["dim"], noise=s["noise"], seed=s["seed"]
    )
    split = {
        "features": feats,
        "labels": labels,
        "input_sha256": "0" * 64,
        "input_shape": [len(feats), 32, 32, 3],
    }
    save_feature_file(course / "data" / "cifar100_resnet34_imagenet.pt", {"test": split}, "imagenet")
    run = dict(blocks()["run"])
    ck = {f"{k}.ckpt": v for k, v in checkpoints.ensure().items()}

    _bash(run["publish"], course, env)
    _submit("alice", tmp_path / "alice", env, catalog.load_source(), ck)
    _submit("bob", tmp_path / "bob", env)  # the release as fetched, untouched
    log = _bash(run["grade"], course, env)
    graded = course / "autograded"
    rows = {r["student_id"]: r for r in csv.DictReader((graded / "grades.csv").open())}
    assert {k: float(r["total"]) for k, r in rows.items()} == {"alice": 25.0, "bob": 0.0}, log
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", r["timestamp"]) for r in rows.values())
    assert (graded / "alice" / "feedback.html").is_file() and (graded / "scores.png").is_file()
    assert list(csv.reader((graded / "lms_grades.csv").open())) == [
        ["student_id", "score"],
        ["alice", "25"],
        ["bob", "0"],
    ]

    # bob resubmits (the solution, without checkpoints): only bob is graded again
    _submit("bob", tmp_path / "bob", env, catalog.load_source(), {})
    alice_before = (graded / "alice" / "results.json").read_text()
    log = _bash(run["regrade"], course, env)
    assert "1 unchanged since graded" in log and "1 changed since graded" in log, log
    bob = json.loads((graded / "bob" / "results.json").read_text())
    assert 0 < bob["score"] < 25 and bob["extra_data"]["parts"]["scaled_dot_product"] == 3
    assert (graded / "alice" / "results.json").read_text() == alice_before

    _bash(run["one-student"], course, env)
    alice = json.loads((course / "regrade-alice" / "alice" / "results.json").read_text())
    assert alice["score"] == 25 and alice["extra_data"]["student_id"] == "alice"
    one_part = {r["student_id"]: r for r in csv.DictReader((course / "scheduler-only" / "grades.csv").open())}
    assert {k: float(r["warmup_factor"]) for k, r in one_part.items()} == {"alice": 2.0, "bob": 2.0}
    assert {k: float(r["total"]) for k, r in one_part.items()} == {"alice": 2.0, "bob": 2.0}
    assert torch.load(course / "data" / "cifar100_resnet34_imagenet.pt", weights_only=True)[
        "splits"
    ]  # untouched
