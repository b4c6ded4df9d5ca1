"""Where and how training runs: device choice and CPU thread count."""

from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def cpu_threads(n: int | None):
    """Run the block with ``n`` intra-op CPU threads (None: leave as is), then restore.

    Small models spend their time in many tiny operations; splitting each over threads
    costs more than it gains, and on a busy machine waiting threads slow every op down.
    Measured on this project's 2-core CI machine (benchmarks/README.md): one thread is
    faster for the reverse model, and far faster when another process competes for the cores.
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
