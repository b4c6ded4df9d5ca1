"""What every part's test (``tests/parts/test_<part>.py``) runs, in seconds and without the sandbox:
each of the part's catalogued bugs through its probe (``worker.PROBES``) and its checks
(``parts.GRADERS``) in this process, and each correct variant of ``catalog.CORRECT`` that touches
the part. A bug must score below the solution on its part and name its symptom; a correct variant
must score what the solution scores. The sandboxed catalog (``test_autograder_catalog.py``) stays
the end-to-end check of the same entries.

The notebook's cells run except those that install, load data or train (the probes train what
they need). No checkpoint is measured here (the sandboxed catalog measures them), so a training
part's accuracy check fails for the solution and every variant alike.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from autograder_fixtures import catalog  # noqa: E402
from lab_autograder import parts as P  # noqa: E402
from lab_autograder.notebook import labeled_code_cells  # noqa: E402

sys.path.insert(0, str(catalog.SOURCE.parent))  # lab_data.py, which the notebook imports, sits beside it
NOT_BUILT = pytest.mark.skipif(not catalog.SOURCE.is_file(), reason="source notebook not built yet: make release")


def _import_worker():
    """The worker module, imported here without keeping what its import does to this process (it
    sets the grading flag and one torch thread for the jail it is meant for)."""
    env, threads = os.environ.get("NBGRADER_EXECUTION"), torch.get_num_threads()
    from lab_autograder import worker as imported

    if env is None:
        os.environ.pop("NBGRADER_EXECUTION", None)
    else:
        os.environ["NBGRADER_EXECUTION"] = env
    torch.set_num_threads(threads)
    return imported


worker = _import_worker()

#: cells that install, load data or train: the probes do not need them (a display cell that needs
#: what they make fails, harmlessly)
NOT_RUN = ("install", "anomaly_data", "run_reverse", "run_anomaly", "submission")
SEED = 20240611


def namespace(nb) -> dict:
    """The notebook's namespace as the worker builds it, from ``nb``'s cells."""
    ns = worker.notebook_namespace()
    for label, src in labeled_code_cells(cells=[dict(c) for c in nb.cells]):
        if label in NOT_RUN:
            continue
        try:
            exec(compile(src, f"<cell {label}>", "exec"), ns)  # noqa: S102 - the catalog's own notebooks
        except Exception:  # noqa: BLE001 - a bug may break its cell; its part's probe then says so
            pass
    return ns


def probe(ns, part, variant="student", oracles=None) -> dict:
    """One run of ``part``'s probe on ``ns``: the student's own, or ``iso`` on ``oracles``."""
    out = worker.Out(20, 60, work=str(Path.cwd()))
    return dict(worker.run_probe(ns, {part: P.INPUTS[part](SEED)}, part, variant, oracles or {}, set(), P.DEPENDS, out))


def grade(nb, part) -> P.PartResult:
    return P.GRADERS[part](P.INPUTS[part](SEED), probe(namespace(nb), part), float(P.DEFAULT_POINTS[part]))


def failures(pr) -> str:
    text = "\n".join(f"{c.name}: expected {c.expected}; got {c.received}; {c.hint}" for c in pr.checks if not c.passed)
    return text + (("\n" + pr.note) if pr.note else "")


_SOLUTION: dict[str, float] = {}


def solution_score(part) -> float:
    if part not in _SOLUTION:
        _SOLUTION[part] = grade(catalog.load_source(), part).score
    return _SOLUTION[part]


def touched(variant) -> list[str]:
    """The parts whose solution cells the variant edits, and the parts built on them (every part
    when it edits only given cells)."""
    parts = {p for p in P.PART_ORDER if f"impl_{p}" in variant.cells()}
    while True:
        more = {p for p, deps in P.DEPENDS.items() if set(deps) & parts} - parts
        if not more:
            break
        parts |= more
    return [p for p in P.PART_ORDER if p in parts] or list(P.PART_ORDER)


def part_tests(part: str, bugs: list):
    """The two tests of ``part``: its ``bugs`` diagnosed, and the correct variants touching it at the
    solution's score (bind them to ``test_...`` names in the part's test file)."""
    assert all(b.part == part for b in bugs), "a part's test file holds that part's bugs only"
    runnable = [b for b in bugs if b.checkpoint_edit is None]
    correct = [v for v in catalog.CORRECT if v.checkpoint_edit is None and part in touched(v)]

    @NOT_BUILT
    @pytest.mark.parametrize("bug", runnable, ids=lambda v: v.id)
    def test_each_bug_is_diagnosed(bug):
        pr = grade(bug.apply(catalog.load_source()), part)
        assert pr.score < solution_score(part), failures(pr)
        assert re.search(bug.symptom, failures(pr), re.I | re.S), failures(pr)

    @NOT_BUILT
    @pytest.mark.parametrize("variant", correct, ids=lambda v: v.id)
    def test_each_correct_variant_scores_as_the_solution(variant):
        pr = grade(variant.apply(catalog.load_source()), part)
        assert pr.score == solution_score(part), failures(pr)

    return test_each_bug_is_diagnosed, test_each_correct_variant_scores_as_the_solution
