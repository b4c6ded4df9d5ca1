"""How the ``transformer-lab train`` commands report progress and end: for terminals and CI logs alike."""

from __future__ import annotations

import contextlib
import signal
import sys
import time

import pytorch_lightning as pl


class EpochLines(pl.Callback):
    """One line per epoch (validation accuracy, seconds so far), and one a minute inside a long epoch:
    with ``--quiet`` there are no progress bars, but a log still shows that training goes on."""

    def __init__(self, every_seconds: float = 60.0):
        self.every = every_seconds

    def on_train_start(self, trainer, pl_module):
        self.t0 = self.last = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if time.monotonic() - self.last >= self.every:
            self._say(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: step {batch_idx + 1}"
                      f"/{trainer.num_training_batches}")

    def on_train_epoch_end(self, trainer, pl_module):
        acc = trainer.callback_metrics.get("val_acc")
        shown = f", val_acc {100 * float(acc):.2f}%" if acc is not None else ""
        self._say(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} done{shown}")

    def _say(self, text):
        self.last = time.monotonic()
        print(f"{text} ({self.last - self.t0:.0f} s)", flush=True)


class StoppedByTerm(SystemExit):
    """SIGTERM ended the command: exit status 143, never the 0 of a finished run."""

    def __init__(self, during: str):
        print(f"transformer-lab: {during} was stopped (SIGTERM): no result written; run the command again",
              file=sys.stderr, flush=True)
        super().__init__(128 + signal.SIGTERM)


@contextlib.contextmanager
def fail_if_stopped(during: str = "training"):
    """A SIGTERM (from ``timeout``, a scheduler, a closed CI job) inside the block fails the command.

    Lightning catches SIGTERM during ``fit``, stops at the end of the step and leaves with a bare
    ``SystemExit`` (exit status 0), as if training had finished: ``make demo`` would go on with a
    half-trained model. Lightning calls the handler found here too, which remembers the signal;
    outside ``fit`` (no Lightning handler) the signal ends the block at once.
    """
    stopped = []

    def on_term(signum, frame):
        stopped.append(signum)
        if signal.getsignal(signal.SIGTERM) is on_term:  # Lightning is not handling it: stop now
            raise StoppedByTerm(during)

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    except SystemExit as e:
        if not stopped or isinstance(e, StoppedByTerm):
            raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    if stopped:
        raise StoppedByTerm(during)


def command_callbacks(quiet: bool) -> list[pl.Callback]:
    """The callbacks the training commands add: epoch lines when progress bars are off."""
    return [EpochLines()] if quiet else []
