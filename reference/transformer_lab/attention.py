"""Scaled dot-product attention and multi-head attention (tutorial sections 1-2)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import check_mask, check_tensor


def mask_fill_value(dtype: torch.dtype) -> float:
    """The most negative finite value of ``dtype``.

    The tutorial fills masked logits with -9e15, which overflows to -inf in float16 and
    turns fully masked rows into NaN. The dtype's own minimum never overflows, and after
    the max-subtraction inside softmax it still underflows to an exact zero weight.
    """
    return torch.finfo(dtype).min


def scaled_dot_product(q, k, v, mask=None):
    """Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V.

    Args:
        q: queries ``[..., SeqLen_q, d_k]``
        k: keys ``[..., SeqLen_k, d_k]``
        v: values ``[..., SeqLen_k, d_v]``
        mask: optional, broadcastable to ``[..., SeqLen_q, SeqLen_k]``; positions where
            ``mask == 0`` (or False) get zero attention (the tutorial's convention).

    Returns:
        values ``[..., SeqLen_q, d_v]`` and attention ``[..., SeqLen_q, SeqLen_k]`` (rows sum to 1).
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_tensor("scaled_dot_product", name, t, floating=True)
    if q.size(-1) != k.size(-1) or k.size(-2) != v.size(-2):
        raise ValueError(
            "scaled_dot_product: q and k must share the last dimension (d_k) and k and v the sequence "
            f"dimension; got q {list(q.shape)}, k {list(k.shape)}, v {list(v.shape)}"
        )
    d_k = q.size(-1)
    attn_logits = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(d_k)
    if mask is not None:
        check_mask("scaled_dot_product", mask, attn_logits.shape)
        attn_logits = attn_logits.masked_fill(mask == 0, mask_fill_value(attn_logits.dtype))
    attention = F.softmax(attn_logits, dim=-1)
    values = torch.matmul(attention, v)
    return values, attention


class MultiheadAttention(nn.Module):
    """Multi-head self-attention with one stacked q/k/v projection.

    Parameter names and the q/k/v layout are the tutorial's, so its checkpoints load:
    ``qkv_proj`` outputs ``[Batch, SeqLen, num_heads, 3 * head_dim]`` and each head's slice
    holds its q, k and v one after the other (not q of all heads, then k, then v).

    Args:
        input_dim: features of the input ``x``
        embed_dim: total features of q/k/v and of the output; divisible by ``num_heads``
        num_heads: number of attention heads
    """

    def __init__(self, input_dim, embed_dim, num_heads):
        super().__init__()
        if num_heads < 1 or embed_dim % num_heads != 0:
            raise ValueError(
                f"MultiheadAttention: embed_dim (model_dim) {embed_dim} must be divisible by num_heads "
                f"{num_heads}; choose e.g. num_heads in {[h for h in range(1, embed_dim + 1) if embed_dim % h == 0][:8]}"
            )
        self.input_dim = input_dim
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.qkv_proj = nn.Linear(input_dim, 3 * embed_dim)
        self.o_proj = nn.Linear(embed_dim, embed_dim)
        self._reset_parameters()

    def _reset_parameters(self):
        # Original Transformer initialisation (as in torch.nn.MultiheadAttention).
        nn.init.xavier_uniform_(self.qkv_proj.weight)
        nn.init.zeros_(self.qkv_proj.bias)
        nn.init.xavier_uniform_(self.o_proj.weight)
        nn.init.zeros_(self.o_proj.bias)

    def forward(self, x, mask=None, return_attention=False):
        """Args:
            x: ``[Batch, SeqLen, input_dim]``
            mask: optional, broadcastable to ``[Batch, num_heads, SeqLen, SeqLen]``; 0 = masked
            return_attention: also return the attention weights ``[Batch, num_heads, SeqLen, SeqLen]``

        Returns:
            ``[Batch, SeqLen, embed_dim]`` (and the attention weights if asked for).
        """
        check_tensor("MultiheadAttention", "x", x, ndim=3, last_dim=self.input_dim,
                     expected=f"[Batch, SeqLen, {self.input_dim}]", floating=True)
        B, T, _ = x.shape
        qkv = self.qkv_proj(x).reshape(B, T, self.num_heads, 3 * self.head_dim)
        q, k, v = qkv.transpose(1, 2).chunk(3, dim=-1)  # each (B, nh, T, hs)
        if mask is not None:
            check_mask("MultiheadAttention", mask, (B, self.num_heads, T, T))
        values, attention = scaled_dot_product(q, k, v, mask=mask)
        values = values.transpose(1, 2).reshape(B, T, self.embed_dim)  # (B, T, nh*hs)
        o = self.o_proj(values)
        return (o, attention) if return_attention else o
