"""Where and how training runs: device choice and CPU thread count."""

from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def cpu_threads(n: int | None):
    """Run the block with ``n`` intra-op CPU threads (None: leave as is), then restore.

    Small models spend their time in many tiny operations. On an idle 2-core machine torch's two
    threads are no faster for the reverse model than one (the notebook's quick run: 8.4 s against
    8.3 s), but when other processes compete for the cores, threads waiting for each other slow
    every operation down (210 s against 60 s with six other busy processes). So training on a
    CPU uses one thread by default.
    """
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def uses_cpu(accelerator: str) -> bool:
    """True when a Lightning ``accelerator`` string will train on the CPU."""
    return accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
