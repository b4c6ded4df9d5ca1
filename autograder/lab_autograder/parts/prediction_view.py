"""The ``prediction_view`` part (Set anomaly: prediction view): the inputs the grader chooses, the
checks of what the worker returns, and the diagnosis of a failure."""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F

from .attention_plot import _images
from .base import Check, PartResult, _gen, close, errors_of


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
