"""Trained checkpoints for the autograder's tests, made with the reference package and cached.

``reverse.ckpt``: the notebook's quick CPU recipe (a few seconds to a minute on 2 cores).
``anomaly.ckpt``: a small set-anomaly model trained on ``synthetic_features`` (the features the
grader uses with ``--anomaly-features synthetic``); CIFAR-100 is not needed.

The cache lives in ``runs/autograder-fixtures`` (git-ignored) and is keyed by the reference
source, so a change of the reference retrains. ``python tests/autograder_fixtures/checkpoints.py``
builds it ahead of the tests.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "runs" / "autograder-fixtures"
#: the synthetic features of the tests: the grader builds its test sets with the same spec
FEATURES_SPEC = "synthetic:0:64:0.5"
SYNTHETIC = {"num_classes": 100, "dim": 64, "noise": 0.5, "seed": 0}


def _key() -> str:
    h = hashlib.sha256()
    for f in sorted((ROOT / "reference" / "transformer_lab").glob("*.py")):
        if f.name in ("reverse.py", "anomaly.py", "predictor.py", "set_anomaly.py", "attention.py", "encoder.py"):
            h.update(f.read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:16]


def _quiet():
    import logging

    warnings.filterwarnings("ignore")
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning.fabric", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)


def train_reverse_ckpt(dest: Path) -> Path:
    _quiet()
    from transformer_lab.reverse import ReverseConfig, train_reverse

    cfg = ReverseConfig(train_size=12800, test_size=2000, max_epochs=4, lr=2e-3, warmup=20)
    with tempfile.TemporaryDirectory() as d:
        _, result = train_reverse(d, cfg, progress=False, accelerator="cpu")
        if result["test_acc"] < 0.995:
            raise RuntimeError(f"fixture reverse model reached only {result['test_acc']:.3f}")
        shutil.copyfile(result["checkpoint"], dest)
    return dest


def train_anomaly_ckpt(dest: Path) -> Path:
    _quiet()
    from transformer_lab.anomaly import AnomalyConfig, train_anomaly
    from transformer_lab.set_anomaly import split_train_val, synthetic_features

    feats, labels = synthetic_features(**SYNTHETIC, per_class=40)
    tr_f, tr_l, va_f, va_l = split_train_val(feats, labels, val_fraction=0.25)
    te_f, te_l = synthetic_features(**SYNTHETIC, per_class=20)
    cfg = AnomalyConfig(model_dim=32, num_heads=4, num_layers=1, dropout=0.0, input_dropout=0.0, lr=2e-3,
                        warmup=20, max_epochs=6, batch_size=64)
    with tempfile.TemporaryDirectory() as d:
        _, result = train_anomaly(d, tr_f, tr_l, va_f, va_l, te_f, te_l, cfg=cfg, progress=False, accelerator="cpu")
        if result["test_acc"] < 0.95:
            raise RuntimeError(f"fixture anomaly model reached only {result['test_acc']:.3f}")
        shutil.copyfile(result["checkpoint"], dest)
    return dest


def ensure(which=("reverse", "anomaly")) -> dict[str, Path]:
    """Paths of the cached checkpoints, training the missing ones."""
    d = CACHE / _key()
    d.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in which:
        path = d / f"{name}.ckpt"
        if not path.is_file():
            tmp = d / f".{name}.{os.getpid()}.ckpt"
            (train_reverse_ckpt if name == "reverse" else train_anomaly_ckpt)(tmp)
            os.replace(tmp, path)
        out[name] = path
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "reference"))
    import time

    t0 = time.time()
    print(ensure(tuple(sys.argv[1:]) or ("reverse", "anomaly")), f"{time.time() - t0:.0f} s")
