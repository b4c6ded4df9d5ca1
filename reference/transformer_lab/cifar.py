"""CIFAR-100 as raw arrays, read by torchvision's own loader (tutorial section "Set Anomaly Detection").

The images stay ``uint8 [N, 32, 32, 3]``: resizing to 224x224 and ImageNet normalisation happen
in :mod:`transformer_lab.features`, in batches on the device, instead of per image in PIL.
Downloading is opt-in (``download=True``); without it, missing data raises a FileNotFoundError
that says where the extracted ``cifar-100-python/`` folder must go.
"""

from __future__ import annotations

import os
import urllib.error
from dataclasses import dataclass, field

import numpy as np
import torch

#: ImageNet statistics the pretrained ResNet expects (per RGB channel, on 0..1 pixel values).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

CIFAR100_FOLDER = "cifar-100-python"
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
CIFAR100_FILES = ("train", "test", "meta")


@dataclass
class CifarSplit:
    """One split: ``images`` uint8 ``[N, 32, 32, 3]`` (HWC, RGB), ``labels`` int64 ``[N]``, class names."""

    images: np.ndarray
    labels: torch.Tensor
    classes: list = field(default_factory=list)


def missing_data_message(data_dir) -> str:
    """What to put where, said for the notebook (its settings) and for the command line (its flags)."""
    folder = os.path.join(os.path.abspath(os.fspath(data_dir)), CIFAR100_FOLDER)
    return (
        f"CIFAR-100 not found: expected the folder {folder}/ with the files {', '.join(CIFAR100_FILES)}. "
        f"Extract {CIFAR100_URL} into {os.fspath(data_dir)} (the notebook's DATASET_PATH, the command "
        "line's --data-dir), or download it where the network is reachable (the notebook's full mode, "
        "--download); or skip the images and use pre-extracted features (the notebook's FEATURE_FILE, "
        "--features FILE)"
    )


def load_cifar100(data_dir, train: bool = True, download: bool = False) -> CifarSplit:
    """Read one split with ``torchvision.datasets.CIFAR100`` (its md5 checks included).

    Raises FileNotFoundError (what to put where) when the files are absent and ``download`` is
    False or fails, and ValueError when they are present but corrupt.
    """
    from torchvision.datasets import CIFAR100

    folder = os.path.join(os.fspath(data_dir), CIFAR100_FOLDER)
    present = all(os.path.isfile(os.path.join(folder, f)) for f in CIFAR100_FILES)
    if not present and not download:
        raise FileNotFoundError(missing_data_message(data_dir))
    try:
        ds = CIFAR100(root=os.fspath(data_dir), train=train, download=download)
    except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
        raise FileNotFoundError(f"could not download CIFAR-100 ({e}); " + missing_data_message(data_dir)) from None
    except RuntimeError as e:  # torchvision: "Dataset not found or corrupted" (md5 mismatch)
        raise ValueError(
            f"CIFAR-100 files in {folder}/ failed torchvision's checksum test ({e}); delete the folder and "
            "extract a fresh copy (or download it again: the notebook's full mode, --download)"
        ) from None
    images = np.ascontiguousarray(ds.data, dtype=np.uint8)
    labels = torch.as_tensor(ds.targets, dtype=torch.long)
    if images.ndim != 4 or images.shape[1:] != (32, 32, 3) or len(labels) != len(images):
        raise ValueError(f"CIFAR-100 in {folder}/ has unexpected shapes: images {images.shape}, labels {len(labels)}")
    return CifarSplit(images=images, labels=labels, classes=list(ds.classes))
