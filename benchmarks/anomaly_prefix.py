#!/usr/bin/env python
"""The first K epochs of the full anomaly recipe's 100-epoch run, on the synthetic features of the real shape.

A lower bound for what the whole run reaches, measurable where 100 epochs are out of reach (a CPU):
the schedule (warm-up, then cosine over 100 epochs) and the seed are the whole run's, so these K
epochs are its first K, and its best-by-``val_acc`` checkpoint is at least as good on validation.
``tests/test_gpu_training.py`` takes its synthetic-features threshold from this.

``python benchmarks/anomaly_prefix.py --epochs 6 --accelerator cpu``

Data: as ``transformer-lab train anomaly --synthetic`` (100 classes, 500 train + 100 test images per
class, 512-d, seed 42; 10 % of train held out for validation). Prints the validation accuracy after
each epoch, then the train/val/test accuracy of the best checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import pytorch_lightning as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reference"))
from transformer_lab.anomaly import AnomalyConfig, train_anomaly  # noqa: E402
from transformer_lab.set_anomaly import split_train_val, synthetic_features  # noqa: E402


class StopAfter(pl.Callback):
    """Stop the run after ``epochs`` epochs; print each epoch's validation accuracy."""

    def __init__(self, epochs: int):
        self.epochs, self.t0, self.val_acc = epochs, time.perf_counter(), []

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        self.val_acc.append(float(trainer.callback_metrics["val_acc"]))
        print(f"epoch {trainer.current_epoch}: step {trainer.global_step}, val_acc {100 * self.val_acc[-1]:.2f}%, "
              f"{time.perf_counter() - self.t0:.0f} s", flush=True)
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=6, help="epochs to run of the 100-epoch schedule")
    ap.add_argument("--accelerator", default="auto")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (one is fastest for this model on 2 cores)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = AnomalyConfig()  # the full recipe: its max_epochs (100) sets the schedule
    feats, labels = synthetic_features(num_classes=100, per_class=600, seed=cfg.seed)
    k = 100 * 500  # labels cycle through the classes: the first 500 rows of each are train
    train_feats, train_labels, val_feats, val_labels = split_train_val(feats[:k], labels[:k])
    stop = StopAfter(args.epochs)
    trainer_init = pl.Trainer.__init__

    def with_stop(self, *a, callbacks=(), **kw):
        trainer_init(self, *a, callbacks=[*callbacks, stop], **kw)

    with tempfile.TemporaryDirectory() as ckpt, mock.patch.object(pl.Trainer, "__init__", with_stop):
        _, result = train_anomaly(ckpt, train_feats, train_labels, val_feats, val_labels, feats[k:], labels[k:],
                                  cfg, progress=False, accelerator=args.accelerator)
    best = max(range(len(stop.val_acc)), key=stop.val_acc.__getitem__)
    accs = {n: result[n] for n in ("train_acc", "val_acc", "test_acc")}
    print(f"best checkpoint (epoch {best}): " + ", ".join(f"{n} {100 * v:.2f}%" for n, v in accs.items()))
    print(json.dumps({"val_acc_per_epoch": stop.val_acc, **accs, "steps": result["steps"],
                      "fit_seconds": result["fit_seconds"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
