"""The grader's checks of one part, run inside the notebook: the hidden block of every test cell
(written by ``tools/build_notebook.py``) is ``grade_part("<part>", globals(), points=P)``. So
``nbgrader autograde`` (and ``validate``) score a part with the very probe, checks, weights and
hints of ``autograder grade``: the notebook holds public tests only, the checks have one owner.

Not a sandbox: nbgrader runs the student's notebook as it is, and this runs in that kernel. The
course's grade of record is ``autograder grade`` (sandboxed, partial credit even when a public
test fails). The cell's value is the part's score, which nbgrader takes as partial credit."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile

import torch

from . import parts as P
from .grade import ISO_STAGE, Settings, grade_outputs, load_features, measure_checkpoints, trusted_eval_data
from .oracles import oracle_source
from .registry import STAGES

SEED = Settings.seed  # the grader's default --seed


@contextlib.contextmanager
def _as_the_worker_runs():
    """The worker's settings (its import sets the grading flag and one thread), undone after; the
    probes' own prints kept out of the cell: nbgrader scores a cell that wrote to stderr zero."""
    env, threads = os.environ.get("NBGRADER_EXECUTION"), torch.get_num_threads()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        os.environ.pop("NBGRADER_EXECUTION", None)
        if env is not None:
            os.environ["NBGRADER_EXECUTION"] = env
        torch.set_num_threads(threads)


def _trusted(part, seed) -> tuple[dict, object]:
    """The grader's own accuracy of ``checkpoints/<task>.ckpt`` beside the notebook, on the features
    the notebook trains on (``TL_FEATURES``, else the synthetic ones)."""
    features = load_features(os.environ.get("TL_FEATURES") or "synthetic", seed)
    ckpts = {}
    for fname in ("reverse.ckpt", "anomaly.ckpt"):
        path = os.path.join("checkpoints", fname)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                ckpts[fname] = f.read()
    return measure_checkpoints([part], ckpts, trusted_eval_data(features, seed)), features


def grade_part(part: str, ns: dict, points: float, seed: int = SEED) -> float:
    """Probe and grade ``part`` on the notebook's namespace ``ns``, print what failed, and return
    the score (0..``points``). A part that lost points is re-run on correct stand-ins of the parts
    below it, and the better result counts, as in the sandboxed grader."""
    inputs = P.INPUTS[part](seed)
    with _as_the_worker_runs():
        from . import worker
        from .worker.stand_ins import oracles_from

        with tempfile.TemporaryDirectory() as work:
            out = worker.run_probe(
                ns, {part: inputs}, part, "student", {}, set(), P.DEPENDS, worker.Out(45.0, 150.0, work=work)
            )
            trusted, features = _trusted(part, seed) if part.startswith("train_") else ({}, None)
            pr = grade_outputs(part, inputs, dict(out), points, trusted, features)
            if pr.score < points and part in ISO_STAGE:
                stand_ins = oracle_source(dict(STAGES)[ISO_STAGE[part]])  # as the stage iso_* holds them
                worker.run_probe(
                    ns, {part: inputs}, part, "iso", oracles_from(stand_ins), set(), P.DEPENDS, out
                )
                pr = grade_outputs(part, inputs, dict(out), points, trusted, features)
    for c in pr.checks:
        if not c.passed:
            print(
                f"FAILED {c.name}: expected {c.expected}; got {c.received}"
                + (f"\n  hint: {c.hint}" if c.hint else "")
            )
    if pr.note:
        print(pr.note)
    print(f"{part}: {pr.score:g} / {points:g} (the autograder's checks)")
    return min(float(points), pr.score)
