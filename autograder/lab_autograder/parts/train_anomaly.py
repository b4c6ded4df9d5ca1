"""The ``train_anomaly`` part (Set anomaly: training and checkpoint): the inputs the grader chooses,
the checks of what the worker returns, and the diagnosis of a failure."""

from __future__ import annotations

import torch

from ..registry import ANOMALY_THRESHOLD
from ._training import VAL_SCRIPT, _training_checks
from .base import PartResult, _gen


def anomaly_eval_sets(feats, labels, n_sets, seed, set_size=10):
    """``n_sets`` sets: 9 of one class + 1 anomaly at a random position (the positions stay here)."""
    g = _gen(seed + 11)
    classes = labels.unique()
    by_class = {int(c): (labels == c).nonzero().flatten() for c in classes}
    sets, pos = [], []
    for _ in range(n_sets):
        c, a = classes[torch.randperm(len(classes), generator=g)[:2]].tolist()
        members = by_class[c][torch.randperm(len(by_class[c]), generator=g)[: set_size - 1]]
        anomaly = by_class[a][torch.randint(len(by_class[a]), (1,), generator=g)]
        idx = torch.cat([members, anomaly])
        order = torch.randperm(set_size, generator=g)
        sets.append(feats[idx[order]])
        pos.append(int((order == set_size - 1).nonzero()))
    return torch.stack(sets).float(), torch.tensor(pos)


def inputs_train_anomaly(seed):
    """Tiny synthetic features (10 classes) and configuration for the instrumented run, and its
    scripted ``val_acc`` per epoch."""
    g = _gen(seed + 13)
    inp = {"val_script": torch.tensor(VAL_SCRIPT)}
    # tiny synthetic features for the instrumented run (10 classes x 40 images, 32-d)
    means = torch.randn(10, 32, generator=g)

    def split(n):
        labels = torch.arange(10).repeat(n)
        return (means[labels] + 0.3 * torch.randn(len(labels), 32, generator=g)).float(), labels

    inp["train_feats"], inp["train_labels"] = split(40)
    inp["val_feats"], inp["val_labels"] = split(10)
    inp["test_feats"], inp["test_labels"] = split(10)
    inp["cfg"] = {
        "set_size": 10,
        "batch_size": 32,
        "model_dim": 16,
        "num_heads": 2,
        "num_layers": 1,
        "dropout": 0.0,
        "input_dropout": 0.0,
        "lr": 1e-3,
        "warmup": 5,
        "max_epochs": len(VAL_SCRIPT),
        "gradient_clip_val": 2.0,
        "seed": 0,
    }
    return inp


def grade_train_anomaly(
    inp,
    out,
    points,
    trusted=(None, "no checkpoint submitted"),
    threshold=ANOMALY_THRESHOLD,
    features="no test features",
    iso=None,
):
    """The submitted checkpoint's accuracy (``trusted``: the grader's own measurement on
    ``features``), then ``train_anomaly`` in a tiny instrumented run, on the student's components
    (``out``) and on correct ones (``iso``): gradient clipping, the best epoch kept and returned."""
    pr = PartResult("train_anomaly", points)
    _training_checks(
        pr,
        out,
        iso,
        "anomaly.ckpt",
        "train_anomaly",
        trusted,
        threshold,
        f"anomaly found in 1000 fixed test sets of {features} (anomaly at a random position)",
    )
    return pr
