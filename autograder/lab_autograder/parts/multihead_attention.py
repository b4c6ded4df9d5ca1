"""The ``multihead_attention`` part (Multi-head attention): the inputs the grader chooses, the checks of what
the worker returns, and the diagnosis of a failure."""

from __future__ import annotations

import torch

from .base import PartResult, _gen, both_runs, close, describe, errors_of, ref, runs_with, stand_in_note


def inputs_multihead_attention(seed):
    """A seeded ``MultiheadAttention(12, 16, 4)``'s weights, an input, a mask with every row kept,
    and a permutation of the positions (for the equivariance note)."""
    g = _gen(seed)
    tl = ref()
    torch.manual_seed(seed)
    m = tl.MultiheadAttention(12, 16, 4)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    T = 6
    mask = (torch.rand(2, 1, T, T, generator=g) > 0.4) | torch.eye(T, dtype=torch.bool)
    return {
        "input_dim": 12,
        "embed_dim": 16,
        "num_heads": 4,
        "state": {k: v.clone() for k, v in m.state_dict().items()},
        "x": torch.randn(2, T, 12, generator=g),
        "mask": mask,
        "perm": torch.randperm(T, generator=g),
    }


def _mha_ref(inp, mask=None):
    """The expected (output, attention): the reference ``MultiheadAttention`` with the grader's weights."""
    mha = ref().MultiheadAttention(inp["input_dim"], inp["embed_dim"], inp["num_heads"])
    mha.load_state_dict(inp["state"])
    with torch.no_grad():
        return mha(inp["x"], mask=mask, return_attention=True)


def _mha_variant(inp, layout="tutorial", o_proj=True, merge="transpose"):
    """Multi-head attention assembled the ways students get it wrong, for diagnosis only."""
    st, x = inp["state"], inp["x"]
    B, T, _ = x.shape
    H, E = inp["num_heads"], inp["embed_dim"]
    hd = E // H
    qkv = x @ st["qkv_proj.weight"].T + st["qkv_proj.bias"]
    if layout == "tutorial":
        q, k, v = qkv.reshape(B, T, H, 3 * hd).permute(0, 2, 1, 3).chunk(3, dim=-1)
    else:  # q of all heads, then k, then v
        q, k, v = (t.reshape(B, T, H, hd).permute(0, 2, 1, 3) for t in qkv.chunk(3, dim=-1))
    vals, att = ref().scaled_dot_product(q, k, v)
    vals = vals.permute(0, 2, 1, 3).reshape(B, T, E) if merge == "transpose" else vals.reshape(B, T, E)
    o = vals @ st["o_proj.weight"].T + st["o_proj.bias"] if o_proj else vals
    return o, att


def _mha_diagnose(inp, got):
    """Which known mistake the layer's own output matches."""
    if not isinstance(got, torch.Tensor):
        return ""
    for kw, msg in (
        (
            {"layout": "stacked"},
            "q, k and v are split over the whole projection first; the tutorial's layout is "
            "per head: reshape qkv to [B, T, num_heads, 3*head_dim], then chunk the last axis",
        ),
        (
            {"merge": "reshape"},
            "the heads are merged without moving the head axis back: "
            "values.permute(0, 2, 1, 3).reshape(B, T, embed_dim)",
        ),
        ({"o_proj": False}, "the output projection o_proj is not applied"),
    ):
        if close(got, _mha_variant(inp, **kw)[0], 1e-3, 1e-4):
            return msg
    return (
        "follow the tutorial: qkv_proj -> [B, T, H, 3*hd] -> permute -> chunk into q, k, v -> attention "
        "-> merge heads -> o_proj"
    )


def _equivariance_note(inp, out) -> str:
    """Said when the values are wrong but the layer is still permutation-equivariant."""
    perm, plain = out.get("perm_out"), out.get("out")
    if isinstance(perm, torch.Tensor) and isinstance(plain, torch.Tensor):
        if close(perm, plain[:, inp["perm"]], 1e-3, 1e-4):
            return (
                "your layer is permutation-equivariant (good), but its values differ from the "
                "tutorial's layout"
            )
    return ""


def grade_multihead_attention(inp, out, points, iso=None):
    """Parameter names, the output on the grader's weights (diagnosed against the usual layout and
    merge mistakes), the mask per head and ``return_attention``. Each is also read from the run on a
    correct ``scaled_dot_product`` (``iso``), so a bug there is charged to its own part."""
    pr = PartResult("multihead_attention", points)
    exp_out, _ = _mha_ref(inp)
    exp_mout, exp_matt = _mha_ref(inp, mask=inp["mask"])
    runs = both_runs(out, iso)
    ran = runs_with(runs, "out")
    err = errors_of(out, "student")
    pr.check(
        "parameters qkv_proj (Linear input_dim -> 3*embed_dim) and o_proj (embed_dim -> embed_dim)",
        weight=0.5,
        ok=bool(ran) and all(run.get("names_loaded") != 0.0 for run in runs.values()),
        expected=", ".join(f"{k} {list(inp['state'][k].shape)}" for k in ("qkv_proj.weight", "o_proj.weight"))
        + f" (input_dim {inp['input_dim']}, embed_dim {inp['embed_dim']}, {inp['num_heads']} heads)",
        got=out.get("params", "") or err,
        hint="keep the tutorial's module names so its checkpoints load",
    )
    good = [p for p in ran if close(runs[p].get("out"), exp_out, 1e-4, 1e-5)]
    pr.check(
        "output equals the tutorial's computation (per-head q/k/v layout, heads merged, o_proj)"
        + stand_in_note(good, "a correct scaled_dot_product"),
        weight=1.5,
        ok=good,
        expected="match within 1e-4",
        got=err or describe(out.get("out"), exp_out),
        hint=lambda: _mha_diagnose(inp, out.get("out")),
    )
    pr.check(
        "mask honoured per head; return_attention gives [B, H, T, T] weights and the same output",
        weight=1.0,
        ok=any(
            close(runs[p].get("mask_out"), exp_mout, 1e-4, 1e-5)
            and close(runs[p].get("mask_attention"), exp_matt, 1e-4, 1e-5)
            and close(runs[p].get("ret_out"), exp_out, 1e-4, 1e-5)
            for p in ran
        ),
        expected=f"attention {list(exp_matt.shape)}, masked weights 0",
        got=err or f"attention {describe(out.get('mask_attention'), exp_matt)}",
        hint=lambda: "pass mask to scaled_dot_product (it broadcasts over heads) and return (o, attention)",
    )
    if not good:
        pr.note = _equivariance_note(inp, out)
    return pr
