"""Cosine learning-rate schedule with linear warm-up (tutorial section 5)."""

from __future__ import annotations

import math

from torch.optim.lr_scheduler import LRScheduler


def warmup_cosine_factor(step: int, warmup: int, max_iters: int) -> float:
    """``0.5 * (1 + cos(pi * step / max_iters))``, times ``step / warmup`` while ``step <= warmup``.

    0 at step 0, 1 at the end of warm-up (to within the cosine's small decay), 0 at ``max_iters``.
    """
    factor = 0.5 * (1 + math.cos(math.pi * step / max_iters))
    if step <= warmup:
        factor *= step / warmup
    return factor


class CosineWarmupScheduler(LRScheduler):
    """Multiplies each group's base learning rate by :func:`warmup_cosine_factor`; step it once per batch.

    Subclasses the public ``LRScheduler`` (the tutorial used the private ``_LRScheduler``).
    """

    def __init__(self, optimizer, warmup, max_iters):
        if warmup <= 0 or max_iters <= 0:
            raise ValueError(f"CosineWarmupScheduler: warmup ({warmup}) and max_iters ({max_iters}) must be > 0")
        self.warmup = warmup
        self.max_num_iters = max_iters
        super().__init__(optimizer)

    def get_lr(self):
        lr_factor = self.get_lr_factor(epoch=self.last_epoch)
        return [base_lr * lr_factor for base_lr in self.base_lrs]

    def get_lr_factor(self, epoch):
        return warmup_cosine_factor(epoch, self.warmup, self.max_num_iters)
