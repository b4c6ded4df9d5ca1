"""What the worker runs for the ``encoder_block`` part: the block on the grader's weights, with and
without a mask (and a changed masked token), and whether dropout acts in train mode; then the same
on a correct attention."""

import torch

from ..harness import _EQUAL, as_tensor, need
from ..models import load_state, param_summary
from ..stand_ins import student_and_isolated


def outputs(ns, inp, out, prefix):
    cls = need(ns, "EncoderBlock")
    blk = cls(
        input_dim=int(inp["input_dim"]),
        num_heads=int(inp["num_heads"]),
        dim_feedforward=int(inp["dim_feedforward"]),
        dropout=0.0,
    )
    out[f"{prefix}params"] = param_summary(blk)
    out[f"{prefix}names_loaded"] = 0.0
    load_state(blk, inp["state"])
    out[f"{prefix}names_loaded"] = 1.0  # the grader's weights fit the tutorial's names
    blk.eval()
    with torch.no_grad():
        out[f"{prefix}out"] = as_tensor(blk(inp["x"].clone()), "output")
        out[f"{prefix}mask_out"] = as_tensor(blk(inp["x"].clone(), mask=inp["mask"].clone()), "output")
        out[f"{prefix}mask_out2"] = as_tensor(blk(inp["x2"].clone(), mask=inp["mask"].clone()), "output")
    # Dropout active in train mode (a block built with dropout 0.5 must not be deterministic).
    blk2 = cls(
        input_dim=int(inp["input_dim"]),
        num_heads=int(inp["num_heads"]),
        dim_feedforward=int(inp["dim_feedforward"]),
        dropout=0.5,
    )
    blk2.train()
    with torch.no_grad():
        a, b = blk2(inp["x"].clone()), blk2(inp["x"].clone())
    out[f"{prefix}dropout_differs"] = float(not _EQUAL(a, b))


probe, iso = student_and_isolated(outputs)
