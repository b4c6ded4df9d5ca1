"""Shared pytest set-up: headless plotting, the tutorial baseline on the path, GPU skips with a reason."""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT / "reference", ROOT / "third_party" / "tutorial6"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; none is visible on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
