"""End-to-end proof of the autograder on one batch of submissions derived from the source notebook.

The batch (solution, untouched release, the bug catalog, correct-but-different solutions,
hostile and broken submissions) is graded once per module with ``--jobs 2``, in the real
sandbox; each test then reads the results. The trained checkpoints come from
``autograder_fixtures/checkpoints.py`` (cached under runs/).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from autograder_fixtures import catalog, checkpoints  # noqa: E402
from lab_autograder.grade import Settings, grade_all  # noqa: E402
from lab_autograder.sandbox import sandbox_level  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not catalog.SOURCE.is_file(), reason="source notebook not built yet")]

TIMEOUT = 60.0


def _settings(out, parts, **kw):
    s = Settings(out=out, jobs=2, timeout=TIMEOUT, parts=parts, anomaly_features=checkpoints.FEATURES_SPEC, quiet=True,
                 cell_timeout=12, probe_timeout=12, train_probe_timeout=40)
    for k, v in kw.items():
        setattr(s, k, v)
    return s


@pytest.fixture(scope="module")
def batch():
    root = Path(tempfile.mkdtemp(prefix="ag_subs_"))
    out = root / "OUT"
    marker_dir = Path(tempfile.mkdtemp(prefix="ag_marker_"))
    os.chmod(marker_dir, 0o777)  # writable by the worker's uid, were the pickle ever run
    marker = marker_dir / "PWNED"
    nb = catalog.load_source()
    parts = catalog.graded_parts(nb)
    ck = checkpoints.ensure()
    made = catalog.build_all(root / "subs", ck, out=out, marker=marker)
    t0 = time.monotonic()
    grade_all([root / "subs" / n for n in made], _settings(out, parts))
    seconds = time.monotonic() - t0
    results = {n: json.loads((out / n / "results.json").read_text()) for n in made}
    yield {"root": root, "out": out, "made": made, "results": results, "parts": parts, "marker": marker,
           "seconds": seconds}
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(marker_dir, ignore_errors=True)


def scores(res) -> dict:
    return res["extra_data"]["parts"]


def full(res, part) -> bool:
    t = next(t for t in res["tests"] if t["tags"] == [part])
    return t["score"] == t["max_score"]


def part_output(res, part) -> str:
    return next(t["output"] for t in res["tests"] if t["tags"] == [part])


def lost(res, parts):
    return sorted(p for p in parts if not full(res, p))


def test_solution_earns_full_marks(batch):
    res = batch["results"]["solution"]
    assert lost(res, batch["parts"]) == [], res["output"] + "\n" + "\n".join(
        part_output(res, p) for p in lost(res, batch["parts"]))
    assert res["score"] == res["extra_data"]["max_score"]


def test_untouched_release_earns_zero_everywhere(batch):
    res = batch["results"]["release"]
    assert res["score"] == 0, {p: s for p, s in scores(res).items() if s}


BUG_IDS = [v.id for v in catalog.BUGS]


@pytest.mark.parametrize("bug", BUG_IDS)
def test_bug_loses_points_in_its_part_and_names_the_symptom(batch, bug):
    if bug not in batch["made"]:
        pytest.skip("its cell is not in the source notebook yet")
    v = next(b for b in catalog.BUGS if b.id == bug)
    res = batch["results"][bug]
    assert not full(res, v.part), f"{bug} was not caught in {v.part}"
    text = part_output(res, v.part)
    assert re.search(v.symptom, text, re.I), f"feedback of {v.part} does not name the symptom /{v.symptom}/:\n{text}"
    collateral = set(lost(res, batch["parts"])) - {v.part} - set(v.also)
    assert not collateral, f"{bug} also cost points in {collateral}"


CORRECT_IDS = [v.id for v in catalog.CORRECT]


@pytest.mark.parametrize("variant", CORRECT_IDS)
def test_correct_but_different_solutions_earn_full_marks(batch, variant):
    if variant not in batch["made"]:
        pytest.skip("its cell is not in the source notebook yet")
    res = batch["results"][variant]
    assert lost(res, batch["parts"]) == [], "\n".join(part_output(res, p) for p in lost(res, batch["parts"]))


@pytest.mark.parametrize("name", ["hostile_soft", "signal_proof_hang", "os_exit"])
def test_hostile_cells_cost_nothing_else_and_do_not_stall(batch, name):
    """A cell that hangs, eats memory, floods processes or exits is skipped; the correct code still earns its points."""
    res = batch["results"][name]
    assert lost(res, batch["parts"]) == [], res["output"]
    assert res["execution_time"] < 3 * TIMEOUT
    if name == "hostile_soft":  # each attack ran, and was caught in the worker
        for what in ("timed out", "MemoryError", "SystemExit"):
            assert what in res["output"], what
        assert res["extra_data"]["launches"] == 1
    else:  # these kill the worker: it is relaunched without the cell
        assert res["extra_data"]["launches"] == 2 and "was skipped" in res["output"]


def test_infinite_loop_in_a_function_costs_only_that_part(batch):
    res = batch["results"]["infinite_loop_in_function"]
    assert lost(res, batch["parts"]) == ["scaled_dot_product"]
    assert "timed out" in part_output(res, "scaled_dot_product")
    assert res["execution_time"] < 3 * TIMEOUT


@pytest.mark.parametrize("name", ["attacks_on_checks", "read_reference"])
def test_attacks_on_the_checks_earn_nothing(batch, name):
    if name == "read_reference" and sandbox_level() != "namespaces":
        pytest.skip("without mount namespaces the reference is hidden only by file permissions (see autograder/README.md)")
    res = batch["results"][name]
    assert res["score"] == 0, {p: s for p, s in scores(res).items() if s}


def test_output_folder_is_out_of_reach(batch):
    out = batch["out"]
    res = json.loads((out / "attacks_on_checks" / "results.json").read_text())
    assert res["score"] == 0 and res["extra_data"]["submission"] == "attacks_on_checks"
    rows = list(csv.DictReader((out / "grades.csv").open()))
    assert {r["submission"] for r in rows} == set(batch["made"])
    assert all(float(r["total"]) <= float(r["max"]) for r in rows)


def test_checkpoint_pickle_never_runs(batch):
    assert not batch["marker"].exists(), "the evil checkpoint's pickle was executed"
    res = batch["results"]["evil_checkpoint"]
    for part in ("train_reverse", "train_anomaly"):
        if part in batch["parts"]:
            assert not full(res, part)
            assert "refused" in part_output(res, part)
    assert set(lost(res, batch["parts"])) <= {"train_reverse", "train_anomaly"}


def test_predictions_that_ignore_the_weights_are_caught(batch):
    """A forward that returns the reversed input 'scores' 100% in the worker; the grader re-runs the
    checkpoint's weights in the reference model and gives the accuracy those weights really have."""
    res = batch["results"]["forged_predictions"]
    text = part_output(res, "train_reverse")
    assert not full(res, "train_reverse")
    assert "inconsistent predictions" in text, text


@pytest.mark.parametrize("name", ["malformed_truncated", "malformed_not_json", "malformed_no_cells", "malformed_bad_cells"])
def test_malformed_notebooks_get_zero_with_a_message(batch, name):
    res = batch["results"][name]
    assert res["score"] == 0
    if name != "malformed_bad_cells":
        assert re.search(r"not a valid notebook|no list of cells", res["output"]), res["output"]


@pytest.mark.parametrize("name", ["missing_function", "renamed_function"])
def test_missing_or_renamed_function_costs_only_its_part(batch, name):
    res = batch["results"][name]
    assert lost(res, batch["parts"]) == ["scaled_dot_product"]
    assert "'scaled_dot_product' is not defined" in part_output(res, "scaled_dot_product")


def test_same_submission_graded_twice_gets_the_same_score(batch, tmp_path):
    out = tmp_path / "again"
    again = grade_all([batch["root"] / "subs" / "solution", batch["root"] / "subs" / "sdp_mask_inverted"],
                      _settings(out, batch["parts"]))
    for res in again:
        name = res["extra_data"]["submission"]
        assert scores(res) == scores(batch["results"][name]), name


def test_catalog_counts(batch, capsys):
    """Print the catalog summary (caught / full marks / survived) for the record."""
    bugs = [v for v in catalog.BUGS if v.id in batch["made"]]
    caught = [v.id for v in bugs if not full(batch["results"][v.id], v.part)]
    correct = [v.id for v in catalog.CORRECT if v.id in batch["made"]]
    full_marks = [n for n in correct if not lost(batch["results"][n], batch["parts"])]
    with capsys.disabled():
        print(f"\n[autograder catalog] bugs caught {len(caught)}/{len(bugs)}; survived: "
              f"{sorted(set(v.id for v in bugs) - set(caught))}; correct variants full marks {len(full_marks)}/{len(correct)}; "
              f"{len(batch['made'])} submissions graded in {batch['seconds']:.0f} s (--jobs 2)")
    assert len(bugs) >= 15 and len(caught) == len(bugs)
    assert len(correct) >= 3 and len(full_marks) == len(correct)
