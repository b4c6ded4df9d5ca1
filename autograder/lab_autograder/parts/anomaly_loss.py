"""The ``anomaly_loss`` part (Set anomaly: loss and accuracy): the inputs the grader chooses, the
checks of what the worker returns, and the diagnosis of a failure."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._losses import _loss_checks, _seeded_model
from .base import PartResult, both_runs, num_close, ref


def inputs_anomaly_loss(seed):
    """A small set-anomaly predictor's hyper-parameters and seeded weights, and one batch of sets
    (features, image indices, the anomaly's position)."""
    g, hp, state = _seeded_model(seed, "TransformerPredictor", input_dim=24, num_classes=1, num_layers=2)
    sets = torch.randn(8, 10, 24, generator=g)
    labels = torch.randint(10, (8,), generator=g)
    idx = torch.randint(1000, (8, 10), generator=g)
    return {"hparams": hp, "state": state, "batch": [sets, idx, labels]}


def _anomaly_ref(inp, pe=False):
    tl = ref()
    m = tl.TransformerPredictor(**inp["hparams"])
    m.load_state_dict(inp["state"], strict=False)
    m.eval()
    sets, _, labels = inp["batch"]
    with torch.no_grad():
        preds = m(sets, add_positional_encoding=pe).squeeze(-1)
    return F.cross_entropy(preds, labels).item(), (preds.argmax(-1) == labels).float().mean().item(), preds


def grade_anomaly_loss(inp, out, points, iso=None):
    """``_calculate_loss`` on the grader's weights and batch: the anomaly model's cross-entropy over the set
    and the accuracy, each diagnosed against the usual mistakes, and both logged. Also read from the run
    on correct model components (``iso``), so a bug in them is charged to their own parts."""
    pr = PartResult("anomaly_loss", points)
    loss, acc, preds = _anomaly_ref(inp)
    loss_pe, acc_pe, _ = _anomaly_ref(inp, pe=True)
    labels = inp["batch"][2]

    def diag_loss(got):
        if num_close(got, loss_pe, 1e-4):
            return (
                "positional encoding is added to the set: a set has no order, so call the model with "
                "add_positional_encoding=False (otherwise it is not permutation-equivariant)"
            )
        sm_batch = -(F.log_softmax(preds, dim=0)[torch.arange(len(labels)), labels]).mean().item()
        if num_close(got, sm_batch, 1e-4):
            return (
                "the softmax is taken over the batch axis; take it over the set axis (one logit per "
                "element, dim=-1)"
            )
        bce = F.binary_cross_entropy_with_logits(preds, F.one_hot(labels, preds.shape[1]).float()).item()
        if num_close(got, bce, 1e-4):
            return (
                "binary cross-entropy per element; the task is a softmax over the set: "
                "F.cross_entropy(preds.squeeze(-1), labels)"
            )
        return (
            "preds = model(sets, add_positional_encoding=False).squeeze(-1) -> [B, SetSize]; "
            "F.cross_entropy(preds, labels)"
        )

    def diag_acc(got):
        return "(preds.argmax(dim=-1) == labels).float().mean() with preds [B, SetSize]"

    what = "cross-entropy over the set dimension, no positional encoding"
    _loss_checks(pr, both_runs(out, iso), loss, acc, diag_loss, diag_acc, what)
    return pr
