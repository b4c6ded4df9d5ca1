"""The ``attention_plot`` part (Attention-map plot): the inputs the grader chooses, the checks of what
the worker returns, and the diagnosis of a failure."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._figures import figure_check, file_written, images, maps_of, same_map
from .base import PartResult, _gen, close, errors_of


def inputs_attention_plot(seed):
    """Three token sequences and two layers of seeded attention maps, and the sequence to plot."""
    g = _gen(seed + 3)
    maps = [F.softmax(torch.randn(3, 3, 5, 5, generator=g) * 2, dim=-1) for _ in range(2)]
    return {"tokens": torch.randint(10, (3, 5), generator=g), "maps": maps, "idx": 1}


def _grid_check(pr, inp, out, err):
    """One row of image axes per layer, one column per head."""
    L, H = len(inp["maps"]), inp["maps"][0].shape[1]
    grid = out.get("grid")
    grid = grid.tolist() if isinstance(grid, torch.Tensor) else None
    pr.check(
        f"rows = layers, columns = heads ({L} layers x {H} heads -> {L * H} image axes)",
        weight=0.25,
        ok=grid == [L, H] and out.get("n_image_axes") == L * H,
        expected=f"{L * H} image axes in a {L} x {H} grid",
        got=err
        or f"{int(out.get('n_image_axes', 0) or 0)} image axes"
        + (f" in a {int(grid[0])} x {int(grid[1])} grid" if grid else ""),
        hint="rows and columns are swapped: one row per layer, one column per head" if grid == [H, L] else "",
    )


def _images_diagnose(inp, imgs, n):
    if len(imgs) != n:
        return ""
    if all(close(a, b, 1e-4, 1e-6) for a, b in zip(imgs, maps_of(inp, 0))):
        return "the images show batch element 0; use attn_maps[layer][idx, head]"
    return "image (row l, column h) must show attn_maps[l][idx, h]"


def grade_attention_plot(inp, out, points):
    """A Figure, its grid of image axes (layers x heads), the maps of the requested ``idx`` in it,
    the tokens as tick labels, and the file ``path=`` writes."""
    pr = PartResult("attention_plot", points)
    err = errors_of(out, "figure")
    figure_check(pr, out, 0.25, "build it with fig, axes = plt.subplots(...) or Figure() and return fig")
    _grid_check(pr, inp, out, err)
    idx = inp["idx"]
    imgs, exp = images(out), maps_of(inp, idx)
    pr.check(
        "image in row l, column h shows attn_maps[l][idx, h]",
        weight=0.25,
        ok=len(imgs) == len(exp) and all(same_map(a, b) for a, b in zip(imgs, exp)),
        expected="the maps of the requested idx",
        got=err or f"{len(imgs)} images",
        hint=lambda: _images_diagnose(inp, imgs, len(exp)),
    )
    tokens = [str(t) for t in inp["tokens"][idx].tolist()]
    ticks = (out.get("xticks") or "").split("\n")
    t_ok = bool(ticks) and all(line.split("|") == tokens for line in ticks if line) and any(ticks)
    p_ok = file_written(out)
    pr.check(
        "tick labels are the tokens of input_data[idx]; path= writes the figure",
        weight=0.25,
        ok=t_ok and p_ok,
        expected="token labels on the axes, a file at path",
        got=("labels ok" if t_ok else "other tick labels")
        + ", "
        + ("file written" if p_ok else errors_of(out, "path") or "no file written"),
        hint=lambda: "ax.set_xticks(range(T), tokens); fig.savefig(path) when path is given",
    )
    return pr
