"""The ``scaled_dot_product`` part (Scaled dot-product attention): the inputs the grader chooses, the
checks of what the worker returns, and the diagnosis of a failure."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .base import PartResult, _gen, _t, close, describe, errors_of, ref, shape_of


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


def inputs_scaled_dot_product(seed):
    """Seeded q, k, v for the plain, masked, rectangular (T_q != T_k, d_v != d_k), padding-mask and
    fully-masked-row cases. Inputs only: the expected values are computed at grading time."""
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
    """What fails beyond the plain cases (the worker's ``CASES`` after ``pad``), and a hint."""
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
        t is not None
        and t.shape == r.shape
        and t.is_floating_point()
        and bool(t.isfinite().all())
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
            return (
                "softmax is taken over the wrong axis: normalise over the keys (dim=-1), so each "
                "query's row sums to 1"
            )
        if mask is not None:
            if close(att, _attention_variant(q, k, v, None)[1], 1e-3, 1e-4):
                return (
                    "the mask is ignored: fill the logits where mask == 0 with a very negative number "
                    "before the softmax"
                )
            if close(att, _attention_variant(q, k, v, mask, invert=True)[1], 1e-3, 1e-4):
                return (
                    "the mask is inverted: positions where mask == 0 must get zero weight (you masked "
                    "where mask == 1)"
                )
            after = _attention_variant(q, k, v, None)[1].masked_fill(mask == 0, 0.0)
            if close(att, after, 1e-3, 1e-4):
                return (
                    "the mask is applied after the softmax: fill the logits where mask == 0 before the "
                    "softmax, so that each row's weights are spread over the kept positions only"
                )
            if bool((att.masked_select(torch.broadcast_to(mask == 0, att.shape)).abs() > 1e-6).any()):
                return (
                    "masked positions (mask == 0) still get attention weight; apply the mask before the "
                    "softmax"
                )
        if not close(att.sum(-1), torch.ones(att.shape[:-1]), 1e-3, 1e-4):
            return "attention rows do not sum to 1: apply softmax over the last axis"
    if (
        isinstance(vals, torch.Tensor)
        and isinstance(att, torch.Tensor)
        and close(att, _sdp_ref(inp, case)[1], 1e-3, 1e-4)
    ):
        return "the attention is right but values are not attention @ v"
    return "compare with softmax(Q K^T / sqrt(d_k)) V; keep the batch/head dimensions in front"


def _first_wrong(out, refs):
    """The first case whose values or attention differ from the reference's (None: all match)."""
    for case, (values, attention) in refs.items():
        if not (close(out.get(f"{case}_values"), values) and close(out.get(f"{case}_attention"), attention)):
            return case
    return None


def _shape_checks(pr, out, refs, err):
    """The result's shapes (also rectangular), and rows that sum to 1."""
    pr.check(
        "returns (values [..., T_q, d_v], attention [..., T_q, T_k]), also for T_q != T_k and d_v != d_k",
        weight=0.5,
        ok=all(
            isinstance(out.get(f"{c}_{what}"), torch.Tensor) and out[f"{c}_{what}"].shape == refs[c][i].shape
            for c in ("plain", "rect")
            for i, what in enumerate(("values", "attention"))
        ),
        expected="; ".join(
            f"values {list(refs[c][0].shape)} / attention {list(refs[c][1].shape)}" for c in ("plain", "rect")
        ),
        got=err
        or f"values {shape_of(out.get('plain_values'))}, attention {shape_of(out.get('plain_attention'))}; "
        f"rectangular case: values {shape_of(out.get('rect_values'))}, attention "
        f"{shape_of(out.get('rect_attention'))}",
        hint="q [..., T_q, d_k] @ k^T [..., d_k, T_k] gives [..., T_q, T_k]; transpose only the last two "
        "axes of k",
    )
    att = out.get("plain_attention")
    sums = att.sum(-1) if isinstance(att, torch.Tensor) and att.dim() >= 1 else None
    pr.check(
        "attention rows sum to 1 (softmax over the keys)",
        weight=0.5,
        ok=sums is not None and close(sums, torch.ones(sums.shape), 1e-4, 1e-5),
        expected="every row sums to 1",
        got=err
        or (
            f"row sums between {sums.min().item():.3g} and {sums.max().item():.3g}"
            if sums is not None
            else ""
        )
        or shape_of(att),
        hint="F.softmax(logits, dim=-1)",
    )


def grade_scaled_dot_product(inp, out, points):
    """Shapes, rows that sum to 1, the values on hidden plain and rectangular inputs, both kinds of
    mask, and what the hidden tests ask beyond them (mask dtypes, a fully masked row, float16,
    gradients). A wrong value is diagnosed against the usual mistakes."""
    pr = PartResult("scaled_dot_product", points)
    refs = {case: _sdp_ref(inp, case) for case in ("plain", "rect", "mask", "pad")}
    err = errors_of(out, "plain", "rect")
    _shape_checks(pr, out, refs, err)
    for name, cases, errs in (
        (
            "values and attention equal softmax(Q K^T / sqrt(d_k)) V (hidden inputs, d_k = 16)",
            ("plain", "rect"),
            err,
        ),
        (
            "mask: weight 0 where mask == 0, rows renormalised (a [B,1,T,T] mask and a [B,1,1,T] "
            "padding mask)",
            ("mask", "pad"),
            errors_of(out, "mask", "pad"),
        ),
    ):
        bad = _first_wrong(out, {c: refs[c] for c in cases})
        pr.check(
            name,
            weight=1.0,
            ok=bad is None,
            expected=(
                "match within 1e-4"
                if cases[0] == "plain"
                else "masked weights exactly 0, the rest as the reference"
            ),
            got=errs or (f"attention: {describe(out.get(f'{bad}_attention'), refs[bad][1])}" if bad else ""),
            hint=lambda bad=bad: _sdp_diagnose(inp, out, bad),
        )
    failed, hint = _sdp_robustness(inp, out)
    pr.check(
        "also right for 0/1 integer and float masks, finite for a fully masked row and for float16, "
        "and gradients reach q, k and v",
        weight=0.5,
        ok=not failed,
        expected="the same results for every mask type, finite values, gradients for q, k, v",
        got="fails for " + ", ".join(failed) if failed else "",
        hint=hint,
    )
    return pr
