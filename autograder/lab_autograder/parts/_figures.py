"""What the two plot parts share: the figure check, the images the worker found in reading order,
the attention maps a set's figure must show, and the file that ``path=`` must write."""

from __future__ import annotations

from .base import close, errors_of


def images(out, prefix=""):
    """The pixel arrays of the figure's image axes, in reading order (row by row)."""
    n = int(out.get(f"{prefix}n_image_axes", 0) or 0)
    return [out.get(f"{prefix}image_{i}") for i in range(min(n, 64))]


def maps_of(inp, idx):
    """The attention maps of batch element ``idx``, one per (layer, head), layer by layer."""
    maps = inp["maps"]
    return [maps[l][idx, h].double() for l in range(len(maps)) for h in range(maps[0].shape[1])]


def same_map(a, b) -> bool:
    """An image shows map ``b`` (drawn as it is, or transposed)."""
    return close(a, b, 1e-4, 1e-6) or close(a, b.T, 1e-4, 1e-6)


def figure_check(pr, out, weight, hint):
    """The function returns a matplotlib Figure."""
    pr.check(
        "returns a matplotlib Figure",
        weight=weight,
        ok=out.get("is_figure") == 1.0,
        expected="matplotlib.figure.Figure",
        got=errors_of(out, "figure") or "a Figure",
        hint=lambda: hint,
    )


def file_written(out) -> bool:
    """``path=`` wrote a non-empty file."""
    return out.get("path_written") == 1.0
