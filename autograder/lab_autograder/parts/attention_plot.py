"""The ``attention_plot`` part (Attention-map plot): the inputs the grader chooses, the checks of what
the worker returns, and the diagnosis of a failure."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Check, PartResult, _gen, close, errors_of


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
