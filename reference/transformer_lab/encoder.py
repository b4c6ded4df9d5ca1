"""Post-LayerNorm Transformer encoder block and stack (tutorial section 3)."""

from __future__ import annotations

import torch.nn as nn

from .attention import MultiheadAttention


class EncoderBlock(nn.Module):
    """``x = LayerNorm(x + Dropout(MHA(x)))``, then ``x = LayerNorm(x + Dropout(MLP(x)))``.

    Args:
        input_dim: features of the input, also the output (``model_dim``)
        num_heads: attention heads
        dim_feedforward: hidden width of the Linear-ReLU-Linear MLP
        dropout: dropout probability inside the MLP and on both residual branches
    """

    def __init__(self, input_dim, num_heads, dim_feedforward, dropout=0.0):
        super().__init__()
        self.self_attn = MultiheadAttention(input_dim, input_dim, num_heads)
        # Submodule indices (0: Linear, 3: Linear) are the tutorial's checkpoint keys.
        self.linear_net = nn.Sequential(
            nn.Linear(input_dim, dim_feedforward),
            nn.Dropout(dropout),
            nn.ReLU(inplace=True),
            nn.Linear(dim_feedforward, input_dim),
        )
        self.norm1 = nn.LayerNorm(input_dim)
        self.norm2 = nn.LayerNorm(input_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, mask=None):
        """``x``: ``[Batch, SeqLen, input_dim]`` -> ``[Batch, SeqLen, input_dim]``."""
        x = self.norm1(x + self.dropout(self.self_attn(x, mask=mask)))
        x = self.norm2(x + self.dropout(self.linear_net(x)))
        return x


class TransformerEncoder(nn.Module):
    """A stack of ``num_layers`` identical :class:`EncoderBlock` s (``block_args`` go to each)."""

    def __init__(self, num_layers, **block_args):
        super().__init__()
        self.layers = nn.ModuleList([EncoderBlock(**block_args) for _ in range(num_layers)])

    def forward(self, x, mask=None):
        for layer in self.layers:
            x = layer(x, mask=mask)
        return x

    def get_attention_maps(self, x, mask=None):
        """Attention weights of every layer: a list of ``num_layers`` tensors ``[Batch, Heads, SeqLen, SeqLen]``.

        Unlike the tutorial (which ran ``layer(x)`` without the mask), each layer here sees
        the mask, so maps of masked inputs are right after the first layer too.
        """
        attention_maps = []
        for layer in self.layers:
            _, attn_map = layer.self_attn(x, mask=mask, return_attention=True)
            attention_maps.append(attn_map)
            x = layer(x, mask=mask)
        return attention_maps
