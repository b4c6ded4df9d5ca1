"""The ``reverse_loss`` part (Reverse task: loss and accuracy): the inputs the grader chooses, the
checks of what the worker returns, and the diagnosis of a failure."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._losses import _loss_checks, _seeded_model
from .base import PartResult, both_runs, num_close, ref


def inputs_reverse_loss(seed):
    """A small ``ReversePredictor``'s hyper-parameters and seeded weights, and one batch of
    sequences with their reversals."""
    g, hp, state = _seeded_model(seed, "ReversePredictor", input_dim=10, num_classes=10, num_layers=1)
    inp = torch.randint(10, (8, 12), generator=g)
    return {"hparams": hp, "state": state, "batch": [inp, inp.flip(-1)]}


def _reverse_ref(inp, pe=True):
    tl = ref()
    m = tl.ReversePredictor(**inp["hparams"])
    m.load_state_dict(inp["state"], strict=False)
    m.eval()
    x, y = inp["batch"]
    with torch.no_grad():
        preds = m(F.one_hot(x, 10).float(), add_positional_encoding=pe)
    loss = F.cross_entropy(preds.reshape(-1, 10), y.reshape(-1)).item()
    acc = (preds.argmax(-1) == y).float().mean().item()
    return loss, acc, preds


def grade_reverse_loss(inp, out, points, iso=None):
    """``_calculate_loss`` on the grader's weights and batch: the reverse model's token-level cross-entropy
    and the accuracy, each diagnosed against the usual mistakes, and both logged. Also read from the run
    on correct model components (``iso``), so a bug in them is charged to their own parts."""
    pr = PartResult("reverse_loss", points)
    loss, acc, preds = _reverse_ref(inp)
    loss_nope, _, _ = _reverse_ref(inp, pe=False)
    x, y = inp["batch"]

    def diag_loss(got):
        if num_close(got, loss_nope, 1e-4):
            return (
                "the model is called without positional encoding; the reverse task needs positions "
                "(add_positional_encoding=True)"
            )
        if num_close(
            got, F.cross_entropy(preds.reshape(-1, 10), y.reshape(-1), reduction="sum").item(), 1e-4
        ):
            return "the loss is summed, not averaged over the tokens"
        return "F.cross_entropy(preds.view(-1, num_classes), labels.view(-1)) over all B*T tokens"

    def diag_acc(got):
        return (
            "(preds.argmax(dim=-1) == labels).float().mean(): argmax over the class axis, mean over all "
            "tokens"
        )

    what = "token-level cross-entropy over [B*T, C] (positional encoding on)"
    _loss_checks(pr, both_runs(out, iso), loss, acc, diag_loss, diag_acc, what)
    return pr
