"""What the worker runs for the ``multihead_attention`` part: the layer on the grader's weights, with
and without a mask, its attention weights, and a permuted input; then the same on a correct
``scaled_dot_product``."""

import torch

from ..harness import as_tensor, need
from ..models import load_named
from ..stand_ins import student_and_isolated


def outputs(ns, inp, out):
    cls = need(ns, "MultiheadAttention")
    d_in, d_emb, h = (int(inp[k]) for k in ("input_dim", "embed_dim", "num_heads"))
    m = cls(d_in, d_emb, h)
    load_named(m, inp["state"], out)
    with torch.no_grad():
        x = inp["x"].clone()
        out["out"] = as_tensor(m(x), "output")
        res = m(x, mask=inp["mask"].clone(), return_attention=True)
        if not isinstance(res, (tuple, list)) or len(res) != 2:
            raise TypeError("forward(..., return_attention=True) must return (output, attention)")
        out["mask_out"], out["mask_attention"] = (
            as_tensor(res[0], "output"),
            as_tensor(res[1], "attention"),
        )
        res = m(x, return_attention=True)
        out["ret_out"] = as_tensor(res[0], "output")
        out["perm_out"] = as_tensor(m(x[:, inp["perm"]]), "output")


probe, iso = student_and_isolated(outputs)
