"""The ``prediction_view`` part (Set anomaly: prediction view): the inputs the grader chooses, the
checks of what the worker returns, and the diagnosis of a failure."""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F

from ._figures import figure_check, file_written, images, maps_of, same_map
from .base import PartResult, _gen, close, errors_of


def inputs_prediction_view(seed):
    """Sets' image indices, their predicted probabilities, attention maps and images, and the set
    to show."""
    g = _gen(seed + 5)
    maps = [F.softmax(torch.randn(3, 2, 10, 10, generator=g) * 2, dim=-1) for _ in range(2)]
    probs = F.softmax(torch.randn(3, 10, generator=g) * 2, dim=-1)
    indices = torch.randperm(30, generator=g).reshape(3, 10)
    images = torch.randint(0, 256, (30, 6, 6, 3), generator=g, dtype=torch.uint8)
    return {"indices": indices, "probs": probs, "maps": maps, "idx": 1, "images": images}


def _maps_diagnose(inp, imgs, n):
    if sum(any(close(a, w, 1e-4, 1e-6) for a in imgs) for w in maps_of(inp, 0)) == n:
        return "the maps of set 0 are shown; use attn_maps[layer][idx, head]"
    return "one image per (layer, head): attn_maps[layer][idx, head]"


def _probabilities_shown(out, probs) -> int:
    """How many of the set's probabilities the figure shows, as text or as bar heights."""
    txt = (out.get("text") or "") + "\n" + (out.get("bars") or "")
    forms = lambda p: (
        f"{100 * p:.1f}%",
        f"{100 * p:.0f}%",
        f"{p:.2f}",
        f"{p:.3f}",
        f"{100 * p:.2f}%",
    )  # noqa: E731
    shown = sum(1 for p in probs if any(f in txt for f in forms(p)))
    bars = [float(b) for b in re.split(r"[,;]", out.get("bars") or "") if b.strip()]
    if bars and sum(any(abs(b - p) < 1e-4 for b in bars) for p in probs) == len(probs):
        return len(probs)
    return shown


def grade_prediction_view(inp, out, points):
    """A Figure that shows every attention map of set ``idx``, the set's images and each element's
    probability, and the file ``path=`` writes."""
    pr = PartResult("prediction_view", points)
    err = errors_of(out, "figure")
    figure_check(pr, out, 0.2, "return the Figure (build it with Figure() or plt.subplots)")
    idx = inp["idx"]
    imgs = [a for a in images(out) if isinstance(a, torch.Tensor)]
    want = maps_of(inp, idx)
    found = sum(any(same_map(a, w) for a in imgs) for w in want)
    pr.check(
        f"shows every layer/head attention map of set idx ({len(inp['maps'])} layers x "
        f"{inp['maps'][0].shape[1]} heads)",
        weight=0.3,
        ok=found == len(want),
        expected=f"{len(want)} maps",
        got=err or f"{found} of {len(want)} found",
        hint=lambda: _maps_diagnose(inp, imgs, len(want)),
    )
    pics = [(inp["images"][int(i)].double() / 255) for i in inp["indices"][idx]]
    seen = sum(any(close(a, p, 1e-3, 1e-3) or close(a / 255.0, p, 1e-3, 1e-3) for a in imgs) for p in pics)
    pr.check(
        "shows the images of the set (images[indices[idx, i]])",
        weight=0.2,
        ok=seen == len(pics),
        expected=f"{len(pics)} images",
        got=err or f"{seen} of {len(pics)} found",
        hint=lambda: "draw images[indices[idx, i]] for every element i of the set",
    )
    probs = inp["probs"][idx].tolist()
    shown = _probabilities_shown(out, probs)
    pr.check(
        "shows the probability of every element of set idx",
        weight=0.2,
        ok=shown == len(probs),
        expected="each probability as text (e.g. '12.3%') or as a bar",
        got=err or f"{shown} of {len(probs)} found",
        hint=lambda: "title each image with its probability, e.g. f'{100 * p:.1f}%'",
    )
    pr.check(
        "path= writes the figure to a file",
        weight=0.1,
        ok=file_written(out),
        expected="a file at path",
        got=errors_of(out, "path") or ("written" if file_written(out) else "no file"),
        hint=lambda: "fig.savefig(path)",
    )
    return pr
