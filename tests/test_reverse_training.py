"""The reverse task end to end: the tutorial's recipe trained on the CPU through the CLI."""

import json

import numpy as np
import pytest
import torch

from transformer_lab import ReverseConfig, ReverseDataset, ReversePredictor, batched_loader
from transformer_lab.cli import main
from transformer_lab.reverse import reverse_loaders


def test_dataset_labels_are_the_reversed_inputs():
    ds = ReverseDataset(10, 16, 100, generator=torch.Generator().manual_seed(0))
    x, y = ds[3]
    assert x.shape == (16,) and torch.equal(y, x.flip(0))
    xb, yb = ds[[1, 2, 3]]  # a whole batch in one index
    assert xb.shape == (3, 16) and torch.equal(yb[2], y)
    assert 0 <= int(ds.data.min()) and int(ds.data.max()) <= 9


def test_batched_loader_covers_the_data_once_per_epoch():
    ds = ReverseDataset(10, 16, 1000, generator=torch.Generator().manual_seed(0))
    loader = batched_loader(ds, 128, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(1))
    batches = list(loader)
    assert len(loader) == len(batches) == 7 and all(b[0].shape == (128, 16) for b in batches)
    rows = torch.cat([b[0] for b in batches])
    assert len({tuple(r.tolist()) for r in rows}) > 0.95 * len(rows)  # no duplicates beyond chance


def test_data_is_reproducible_from_the_seed():
    a, b = reverse_loaders(ReverseConfig()), reverse_loaders(ReverseConfig())
    assert torch.equal(a[2].dataset.data, b[2].dataset.data)
    assert not torch.equal(a[1].dataset.data, a[2].dataset.data[:1000])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("reverse")
    assert main(["train", "reverse", "--out", str(out), "--quiet", "--accelerator", "cpu"]) == 0
    return out, json.loads((out / "reverse_result.json").read_text())


@pytest.mark.slow
def test_trained_reverse_model_reaches_the_tutorials_accuracy(trained):
    _, result = trained
    assert result["test_acc"] >= 0.995, f"test accuracy {result['test_acc']:.4f} < 99.5% (tutorial: 100%)"
    assert result["val_acc"] >= 0.995
    assert result["config"]["max_epochs"] == 10 and result["config"]["gradient_clip_val"] == 5


@pytest.mark.slow
def test_best_checkpoint_reloads_and_reverses(trained):
    out, result = trained
    assert result["checkpoint"] == str(out / "reverse.ckpt")
    model = ReversePredictor.load_from_checkpoint(result["checkpoint"])
    tokens = torch.randint(10, (64, 16), generator=torch.Generator().manual_seed(123))
    with torch.no_grad():
        pred = model(tokens).argmax(-1)
    assert (pred == tokens.flip(-1)).float().mean() >= 0.995
    # The attention of the single head points at the mirrored position.
    attn = model.get_attention_maps(tokens)[0][:, 0]  # (B, T, T)
    assert (attn.argmax(-1) == torch.arange(15, -1, -1)).float().mean() > 0.9


@pytest.mark.slow
def test_attention_figure_is_written(trained):
    out, result = trained
    png = out / "reverse_attention.png"
    assert result["attention_figure"] == str(png) and png.stat().st_size > 10_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
