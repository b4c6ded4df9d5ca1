"""ResNet34 feature extraction: images per second, the tutorial's path vs transformer_lab, in one run.

Tutorial: a CIFAR-style dataset returning ``transform(Image.fromarray(img))`` with PIL
``Resize((224, 224))``, ``ToTensor``, ``Normalize`` (its cell [26]), a DataLoader (batch 128,
``num_workers=4``, its cell [28]) and ``resnet34`` with the classifier removed.
Reference: :func:`transformer_lab.features.extract_features` (uint8 batches resized and
normalised on the device; channels-last + float16 autocast on CUDA).
Both run the same randomly initialised ResNet34 (``weights=None``: ImageNet's cannot be fetched
here, and the speed does not depend on the weights) on the same synthetic uint8 images, and the
largest feature difference is printed as a check that both compute the same thing.

Usage: ``python benchmarks/bench_features.py [--images 128] [--batch-size 64] [--repeats 3] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import warnings
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "reference")]

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.utils.data as data  # noqa: E402
import torchvision.transforms as T  # noqa: E402
from PIL import Image  # noqa: E402

from transformer_lab.cifar import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from transformer_lab.features import build_resnet34, extract_features  # noqa: E402


class ArrayImages(data.Dataset):
    """What torchvision's CIFAR100.__getitem__ does with its arrays: PIL image -> transform."""

    def __init__(self, images, transform):
        self.images, self.transform = images, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.images[i])), 0


@torch.no_grad()
def tutorial_features(images, model, device, batch_size, workers):
    transform = T.Compose([T.Resize((224, 224)), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    loader = data.DataLoader(ArrayImages(images, transform), batch_size=batch_size, shuffle=False,
                             drop_last=False, num_workers=workers)
    feats = []
    for imgs, _ in loader:
        feats.append(model(imgs.to(device)))
    return torch.cat(feats).cpu()


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=64, help="the tutorial used 128")
    p.add_argument("--workers", type=int, default=4, help="the tutorial's DataLoader workers: 4")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore", ".*worker processes in total.*")  # 4 workers on a 2-core box: as the tutorial
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    images = np.random.default_rng(0).integers(0, 256, (args.images, 32, 32, 3), dtype=np.uint8)
    torch.manual_seed(0)
    model = build_resnet34("none").to(device)
    tutorial_model = build_resnet34("none")
    tutorial_model.load_state_dict(model.state_dict())
    tutorial_model.fc = nn.Sequential()  # as the tutorial removes the classifier
    tutorial_model = tutorial_model.to(device).eval()
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, images {args.images}, "
          f"batch {args.batch_size}, tutorial workers {args.workers}")
    rates = {"tutorial": [], "reference": []}
    outs = {}
    for r in range(args.repeats):
        for name in rates:
            if name == "tutorial":
                fn = lambda: tutorial_features(images, tutorial_model, device, args.batch_size, args.workers)  # noqa: E731
            else:
                fn = lambda: extract_features(images, model, batch_size=args.batch_size, device=device,  # noqa: E731
                                              progress=False)
            outs[name], seconds = timed(fn)
            rates[name].append(args.images / seconds)
            print(f"run {r + 1}/{args.repeats} {name:9s}: {rates[name][-1]:8.1f} images/s", flush=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    for k, v in med.items():
        print(f"{k:9s}: median {v:8.1f} images/s; CIFAR-100's 60 000 images = {60000 / v / 60:6.1f} min")
    diff = (outs["tutorial"] - outs["reference"]).abs().max().item()
    scale = outs["tutorial"].abs().max().item()
    print(f"largest feature difference {diff:.3g} (features up to {scale:.3g}; PIL rounds to uint8, "
          f"{'float16 autocast' if device.type == 'cuda' else 'float32'} here)")
    print(f"speed-up (reference / tutorial, medians): {med['reference'] / med['tutorial']:.2f}x")


if __name__ == "__main__":
    main()
