"""What the two ``*_loss`` parts share: a predictor with seeded weights, and the loss/accuracy checks."""

from __future__ import annotations

import torch

from .base import _gen, errors_of, num_close, preferred, ref, runs_with, stand_in_note


def _seeded_state(model, g):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.4)
    return {k: v.clone() for k, v in model.state_dict().items()}


def _seeded_model(seed, cls: str, **hp):
    """A small reference model of class ``cls`` with seeded weights: ``(generator, hparams, state)``."""
    g = _gen(seed)
    hp = dict(
        model_dim=16, num_heads=2, lr=1e-3, warmup=10, max_iters=100, dropout=0.0, input_dropout=0.0, **hp
    )
    return g, hp, _seeded_state(getattr(ref(), cls)(**hp), g)


def _loss_checks(pr, runs, exp_loss, exp_acc, diag_loss, diag_acc, what):
    """The loss and the accuracy of ``_calculate_loss`` on the hidden batch, from the student's run or
    the one on correct components (``runs``, see ``both_runs``); ``diag_*(got)``: what the wrong
    number most likely comes from."""
    out = runs["student"]
    err = errors_of(out, "student")
    ran = runs_with(runs, "loss", float)
    lgood = [p for p in ran if num_close(runs[p].get("loss"), exp_loss, 1e-4)]
    got = preferred(runs, "loss")
    pr.check(
        f"loss equals {what}"
        + stand_in_note(lgood, "correct model components", "yours are graded in their own parts"),
        weight=1.0,
        ok=lgood,
        expected=f"{exp_loss:.4f} on the hidden batch",
        got=err or (f"{got:.4f}" if isinstance(got, float) else "no loss"),
        hint=lambda: diag_loss(got),
    )
    # a quarter of what the loss was worth: a run that logs its right loss earns what the loss did
    pr.check(
        "that loss and the accuracy are logged as val_loss and val_acc when mode='val'",
        weight=0.25,
        ok=any(runs[p].get("logs_val") == 1.0 for p in lgood),
        expected="self.log of val_loss and val_acc",
        got=err
        or ("logged: " + (out.get("logged") or "nothing") if lgood else "the loss above is not right"),
        hint=lambda: (
            'self.log(f"{mode}_loss", loss) and self.log(f"{mode}_acc", acc): the checkpoint callback '
            "monitors val_acc"
            if lgood
            else ""
        ),
    )
    acc = preferred(runs, "acc")
    pr.check(
        "accuracy = fraction of correct argmax predictions",
        weight=0.75,
        ok=any(num_close(runs[p].get("acc"), exp_acc, 1e-4) for p in ran),
        expected=f"{exp_acc:.4f}",
        got=err or (f"{acc:.4f}" if isinstance(acc, float) else "no accuracy"),
        hint=lambda: diag_acc(acc),
    )
