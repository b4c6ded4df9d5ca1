"""The ``encoder_block`` part (Encoder block (post-LN)): the inputs the grader chooses, the checks of what
the worker returns, and the diagnosis of a failure."""

from __future__ import annotations

import torch

from .base import PartResult, _gen, both_runs, close, describe, errors_of, preferred, ref
from .base import runs_with, stand_in_note


def inputs_encoder_block(seed):
    """A seeded ``EncoderBlock(16, 4, 32)``'s weights, an input, a mask hiding its last two tokens,
    and a second input that differs only at those tokens."""
    g = _gen(seed)
    tl = ref()
    blk = tl.EncoderBlock(16, 4, 32, 0.0)
    with torch.no_grad():
        for name, p in blk.named_parameters():
            p.copy_(
                torch.randn(p.shape, generator=g) * (0.3 if "norm" not in name else 0.2)
                + (1.0 if name.endswith("norm1.weight") or name.endswith("norm2.weight") else 0.0)
            )
    T = 6
    x = torch.randn(2, T, 16, generator=g) * 2 + 0.5
    mask = torch.ones(2, 1, 1, T, dtype=torch.bool)
    mask[:, ..., 4:] = False
    x2 = x.clone()
    x2[:, 4:] = torch.randn(2, T - 4, 16, generator=g)
    return {
        "input_dim": 16,
        "num_heads": 4,
        "dim_feedforward": 32,
        "state": {k: v.clone() for k, v in blk.state_dict().items()},
        "x": x,
        "x2": x2,
        "mask": mask,
    }


def _block_ref(inp, variant="post", mask=None, x=None):
    tl = ref()
    blk = tl.EncoderBlock(16, 4, 32, 0.0)
    blk.load_state_dict(inp["state"])
    blk.eval()
    x = inp["x"] if x is None else x
    with torch.no_grad():
        a = lambda h: blk.self_attn(h, mask=mask)  # noqa: E731
        f = blk.linear_net
        if variant == "post":
            return blk(x, mask=mask)
        if variant == "pre":
            h = x + a(blk.norm1(x))
            return h + f(blk.norm2(h))
        if variant == "no_res1":
            h = blk.norm1(a(x))
            return blk.norm2(h + f(h))
        if variant == "no_res2":
            h = blk.norm1(x + a(x))
            return blk.norm2(f(h))
        if variant == "no_mlp":
            return blk.norm2(blk.norm1(x + a(x)))
        if variant == "no_norm":
            h = x + a(x)
            return h + f(h)
    raise ValueError(variant)


_BLOCK_HINTS = {
    "pre": "the LayerNorms are applied before the sublayers (pre-LN); the tutorial's block is post-LN: "
    "x = norm1(x + attn(x)), x = norm2(x + mlp(x))",
    "no_res1": "the residual connection around the attention is missing: norm1(x + attn(x))",
    "no_res2": "the residual connection around the MLP is missing: norm2(x + linear_net(x))",
    "no_mlp": "the feed-forward network (linear_net) is not applied",
    "no_norm": "the LayerNorms are not applied",
}


def _block_diagnose(inp, got):
    """Which known mistake the block's output matches (``got``: the run on a correct attention when
    there is one)."""
    if not isinstance(got, torch.Tensor):
        return ""
    return next(
        (h for v, h in _BLOCK_HINTS.items() if close(got, _block_ref(inp, v), 1e-3, 1e-3)),
        "x = norm1(x + dropout(self_attn(x, mask))); x = norm2(x + dropout(linear_net(x)))",
    )


def _mask_reaches_attention(runs, exp_m) -> bool:
    """The property itself, on the block's own outputs (a bug in its maths is charged once, above):
    changing a masked token leaves the unmasked positions unchanged."""
    return any(
        isinstance(run.get("mask_out"), torch.Tensor)
        and isinstance(run.get("mask_out2"), torch.Tensor)
        and run["mask_out"].shape == run["mask_out2"].shape == exp_m.shape
        and close(run["mask_out2"][:, :4], run["mask_out"][:, :4], 1e-4, 1e-4)
        for run in runs
    )


def grade_encoder_block(inp, out, points, iso=None):
    """The tutorial's parameter names, the post-LN output on the grader's weights (diagnosed against
    pre-LN, missing residuals, MLP or norms), the mask reaching the attention, dropout in train mode.
    Each is also read from the run on a correct attention (``iso``), so a bug there is charged to its part."""
    pr = PartResult("encoder_block", points)
    exp = _block_ref(inp)
    runs = both_runs(out, iso)
    ran = runs_with(runs, "out")
    err = errors_of(out, "student")
    pr.check(
        "submodules self_attn, linear_net (Linear at 0 and 3), norm1, norm2",
        weight=0.5,
        # its own names are right if the weights loaded once: with the student's attention, or, when
        # that attention's names differ (charged to its own part), with the stand-in's
        ok=bool(ran) and (out.get("names_loaded") != 0.0 or "iso" in ran),
        expected="the tutorial's parameter names",
        got=out.get("params", "") or err,
        hint="keep the tutorial's names so its checkpoints load",
    )
    good = [p for p in ran if close(runs[p].get("out"), exp, 1e-4, 1e-4)]
    got = preferred(runs, "out")
    pr.check(
        "output = norm2(h + MLP(h)) with h = norm1(x + MHA(x)) (residuals, post-LN)"
        + stand_in_note(good, "a correct MultiheadAttention"),
        weight=1.5,
        ok=good,
        expected="match within 1e-4",
        got=err or describe(got, exp),
        hint=lambda: _block_diagnose(inp, got),
    )
    pr.check(
        "the mask reaches the attention (changing a masked token leaves the other positions unchanged)",
        weight=0.5,
        ok=_mask_reaches_attention([runs[p] for p in ran], _block_ref(inp, mask=inp["mask"])),
        expected="unmasked positions unchanged",
        got=err or "the outputs at unmasked positions changed with a masked token",
        hint=lambda: "pass mask=mask to self.self_attn",
    )
    differs = [runs[p].get("dropout_differs") for p in ran]
    pr.check(
        "dropout is active in train mode",
        weight=0.5,
        ok=any(d == 1.0 for d in differs),
        expected="two forward passes in train mode with dropout 0.5 differ",
        got="identical outputs" if differs else (err or "not run"),
        hint="apply nn.Dropout on the residual branches / in the MLP",
    )
    return pr
