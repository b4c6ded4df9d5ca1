"""``transformer-lab``: train the tasks and draw the tutorial's figures from the command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from pathlib import Path


def _quiet_lightning():
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning.fabric", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _train_reverse(args):
    import torch

    from .plots import plot_attention_maps
    from .reverse import ReverseConfig, reverse_loaders, train_reverse
    from .run_log import command_callbacks
    from .speed import TrainingSpeedups

    cfg = ReverseConfig(max_epochs=args.epochs, seed=args.seed, cpu_threads=args.threads or None)
    out = Path(args.out)
    model, result = train_reverse(out, cfg, progress=not args.quiet, accelerator=args.accelerator,
                                  callbacks=[TrainingSpeedups(), *command_callbacks(args.quiet)])
    _, val_loader, _ = reverse_loaders(cfg)
    tokens, _ = next(iter(val_loader))
    model.eval()
    maps = model.get_attention_maps(tokens.to(model.device))
    fig_path = out / "reverse_attention.png"
    plot_attention_maps(tokens, maps, idx=0, path=fig_path)
    result["attention_figure"] = str(fig_path)
    (out / "reverse_result.json").write_text(json.dumps(result, indent=2))
    print(f"val accuracy:  {100 * result['val_acc']:.2f}%")
    print(f"test accuracy: {100 * result['test_acc']:.2f}%")
    print(f"checkpoint:    {result['checkpoint']}")
    print(f"attention map: {fig_path}")
    return 0


def _plot(args):
    from .plots import plot_lr_schedule, plot_positional_encoding

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    if args.what == "pe":
        plot_positional_encoding(d_model=args.d_model, max_len=args.max_len, path=args.out)
    else:
        plot_lr_schedule(warmup=args.warmup, max_iters=args.max_iters, path=args.out)
    print(args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="transformer-lab", description=__doc__.replace("``", ""))
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a task with the tutorial's recipe").add_subparsers(
        dest="task", required=True)
    rev = train.add_parser("reverse", help="sequence reversal (1 layer, 1 head, dim 32, 10 epochs)")
    rev.add_argument("--out", default="runs/reverse", help="folder for the checkpoint, result JSON and figure")
    rev.add_argument("--epochs", type=int, default=10)
    rev.add_argument("--seed", type=int, default=42)
    rev.add_argument("--accelerator", default="auto", help="Lightning accelerator: auto, cpu or gpu")
    rev.add_argument("--threads", type=int, default=1,
                     help="CPU threads while training on a CPU (default 1: as fast as all cores on an idle "
                          "machine, far faster on a shared one; 0: torch's default)")
    rev.add_argument("--quiet", action="store_true", help="no progress bars, one line per epoch instead (for CI logs)")
    rev.set_defaults(func=_train_reverse)

    plot = sub.add_parser("plot", help="draw a figure of the tutorial to a file").add_subparsers(
        dest="what", required=True)
    pe = plot.add_parser("pe", help="positional encoding")
    pe.add_argument("--d-model", type=int, default=48)
    pe.add_argument("--max-len", type=int, default=96)
    pe.add_argument("--out", default="runs/positional_encoding.png")
    pe.set_defaults(func=_plot)
    lr = plot.add_parser("lr", help="cosine warm-up learning-rate factor")
    lr.add_argument("--warmup", type=int, default=100)
    lr.add_argument("--max-iters", type=int, default=2000)
    lr.add_argument("--out", default="runs/lr_schedule.png")
    lr.set_defaults(func=_plot)

    from . import anomaly_cli  # the set-anomaly commands (train anomaly, features, plot anomaly-*)

    anomaly_cli.register(train=train, top=sub, plot=plot)
    return parser


def main(argv=None) -> int:
    from .run_log import fail_if_stopped

    os.environ.setdefault("MPLBACKEND", "Agg")
    _quiet_lightning()
    args = build_parser().parse_args(argv)
    try:
        with fail_if_stopped(f"transformer-lab {args.command}"):
            return args.func(args)
    except (FileNotFoundError, ValueError) as e:  # our errors say what to do; no traceback
        print(f"transformer-lab: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
