"""The stage's correct stand-ins (only in the stages that have them, see the grader's oracles.py),
and the probe pair of a part re-checked on them: its own run, and the same run with the stand-ins
swapped into the notebook's namespace."""

import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from .harness import step


def load_oracles():
    """The stand-ins of this stage (``{}`` when it has none). Their source comes on a pipe from the
    launcher (``LAB_ORACLE_FD``), read once and closed before any student code runs: the file
    itself is root's alone, so nothing the notebook runs can read the source."""
    oracles, fd = {}, os.environ.pop("LAB_ORACLE_FD", None)
    if fd is not None:
        with os.fdopen(int(fd), "rb") as f:
            code = compile(f.read(), "<oracles>", "exec")
        exec(code, {"math": math, "torch": torch, "nn": nn, "F": F, "ORACLES": oracles})  # noqa: S102
    return oracles


class Swap:
    """``with Swap(ns, oracles):`` temporarily replace the student's definitions by the stand-ins."""

    _MISSING = object()

    def __init__(self, ns, oracles):
        self.ns, self.oracles, self.saved = ns, dict(oracles), {}

    def __enter__(self):
        for n, v in self.oracles.items():
            self.saved[n] = self.ns.get(n, self._MISSING)
            self.ns[n] = v
        return self

    def __exit__(self, *exc):
        for n, v in self.saved.items():
            if v is self._MISSING:
                self.ns.pop(n, None)
            else:
                self.ns[n] = v
        return False


def student_and_isolated(outputs):
    """The two probes of a part whose outputs come from ``outputs(ns, inp, out, prefix)``: the
    student's own run (sub-step ``student``, no prefix), and the same run on this stage's stand-ins
    (sub-step ``isolated``, keys prefixed ``iso_``)."""

    def probe(ns, inp, out):
        step(out, "student", lambda: outputs(ns, inp, out, ""))

    def iso(ns, inp, out, oracles):
        with Swap(ns, oracles):
            step(out, "isolated", lambda: outputs(ns, inp, out, "iso_"), isolated=True)

    return probe, iso
