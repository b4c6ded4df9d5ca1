"""Reverse task: the tutorial's own code vs transformer_lab, trained side by side in one run.

Both use the tutorial's recipe (1 layer, 1 head, dim 32, lr 5e-4, warm-up 50, 10 epochs,
batch 128, clip 5) on data of the same sizes; the time is that of ``trainer.fit`` (plus any
compile time, of which the reference has none). Prints each time, each test accuracy and the
ratio. Usage: ``python benchmarks/bench_reverse.py [--repeats N] [--epochs E]``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "reference"), str(ROOT / "third_party" / "tutorial6")]

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
import torch.utils.data as data  # noqa: E402

import tutorial6  # noqa: E402
from transformer_lab import ReverseConfig, train_reverse  # noqa: E402
from transformer_lab.speed import TrainingSpeedups  # noqa: E402


@contextlib.contextmanager
def timed_fit():
    """Time every ``Trainer.fit`` inside the block; yields a dict whose "s" holds the last fit's seconds."""
    fit_time, orig_fit = {}, pl.Trainer.fit

    def fit(self, *a, **k):
        t0 = time.perf_counter()
        orig_fit(self, *a, **k)
        fit_time["s"] = time.perf_counter() - t0

    pl.Trainer.fit = fit
    try:
        yield fit_time
    finally:
        pl.Trainer.fit = orig_fit


def run_tutorial(epochs: int) -> tuple[float, float]:
    """The tutorial's loaders, model and Trainer, as in its notebook cells [16] and [19]-[20]."""
    pl.seed_everything(42, verbose=False)
    train_loader = data.DataLoader(tutorial6.ReverseDataset(10, 16, 50000), batch_size=128, shuffle=True,
                                   drop_last=True, pin_memory=torch.cuda.is_available())
    val_loader = data.DataLoader(tutorial6.ReverseDataset(10, 16, 1000), batch_size=128)
    test_loader = data.DataLoader(tutorial6.ReverseDataset(10, 16, 10000), batch_size=128)
    with timed_fit() as fit_time, tempfile.TemporaryDirectory() as d:
        _, result, _ = tutorial6.train_reverse(
            train_loader, val_loader, test_loader, d, max_epochs=epochs, input_dim=10, model_dim=32,
            num_heads=1, num_classes=10, num_layers=1, dropout=0.0, lr=5e-4, warmup=50)
    return fit_time["s"], result["test_acc"]


def run_reference(epochs: int) -> tuple[float, float]:
    with timed_fit() as fit_time, tempfile.TemporaryDirectory() as d:
        _, result = train_reverse(d, ReverseConfig(max_epochs=epochs), progress=False,  # as the CLI trains
                                  callbacks=[TrainingSpeedups()])
    return fit_time["s"], result["test_acc"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3, help="alternating runs of each (median reported)")
    p.add_argument("--epochs", type=int, default=10)
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    times = {"tutorial": [], "reference": []}
    accs = {"tutorial": [], "reference": []}
    for r in range(args.repeats):
        for name, fn in (("tutorial", run_tutorial), ("reference", run_reference)):
            t, acc = fn(args.epochs)
            times[name].append(t)
            accs[name].append(acc)
            print(f"run {r + 1}/{args.repeats} {name:9s}: fit {t:6.1f} s, test acc {100 * acc:6.2f}%", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device "
          f"{'cuda' if torch.cuda.is_available() else 'cpu'}")
    for k in med:
        print(f"{k:9s}: median fit {med[k]:6.1f} s, min test acc {100 * min(accs[k]):6.2f}%")
    print(f"speed-up (tutorial / reference, medians): {med['tutorial'] / med['reference']:.2f}x")


if __name__ == "__main__":
    main()
