"""The stage's correct stand-ins (only in the stages that have them, see the grader's oracles.py),
and the probe pair of a part re-checked on them: its own run, and the same run with the stand-ins
swapped into the notebook's namespace."""

import math
import os
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F

from .harness import step


def load_oracles():
    """The stand-ins of this stage (``{}`` when it has none). Their source comes on a pipe from the
    launcher (``LAB_ORACLE_FD``), read once and closed before any student code runs: the file
    itself is root's alone, so nothing the notebook runs can read the source."""
    fd = os.environ.pop("LAB_ORACLE_FD", None)
    if fd is None:
        return {}
    with os.fdopen(int(fd), "rb") as f:
        return oracles_from(f.read())


def oracles_from(source) -> dict:
    """The stand-ins that ``oracles.py``'s text defines, by name."""
    oracles = {}
    code = compile(source, "<oracles>", "exec")
    exec(code, {"math": math, "torch": torch, "nn": nn, "F": F, "ORACLES": oracles})  # noqa: S102
    return oracles


@contextmanager
def Swap(ns, oracles):
    """``with Swap(ns, oracles):`` the student's definitions replaced by the stand-ins, then restored."""
    saved = {n: ns[n] for n in oracles if n in ns}
    ns.update(oracles)
    try:
        yield
    finally:
        for n in oracles:
            ns.pop(n, None)
        ns.update(saved)


def student_and_isolated(outputs):
    """The two probes of a part whose outputs come from ``outputs(ns, inp, out)``: the student's own
    run (sub-step ``student``), and the same run on this stage's stand-ins (sub-step ``isolated``).
    Each fills its own ``out``: the grader keeps the two runs' outputs apart."""

    def probe(ns, inp, out):
        step(out, "student", lambda: outputs(ns, inp, out))

    def iso(ns, inp, out, oracles):
        with Swap(ns, oracles):
            step(out, "isolated", lambda: outputs(ns, inp, out), isolated=True)

    return probe, iso
