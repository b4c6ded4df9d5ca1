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
from .grade import ISO_STAGE, Settings, grade_outputs, load_features, measure_checkpoints, stand_in_run
from .grade import trusted_eval_data
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


def _trusted(part, ns, seed) -> tuple[dict, object]:
    """The grader's own accuracy of ``checkpoints/<task>.ckpt`` beside the notebook. The anomaly
    part's test features are those the notebook itself reads (its settings cell's ``FEATURE_FILE``,
    when it found one: ``ANOMALY_SOURCE == "cifar"``), else the synthetic ones."""
    path = ns.get("FEATURE_FILE")
    found = ns.get("ANOMALY_SOURCE") == "cifar" and isinstance(path, str) and os.path.isfile(path)
    features = load_features(path if found else "synthetic", seed) if part == "train_anomaly" else None
    fname = {"train_reverse": "reverse.ckpt", "train_anomaly": "anomaly.ckpt"}[part]
    ckpts = {}
    if os.path.isfile(os.path.join("checkpoints", fname)):
        with open(os.path.join("checkpoints", fname), "rb") as f:
            ckpts[fname] = f.read()
    eval_data = trusted_eval_data(features or load_features(None), seed)
    return measure_checkpoints([part], ckpts, eval_data), features


def _probe(worker, ns, part, inputs, variant, oracles, work) -> dict:
    """One run of the part's probe (``variant``: the student's own, or ``iso`` on ``oracles``)."""
    out = worker.Out(45.0, 150.0, work=work)
    return dict(worker.run_probe(ns, {part: inputs}, part, variant, oracles, set(), P.DEPENDS, out))


def grade_part(part: str, ns: dict, points: float, seed: int = SEED) -> float:
    """Probe and grade ``part`` on the notebook's namespace ``ns``, print what failed, and return
    the score (0..``points``). A part that lost points is re-run on correct stand-ins of the parts
    below it, and the better result counts, as in the sandboxed grader."""
    inputs = P.INPUTS[part](seed)
    with _as_the_worker_runs():
        from . import worker
        from .worker.stand_ins import oracles_from

        with tempfile.TemporaryDirectory() as work:
            runs = {"student": _probe(worker, ns, part, inputs, "student", {}, work)}
            trusted, features = _trusted(part, ns, seed) if part.startswith("train_") else ({}, None)
            pr = grade_outputs(part, inputs, runs, points, trusted, features)
            if pr.score < points and part in ISO_STAGE:
                stand_ins = oracle_source(dict(STAGES)[ISO_STAGE[part]])  # as the stage iso_* holds them
                runs["iso"] = stand_in_run(
                    _probe(worker, ns, part, inputs, "iso", oracles_from(stand_ins), work)
                )
                pr = grade_outputs(part, inputs, runs, points, trusted, features)
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
