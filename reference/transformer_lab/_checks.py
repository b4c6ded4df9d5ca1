"""Input validation that fails early with a message a person can act on.

Every public module checks its inputs here so that a wrong shape raises
``ValueError("MultiheadAttention: argument 'x' must have shape [Batch, SeqLen, 32], got [4, 7]")``
instead of a matmul error three calls deeper.
"""

from __future__ import annotations

import torch


def _fmt(shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def check_tensor(where: str, name: str, t, *, ndim: int | None = None, last_dim: int | None = None,
                 expected: str = "", floating: bool | None = None) -> None:
    """Raise ValueError/TypeError naming ``where``, the argument and the expected/received shape."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{where}: argument '{name}' must be a torch.Tensor, got {type(t).__name__}")
    if ndim is not None and t.dim() != ndim:
        raise ValueError(
            f"{where}: argument '{name}' must have {ndim} dimensions {expected}, "
            f"got shape {_fmt(t.shape)} ({t.dim()} dimensions)"
        )
    if last_dim is not None and t.size(-1) != last_dim:
        raise ValueError(
            f"{where}: argument '{name}' must have last dimension {last_dim} {expected}, got shape {_fmt(t.shape)}"
        )
    if floating is True and not t.is_floating_point():
        raise TypeError(f"{where}: argument '{name}' must be a floating-point tensor, got dtype {t.dtype}")
    if floating is False and (t.is_floating_point() or t.is_complex()):
        raise TypeError(f"{where}: argument '{name}' must be an integer tensor of class indices, got dtype {t.dtype}")


def check_mask(where: str, mask, scores_shape) -> None:
    """The mask must broadcast to the attention logits ``[..., SeqLen_q, SeqLen_k]``."""
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{where}: argument 'mask' must be a torch.Tensor or None, got {type(mask).__name__}")
    try:
        torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        raise ValueError(
            f"{where}: argument 'mask' of shape {_fmt(mask.shape)} does not broadcast to the attention "
            f"logits of shape {_fmt(scores_shape)}; use 1/True for positions to keep and 0/False to mask"
        ) from None
