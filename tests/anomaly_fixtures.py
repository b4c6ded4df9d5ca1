"""Helpers for the set-anomaly tests: a tiny CIFAR-100 in the real on-disk format, synthetic features."""

from __future__ import annotations

import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np
import torch


class _Py2Pickler(pickle._Pickler):
    """Writes ``str`` and ``bytes`` as Python 2 strings (BINSTRING), as the real CIFAR files do.

    So ``pickle.load(f, encoding="latin1")`` (torchvision) sees ``"data"`` keys and
    ``pickle.load(f, encoding="bytes")`` (the CIFAR website's snippet) sees ``b"data"``.
    """

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_string(self, obj):
        raw = obj.encode("latin-1") if isinstance(obj, str) else bytes(obj)
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[str] = _save_py2_string
    dispatch[bytes] = _save_py2_string


def _dump_py2(obj, path):
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump(obj)


def write_tiny_cifar100(root, num_classes=4, train_per_class=3, test_per_class=2, seed=0):
    """Write ``root/cifar-100-python/{train,test,meta}`` in CIFAR-100's format with random images.

    Returns ``{"train": (images uint8 [N, 32, 32, 3], labels [N]), "test": (...), "md5": {file: md5}}``.
    Labels are interleaved (0, 1, .., C-1, 0, 1, ..) and the coarse labels are ``label // 5``.
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    out = {"md5": {}}
    for name, per_class in (("train", train_per_class), ("test", test_per_class)):
        labels = np.tile(np.arange(num_classes), per_class)
        images = rng.integers(0, 256, size=(len(labels), 32, 32, 3), dtype=np.uint8)
        _dump_py2({
            "filenames": [f"img_{name}_{i}.png" for i in range(len(labels))],
            "batch_label": f"{name}ing batch 1 of 1",
            "fine_labels": labels.tolist(),
            "coarse_labels": (labels // 5).tolist(),
            "data": images.transpose(0, 3, 1, 2).reshape(len(labels), 3072),  # R plane, G plane, B plane
        }, folder / name)
        out[name] = (images, torch.as_tensor(labels))
    _dump_py2({"fine_label_names": [f"class_{i}" for i in range(num_classes)],
               "coarse_label_names": [f"super_{i}" for i in range(-(-num_classes // 5))]}, folder / "meta")
    for f in ("train", "test", "meta"):
        out["md5"][f] = hashlib.md5((folder / f).read_bytes()).hexdigest()
    return out


def accept_tiny_cifar_md5(monkeypatch, md5):
    """Let torchvision's own md5 check accept the tiny files (it knows only the real files' sums)."""
    from torchvision.datasets import CIFAR100

    monkeypatch.setattr(CIFAR100, "train_list", [["train", md5["train"]]])
    monkeypatch.setattr(CIFAR100, "test_list", [["test", md5["test"]]])
    monkeypatch.setattr(CIFAR100, "meta", {**CIFAR100.meta, "md5": md5["meta"]})


def cifar_like_labels(num_classes=100, per_class=500):
    """Labels in CIFAR's layout: every class ``per_class`` times, interleaved."""
    return torch.arange(num_classes).repeat(per_class)


def random_feats(n, dim=512, seed=0):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))
