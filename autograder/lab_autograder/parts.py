"""The graded parts: the inputs the grader chooses, and the checks of what the worker returns.

Everything here runs in the grading process and never touches student code: the worker's
outputs arrive as plain tensors/numbers/strings, and every expected value is computed here
with the reference package (``transformer_lab``). Each part is a list of weighted checks; a
part's score is ``points * (weight passed / total weight)``. A failed check says what was
expected, what was received and a hint, but never prints a hidden input.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .registry import ANOMALY_THRESHOLD, ANOMALY_THRESHOLD_QUICK, PARTS, REVERSE_THRESHOLD  # noqa: F401

#: Views of the registry: the grader reads the real points from the notebook it is given.
DEFAULT_POINTS = {name: part.points for name, part in PARTS.items()}
PART_ORDER = list(PARTS)
TITLES = {name: part.title for name, part in PARTS.items()}
DEPENDS = {name: list(part.depends) for name, part in PARTS.items() if part.depends}


@dataclass
class Check:
    name: str
    weight: float
    passed: bool = False
    expected: str = ""
    received: str = ""
    hint: str = ""
    partial: float | None = None  # fraction of the weight earned, when not all-or-nothing
    trusted: bool = False  # decided by the grader alone (not from what the worker reported)

    @property
    def earned(self) -> float:
        if self.partial is not None:
            return self.weight * max(0.0, min(1.0, self.partial))
        return self.weight if self.passed else 0.0


@dataclass
class PartResult:
    part: str
    points: float
    checks: list[Check] = field(default_factory=list)
    note: str = ""

    @property
    def score(self) -> float:
        total = sum(c.weight for c in self.checks)
        if total <= 0:
            return 0.0
        return round(self.points * sum(c.earned for c in self.checks) / total, 4)


# ---------------------------------------------------------------------------------------------
# comparison helpers (all on the grader's side)
# ---------------------------------------------------------------------------------------------
def _t(x):
    return x if isinstance(x, torch.Tensor) else None


def close(a, b, rtol=1e-4, atol=1e-5) -> bool:
    a = _t(a)
    if a is None or not isinstance(b, torch.Tensor) or tuple(a.shape) != tuple(b.shape):
        return False
    if not a.is_floating_point():
        return bool(torch.equal(a.to(b.dtype), b))
    a, b = a.double(), b.double()
    if not bool(torch.isfinite(a).all()):
        return False
    return bool(torch.allclose(a, b, rtol=rtol, atol=atol))


def num_close(a, b, tol=1e-4) -> bool:
    return isinstance(a, (int, float)) and math.isfinite(a) and abs(a - b) <= tol * max(1.0, abs(b))


def shape_of(x) -> str:
    if isinstance(x, torch.Tensor):
        return f"shape {list(x.shape)}"
    return "nothing" if x is None else repr(x)[:80]


def describe(x, ref) -> str:
    """How a received tensor differs from the expected one, without printing hidden values."""
    if not isinstance(x, torch.Tensor):
        return "no tensor" if x is None else f"{type(x).__name__}"
    if tuple(x.shape) != tuple(ref.shape):
        return f"shape {list(x.shape)} (expected {list(ref.shape)})"
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        return "NaN/inf values"
    d = (x.double() - ref.double()).abs().max().item()
    return f"right shape, max abs difference {d:.3g}"


def errors_of(out: dict, *steps) -> str:
    msgs = [out[f"error_{s}"] for s in steps if f"error_{s}" in out]
    if "error_probe" in out:
        msgs.append(out["error_probe"])
    return "; ".join(dict.fromkeys(msgs))


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# the reference, imported lazily (the grader may run where only the reference is installed)
# ---------------------------------------------------------------------------------------------
def ref():
    import transformer_lab as tl

    return tl


def _attention_variant(q, k, v, mask=None, scale="sqrt", dim=-1, invert=False):
    """Attention computed the ways students get it wrong, for diagnosis only (the expected values
    come from ``transformer_lab``): ``scale`` "sqrt" (right), "d_k" or None, softmax over ``dim``,
    the mask ``invert``-ed."""
    logits = q @ k.transpose(-2, -1)
    if scale:
        logits = logits / (math.sqrt(q.size(-1)) if scale == "sqrt" else q.size(-1))
    if mask is not None:
        logits = logits.masked_fill((mask != 0) if invert else (mask == 0), torch.finfo(logits.dtype).min)
    att = F.softmax(logits, dim=dim)
    return att @ v, att


def _sdp_ref(inp, case):
    """The expected (values, attention) of a hidden case, from the reference itself."""
    return ref().scaled_dot_product(*(inp[f"{case}_{n}"] for n in "qkv"), mask=inp.get(f"{case}_mask"))


# =============================================================================================
# scaled_dot_product
# =============================================================================================
def inputs_scaled_dot_product(seed):
    g = _gen(seed)
    B, H, T, D = 2, 3, 5, 16
    inp = {}
    for case in ("plain", "mask"):
        for n in "qkv":
            inp[f"{case}_{n}"] = torch.randn(B, H, T, D, generator=g)
    mask = torch.rand(B, 1, T, T, generator=g) > 0.5
    mask |= torch.eye(T, dtype=torch.bool)  # every row keeps at least one position
    inp["mask_mask"] = mask
    inp["rect_q"], inp["rect_k"], inp["rect_v"] = (
        torch.randn(2, 4, 16, generator=g),
        torch.randn(2, 7, 16, generator=g),
        torch.randn(2, 7, 6, generator=g),
    )
    for n in "qkv":
        inp[f"pad_{n}"] = torch.randn(2, 2, 6, 8, generator=g)
    pad = torch.ones(2, 1, 1, 6, dtype=torch.bool)
    pad[1, ..., 4:] = False
    inp["pad_mask"] = pad
    full = torch.ones(2, 1, 6, 6, dtype=torch.bool)
    full[0, :, 2] = False  # query 2 of the first sequence may attend to nothing
    inp["full_mask"] = full
    return inp


def _sdp_robustness(inp, out) -> tuple[list[str], str]:
    """What fails beyond the plain cases (see the worker's ``_sdp_beyond_the_basics``), and a hint."""
    failed, hints = [], []
    ref_mask = _sdp_ref(inp, "mask")
    for case, what in (("intmask", "a 0/1 integer mask"), ("floatmask", "a 0/1 float mask")):
        values, att = out.get(f"{case}_values"), out.get(f"{case}_attention")
        if not (close(values, ref_mask[0]) and close(att, ref_mask[1])):
            failed.append(what + (f" ({out[f'error_{case}']})" if f"error_{case}" in out else ""))
            hints.append("test the mask with mask == 0 (not ~mask, which is wrong for 0/1 numbers)")
    full = [_t(out.get("full_values")), _t(out.get("full_attention"))]
    ref_full = ref().scaled_dot_product(*(inp[f"pad_{n}"] for n in "qkv"), mask=inp["full_mask"])
    kept = torch.ones(2, 2, 6, dtype=torch.bool)
    kept[0, :, 2] = False  # the other rows must be as the reference; the masked one only finite
    if not all(
        t is not None and t.shape == r.shape and t.is_floating_point() and bool(t.isfinite().all())
        and close(t[kept], r[kept])
        for t, r in zip(full, ref_full)
    ):
        why = f" ({out['error_full']})" if "error_full" in out else " (NaN or inf)"
        failed.append("a fully masked row" + why)
        hints.append("fill with mask_fill_value(dtype) (the dtype's minimum), not -inf")
    half = [_t(out.get("half_values")), _t(out.get("half_attention"))]
    if not all(t is not None and t.is_floating_point() and bool(t.float().isfinite().all()) for t in half):
        why = f" ({out['error_half']})" if "error_half" in out else " (not finite)"
        failed.append("float16 inputs" + why)
        hints.append("-9e15 overflows in float16: use mask_fill_value(attn_logits.dtype)")
    grads = [_t(out.get(f"grad_{n}")) for n in "qkv"]
    if not all(g is not None and bool(g.float().isfinite().all()) for g in grads):
        missing = [n for n, g in zip("qkv", grads) if g is None]
        failed.append(f"gradients (none reach {', '.join(missing)})" if missing else "gradients (not finite)")
        hints.append("do not detach q, k, v or use .data: gradients must flow through")
    return failed, "; ".join(dict.fromkeys(hints))


def _sdp_diagnose(inp, out, case):
    q, k, v = (inp[f"{case}_{n}"] for n in "qkv")
    mask = inp.get(f"{case}_mask")
    vals, att = out.get(f"{case}_values"), out.get(f"{case}_attention")
    if isinstance(att, torch.Tensor) and att.dim() >= 2 and att.shape == (q @ k.transpose(-2, -1)).shape:
        if close(att, _attention_variant(q, k, v, mask, scale=None)[1], 1e-3, 1e-4):
            return "the logits are not divided by sqrt(d_k): scale Q K^T by 1/math.sqrt(q.size(-1))"
        if close(att, _attention_variant(q, k, v, mask, scale="d_k")[1], 1e-3, 1e-4):
            return "the logits are divided by d_k, not by sqrt(d_k)"
        if close(att, _attention_variant(q, k, v, mask, dim=-2)[1], 1e-3, 1e-4) or close(
            att, _attention_variant(q, k, v, mask, scale=None, dim=-2)[1], 1e-3, 1e-4
        ):
            return ("softmax is taken over the wrong axis: normalise over the keys (dim=-1), so each "
                    "query's row sums to 1")
        if mask is not None:
            if close(att, _attention_variant(q, k, v, None)[1], 1e-3, 1e-4):
                return ("the mask is ignored: fill the logits where mask == 0 with a very negative number "
                        "before the softmax")
            if close(att, _attention_variant(q, k, v, mask, invert=True)[1], 1e-3, 1e-4):
                return ("the mask is inverted: positions where mask == 0 must get zero weight (you masked "
                        "where mask == 1)")
            after = _attention_variant(q, k, v, None)[1].masked_fill(mask == 0, 0.0)
            if close(att, after, 1e-3, 1e-4):
                return ("the mask is applied after the softmax: fill the logits where mask == 0 before the "
                        "softmax, so that each row's weights are spread over the kept positions only")
            if bool((att.masked_select(torch.broadcast_to(mask == 0, att.shape)).abs() > 1e-6).any()):
                return ("masked positions (mask == 0) still get attention weight; apply the mask before the "
                        "softmax")
        if not close(att.sum(-1), torch.ones(att.shape[:-1]), 1e-3, 1e-4):
            return "attention rows do not sum to 1: apply softmax over the last axis"
    if (
        isinstance(vals, torch.Tensor)
        and isinstance(att, torch.Tensor)
        and close(att, _sdp_ref(inp, case)[1], 1e-3, 1e-4)
    ):
        return "the attention is right but values are not attention @ v"
    return "compare with softmax(Q K^T / sqrt(d_k)) V; keep the batch/head dimensions in front"


def grade_scaled_dot_product(inp, out, points):
    pr = PartResult("scaled_dot_product", points)
    err = errors_of(out, "plain", "rect")
    ref_plain, ref_rect = _sdp_ref(inp, "plain"), _sdp_ref(inp, "rect")
    shapes_ok = all(
        isinstance(out.get(f"{c}_values"), torch.Tensor)
        and out[f"{c}_values"].shape == r[0].shape
        and isinstance(out.get(f"{c}_attention"), torch.Tensor)
        and out[f"{c}_attention"].shape == r[1].shape
        for c, r in (("plain", ref_plain), ("rect", ref_rect))
    )
    pr.checks.append(
        Check(
            "returns (values [..., T_q, d_v], attention [..., T_q, T_k]), also for T_q != T_k and d_v != d_k",
            0.5,
            shapes_ok,
            "values [2, 3, 5, 16] / attention [2, 3, 5, 5]; values [2, 4, 6] / attention [2, 4, 7]",
            err
            or f"values {shape_of(out.get('plain_values'))}, attention "
               f"{shape_of(out.get('plain_attention'))}; "
            f"rectangular case: values {shape_of(out.get('rect_values'))}, attention "
            f"{shape_of(out.get('rect_attention'))}",
            "q [..., T_q, d_k] @ k^T [..., d_k, T_k] gives [..., T_q, T_k]; transpose only the last two "
            "axes of k",
        )
    )
    att = out.get("plain_attention")
    rows_ok = (
        isinstance(att, torch.Tensor)
        and att.dim() >= 1
        and close(att.sum(-1), torch.ones(att.shape[:-1]), 1e-4, 1e-5)
    )
    pr.checks.append(
        Check(
            "attention rows sum to 1 (softmax over the keys)",
            0.5,
            rows_ok,
            "every row sums to 1",
            err
            or (
                f"row sums between {att.sum(-1).min().item():.3g} and {att.sum(-1).max().item():.3g}"
                if isinstance(att, torch.Tensor) and att.dim() >= 1
                else shape_of(att)
            ),
            "F.softmax(logits, dim=-1)",
        )
    )
    ok = all(
        close(out.get(f"{c}_values"), r[0]) and close(out.get(f"{c}_attention"), r[1])
        for c, r in (("plain", ref_plain), ("rect", ref_rect))
    )
    bad = (
        "plain"
        if not (
            close(out.get("plain_values"), ref_plain[0]) and close(out.get("plain_attention"), ref_plain[1])
        )
        else "rect"
    )
    pr.checks.append(
        Check(
            "values and attention equal softmax(Q K^T / sqrt(d_k)) V (hidden inputs, d_k = 16)",
            1.0,
            ok,
            "match within 1e-4",
            err
            or "attention: "
               f"{describe(out.get(f'{bad}_attention'), (ref_plain if bad == 'plain' else ref_rect)[1])}",
            "" if ok else _sdp_diagnose(inp, out, bad),
        )
    )
    merr = errors_of(out, "mask", "pad")
    ref_mask, ref_pad = _sdp_ref(inp, "mask"), _sdp_ref(inp, "pad")
    mok = all(
        close(out.get(f"{c}_values"), r[0]) and close(out.get(f"{c}_attention"), r[1])
        for c, r in (("mask", ref_mask), ("pad", ref_pad))
    )
    mbad = (
        "mask"
        if not (close(out.get("mask_values"), ref_mask[0]) and close(out.get("mask_attention"), ref_mask[1]))
        else "pad"
    )
    pr.checks.append(
        Check(
            "mask: weight 0 where mask == 0, rows renormalised (a [B,1,T,T] mask and a [B,1,1,T] padding "
            "mask)",
            1.0,
            mok,
            "masked weights exactly 0, the rest as the reference",
            merr
            or "attention: "
               f"{describe(out.get(f'{mbad}_attention'), (ref_mask if mbad == 'mask' else ref_pad)[1])}",
            "" if mok else _sdp_diagnose(inp, out, mbad),
        )
    )
    failed, hint = _sdp_robustness(inp, out)
    pr.checks.append(
        Check(
            "also right for 0/1 integer and float masks, finite for a fully masked row and for float16, "
            "and gradients reach q, k and v",
            0.5,
            not failed,
            "the same results for every mask type, finite values, gradients for q, k, v",
            "fails for " + ", ".join(failed) if failed else "",
            hint,
        )
    )
    return pr


# =============================================================================================
# multihead_attention
# =============================================================================================
def inputs_multihead_attention(seed):
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
    return ("follow the tutorial: qkv_proj -> [B, T, H, 3*hd] -> permute -> chunk into q, k, v -> attention "
            "-> merge heads -> o_proj")


def grade_multihead_attention(inp, out, points):
    pr = PartResult("multihead_attention", points)
    exp_out, _ = _mha_ref(inp)
    exp_mout, exp_matt = _mha_ref(inp, mask=inp["mask"])
    runs = [p for p in ("", "iso_") if isinstance(out.get(f"{p}out"), torch.Tensor)]
    err = errors_of(out, "student")
    names_ok = not any(
        "parameter names differ" in out.get(f"error_{s}", "") for s in ("student", "isolated")
    ) and bool(runs)
    pr.checks.append(
        Check(
            "parameters qkv_proj (Linear input_dim -> 3*embed_dim) and o_proj (embed_dim -> embed_dim)",
            0.5,
            names_ok,
            "qkv_proj.weight [48, 12], o_proj.weight [16, 16] (input_dim 12, embed_dim 16, 4 heads)",
            out.get("params", "") or err,
            "keep the tutorial's module names so its checkpoints load",
        )
    )

    def ok_out(p):
        return close(out.get(f"{p}out"), exp_out, 1e-4, 1e-5)

    good = [p for p in runs if ok_out(p)]
    note = (
        " (it passes only with a correct scaled_dot_product: yours is graded in its own part)"
        if good == ["iso_"]
        else ""
    )
    pr.checks.append(
        Check(
            "output equals the tutorial's computation (per-head q/k/v layout, heads merged, o_proj)" + note,
            1.5,
            bool(good),
            "match within 1e-4",
            err or describe(out.get("out"), exp_out),
            ""
            if good
            else (_mha_diagnose(inp, out.get("out")) if isinstance(out.get("out"), torch.Tensor) else ""),
        )
    )
    mgood = [
        p
        for p in runs
        if close(out.get(f"{p}mask_out"), exp_mout, 1e-4, 1e-5)
        and close(out.get(f"{p}mask_attention"), exp_matt, 1e-4, 1e-5)
        and close(out.get(f"{p}ret_out"), exp_out, 1e-4, 1e-5)
    ]
    pr.checks.append(
        Check(
            "mask honoured per head; return_attention gives [B, H, T, T] weights and the same output",
            1.0,
            bool(mgood),
            "attention [2, 4, 6, 6], masked weights 0",
            err or f"attention {describe(out.get('mask_attention'), exp_matt)}",
            ""
            if mgood
            else "pass mask to scaled_dot_product (it broadcasts over heads) and return (o, attention)",
        )
    )
    pe = out.get("perm_out")
    if isinstance(pe, torch.Tensor) and isinstance(out.get("out"), torch.Tensor) and not good:
        if close(pe, out["out"][:, inp["perm"]], 1e-3, 1e-4):
            pr.note = ("your layer is permutation-equivariant (good), but its values differ from the "
                       "tutorial's layout")
    return pr


# =============================================================================================
# encoder_block
# =============================================================================================
def inputs_encoder_block(seed):
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


def grade_encoder_block(inp, out, points):
    pr = PartResult("encoder_block", points)
    exp = _block_ref(inp)
    exp_m = _block_ref(inp, mask=inp["mask"])
    runs = [p for p in ("", "iso_") if isinstance(out.get(f"{p}out"), torch.Tensor)]
    err = errors_of(out, "student")
    # the block's own names are right if its weights loaded once: with the student's attention, or,
    # when that attention's names differ (charged to its own part), with the stand-in's
    names_ok = bool(runs) and ("parameter names differ" not in out.get("error_student", "") or "iso_" in runs)
    pr.checks.append(
        Check(
            "submodules self_attn, linear_net (Linear at 0 and 3), norm1, norm2",
            0.5,
            names_ok,
            "the tutorial's parameter names",
            out.get("params", "") or err,
            "keep the tutorial's names so its checkpoints load",
        )
    )
    good = [p for p in runs if close(out.get(f"{p}out"), exp, 1e-4, 1e-4)]
    hint = ""
    if not good and isinstance(out.get("iso_out", out.get("out")), torch.Tensor):
        got = out.get("iso_out", out.get("out"))
        hint = next(
            (h for v, h in _BLOCK_HINTS.items() if close(got, _block_ref(inp, v), 1e-3, 1e-3)),
            "x = norm1(x + dropout(self_attn(x, mask))); x = norm2(x + dropout(linear_net(x)))",
        )
    note = (
        " (it passes only with a correct MultiheadAttention: yours is graded in its own part)"
        if good == ["iso_"]
        else ""
    )
    pr.checks.append(
        Check(
            "output = norm2(h + MLP(h)) with h = norm1(x + MHA(x)) (residuals, post-LN)" + note,
            1.5,
            bool(good),
            "match within 1e-4",
            err or describe(out.get("iso_out", out.get("out")), exp),
            hint,
        )
    )
    # the property itself, on the block's own outputs: a bug in its maths is charged above, once
    mgood = [
        p
        for p in runs
        if isinstance(out.get(f"{p}mask_out"), torch.Tensor)
        and isinstance(out.get(f"{p}mask_out2"), torch.Tensor)
        and out[f"{p}mask_out"].shape == out[f"{p}mask_out2"].shape == exp_m.shape
        and close(out[f"{p}mask_out2"][:, :4], out[f"{p}mask_out"][:, :4], 1e-4, 1e-4)
    ]
    pr.checks.append(
        Check(
            "the mask reaches the attention (changing a masked token leaves the other positions unchanged)",
            0.5,
            bool(mgood),
            "unmasked positions unchanged",
            err or "the outputs at unmasked positions changed with a masked token",
            "" if mgood else "pass mask=mask to self.self_attn",
        )
    )
    dd = [out.get(f"{p}dropout_differs") for p in runs]
    pr.checks.append(
        Check(
            "dropout is active in train mode",
            0.5,
            any(d == 1.0 for d in dd),
            "two forward passes in train mode with dropout 0.5 differ",
            "identical outputs" if dd else (err or "not run"),
            "apply nn.Dropout on the residual branches / in the MLP",
        )
    )
    return pr


# =============================================================================================
# positional_encoding
# =============================================================================================
def inputs_positional_encoding(seed):
    g = _gen(seed)
    return {
        "d_model": 48,
        "max_len": 96,
        "x": torch.randn(3, 20, 48, generator=g),
        "x_short": torch.randn(2, 7, 48, generator=g),
    }


def _pe_diagnose(got, d, n):
    tl = ref()
    exp = tl.positional.sinusoidal_table(n, d)
    if not isinstance(got, torch.Tensor) or got.reshape(-1).numel() != exp.numel():
        return f"the table must be [max_len, d_model] = [{n}, {d}] (the buffer [1, {n}, {d}])"
    got = got.reshape(n, d)
    swapped = exp.clone()
    position = torch.arange(n, dtype=torch.float).unsqueeze(1)
    div = torch.exp(torch.arange(0, d, 2).float() * (-math.log(10000.0) / d))
    swapped[:, 0::2], swapped[:, 1::2] = torch.cos(position * div), torch.sin(position * div)
    if close(got, swapped, 1e-4, 1e-5):
        return "sin and cos are swapped: even dimensions (0, 2, ...) get sin, odd ones cos"
    if close(got[:, 0::2], exp[:, 0::2], 1e-4, 1e-5):
        return "the odd (cos) dimensions are wrong"
    if close(got[:, 1::2], exp[:, 1::2], 1e-4, 1e-5):
        return "the even (sin) dimensions are wrong"
    return "PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(pos / 10000^(2i/d))"


def grade_positional_encoding(inp, out, points):
    pr = PartResult("positional_encoding", points)
    tl = ref()
    d, n = inp["d_model"], inp["max_len"]
    exp = tl.positional.sinusoidal_table(n, d)
    tab_ok = close(out.get("table"), exp, 1e-4, 1e-5)
    pr.checks.append(
        Check(
            "sinusoidal_table(96, 48) equals sin/cos(pos / 10000^(2i/d)) (even dims sin, odd dims cos)",
            0.75,
            tab_ok,
            f"[{n}, {d}] table",
            errors_of(out, "table") or describe(out.get("table"), exp),
            "" if tab_ok else _pe_diagnose(out.get("table"), d, n),
        )
    )
    # the buffer and forward are judged against the student's own table: a wrong table costs once
    own = out.get("table")
    own = own if isinstance(own, torch.Tensor) and own.shape == exp.shape else exp
    pe_ok = close(out.get("pe"), own.unsqueeze(0), 1e-4, 1e-5)
    shaped = isinstance(out.get("pe"), torch.Tensor) and tuple(out["pe"].shape) == (1, n, d)
    pr.checks.append(
        Check(
            "PositionalEncoding.pe is the table sinusoidal_table returns, shape [1, max_len, d_model]",
            0.25,
            pe_ok,
            f"[1, {n}, {d}]",
            errors_of(out, "module") or describe(out.get("pe"), own.unsqueeze(0)),
            ""
            if pe_ok
            else "register sinusoidal_table(max_len, d_model) as the buffer 'pe'"
            + ("" if shaped else " with unsqueeze(0)"),
        )
    )
    base = out["pe"][0] if shaped else own  # forward adds the module's own buffer
    e1, e2 = inp["x"] + base[: inp["x"].shape[1]], inp["x_short"] + base[: inp["x_short"].shape[1]]
    f_ok = (
        close(out.get("out"), e1, 1e-4, 1e-5)
        and close(out.get("out_short"), e2, 1e-4, 1e-5)
        and out.get("input_unchanged") == 1.0
    )
    hint = ""
    if not f_ok:
        if close(out.get("out"), inp["x"]):
            hint = ("forward returns its input unchanged: the sum x + pe[:, :T] is computed but not "
                    "returned/assigned")
        elif out.get("input_unchanged") == 0.0:
            hint = (
                "forward modifies its input in place (x += ...); return x + self.pe[:, : x.size(1)] instead"
            )
        else:
            hint = "return x + self.pe[:, : x.size(1)] (slice to the sequence length)"
    pr.checks.append(
        Check(
            "forward(x) returns x + pe[:, :T] for any T <= max_len, without changing x",
            0.75,
            f_ok,
            "x + pe[:, :T]",
            errors_of(out, "module") or describe(out.get("out"), e1),
            hint,
        )
    )
    pr.checks.append(
        Check(
            "pe is a non-persistent buffer (not in the state_dict, so tutorial checkpoints load strictly)",
            0.25,
            out.get("pe_in_state_dict") == 0.0,
            "not in state_dict",
            "in state_dict"
            if out.get("pe_in_state_dict") == 1.0
            else (errors_of(out, "module") or "not run"),
            "register_buffer('pe', pe, persistent=False)",
        )
    )
    return pr


# =============================================================================================
# warmup_factor
# =============================================================================================
def inputs_warmup_factor(seed):
    return {
        "warmup": 10,
        "max_iters": 100,
        "steps": torch.tensor([0, 1, 3, 5, 9, 10, 11, 20, 50, 75, 99, 100]),
        "base_lr": 0.5,
        "n_steps": 25,
    }


def _factor(step, warmup, max_iters):
    return ref().warmup_cosine_factor(step, warmup, max_iters)


def _warmup_diagnose(got, steps, w, n):
    for shift, msg in (
        (1, "off by one: your factor at step t is the expected one at step t + 1 (count steps from 0)"),
        (-1, "off by one: your factor at step t is the expected one at step t - 1"),
    ):
        if close(
            got, torch.tensor([_factor(s + shift, w, n) for s in steps], dtype=torch.float64), 1e-4, 1e-6
        ):
            return msg

    def cos(s):
        return 0.5 * (1 + math.cos(math.pi * s / n))

    for shift in (1, -1):
        alt = torch.tensor(
            [cos(s) * ((s + shift) / w if s + shift <= w else 1.0) if s <= w else cos(s) for s in steps],
            dtype=torch.float64,
        )
        alt2 = torch.tensor(
            [cos(s) * ((s + shift) / w) if s <= w else cos(s) for s in steps], dtype=torch.float64
        )
        if close(got, alt, 1e-4, 1e-6) or close(got, alt2, 1e-4, 1e-6):
            return (
                f"off by one in the warm-up: you use step {'+' if shift > 0 else '-'} 1; the factor is "
                "step / warmup (0 at step 0, 1 at step == warmup)"
            )
    cos_only = torch.tensor([0.5 * (1 + math.cos(math.pi * s / n)) for s in steps], dtype=torch.float64)
    if close(got, cos_only, 1e-4, 1e-6):
        return "the linear warm-up (factor *= step / warmup while step <= warmup) is missing"
    lin_only = torch.tensor([min(1.0, s / w) for s in steps], dtype=torch.float64)
    if close(got, lin_only, 1e-4, 1e-6):
        return "the cosine decay 0.5 * (1 + cos(pi * step / max_iters)) is missing"
    return "factor = 0.5 * (1 + cos(pi * step / max_iters)), times step / warmup while step <= warmup"


def grade_warmup_factor(inp, out, points):
    pr = PartResult("warmup_factor", points)
    steps, w, n = inp["steps"].tolist(), inp["warmup"], inp["max_iters"]
    exp = torch.tensor([_factor(s, w, n) for s in steps], dtype=torch.float64)
    f_ok = close(out.get("factors"), exp, 1e-4, 1e-6)
    pr.checks.append(
        Check(
            "warmup_cosine_factor at 12 steps (warm-up 10, max_iters 100)",
            1.0,
            f_ok,
            "0 at step 0, linear warm-up to ~1 at step 10, cosine to 0 at step 100",
            errors_of(out, "function") or describe(out.get("factors"), exp),
            "" if f_ok else _warmup_diagnose(out.get("factors"), steps, w, n),
        )
    )
    m_ok = close(out.get("method_factors"), exp, 1e-4, 1e-6)
    pr.checks.append(
        Check(
            "CosineWarmupScheduler.get_lr_factor gives the same factors",
            0.5,
            m_ok,
            "same as above",
            errors_of(out, "scheduler") or describe(out.get("method_factors"), exp),
            ""
            if m_ok
            else "get_lr_factor(epoch) should return warmup_cosine_factor(epoch, self.warmup, "
                 "self.max_num_iters)",
        )
    )
    lrs_exp = torch.tensor(
        [inp["base_lr"] * _factor(s, w, n) for s in range(inp["n_steps"])], dtype=torch.float64
    )
    l_ok = close(out.get("lrs"), lrs_exp, 1e-4, 1e-7)
    pr.checks.append(
        Check(
            "on a real optimizer the learning rate at step t is base_lr * factor(t)",
            0.5,
            l_ok,
            "base_lr * factor per step",
            errors_of(out, "scheduler") or describe(out.get("lrs"), lrs_exp),
            ""
            if l_ok
            else "get_lr must return [base_lr * self.get_lr_factor(self.last_epoch) for base_lr in "
                 "self.base_lrs]",
        )
    )
    return pr


# =============================================================================================
# reverse_loss / anomaly_loss
# =============================================================================================


def _seeded_state(model, g):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.4)
    return {k: v.clone() for k, v in model.state_dict().items()}


def _seeded_model(seed, cls: str, **hp):
    """A small reference model of class ``cls`` with seeded weights: ``(generator, hparams, state)``."""
    g = _gen(seed)
    hp = dict(model_dim=16, num_heads=2, lr=1e-3, warmup=10, max_iters=100, dropout=0.0, input_dropout=0.0,
              **hp)
    return g, hp, _seeded_state(getattr(ref(), cls)(**hp), g)


def inputs_reverse_loss(seed):
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


def _loss_checks(pr, out, exp_loss, exp_acc, diag_loss, diag_acc, what):
    err = errors_of(out, "student")
    runs = [p for p in ("", "iso_") if f"{p}loss" in out]
    lgood = [p for p in runs if num_close(out.get(f"{p}loss"), exp_loss, 1e-4)]
    note = (
        " (it passes only with correct model components: yours are graded in their own parts)"
        if lgood == ["iso_"]
        else ""
    )
    got = out.get("iso_loss", out.get("loss"))
    pr.checks.append(
        Check(
            f"loss equals {what}" + note,
            1.25,
            bool(lgood),
            f"{exp_loss:.4f} on the hidden batch",
            err or (f"{got:.4f}" if isinstance(got, float) else "no loss"),
            "" if lgood else diag_loss(got),
        )
    )
    agood = [p for p in runs if num_close(out.get(f"{p}acc"), exp_acc, 1e-4)]
    got = out.get("iso_acc", out.get("acc"))
    pr.checks.append(
        Check(
            "accuracy = fraction of correct argmax predictions",
            0.75,
            bool(agood),
            f"{exp_acc:.4f}",
            err or (f"{got:.4f}" if isinstance(got, float) else "no accuracy"),
            "" if agood else diag_acc(got),
        )
    )


def grade_reverse_loss(inp, out, points):
    pr = PartResult("reverse_loss", points)
    loss, acc, preds = _reverse_ref(inp)
    loss_nope, _, _ = _reverse_ref(inp, pe=False)
    x, y = inp["batch"]

    def diag_loss(got):
        if num_close(got, loss_nope, 1e-4):
            return ("the model is called without positional encoding; the reverse task needs positions "
                    "(add_positional_encoding=True)")
        if num_close(
            got, F.cross_entropy(preds.reshape(-1, 10), y.reshape(-1), reduction="sum").item(), 1e-4
        ):
            return "the loss is summed, not averaged over the tokens"
        return "F.cross_entropy(preds.view(-1, num_classes), labels.view(-1)) over all B*T tokens"

    def diag_acc(got):
        return ("(preds.argmax(dim=-1) == labels).float().mean(): argmax over the class axis, mean over all "
                "tokens")

    _loss_checks(
        pr,
        out,
        loss,
        acc,
        diag_loss,
        diag_acc,
        "token-level cross-entropy over [B*T, C] (positional encoding on)",
    )
    return pr


def inputs_anomaly_loss(seed):
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


def grade_anomaly_loss(inp, out, points):
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
            return ("the softmax is taken over the batch axis; take it over the set axis (one logit per "
                    "element, dim=-1)")
        bce = F.binary_cross_entropy_with_logits(preds, F.one_hot(labels, preds.shape[1]).float()).item()
        if num_close(got, bce, 1e-4):
            return ("binary cross-entropy per element; the task is a softmax over the set: "
                    "F.cross_entropy(preds.squeeze(-1), labels)")
        return ("preds = model(sets, add_positional_encoding=False).squeeze(-1) -> [B, SetSize]; "
                "F.cross_entropy(preds, labels)")

    def diag_acc(got):
        return "(preds.argmax(dim=-1) == labels).float().mean() with preds [B, SetSize]"

    _loss_checks(
        pr,
        out,
        loss,
        acc,
        diag_loss,
        diag_acc,
        "cross-entropy over the set dimension, no positional encoding",
    )
    return pr


# =============================================================================================
# train_reverse / train_anomaly
# =============================================================================================
VAL_SCRIPT = [0.30, 0.90, 0.60]  # scripted val_acc per epoch of the instrumented run: best = epoch 1


def inputs_train_reverse(seed):
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


def _training_run_ok(out, prefix):
    ran = (out.get(prefix + "epochs_run") or 0) > 0
    clip = (out.get(prefix + "clip_calls") or 0) > 0
    best = int(max(range(len(VAL_SCRIPT)), key=lambda i: VAL_SCRIPT[i]))
    saved = out.get(prefix + "saved_epoch")
    return ran, ran and clip, ran and isinstance(saved, float) and int(saved) == best, saved


#: the accuracy a course did not set the grader up to measure: the instructor's setting, not the student's
NOT_CONFIGURED = (
    "not measured: this course's grader has no test features for the anomaly model (a setting of the "
    "grader, not a fault of your submission; your instructor will regrade)"
)


def _training_checks(pr, out, fname, fn_name, trusted, threshold, acc_what):
    acc, why = trusted
    unset = why == NOT_CONFIGURED  # say so, and hint nothing at the student
    if unset:
        pr.note = NOT_CONFIGURED
    pr.checks.append(
        Check(
            f"checkpoints/{fname} was submitted and loads (torch.load weights_only=True, strict) into "
            "the assignment's model",
            0.5,
            acc is not None,
            "a Lightning checkpoint with state_dict and hyper_parameters",
            "loaded" if acc is not None else why,
            ""
            if acc is not None or unset
            else f"submit the checkpoints/ folder with the notebook; {fn_name} saves <dir>/{fname}",
            trusted=True,
        )
    )
    if acc is None:
        pr.checks.append(
            Check(
                f"{acc_what} >= {threshold:.0%}",
                1.5,
                False,
                f">= {threshold:.0%}",
                why if unset else "not measured (no checkpoint the grader could evaluate)",
                "" if unset else "train until the validation accuracy is high; submit the best checkpoint",
                trusted=True,
            )
        )
    else:
        frac = 1.0 if acc >= threshold else (0.5 if acc >= threshold - 0.1 else 0.0)
        pr.checks.append(
            Check(
                f"{acc_what} >= {threshold:.0%}",
                1.5,
                acc >= threshold,
                f">= {threshold:.0%}",
                f"{acc:.2%} (the grader's own evaluation of your checkpoint's weights)",
                ""
                if acc >= threshold
                else "train longer / with the tutorial's recipe; half credit within 10 points of the "
                     "threshold",
                partial=frac,
                trusted=True,
            )
        )
    runs = {p: _training_run_ok(out, p) for p in ("", "iso_")}
    err_t = errors_of(out, "training") or errors_of(out, "iso_training")
    clip = any(r[1] for r in runs.values())
    ran = any(r[0] for r in runs.values())
    pr.checks.append(
        Check(
            f"{fn_name} uses gradient clipping (tiny instrumented run)",
            0.5,
            clip,
            "gradients clipped at every step (Trainer(gradient_clip_val=...))",
            "clipped"
            if clip
            else (err_t or ("no clipping during training" if ran else "the training did not run")),
            "" if clip else "pass gradient_clip_val=cfg.gradient_clip_val to pl.Trainer",
        )
    )
    best = int(max(range(len(VAL_SCRIPT)), key=lambda i: VAL_SCRIPT[i]))
    ok = any(r[2] for r in runs.values())
    saved = runs[""][3] if runs[""][0] else runs["iso_"][3]
    if ok:
        got = f"epoch {best + 1}"
    elif not ran:
        got = err_t or "the training did not run"
    elif not (out.get("ckpt_written") or out.get("iso_ckpt_written")):
        got = f"no {fname} written in the checkpoint_dir passed to {fn_name}"
    elif not isinstance(saved, float) or saved < 0:
        got = "the saved weights match no epoch's weights"
    else:
        got = f"epoch {int(saved) + 1} of {len(VAL_SCRIPT)}" + (
            " (the last one)" if int(saved) == len(VAL_SCRIPT) - 1 else ""
        )
    pr.checks.append(
        Check(
            f"{fn_name} keeps the best-by-val_acc checkpoint as <checkpoint_dir>/{fname}",
            0.5,
            bool(ok),
            f"the weights of the epoch with the highest val_acc (epoch {best + 1} of {len(VAL_SCRIPT)} in "
            "the run)",
            got,
            ""
            if ok
            else "ModelCheckpoint(dirpath=checkpoint_dir, filename=..., monitor='val_acc', mode='max'), "
            "and reload checkpoint.best_model_path",
        )
    )


def grade_train_reverse(inp, out, points, trusted=(None, "no checkpoint submitted")):
    pr = PartResult("train_reverse", points)
    _training_checks(
        pr,
        out,
        "reverse.ckpt",
        "train_reverse",
        trusted,
        REVERSE_THRESHOLD,
        "token accuracy on 2000 fresh random sequences",
    )
    return pr


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
):
    pr = PartResult("train_anomaly", points)
    _training_checks(
        pr,
        out,
        "anomaly.ckpt",
        "train_anomaly",
        trusted,
        threshold,
        f"anomaly found in 1000 fixed test sets of {features} (anomaly at a random position)",
    )
    return pr


# =============================================================================================
# attention_plot / prediction_view
# =============================================================================================
def inputs_attention_plot(seed):
    g = _gen(seed + 3)
    maps = [F.softmax(torch.randn(3, 3, 5, 5, generator=g) * 2, dim=-1) for _ in range(2)]
    return {"tokens": torch.randint(10, (3, 5), generator=g), "maps": maps, "idx": 1}


def _images(out, prefix=""):
    n = int(out.get(f"{prefix}n_image_axes", 0) or 0)
    return [out.get(f"{prefix}image_{i}") for i in range(min(n, 64))]


def grade_attention_plot(inp, out, points):
    pr = PartResult("attention_plot", points)
    err = errors_of(out, "figure")
    is_fig = out.get("is_figure") == 1.0
    pr.checks.append(
        Check(
            "returns a matplotlib Figure",
            0.25,
            is_fig,
            "matplotlib.figure.Figure",
            err or "a Figure",
            "" if is_fig else "build it with fig, axes = plt.subplots(...) or Figure() and return fig",
        )
    )
    L, H = len(inp["maps"]), inp["maps"][0].shape[1]
    grid = out.get("grid")
    g_ok = isinstance(grid, torch.Tensor) and grid.tolist() == [L, H] and out.get("n_image_axes") == L * H
    got = f"{int(out.get('n_image_axes', 0) or 0)} image axes" + (
        f" in a {int(grid[0])} x {int(grid[1])} grid" if isinstance(grid, torch.Tensor) else ""
    )
    hint = ""
    if isinstance(grid, torch.Tensor) and grid.tolist() == [H, L]:
        hint = "rows and columns are swapped: one row per layer, one column per head"
    pr.checks.append(
        Check(
            f"rows = layers, columns = heads ({L} layers x {H} heads -> {L * H} image axes)",
            0.25,
            g_ok,
            f"{L * H} image axes in a {L} x {H} grid",
            err or got,
            hint,
        )
    )
    idx = inp["idx"]
    imgs = _images(out)
    exp = [inp["maps"][l][idx, h].double() for l in range(L) for h in range(H)]
    i_ok = len(imgs) == len(exp) and all(
        close(a, b, 1e-4, 1e-6) or close(a, b.T, 1e-4, 1e-6) for a, b in zip(imgs, exp)
    )
    hint = ""
    if not i_ok and len(imgs) == len(exp):
        if all(
            close(a, inp["maps"][l][0, h].double(), 1e-4, 1e-6)
            for a, (l, h) in zip(imgs, [(l, h) for l in range(L) for h in range(H)])
        ):
            hint = "the images show batch element 0; use attn_maps[layer][idx, head]"
        else:
            hint = "image (row l, column h) must show attn_maps[l][idx, h]"
    pr.checks.append(
        Check(
            "image in row l, column h shows attn_maps[l][idx, h]",
            0.25,
            i_ok,
            "the maps of the requested idx",
            err or f"{len(imgs)} images",
            hint,
        )
    )
    tokens = [str(t) for t in inp["tokens"][idx].tolist()]
    ticks = (out.get("xticks") or "").split("\n")
    t_ok = bool(ticks) and all(line.split("|") == tokens for line in ticks if line) and any(ticks)
    p_ok = out.get("path_written") == 1.0
    pr.checks.append(
        Check(
            "tick labels are the tokens of input_data[idx]; path= writes the figure",
            0.25,
            t_ok and p_ok,
            "token labels on the axes, a file at path",
            ("labels ok" if t_ok else "other tick labels")
            + ", "
            + ("file written" if p_ok else errors_of(out, "path") or "no file written"),
            "" if t_ok and p_ok else "ax.set_xticks(range(T), tokens); fig.savefig(path) when path is given",
        )
    )
    return pr


def inputs_prediction_view(seed):
    g = _gen(seed + 5)
    maps = [F.softmax(torch.randn(3, 2, 10, 10, generator=g) * 2, dim=-1) for _ in range(2)]
    probs = F.softmax(torch.randn(3, 10, generator=g) * 2, dim=-1)
    indices = torch.randperm(30, generator=g).reshape(3, 10)
    images = torch.randint(0, 256, (30, 6, 6, 3), generator=g, dtype=torch.uint8)
    return {"indices": indices, "probs": probs, "maps": maps, "idx": 1, "images": images}


def grade_prediction_view(inp, out, points):
    pr = PartResult("prediction_view", points)
    err = errors_of(out, "figure")
    is_fig = out.get("is_figure") == 1.0
    pr.checks.append(
        Check(
            "returns a matplotlib Figure",
            0.2,
            is_fig,
            "matplotlib.figure.Figure",
            err or "a Figure",
            "" if is_fig else "return the Figure (build it with Figure() or plt.subplots)",
        )
    )
    idx = inp["idx"]
    imgs = [a for a in _images(out) if isinstance(a, torch.Tensor)]
    L, H = len(inp["maps"]), inp["maps"][0].shape[1]
    want = [inp["maps"][l][idx, h].double() for l in range(L) for h in range(H)]
    found = sum(any(close(a, w, 1e-4, 1e-6) or close(a, w.T, 1e-4, 1e-6) for a in imgs) for w in want)
    hint = ""
    if found < len(want):
        other = sum(
            any(close(a, inp["maps"][l][0, h].double(), 1e-4, 1e-6) for a in imgs)
            for l in range(L)
            for h in range(H)
        )
        hint = (
            "the maps of set 0 are shown; use attn_maps[layer][idx, head]"
            if other == len(want)
            else "one image per (layer, head): attn_maps[layer][idx, head]"
        )
    pr.checks.append(
        Check(
            f"shows every layer/head attention map of set idx ({L} layers x {H} heads)",
            0.3,
            found == len(want),
            f"{len(want)} maps",
            err or f"{found} of {len(want)} found",
            hint,
        )
    )
    pics = [(inp["images"][int(i)].double() / 255) for i in inp["indices"][idx]]
    seen = sum(any(close(a, p, 1e-3, 1e-3) or close(a / 255.0, p, 1e-3, 1e-3) for a in imgs) for p in pics)
    pr.checks.append(
        Check(
            "shows the images of the set (images[indices[idx, i]])",
            0.2,
            seen == len(pics),
            f"{len(pics)} images",
            err or f"{seen} of {len(pics)} found",
            "" if seen == len(pics) else "draw images[indices[idx, i]] for every element i of the set",
        )
    )
    probs = inp["probs"][idx].tolist()
    txt = (out.get("text") or "") + "\n" + (out.get("bars") or "")
    shown = sum(
        1
        for p in probs
        if any(
            f in txt
            for f in (f"{100 * p:.1f}%", f"{100 * p:.0f}%", f"{p:.2f}", f"{p:.3f}", f"{100 * p:.2f}%")
        )
    )
    bars = [float(b) for b in re.split(r"[,;]", out.get("bars") or "") if b.strip()]
    if bars and sum(any(abs(b - p) < 1e-4 for b in bars) for p in probs) == len(probs):
        shown = len(probs)
    p_ok = shown == len(probs)
    pr.checks.append(
        Check(
            "shows the probability of every element of set idx",
            0.2,
            p_ok,
            "each probability as text (e.g. '12.3%') or as a bar",
            err or f"{shown} of {len(probs)} found",
            "" if p_ok else "title each image with its probability, e.g. f'{100 * p:.1f}%'",
        )
    )
    p_ok2 = out.get("path_written") == 1.0
    pr.checks.append(
        Check(
            "path= writes the figure to a file",
            0.1,
            p_ok2,
            "a file at path",
            errors_of(out, "path") or ("written" if p_ok2 else "no file"),
            "" if p_ok2 else "fig.savefig(path)",
        )
    )
    return pr


INPUTS = {p: globals()[f"inputs_{p}"] for p in PART_ORDER}
GRADERS = {p: globals()[f"grade_{p}"] for p in PART_ORDER}


# =============================================================================================
# trusted evaluation of a checkpoint (grader side, reference model, no student code)
# =============================================================================================
#: bounds on a checkpoint's hyper-parameters before any model is built (~25 M parameters at most)
_HP_LIMITS = {"input_dim": 1024, "model_dim": 512, "num_classes": 1024, "num_heads": 64, "num_layers": 8}


def _embedding_as_linear(sd: dict, hp: dict) -> dict:
    """A reverse model with an ``nn.Embedding`` input layer (the lab sheet allows one) as the reference's
    one-hot ``Linear``: ``E[x] == one_hot(x) @ E + 0``, so weight ``E^T`` and a zero bias."""
    for key in ("input_net.1.weight", "input_net.weight"):
        e = sd.get(key)
        shape = (hp.get("input_dim"), hp.get("model_dim"))
        if isinstance(e, torch.Tensor) and tuple(e.shape) == shape and key[:-6] + "bias" not in sd:
            rest = {k: v for k, v in sd.items() if k != key}
            linear = {"input_net.1.weight": e.t().contiguous(), "input_net.1.bias": e.new_zeros(e.shape[1])}
            return {**rest, **linear}
    return sd


def reference_accuracy(part: str, ckpt: bytes | None, eval_x, target) -> tuple[float | None, str]:
    """``(accuracy, why)`` of the checkpoint's weights in the *reference* model on the grader's data.

    ``ckpt`` is the grader's snapshot of the submitted file, taken before any student code ran;
    it is read with ``weights_only=True`` and its hyper-parameters are bounded before a model is
    built. ``accuracy`` is ``None`` when there is nothing the grader can evaluate; ``why`` then
    says what, in words for the student. Every accuracy point comes from here.
    """
    import io

    from .untrusted import Malformed, check_tensor, check_zip

    fname = "reverse.ckpt" if part == "train_reverse" else "anomaly.ckpt"
    if ckpt is None:
        return None, f"no checkpoints/{fname} in the submission"
    if target is None:
        return None, NOT_CONFIGURED
    try:  # the container first: a legacy or compressed file could claim gigabytes before it is read
        check_zip(ckpt)
    except Malformed as e:
        return None, f"not a checkpoint written by torch.save / Lightning ({e})"
    try:
        data = torch.load(io.BytesIO(ckpt), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        return None, (
            f"refused by torch.load(weights_only=True) (only tensors and plain containers are allowed): "
            f"{type(e).__name__}"
        )
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("state_dict"), dict)
        or not isinstance(data.get("hyper_parameters"), dict)
    ):
        return None, "not a Lightning checkpoint (needs 'state_dict' and 'hyper_parameters')"
    hp, sd = dict(data["hyper_parameters"]), data["state_dict"]
    for k, lim in _HP_LIMITS.items():
        if not isinstance(hp.get(k), int) or isinstance(hp.get(k), bool) or not 0 < hp[k] <= lim:
            return None, f"hyper-parameter {k} must be an int in [1, {lim}] (got {str(hp.get(k))[:40]})"
    if hp["model_dim"] % hp["num_heads"]:
        return None, "model_dim is not a multiple of num_heads"
    try:
        for v in sd.values():
            if isinstance(v, torch.Tensor):
                check_tensor(v, 2**25)
    except Malformed as e:
        return None, f"the state_dict holds {e}"
    hp = {
        k: hp[k]
        for k in (
            "input_dim",
            "model_dim",
            "num_classes",
            "num_heads",
            "num_layers",
            "lr",
            "warmup",
            "max_iters",
            "dropout",
            "input_dropout",
        )
        if k in hp
    }
    if part == "train_reverse":
        sd = _embedding_as_linear(sd, hp)
    try:
        if part == "train_reverse":
            model = ref().ReversePredictor(**hp)
        else:
            from transformer_lab.anomaly import AnomalyPredictor

            model = AnomalyPredictor(**hp)
        model.load_state_dict(sd, strict=True)
    except Exception as e:  # noqa: BLE001 - not the assignment's architecture
        return None, (
            "its parameters do not fit the assignment's model (strict load into the reference "
            f"{'ReversePredictor' if part == 'train_reverse' else 'AnomalyPredictor'} failed: "
            f"{str(e).splitlines()[0][:200]}); keep the tutorial's module and parameter names"
        )
    model.eval()
    with torch.no_grad():
        if part == "train_reverse":
            if hp["num_classes"] != 10 or hp["input_dim"] != 10:
                return (
                    None,
                    f"a reverse model needs input_dim = num_classes = 10 (got {hp['input_dim']}, "
                    f"{hp['num_classes']})",
                )
            pred = torch.cat(
                [
                    model(F.one_hot(eval_x[i : i + 500], 10).float()).argmax(-1)
                    for i in range(0, len(eval_x), 500)
                ]
            )
            return (pred == eval_x.flip(-1)).float().mean().item(), ""
        if eval_x.shape[-1] != hp["input_dim"] or hp["num_classes"] != 1:
            return None, (
                f"an anomaly model for these features needs input_dim = {eval_x.shape[-1]} and num_classes "
                "= 1 "
                f"(got {hp['input_dim']}, {hp['num_classes']})"
            )
        pred = torch.cat(
            [
                model(eval_x[i : i + 250], add_positional_encoding=False).squeeze(-1).argmax(-1)
                for i in range(0, len(eval_x), 250)
            ]
        )
        return (pred == target).float().mean().item(), ""
