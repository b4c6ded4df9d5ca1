"""Sinusoidal positional encoding (tutorial section 4)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ._checks import check_tensor


def sinusoidal_table(max_len: int, d_model: int) -> torch.Tensor:
    """``PE[pos, 2i] = sin(pos / 10000^(2i/d))``, ``PE[pos, 2i+1] = cos(...)``; shape ``[max_len, d_model]``."""
    position = torch.arange(max_len, dtype=torch.float).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term[: d_model // 2])  # odd d_model: one fewer cos column
    return pe


class PositionalEncoding(nn.Module):
    """Adds the sinusoidal table to ``x`` of shape ``[Batch, SeqLen, d_model]``.

    ``pe`` (``[1, max_len, d_model]``) is a non-persistent buffer: it follows the module's
    device but is not in the state dict, as in the tutorial.
    """

    def __init__(self, d_model, max_len=5000):
        super().__init__()
        self.d_model = d_model
        self.max_len = max_len
        self.register_buffer("pe", sinusoidal_table(max_len, d_model).unsqueeze(0), persistent=False)

    def forward(self, x):
        """``x``: ``[Batch, SeqLen, d_model]`` -> ``x`` plus the first ``SeqLen`` rows of the table (same shape)."""
        check_tensor("PositionalEncoding", "x", x, ndim=3, last_dim=self.d_model,
                     expected=f"[Batch, SeqLen, {self.d_model}]", floating=True)
        if x.size(1) > self.max_len:
            raise ValueError(f"PositionalEncoding: sequence length {x.size(1)} exceeds max_len {self.max_len}")
        return x + self.pe[:, : x.size(1)].to(x.dtype)
