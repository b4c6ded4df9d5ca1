"""What the two ``*_loss`` parts share: a predictor with seeded weights, and the loss/accuracy checks."""

from __future__ import annotations

import torch

from .base import Check, _gen, errors_of, num_close, ref


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


def _loss_checks(pr, out, exp_loss, exp_acc, diag_loss, diag_acc, what):
    err = errors_of(out, "student")
    runs = [p for p in ("", "iso_") if f"{p}loss" in out]
    lgood = [p for p in runs if num_close(out.get(f"{p}loss"), exp_loss, 1e-4)]
    note = (
        " (it passes only with correct model components: yours are graded in their own parts)"
        if lgood == ["iso_"]
        else ""
    )
    got = out.get("iso_loss", out.get("loss"))
    pr.checks.append(
        Check(
            f"loss equals {what}" + note,
            1.25,
            bool(lgood),
            f"{exp_loss:.4f} on the hidden batch",
            err or (f"{got:.4f}" if isinstance(got, float) else "no loss"),
            "" if lgood else diag_loss(got),
        )
    )
    agood = [p for p in runs if num_close(out.get(f"{p}acc"), exp_acc, 1e-4)]
    got = out.get("iso_acc", out.get("acc"))
    pr.checks.append(
        Check(
            "accuracy = fraction of correct argmax predictions",
            0.75,
            bool(agood),
            f"{exp_acc:.4f}",
            err or (f"{got:.4f}" if isinstance(got, float) else "no accuracy"),
            "" if agood else diag_acc(got),
        )
    )
