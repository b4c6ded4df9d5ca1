"""The ``warmup_factor`` part (Cosine warm-up learning-rate factor): the inputs the grader chooses, the
checks of what the worker returns, and the diagnosis of a failure."""

from __future__ import annotations

import math

import torch

from .base import PartResult, close, describe, errors_of, ref


def inputs_warmup_factor(seed):
    """The warm-up and total steps, the steps at which the factor is read, and a base learning rate
    and step count for the scheduler run."""
    return {
        "warmup": 10,
        "max_iters": 100,
        "steps": torch.tensor([0, 1, 3, 5, 9, 10, 11, 20, 50, 75, 99, 100]),
        "base_lr": 0.5,
        "n_steps": 25,
    }


def _factor(step, warmup, max_iters):
    return ref().warmup_cosine_factor(step, warmup, max_iters)


def _warmup_diagnose(got, steps, w, n):
    for shift, msg in (
        (1, "off by one: your factor at step t is the expected one at step t + 1 (count steps from 0)"),
        (-1, "off by one: your factor at step t is the expected one at step t - 1"),
    ):
        if close(
            got, torch.tensor([_factor(s + shift, w, n) for s in steps], dtype=torch.float64), 1e-4, 1e-6
        ):
            return msg

    def cos(s):
        return 0.5 * (1 + math.cos(math.pi * s / n))

    for shift in (1, -1):
        alt = torch.tensor(
            [cos(s) * ((s + shift) / w if s + shift <= w else 1.0) if s <= w else cos(s) for s in steps],
            dtype=torch.float64,
        )
        alt2 = torch.tensor(
            [cos(s) * ((s + shift) / w) if s <= w else cos(s) for s in steps], dtype=torch.float64
        )
        if close(got, alt, 1e-4, 1e-6) or close(got, alt2, 1e-4, 1e-6):
            return (
                f"off by one in the warm-up: you use step {'+' if shift > 0 else '-'} 1; the factor is "
                "step / warmup (0 at step 0, 1 at step == warmup)"
            )
    cos_only = torch.tensor([0.5 * (1 + math.cos(math.pi * s / n)) for s in steps], dtype=torch.float64)
    if close(got, cos_only, 1e-4, 1e-6):
        return "the linear warm-up (factor *= step / warmup while step <= warmup) is missing"
    lin_only = torch.tensor([min(1.0, s / w) for s in steps], dtype=torch.float64)
    if close(got, lin_only, 1e-4, 1e-6):
        return "the cosine decay 0.5 * (1 + cos(pi * step / max_iters)) is missing"
    return "factor = 0.5 * (1 + cos(pi * step / max_iters)), times step / warmup while step <= warmup"


def grade_warmup_factor(inp, out, points):
    """The factor at hidden steps (diagnosed against a missing warm-up or decay, an off-by-one), the
    scheduler's ``get_lr_factor`` and the learning rates it gives a real optimizer."""
    pr = PartResult("warmup_factor", points)
    steps, w, n = inp["steps"].tolist(), inp["warmup"], inp["max_iters"]
    exp = torch.tensor([_factor(s, w, n) for s in steps], dtype=torch.float64)
    lrs = torch.tensor(
        [inp["base_lr"] * _factor(s, w, n) for s in range(inp["n_steps"])], dtype=torch.float64
    )
    pr.check(
        f"warmup_cosine_factor at {len(steps)} steps (warm-up {w}, max_iters {n})",
        weight=1.0,
        ok=close(out.get("factors"), exp, 1e-4, 1e-6),
        expected=f"0 at step 0, linear warm-up to ~1 at step {w}, cosine to 0 at step {n}",
        got=errors_of(out, "function") or describe(out.get("factors"), exp),
        hint=lambda: _warmup_diagnose(out.get("factors"), steps, w, n),
    )
    pr.check(
        "CosineWarmupScheduler.get_lr_factor gives the same factors",
        weight=0.5,
        ok=close(out.get("method_factors"), exp, 1e-4, 1e-6),
        expected="same as above",
        got=errors_of(out, "scheduler") or describe(out.get("method_factors"), exp),
        hint="get_lr_factor(epoch) must return warmup_cosine_factor(epoch, self.warmup, self.max_num_iters)",
    )
    pr.check(
        "on a real optimizer the learning rate at step t is base_lr * factor(t)",
        weight=0.5,
        ok=close(out.get("lrs"), lrs, 1e-4, 1e-7),
        expected="base_lr * factor per step",
        got=errors_of(out, "scheduler") or describe(out.get("lrs"), lrs),
        hint="get_lr returns [base_lr * self.get_lr_factor(self.last_epoch) for base_lr in self.base_lrs]",
    )
    return pr
