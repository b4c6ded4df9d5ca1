"""CPU hogs: a machine shared with other work, for the tests and benchmarks that must hold up under load."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os


def _spin() -> None:
    os.setsid()  # a session, so a scheduling autogroup, of its own: like another user's job, not a thread
    while True:  # of the caller's (with autogroups, hogs in the caller's session would compete only with it)
        pass


@contextlib.contextmanager
def cpu_hogs(n: int | None = None):
    """Run the block while ``n`` processes (default: 3 per core) spin on the CPU at normal priority,
    each in a session of its own (Linux gives every session a fair share when autogroups are on)."""
    n = 3 * (os.cpu_count() or 1) if n is None else n
    ctx = mp.get_context("spawn")  # no copy of the caller's torch state in each hog
    hogs = [ctx.Process(target=_spin, daemon=True) for _ in range(n)]
    for h in hogs:
        h.start()
    try:
        yield n
    finally:
        for h in hogs:
            h.kill()
        for h in hogs:
            h.join()
