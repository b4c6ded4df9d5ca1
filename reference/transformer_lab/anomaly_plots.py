"""Set-anomaly figures: sets as image grids, a prediction with its attention maps, and the mistakes.

Every function returns a ``matplotlib.figure.Figure`` (no pyplot, no display) and saves it when
given ``path``. Images may be raw uint8 ``[N, 32, 32, 3]`` (CIFAR arrays, shown as they are) or
ImageNet-normalised float ``[N, 3, H, W]`` (de-normalised for display); ``images=None`` draws the
dataset index instead of a picture (e.g. for synthetic features).
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from .cifar import IMAGENET_MEAN, IMAGENET_STD
from .plots import _save


def to_display(images) -> np.ndarray:
    """Images -> float ``[N, H, W, 3]`` in [0, 1]: uint8 HWC as is, normalised float CHW de-normalised."""
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images).detach().cpu()
    if x.dim() != 4:
        raise ValueError(f"to_display: argument 'images' must be [N, H, W, 3] uint8 or [N, 3, H, W] float, "
                         f"got shape {list(x.shape)}")
    if x.dtype == torch.uint8:
        return (x.float() / 255).numpy()
    x = x.float() * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    return x.clamp(0, 1).permute(0, 2, 3, 1).numpy()


def _draw_cell(ax, images, index, title=None, color="black"):
    if images is None:
        ax.text(0.5, 0.5, f"#{index}", ha="center", va="center", fontsize=9)
    else:
        ax.imshow(to_display(images[index:index + 1])[0])
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(color)
        spine.set_linewidth(3 if color != "black" else 1)
    if title is not None:
        ax.set_title(title, fontsize=8, color=color)


def plot_anomaly_sets(indices, images=None, path=None, title=None) -> Figure:
    """Grid of sets: one row per set, one column per element, the anomaly (last) framed in red.

    Args:
        indices: ``[NumSets, SetSize]`` image indices (the ``indices`` a set batch carries)
        images: the images those indices refer to (see module doc), or None (synthetic features:
            the tiles show the indices, and the default title says so)
    """
    if title is None:
        title = "Anomaly examples on CIFAR100" if images is not None else "Anomaly examples (synthetic features)"
    indices = torch.as_tensor(indices).reshape(-1, torch.as_tensor(indices).shape[-1])
    rows, cols = indices.shape
    fig = Figure(figsize=(1.2 * cols, 1.3 * rows + 0.4), layout="constrained")
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False))
    for r in range(rows):
        for c in range(cols):
            last = c == cols - 1
            _draw_cell(axes[r, c], images, int(indices[r, c]), "anomaly" if last and r == 0 else None,
                       "red" if last else "black")
    fig.suptitle(title)
    return _save(fig, path)


def find_mistakes(probs_or_logits) -> torch.Tensor:
    """Indices of the sets in a batch whose prediction (argmax over the set) is not the last element."""
    p = torch.as_tensor(probs_or_logits)
    if p.dim() == 3:
        p = p.squeeze(-1)
    return torch.nonzero(p.argmax(dim=-1) != p.shape[-1] - 1).flatten().cpu()


def plot_anomaly_prediction(indices, probs, attn_maps, idx=0, images=None, path=None) -> Figure:
    """One set of a batch: its images with their probabilities (prediction in blue, true anomaly in
    red), then the attention maps of every layer (rows) and head (columns).

    Args:
        indices: ``[Batch, SetSize]`` image indices of the batch
        probs: ``[Batch, SetSize]`` softmax over the set (:func:`anomaly_probabilities`)
        attn_maps: list per layer of ``[Batch, Heads, SetSize, SetSize]`` (``model.get_attention_maps``)
        idx: which set of the batch
    """
    if not attn_maps:
        raise ValueError("plot_anomaly_prediction: attn_maps is empty; pass model.get_attention_maps(sets)")
    idx_row = torch.as_tensor(indices)[idx].cpu()
    p = torch.as_tensor(probs)[idx].detach().float().cpu()
    maps = [m[idx].detach().float().cpu().numpy() for m in attn_maps]
    n, num_layers, num_heads = len(idx_row), len(maps), maps[0].shape[0]
    pred = int(p.argmax())
    width = max(1.2 * n, 3 * num_heads)
    fig = Figure(figsize=(width, 1.6 + 3 * num_layers), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.6, 3 * num_layers])
    axes = top.subplots(1, n)
    for i, ax in enumerate(np.atleast_1d(axes)):
        color = "red" if i == n - 1 else ("tab:blue" if i == pred else "black")
        _draw_cell(ax, images, int(idx_row[i]), f"{i}: {100 * p[i]:.1f}%", color)
    verdict = "correct" if pred == n - 1 else "MISTAKE"
    top.suptitle(f"Set {idx}: predicted anomaly {pred} (true {n - 1}, {verdict})")
    grid = np.asarray(bottom.subplots(num_layers, num_heads, squeeze=False))
    for layer in range(num_layers):
        for head in range(num_heads):
            ax = grid[layer, head]
            ax.imshow(maps[layer][head], origin="lower", vmin=0)
            ax.set_xticks(range(n))
            ax.set_yticks(range(n))
            ax.set_title(f"Layer {layer + 1}, Head {head + 1}", fontsize=9)
    return _save(fig, path)


def plot_mistakes(indices, probs, images=None, path=None, max_rows=8) -> Figure:
    """The sets of a batch the model got wrong, one per row, each image titled with its probability."""
    mistakes = find_mistakes(probs)[:max_rows]
    indices, probs = torch.as_tensor(indices).cpu(), torch.as_tensor(probs).detach().float().cpu()
    cols = indices.shape[-1]
    rows = max(len(mistakes), 1)
    fig = Figure(figsize=(1.2 * cols, 1.4 * rows + 0.4), layout="constrained")
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False))
    if len(mistakes) == 0:
        for ax in axes.flat:
            ax.axis("off")
        axes[0, 0].text(0, 0.5, "no mistakes in this batch", fontsize=12)
    for r, s in enumerate(mistakes.tolist()):
        pred = int(probs[s].argmax())
        for c in range(cols):
            color = "red" if c == cols - 1 else ("tab:blue" if c == pred else "black")
            _draw_cell(axes[r, c], images, int(indices[s, c]), f"{100 * probs[s, c]:.1f}%", color)
        axes[r, 0].set_ylabel(f"set {s}", fontsize=8)
    fig.suptitle(f"Mistakes: {len(find_mistakes(probs))} of {len(probs)} sets (red: true anomaly, blue: predicted)")
    return _save(fig, path)
