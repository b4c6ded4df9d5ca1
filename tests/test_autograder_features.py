"""The anomaly part grades on the data the student trained on, with a threshold the notebook's recipe meets."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import torch

from lab_autograder import parts as P
from lab_autograder.checkpoint_eval import reference_accuracy
from lab_autograder.grade import load_features

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebook" / "transformer_lab.py"


def test_synthetic_spec_is_held_out_images_of_the_quick_modes_classes():
    """``synthetic`` grades on images no student has: not the notebook's test split (a student could
    train on it), but fresh draws of the same classes, from the grader's seed."""
    from transformer_lab.set_anomaly import quick_mode_features

    f = load_features("synthetic")
    assert f.feats.shape == (1000, 512) and f.threshold == P.ANOMALY_THRESHOLD_QUICK and len(f.sha256) == 16
    seen = torch.cat([quick_mode_features()[s][0] for s in ("train", "test")])
    assert torch.cdist(f.feats, seen).min() > 1.0  # no image the notebook gives out
    from transformer_lab.set_anomaly import QUICK_MODE, synthetic_features

    test_feats, test_labels = quick_mode_features()["test"]
    assert torch.equal(f.labels, test_labels)  # 20 per class, the same 50 classes...
    means, _ = synthetic_features(per_class=20, **{**QUICK_MODE, "noise": 0.0})  # each image's class mean
    for feats in (test_feats, f.feats):  # ...around the same means, with the same noise
        assert abs(float((feats - means).std()) - QUICK_MODE["noise"]) < 0.01
    assert not torch.equal(load_features("synthetic", seed=1).feats, f.feats)  # the grader's seed draws them
    assert "quick_mode_features()" in NOTEBOOK.read_text()  # the notebook trains on the same classes
    assert load_features("synthetic:0:64:0.5").threshold == P.ANOMALY_THRESHOLD
    assert load_features(None).feats is None


def _quick_config():
    """The notebook's quick-mode AnomalyConfig (the test checks that the notebook uses this one)."""
    from transformer_lab.anomaly import quick_anomaly_config

    assert re.search(r"if QUICK:\n\s+anomaly_cfg = quick_anomaly_config\(\)", NOTEBOOK.read_text())
    return quick_anomaly_config()


@pytest.mark.slow
def test_reference_trained_as_the_notebook_says_earns_the_anomaly_points(tmp_path):
    """Issue 9's fairness finding: a CPU student who trains exactly as told must reach the threshold."""
    from transformer_lab.anomaly import train_anomaly
    from transformer_lab.runtime import cpu_threads
    from transformer_lab.set_anomaly import quick_mode_features, split_train_val

    data = quick_mode_features()
    tr_f, tr_l, va_f, va_l = split_train_val(*data["train"])
    with cpu_threads(1):
        _, result = train_anomaly(str(tmp_path), tr_f, tr_l, va_f, va_l, *data["test"], _quick_config(),
                                  progress=False, accelerator="cpu")
    f = load_features("synthetic")
    ckpt = Path(result["checkpoint"]).read_bytes()
    x, pos = P.anomaly_eval_sets(f.feats, f.labels, 1000, 20240611)
    acc, why = reference_accuracy("train_anomaly", ckpt, x, pos)
    assert acc is not None, why
    x, pos = P.anomaly_eval_sets(*data["test"], 1000, 20240611)  # the same sets, on the notebook's test split
    acc_notebook, _ = reference_accuracy("train_anomaly", ckpt, x, pos)
    print(f"\n[quick-mode anomaly] grader accuracy {acc:.3f} on held-out images, {acc_notebook:.3f} on the "
          f"notebook's test split (threshold {f.threshold:.2f}); train_anomaly test_acc {result['test_acc']:.3f}")
    assert acc >= f.threshold
    assert abs(acc - acc_notebook) < 0.03  # held out, not harder: what the recipe learns carries over


def test_trusted_evaluation_refuses_what_it_cannot_measure():
    from transformer_lab import ReversePredictor

    x = P.reverse_eval_data(0)
    missing = reference_accuracy("train_reverse", None, x, x.flip(-1))
    assert missing == (None, "no checkpoints/reverse.ckpt in the submission")
    hp = dict(input_dim=10, model_dim=16, num_classes=10, num_heads=2, num_layers=1, lr=1e-3, warmup=5, max_iters=10)

    def ck(**change):
        m = ReversePredictor(**hp)
        buf = io.BytesIO()
        torch.save({"state_dict": m.state_dict(), "hyper_parameters": {**hp, **change}}, buf)
        return buf.getvalue()
    acc, why = reference_accuracy("train_reverse", ck(), x, x.flip(-1))
    assert 0 <= acc <= 0.5 and why == ""  # untrained: measured, and low
    assert "model_dim must be an int" in reference_accuracy("train_reverse", ck(model_dim=10**6), x, x.flip(-1))[1]
    other = reference_accuracy("train_reverse", ck(num_layers=2), x, x.flip(-1))
    assert "do not fit the assignment's model" in other[1]
    assert "not a checkpoint written by torch.save" in reference_accuracy("train_reverse", b"junk", x, x.flip(-1))[1]
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:  # 64 MiB of zeros in 64 kB
        z.writestr("archive/data/0", b"\0" * 2**26)
    assert "compressed" in reference_accuracy("train_reverse", buf.getvalue(), x, x.flip(-1))[1]
    assert "weights_only" in reference_accuracy("train_reverse", _pickle_that_runs_code(), x, x.flip(-1))[1]


def _pickle_that_runs_code() -> bytes:
    import os

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))
    buf = io.BytesIO()
    torch.save({"state_dict": {}, "hyper_parameters": Evil()}, buf)
    return buf.getvalue()


def test_the_feature_cache_file_grades_on_its_test_split(tmp_path):
    """``--anomaly-features data/cifar100_resnet34_imagenet.pt``: the file the notebook and
    ``transformer-lab features`` write works as is; its test split is what the grader uses."""
    from transformer_lab.features import save_feature_file

    g = torch.Generator().manual_seed(0)
    split = lambda n: {"features": torch.randn(n, 512, generator=g), "labels": torch.arange(n) % 10,  # noqa: E731
                       "input_sha256": "0" * 64, "input_shape": [n, 32, 32, 3]}
    path = tmp_path / "cifar100_resnet34_imagenet.pt"
    save_feature_file(path, {"train": split(50), "test": split(30)}, "imagenet")
    f = load_features(str(path))
    assert f.feats.shape == (30, 512) and f.labels.tolist() == (torch.arange(30) % 10).tolist()
    assert f.threshold == P.ANOMALY_THRESHOLD and len(f.sha256) == 16
    save_feature_file(path, {"train": split(50)}, "imagenet")
    with pytest.raises(ValueError, match="no labelled 'test' split"):
        load_features(str(path))
