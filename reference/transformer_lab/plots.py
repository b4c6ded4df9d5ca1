"""Figures of the tutorial, returned as matplotlib Figures and optionally saved (no display needed)."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from .positional import PositionalEncoding
from .scheduler import warmup_cosine_factor


def _save(fig: Figure, path) -> Figure:
    if path is not None:
        fig.savefig(path, bbox_inches="tight", dpi=120)
    return fig


def plot_attention_maps(input_data, attn_maps, idx=0, path=None) -> Figure:
    """Grid of attention maps: rows = layers, columns = heads, tick labels = the input tokens.

    Args:
        input_data: ``[Batch, SeqLen]`` tokens to label the axes with, or None for positions 0..T-1
        attn_maps: list (one per layer) of ``[Batch, Heads, SeqLen, SeqLen]`` tensors
        idx: which batch element to show
    """
    if not attn_maps:
        raise ValueError("plot_attention_maps: attn_maps is empty; pass model.get_attention_maps(x)")
    maps = [m[idx].detach().float().cpu().numpy() for m in attn_maps]
    num_layers, num_heads, seq_len = len(maps), maps[0].shape[0], maps[0].shape[-1]
    if input_data is not None:
        labels = [str(t) for t in torch.as_tensor(input_data)[idx].detach().cpu().tolist()]
    else:
        labels = [str(i) for i in range(seq_len)]
    size = 4 if num_heads == 1 else 3
    fig = Figure(figsize=(num_heads * size, num_layers * size))
    axes = np.asarray(fig.subplots(num_layers, num_heads, squeeze=False))
    for row in range(num_layers):
        for col in range(num_heads):
            ax = axes[row, col]
            ax.imshow(maps[row][col], origin="lower", vmin=0)
            ax.set_xticks(range(seq_len), labels)
            ax.set_yticks(range(seq_len), labels)
            ax.set_title(f"Layer {row + 1}, Head {col + 1}")
    fig.subplots_adjust(hspace=0.5)
    return _save(fig, path)


def plot_positional_encoding(d_model=48, max_len=96, path=None) -> Figure:
    """The encoding as an image (hidden dimension x position) and the first four dimensions as curves."""
    pe = PositionalEncoding(d_model=d_model, max_len=max_len).pe.squeeze(0).T.numpy()
    fig = Figure(figsize=(12, 7))
    grid = fig.add_gridspec(3, 2)
    ax = fig.add_subplot(grid[0, :])
    im = ax.imshow(pe, cmap="RdGy", extent=(1, pe.shape[1] + 1, pe.shape[0] + 1, 1))
    fig.colorbar(im, ax=ax)
    ax.set(xlabel="Position in sequence", ylabel="Hidden dimension", title="Positional encoding over hidden dimensions")
    for i in range(4):
        a = fig.add_subplot(grid[1 + i // 2, i % 2])
        a.plot(np.arange(1, 17), pe[i, :16], color=f"C{i}", marker="o", markersize=6, markeredgecolor="black")
        a.set(title=f"Encoding in hidden dimension {i + 1}", xlabel="Position in sequence",
              ylabel="Positional encoding", ylim=(-1.2, 1.2))
        a.set_xticks(np.arange(1, 17))
    fig.subplots_adjust(hspace=0.8)
    return _save(fig, path)


def plot_lr_schedule(warmup=100, max_iters=2000, path=None) -> Figure:
    """The cosine warm-up learning-rate factor over training iterations."""
    steps = np.arange(max_iters)
    fig = Figure(figsize=(8, 3))
    ax = fig.add_subplot()
    ax.plot(steps, [warmup_cosine_factor(int(s), warmup, max_iters) for s in steps])
    ax.set(ylabel="Learning rate factor", xlabel="Iterations (in batches)", title="Cosine Warm-up Learning Rate Scheduler")
    return _save(fig, path)
