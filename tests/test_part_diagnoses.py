"""Every catalogued diagnosis, in seconds (issue 21, item 4): each bug of ``catalog.BUGS`` and each
correct variant of ``catalog.CORRECT`` runs through its part's probe (``worker.PROBES``) and grade
(``parts.GRADERS``) in this process, without the sandbox. A bug must score below the solution on its
part and name its symptom; a correct variant must score what the solution scores. The sandboxed
catalog (``test_autograder_catalog.py``) stays the end-to-end check. Each case is named
``<part>-<entry>``: ``pytest tests/test_part_diagnoses.py -k encoder_block`` is that part's test.

The notebook's cells run except those that install, load data or train (the probes train what
they need). Trusted checkpoint accuracy is the sandboxed catalog's: here no checkpoint is
measured, so a training part's accuracy check fails for the solution and every variant alike.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from autograder_fixtures import catalog  # noqa: E402
from lab_autograder import parts as P  # noqa: E402
from lab_autograder.notebook import labeled_code_cells  # noqa: E402

pytestmark = pytest.mark.skipif(not catalog.SOURCE.is_file(), reason="source notebook not built yet")
sys.path.insert(0, str(catalog.SOURCE.parent))  # lab_data.py, which the notebook imports, sits beside it


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


@pytest.fixture(autouse=True)
def _in_a_scratch_folder(tmp_path, monkeypatch):
    import IPython
    import IPython.core.getipython

    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")  # the notebook's code sees what it sees in the worker
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the worker; and the probes' tiny models are fastest so
    monkeypatch.chdir(tmp_path)  # what the notebook's code and the training probes write stays there
    monkeypatch.syspath_prepend(str(tmp_path))  # as in the worker: modules the notebook writes import
    monkeypatch.setattr(IPython, "get_ipython", IPython.get_ipython)  # the worker's shell, undone after
    monkeypatch.setattr(IPython.core.getipython, "get_ipython", IPython.core.getipython.get_ipython)
    yield
    torch.set_num_threads(threads)

#: cells that install, load data or train: the probes do not need them (a display cell that needs
#: what they make fails, harmlessly)
NOT_RUN = ("install", "anomaly_data", "run_reverse", "run_anomaly", "submission")
SEED = 20240611


def _namespace(nb) -> dict:
    ns = worker.notebook_namespace()
    cells = labeled_code_cells(cells=[dict(c) for c in nb.cells])
    for label, src in cells:
        if label in NOT_RUN:
            continue
        try:
            exec(compile(src, f"<cell {label}>", "exec"), ns)  # noqa: S102 - the catalog's own notebooks
        except Exception:  # noqa: BLE001 - a bug may break its cell; its part's probe then says so
            pass
    return ns


def _grade(nb, part) -> P.PartResult:
    ns = _namespace(nb)
    inp = P.INPUTS[part](SEED)
    out = worker.run_probe(ns, {part: inp}, part, "student", {}, set(), P.DEPENDS, worker.Out(20, 60, work=str(Path.cwd())))
    return P.GRADERS[part](inp, dict(out), float(P.DEFAULT_POINTS[part]))


def _text(pr) -> str:
    text = "\n".join(f"{c.name}: expected {c.expected}; got {c.received}; {c.hint}" for c in pr.checks if not c.passed)
    text += ("\n" + pr.note) if getattr(pr, "note", "") else ""
    return text


_SOLUTION: dict[str, float] = {}


def _solution_score(part) -> float:
    if part not in _SOLUTION:
        _SOLUTION[part] = _grade(catalog.load_source(), part).score
    return _SOLUTION[part]


BUGS = [v for v in catalog.BUGS if v.part and v.checkpoint_edit is None]


@pytest.mark.parametrize("bug", BUGS, ids=lambda v: f"{v.part}-{v.id}")
def test_each_bug_is_diagnosed_by_its_part(bug):
    pr = _grade(bug.apply(catalog.load_source()), bug.part)
    assert pr.score < _solution_score(bug.part), _text(pr)
    assert re.search(bug.symptom, _text(pr), re.I | re.S), _text(pr)


def _touched(variant) -> list[str]:
    """The parts whose solution cells the variant edits, and the parts built on them (every part
    when it edits only given cells)."""
    touched = {p for p in P.PART_ORDER if f"impl_{p}" in variant.cells()}
    while True:
        more = {p for p, deps in P.DEPENDS.items() if set(deps) & touched} - touched
        if not more:
            break
        touched |= more
    return [p for p in P.PART_ORDER if p in touched] or list(P.PART_ORDER)


CORRECT = [(v, part) for v in catalog.CORRECT if v.checkpoint_edit is None for part in _touched(v)]


@pytest.mark.parametrize("variant,part", CORRECT, ids=[f"{p}-{v.id}" for v, p in CORRECT])
def test_each_correct_variant_scores_as_the_solution(variant, part):
    pr = _grade(variant.apply(catalog.load_source()), part)
    assert pr.score == _solution_score(part), _text(pr)
