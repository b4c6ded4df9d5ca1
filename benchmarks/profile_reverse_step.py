"""Where a reverse-task training step goes, on this machine: the measurements behind the reference's choices.

Prints medians of alternating timed blocks (robust to other load), each a ratio in the same run:
  1. one optimiser step (forward, loss, backward, clip, Adam, scheduler), tutorial vs reference,
     with 1 and 2 intra-op threads;
  2. attention forward+backward at the reverse task's size (B=128, H=1, T=16, d=32):
     F.scaled_dot_product_attention vs the explicit matmul-softmax-matmul;
  3. the input layer for 10 categories: embedding lookup vs one-hot times the Linear;
  4. Lightning's fit loop (self.log on every step, as the tutorial) vs a hand-written loop over
     the same steps.
Usage: python benchmarks/profile_reverse_step.py [--blocks 7]
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "reference"), str(ROOT / "third_party" / "tutorial6")]

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import tutorial6  # noqa: E402
from transformer_lab import ReverseConfig, ReversePredictor  # noqa: E402
from transformer_lab.reverse import reverse_loaders  # noqa: E402

RECIPE = dict(input_dim=10, model_dim=32, num_heads=1, num_classes=10, num_layers=1, dropout=0.0, lr=5e-4,
              warmup=50, max_iters=100_000)


def median_us(fns: dict, blocks: int, n: int) -> dict:
    """Alternate ``n`` calls of each function per block; median microseconds per call."""
    times = {k: [] for k in fns}
    for _ in range(blocks):
        for name, fn in fns.items():
            for _ in range(3):
                fn()
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            times[name].append((time.perf_counter() - t0) / n * 1e6)
    return {k: statistics.median(v) for k, v in times.items()}


def step_fn(model, onehot):
    opt = model.configure_optimizers()
    x = torch.randint(10, (128, 16), generator=torch.Generator().manual_seed(0))
    y = x.flip(-1)

    params = [p for group in opt.param_groups for p in group["params"]]  # what Lightning clips

    def step():
        logits = model(F.one_hot(x, 10).float() if onehot else x)
        loss = F.cross_entropy(logits.reshape(-1, 10), y.reshape(-1))  # both sides: the tutorial's [-1, C] view
        model.optimizer_zero_grad(0, 0, opt)  # as Lightning does
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5)
        opt.step()
        model.lr_scheduler.step()
    return step


def attention_fns():
    B, H, T, D = 128, 1, 16, 32
    qkv = torch.randn(B, H, T, 3 * D, requires_grad=True)
    grad = torch.randn(B, H, T, D)

    def sdpa():
        q, k, v = qkv.chunk(3, -1)
        F.scaled_dot_product_attention(q, k, v).backward(grad)

    def explicit():
        q, k, v = qkv.chunk(3, -1)
        (torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(D), -1) @ v).backward(grad)
    return {"sdpa": sdpa, "explicit": explicit}


def input_fns():
    weight, bias = torch.randn(32, 10, requires_grad=True), torch.randn(32, requires_grad=True)
    tokens, grad = torch.randint(10, (128, 16)), torch.randn(128, 16, 32)
    return {"embedding": lambda: (F.embedding(tokens, weight.t()) + bias).backward(grad),
            "one_hot_linear": lambda: F.linear(F.one_hot(tokens, 10).float(), weight, bias).backward(grad)}


def loop_ms_per_step(steps_per_run: int, runs: int) -> dict:
    cfg = ReverseConfig(max_epochs=1, train_size=128 * steps_per_run)
    train_loader, _, _ = reverse_loaders(cfg)

    def fit(cls):
        model = cls(**RECIPE)
        trainer = pl.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                             enable_checkpointing=False, gradient_clip_val=5, num_sanity_val_steps=0,
                             limit_val_batches=0)
        t0 = time.perf_counter()
        trainer.fit(model, train_loader)
        return time.perf_counter() - t0

    def manual():
        model = ReversePredictor(**RECIPE)
        step_once = step_fn(model, onehot=False)
        t0 = time.perf_counter()
        for _ in train_loader:
            step_once()
        return time.perf_counter() - t0

    out = {"lightning, log every step": [], "hand-written loop": []}
    for _ in range(runs):
        out["lightning, log every step"].append(fit(ReversePredictor))
        out["hand-written loop"].append(manual())
    return {k: statistics.median(v) / steps_per_run * 1e3 for k, v in out.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--blocks", type=int, default=7)
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    for name in ("pytorch_lightning", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.ERROR)
    print(f"torch {torch.__version__}, default threads {torch.get_num_threads()}")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        r = median_us({"tutorial": step_fn(tutorial6.ReversePredictor(**RECIPE), onehot=True),
                       "reference": step_fn(ReversePredictor(**RECIPE), onehot=False)}, args.blocks, 40)
        print(f"[{threads} thread(s)] optimiser step: tutorial {r['tutorial'] / 1e3:.2f} ms, "
              f"reference {r['reference'] / 1e3:.2f} ms, ratio {r['tutorial'] / r['reference']:.2f}x")
    torch.set_num_threads(2)
    r = median_us(attention_fns(), args.blocks, 100)
    print(f"attention fwd+bwd (B128 T16 d32): sdpa {r['sdpa']:.0f} us, explicit {r['explicit']:.0f} us")
    r = median_us(input_fns(), args.blocks, 100)
    print(f"input layer fwd+bwd: embedding {r['embedding']:.0f} us, one-hot x Linear {r['one_hot_linear']:.0f} us")
    for k, v in loop_ms_per_step(120, 3).items():
        print(f"{k:27s}: {v:.2f} ms/step")


if __name__ == "__main__":
    main()
