"""What every part's checks are made of: ``Check`` and ``PartResult``, the comparison helpers,
the reference (imported lazily) and the registry's views."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..registry import PARTS

#: Views of the registry: the grader reads the real points from the notebook it is given.
DEFAULT_POINTS = {name: part.points for name, part in PARTS.items()}


PART_ORDER = list(PARTS)


TITLES = {name: part.title for name, part in PARTS.items()}


DEPENDS = {name: list(part.depends) for name, part in PARTS.items() if part.depends}


@dataclass
class Check:
    name: str
    weight: float
    passed: bool = False
    expected: str = ""
    received: str = ""
    hint: str = ""
    partial: float | None = None  # fraction of the weight earned, when not all-or-nothing
    trusted: bool = False  # decided by the grader alone (not from what the worker reported)

    @property
    def earned(self) -> float:
        if self.partial is not None:
            return self.weight * max(0.0, min(1.0, self.partial))
        return self.weight if self.passed else 0.0


@dataclass
class PartResult:
    part: str
    points: float
    checks: list[Check] = field(default_factory=list)
    note: str = ""

    def check(self, name, *, weight, ok, expected="", got="", hint="", partial=None, trusted=False) -> Check:
        """Add one weighted check and return it. ``hint`` says what to do when it fails: text, or a
        function that computes it (a diagnosis), called only when the check fails."""
        ok = bool(ok)
        if callable(hint):
            hint = "" if ok else hint()
        check = Check(name, weight, ok, expected, got, hint, partial, trusted)
        self.checks.append(check)
        return check

    @classmethod
    def failed(cls, part, points, name, expected, got) -> PartResult:
        """A part that earns nothing, with the one reason why."""
        pr = cls(part, points)
        pr.check(name, weight=1.0, ok=False, expected=expected, got=got)
        return pr

    @property
    def score(self) -> float:
        total = sum(c.weight for c in self.checks)
        if total <= 0:
            return 0.0
        return round(self.points * sum(c.earned for c in self.checks) / total, 4)


#: the runs of a part re-checked on stand-ins: its own, and the one on correct components of the parts
#: below it (only when it lost points; ``{}`` otherwise). The grader keeps each in its own dict.
RUNS = ("student", "iso")


def both_runs(out, iso) -> dict[str, dict]:
    """A re-checked part's outputs by run: the student's own (``out``) and the stand-ins' (``iso``)."""
    return {"student": out, "iso": iso or {}}


def runs_with(runs, key, kind=torch.Tensor) -> list[str]:
    """The runs (``RUNS``) whose output ``key`` came back, as a ``kind``."""
    return [name for name in RUNS if isinstance(runs[name].get(key), kind)]


def preferred(runs, key):
    """Output ``key`` of the run on stand-ins when there was one, else the student's own: what a
    diagnosis of this part's own code reads (a bug below it cannot blur it)."""
    return runs["iso"].get(key, runs["student"].get(key))


def stand_in_note(good, what, yours="yours is graded in its own part") -> str:
    """Said of a check passed only on stand-ins: the student's code below this part is charged there."""
    return f" (it passes only with {what}: {yours})" if good == ["iso"] else ""


def _t(x):
    return x if isinstance(x, torch.Tensor) else None


def close(a, b, rtol=1e-4, atol=1e-5) -> bool:
    a = _t(a)
    if a is None or not isinstance(b, torch.Tensor) or tuple(a.shape) != tuple(b.shape):
        return False
    if not a.is_floating_point():
        return bool(torch.equal(a.to(b.dtype), b))
    a, b = a.double(), b.double()
    if not bool(torch.isfinite(a).all()):
        return False
    return bool(torch.allclose(a, b, rtol=rtol, atol=atol))


def num_close(a, b, tol=1e-4) -> bool:
    return isinstance(a, (int, float)) and math.isfinite(a) and abs(a - b) <= tol * max(1.0, abs(b))


def shape_of(x) -> str:
    if isinstance(x, torch.Tensor):
        return f"shape {list(x.shape)}"
    return "nothing" if x is None else repr(x)[:80]


def describe(x, ref) -> str:
    """How a received tensor differs from the expected one, without printing hidden values."""
    if not isinstance(x, torch.Tensor):
        return "no tensor" if x is None else f"{type(x).__name__}"
    if tuple(x.shape) != tuple(ref.shape):
        return f"shape {list(x.shape)} (expected {list(ref.shape)})"
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        return "NaN/inf values"
    d = (x.double() - ref.double()).abs().max().item()
    return f"right shape, max abs difference {d:.3g}"


def errors_of(out: dict, *steps) -> str:
    msgs = [out[f"error_{s}"] for s in steps if f"error_{s}" in out]
    if "error_probe" in out:
        msgs.append(out["error_probe"])
    return "; ".join(dict.fromkeys(msgs))


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def ref():
    import transformer_lab as tl

    return tl


#: the accuracy a course did not set the grader up to measure: the instructor's setting, not the student's
NOT_CONFIGURED = (
    "not measured: this course's grader has no test features for the anomaly model (a setting of the "
    "grader, not a fault of your submission; your instructor will regrade)"
)
