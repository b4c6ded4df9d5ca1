"""Set anomaly: training steps per second, the tutorial's code vs transformer_lab, in one run.

Both train the tutorial's recipe (4 layers, 4 heads, dim 256, dropout 0.1, input dropout 0.1,
lr 5e-4, warm-up 100, clip 2, batch 64) with Lightning on the same synthetic features of the real
shape (45 000 training images x 512, 100 classes). The tutorial feeds them through its
``SetAnomalyDataset`` (numpy sampling per item) and a DataLoader with its ``num_workers=4``; the
reference through ``SetBatchLoader`` (whole batches sampled with tensor ops on the device). The
rate is measured between the end of step ``--warmup`` and the end of the last step; runs
alternate and the median is reported. Runs on the CPU, and also on CUDA when there is one.

Usage: ``python benchmarks/bench_anomaly.py [--steps 30] [--warmup 5] [--repeats 3] [--threads N]``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "reference"), str(ROOT / "third_party" / "tutorial6")]

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
import torch.utils.data as data  # noqa: E402

import tutorial6  # noqa: E402
from transformer_lab.anomaly import AnomalyConfig, AnomalyPredictor  # noqa: E402
from transformer_lab.set_anomaly import SetAnomalyDataset, SetBatchLoader, split_train_val, synthetic_features  # noqa: E402

CFG = AnomalyConfig()
HPARAMS = dict(input_dim=512, model_dim=CFG.model_dim, num_heads=CFG.num_heads, num_classes=1,
               num_layers=CFG.num_layers, dropout=CFG.dropout, input_dropout=CFG.input_dropout, lr=CFG.lr,
               warmup=CFG.warmup, max_iters=CFG.max_epochs * 703)


class StepClock(pl.Callback):
    def __init__(self, device):
        self.device, self.times = device, []

    def on_train_batch_end(self, *args):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.times.append(time.perf_counter())


def steps_per_second(model, loader, device, steps, warmup) -> float:
    clock = StepClock(device)
    trainer = pl.Trainer(accelerator=device.type, devices=1, max_steps=steps, limit_val_batches=0,
                         gradient_clip_val=CFG.gradient_clip_val, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[clock])
    trainer.fit(model, loader)
    t = clock.times
    return (len(t) - warmup) / (t[-1] - t[warmup - 1])


def tutorial_run(feats, labels, device, steps, warmup, workers):
    pl.seed_everything(42, verbose=False)
    ds = tutorial6.SetAnomalyDataset(feats, labels, set_size=10, train=True)
    loader = data.DataLoader(ds, batch_size=CFG.batch_size, shuffle=True, drop_last=True, num_workers=workers,
                             pin_memory=device.type == "cuda")
    return steps_per_second(tutorial6.AnomalyPredictor(**HPARAMS), loader, device, steps, warmup)


def reference_run(feats, labels, device, steps, warmup, workers=None):
    pl.seed_everything(42, verbose=False)
    loader = SetBatchLoader(SetAnomalyDataset(feats, labels, train=True), CFG.batch_size, device=device, seed=42)
    return steps_per_second(AnomalyPredictor(**HPARAMS), loader, device, steps, warmup)


def batches_per_second(loader, batches, warmup, device) -> float:
    """The input pipeline alone: batches delivered on ``device`` per second (no model)."""
    it = iter(loader)
    for _ in range(warmup):
        next(it)[0].to(device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)[0].to(device, non_blocking=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batches / (time.perf_counter() - t0)


def data_only(feats, labels, device, workers, batches=100, warmup=10):
    ds = tutorial6.SetAnomalyDataset(feats, labels, set_size=10, train=True)
    tut = data.DataLoader(ds, batch_size=CFG.batch_size, shuffle=True, drop_last=True, num_workers=workers,
                          pin_memory=device.type == "cuda")
    ref = SetBatchLoader(SetAnomalyDataset(feats, labels, train=True), CFG.batch_size, device=device, seed=42)
    return batches_per_second(tut, batches, warmup, device), batches_per_second(ref, batches, warmup, device)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30, help="training steps per run")
    p.add_argument("--warmup", type=int, default=5, help="steps left out of the rate")
    p.add_argument("--repeats", type=int, default=3, help="alternating runs of each (median reported)")
    p.add_argument("--workers", type=int, default=4, help="the tutorial's DataLoader workers (its notebook: 4)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--devices", default=None, help="comma-separated: cpu,cuda (default: cpu, plus cuda if present)")
    args = p.parse_args(argv)
    if not 0 < args.warmup < args.steps:
        p.error("need 0 < --warmup < --steps")
    warnings.filterwarnings("ignore")
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning.fabric", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if args.threads:
        torch.set_num_threads(args.threads)
    feats, labels = synthetic_features(num_classes=100, per_class=500)
    tr_f, tr_l, _, _ = split_train_val(feats, labels)
    devices = args.devices.split(",") if args.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, lightning {pl.__version__}, threads {torch.get_num_threads()}, "
          f"train sets {len(tr_l)}, batch {CFG.batch_size}, steps {args.steps} (first {args.warmup} not timed)")
    for dev in devices:
        device = torch.device(dev)
        if device.type == "cuda":
            print(f"cuda: {torch.cuda.get_device_name()}")
        rates = {"tutorial": [], "reference": []}
        for r in range(args.repeats):
            for name, fn in (("tutorial", tutorial_run), ("reference", reference_run)):
                rate = fn(tr_f, tr_l, device, args.steps, args.warmup, args.workers)
                rates[name].append(rate)
                print(f"[{dev}] run {r + 1}/{args.repeats} {name:9s}: {rate:7.2f} steps/s "
                      f"({1000 / rate:6.1f} ms/step)", flush=True)
        med = {k: statistics.median(v) for k, v in rates.items()}
        for k, v in med.items():
            print(f"[{dev}] {k:9s}: median {v:7.2f} steps/s ({1000 / v:6.1f} ms/step); 100 epochs of 703 steps "
                  f"= {70300 / v / 60:7.1f} min")
        print(f"[{dev}] speed-up (reference / tutorial, medians): {med['reference'] / med['tutorial']:.2f}x")
        tut, ref = data_only(tr_f, tr_l, device, args.workers)
        print(f"[{dev}] input pipeline alone (100 batches of 64 sets, no model): tutorial {tut:8.1f} batches/s "
              f"({1000 / tut:5.2f} ms/batch), reference {ref:8.1f} batches/s ({1000 / ref:5.2f} ms/batch), "
              f"{ref / tut:.1f}x")


if __name__ == "__main__":
    main()
