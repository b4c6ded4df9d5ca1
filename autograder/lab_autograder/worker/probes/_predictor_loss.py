"""What the two loss parts share: a predictor built from the grader's hyper-parameters and weights,
and its ``_calculate_loss`` on one batch."""

import torch

from ..harness import as_float, need
from ..models import load_state, record_log


def predictor_loss(cls_name):
    """The ``outputs`` function of a predictor's loss part: ``_calculate_loss`` on the grader's
    weights and batch."""

    def outputs(ns, inp, out):
        _loss_outputs(ns, inp, out, cls_name)

    return outputs


def _loss_outputs(ns, inp, out, cls_name):
    cls = need(ns, cls_name)
    hp = {
        k: (
            int(v)
            if k
            in ("input_dim", "model_dim", "num_classes", "num_heads", "num_layers", "warmup", "max_iters")
            else float(v)
        )
        for k, v in inp["hparams"].items()
    }
    model = cls(**hp)
    load_state(model, inp["state"])
    model.eval()
    logged = record_log(model)
    batch = tuple(t.clone() for t in inp["batch"])
    with torch.no_grad():
        res = model._calculate_loss(batch, mode="val")
    if not isinstance(res, (tuple, list)) or len(res) != 2:
        raise TypeError(f"_calculate_loss must return (loss, acc), got {type(res).__name__}")
    out["loss"] = as_float(res[0], "loss")
    out["acc"] = as_float(res[1], "acc")
    out["logged"] = ", ".join(sorted(set(logged)))[:200]
    out["logs_val"] = float({"val_loss", "val_acc"} <= set(logged))
