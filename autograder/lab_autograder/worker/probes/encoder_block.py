"""What the worker runs for the ``encoder_block`` part: the block on the grader's weights, with and
without a mask (and a changed masked token), and whether dropout acts in train mode; then the same
on a correct attention."""

import torch

from ..harness import _EQUAL, as_tensor, need
from ..models import load_named
from ..stand_ins import student_and_isolated


def outputs(ns, inp, out):
    cls = need(ns, "EncoderBlock")
    sizes = {k: int(inp[k]) for k in ("input_dim", "num_heads", "dim_feedforward")}
    blk = cls(**sizes, dropout=0.0)
    load_named(blk, inp["state"], out)
    with torch.no_grad():
        out["out"] = as_tensor(blk(inp["x"].clone()), "output")
        out["mask_out"] = as_tensor(blk(inp["x"].clone(), mask=inp["mask"].clone()), "output")
        out["mask_out2"] = as_tensor(blk(inp["x2"].clone(), mask=inp["mask"].clone()), "output")
    # Dropout active in train mode (a block built with dropout 0.5 must not be deterministic).
    blk2 = cls(**sizes, dropout=0.5)
    blk2.train()
    with torch.no_grad():
        a, b = blk2(inp["x"].clone()), blk2(inp["x"].clone())
    out["dropout_differs"] = float(not _EQUAL(a, b))


probe, iso = student_and_isolated(outputs)
