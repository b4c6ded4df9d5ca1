"""``docs/instructors.md``, run: every ``<!-- run: NAME -->`` block verbatim, as a semester would.

An empty folder made a course by the guide's own commands, and a temporary nbgrader exchange;
three students fetch, submit and fetch feedback through nbgrader's own commands, each in their own
home (alice: the solution with its checkpoints; bob: the untouched release, then a late
resubmission; carol: alice's files, after the deadline).
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
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from autograder_fixtures import catalog, checkpoints  # noqa: E402
from lab_autograder.parts import PART_ORDER  # noqa: E402

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
    assert {name for name, _ in blocks()["run"]} == {"course", "publish", "grade", "feedback", "regrade",
                                                     "one-student", "shards"}
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


def _student_env(env: dict, home: Path) -> dict:
    """A student's own Jupyter: nbgrader keeps each student's submissions (and secrets) in their home."""
    return dict(env, HOME=str(home), JUPYTER_DATA_DIR=str(home / ".jupyter-data"))


def _submit(student: str, home: Path, env: dict, notebook=None, ckpts: dict | None = None) -> None:
    """What a student does in Jupyter: fetch, work, submit (nbgrader's commands, as that student)."""
    home.mkdir(parents=True, exist_ok=True)
    env = _student_env(env, home)
    shutil.copy(ROOT / "nbgrader_config.py", home)
    if not (home / "transformer_lab").exists():
        _bash("nbgrader fetch_assignment transformer_lab --log-level=WARN", home, env)
    if notebook is not None:
        catalog.write_submission(home, "transformer_lab", notebook, ckpts)
    _bash(f"nbgrader submit transformer_lab --student {student} --log-level=WARN", home, env)


def _fetched_feedback(student: str, home: Path, env: dict) -> list[str]:
    """The feedback pages a student's ``nbgrader fetch_feedback`` brings home, newest submission last."""
    _bash(f"nbgrader fetch_feedback transformer_lab --student {student} --log-level=WARN", home,
          _student_env(env, home))
    return [p.read_text() for p in sorted((home / "transformer_lab" / "feedback").glob("*/transformer_lab.html"))]


def _grades(path: Path) -> dict[str, dict]:
    return {r["student_id"]: r for r in csv.DictReader(path.open())}


@pytest.mark.slow
def test_the_guides_semester_runs(tmp_path):
    """From an empty folder: the course, publish with a due date, three students (alice correct, bob
    untouched then resubmitting, carol late with alice's files), grade with a late policy, feedback
    released and fetched, regrade, LMS exports, one student, a sharded class merged."""
    course, exchange = tmp_path / "course", tmp_path / "exchange"
    course.mkdir()
    exchange.mkdir(mode=0o777)
    os.chmod(exchange, 0o777)
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        NBGRADER_EXCHANGE=str(exchange),
        REPO=str(ROOT),
    )
    env.pop("TL_GRADEBOOK", None)
    run = dict(blocks()["run"])
    _bash(run["course"], course, env)
    assert sorted(p.name for p in course.iterdir()) == [".gitignore", "data", "nbgrader_config.py", "release",
                                                         "source"]
    _features(course / "data" / "cifar100_resnet34_imagenet.pt")
    ck = {f"{k}.ckpt": v for k, v in checkpoints.ensure().items()}

    _bash(run["publish"], course, env)
    _submit("alice", tmp_path / "alice", env, catalog.load_source(), ck)
    _submit("bob", tmp_path / "bob", env)  # the release as fetched, untouched
    # the deadline passes (the instructor moves it to now, as nbgrader lets them); carol is late.
    # nbgrader keeps whole seconds: wait past bob's second, so that the due date is after his arrival
    time.sleep(1.5)
    now = datetime.now(timezone.utc)
    _bash(f'nbgrader db assignment add transformer_lab --duedate "{now:%Y-%m-%d %H:%M:%S} UTC" --log-level=WARN',
          course, env)
    time.sleep(2)
    _submit("carol", tmp_path / "carol", env, catalog.load_source(), ck)  # alice's notebook and checkpoints

    t0 = time.monotonic()
    log = _bash(run["grade"], course, env)
    print(f"class of 3 graded in {time.monotonic() - t0:.0f} s (--jobs 2)")
    graded = course / "autograded"
    rows = _grades(graded / "grades.csv")
    assert {k: float(r["total"]) for k, r in rows.items()} == {"alice": 25.0, "bob": 0.0, "carol": 25.0}, log
    assert {k: float(r["final"]) for k, r in rows.items()} == {"alice": 25.0, "bob": 0.0, "carol": 22.5}, log
    penalties = {k: r["late_penalty"] for k, r in rows.items()}
    assert penalties == {"alice": "0", "bob": "0", "carol": "0.1"}, log  # seconds late: a day started
    assert {r["submitted_at_from"] for r in rows.values()} == {"exchange"}
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", r["timestamp"]) for r in rows.values())
    assert "Late work:" in (graded / "carol" / "feedback.html").read_text()
    assert "1 late, 0 with no known arrival time" in log
    assert list(csv.reader((graded / "lms_grades.csv").open())) == [
        ["student_id", "score"], ["alice", "25"], ["bob", "0"], ["carol", "22.5"]]
    canvas = list(csv.reader((graded / "canvas_grades.csv").open()))
    assert canvas[0][:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert len(canvas[0]) == 5 + len(PART_ORDER) + 1 and canvas[1][-1] == "25"
    assert list(csv.reader((graded / "moodle_grades.csv").open()))[3][-1] == "22.5"
    flags = list(csv.DictReader((graded / "provenance.csv").open()))
    assert {(f["kind"], f["students"]) for f in flags} >= {("identical submissions", "alice carol")}
    assert (graded / "scores.png").is_file()

    _bash(run["feedback"], course, env)
    assert _fetched_feedback("alice", tmp_path / "alice", env) == [(graded / "alice" / "feedback.html").read_text()]
    assert "Late work:" in _fetched_feedback("carol", tmp_path / "carol", env)[-1]

    # bob resubmits (the solution, without checkpoints, after the deadline): only bob is graded again
    _submit("bob", tmp_path / "bob", env, catalog.load_source(), {})
    alice_before = (graded / "alice" / "results.json").read_text()
    log = _bash(run["regrade"], course, env)
    assert "0 new, 1 changed since graded" in log and "2 unchanged since graded" in log, log
    bob = json.loads((graded / "bob" / "results.json").read_text())
    assert 0 < bob["score"] < 25 and bob["extra_data"]["parts"]["scaled_dot_product"] == 3
    assert (graded / "alice" / "results.json").read_text() == alice_before
    assert float(_grades(graded / "grades.csv")["bob"]["final"]) == pytest.approx(bob["score"] * 0.9, abs=1e-4)  # finals have 4 decimals
    lms = dict(list(csv.reader((graded / "lms_grades.csv").open()))[1:])
    assert float(lms["bob"]) == pytest.approx(bob["score"] * 0.9, abs=1e-4)  # the LMS file is never stale
    assert f"Total: {bob['score']:g} / 25" in _fetched_feedback("bob", tmp_path / "bob", env)[-1]

    _bash(run["one-student"], course, env)
    alice = json.loads((course / "regrade-alice" / "alice" / "results.json").read_text())
    assert alice["score"] == 25 and alice["extra_data"]["student_id"] == "alice"
    one_part = _grades(course / "scheduler-only" / "grades.csv")
    assert {k: float(r["warmup_factor"]) for k, r in one_part.items()} == {"alice": 2.0, "bob": 2.0, "carol": 2.0}

    t0 = time.monotonic()
    log = _bash(run["shards"], course, env)
    shards = [json.loads((course / f"shard-{i}" / "run.json").read_text()) for i in (1, 2)]
    print(f"sharded: {[s['graded'] for s in shards]} students in {[s['seconds'] for s in shards]} s; "
          f"all blocks {time.monotonic() - t0:.0f} s")
    assert sum(s["graded"] for s in shards) == 3 and all(s["graded"] for s in shards)
    merged, whole = _grades(course / "merged" / "grades.csv"), _grades(graded / "grades.csv")
    keys = ("total", "final", "late_hours")
    assert {k: [r[c] for c in keys] for k, r in merged.items()} == {k: [r[c] for c in keys] for k, r in whole.items()}
    assert torch.load(course / "data" / "cifar100_resnet34_imagenet.pt", weights_only=True)["splits"]  # untouched


def _features(path: Path) -> None:
    """The instructor's CIFAR features, stood in for by the tests' synthetic ones in the real file format."""
    from transformer_lab.features import save_feature_file
    from transformer_lab.set_anomaly import synthetic_features

    s = checkpoints.SYNTHETIC
    feats, labels = synthetic_features(
        num_classes=s["num_classes"], per_class=20, dim=s["dim"], noise=s["noise"], seed=s["seed"]
    )
    split = {"features": feats, "labels": labels, "input_sha256": "0" * 64, "input_shape": [len(feats), 32, 32, 3]}
    save_feature_file(path, {"test": split}, "imagenet")
