"""The ``train_reverse`` part (Reverse task: training and checkpoint): the inputs the grader chooses,
the checks of what the worker returns, and the diagnosis of a failure."""

from __future__ import annotations

import torch

from ..registry import REVERSE_THRESHOLD
from ._training import VAL_SCRIPT, _training_checks
from .base import PartResult, _gen


def inputs_train_reverse(seed):
    """A tiny reverse configuration for the instrumented run, and its scripted ``val_acc`` per epoch."""
    return {
        "cfg": {
            "num_categories": 10,
            "seq_len": 16,
            "train_size": 512,
            "val_size": 128,
            "test_size": 128,
            "batch_size": 64,
            "model_dim": 16,
            "num_heads": 1,
            "num_layers": 1,
            "max_epochs": len(VAL_SCRIPT),
            "warmup": 5,
            "seed": 0,
        },
        "val_script": torch.tensor(VAL_SCRIPT),
    }


def reverse_eval_data(seed):
    """The grader's own test sequences for the trusted evaluation (never sent to the worker)."""
    return torch.randint(10, (2000, 16), generator=_gen(seed + 7))


def grade_train_reverse(inp, out, points, trusted=(None, "no checkpoint submitted"), iso=None):
    """The submitted checkpoint's accuracy (``trusted``: the grader's own measurement), then
    ``train_reverse`` in a tiny instrumented run, on the student's components (``out``) and on
    correct ones (``iso``): gradient clipping, the best epoch kept and returned."""
    pr = PartResult("train_reverse", points)
    _training_checks(
        pr,
        out,
        iso,
        "reverse.ckpt",
        "train_reverse",
        trusted,
        REVERSE_THRESHOLD,
        "token accuracy on 2000 fresh random sequences",
    )
    return pr
