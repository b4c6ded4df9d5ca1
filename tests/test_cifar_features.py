"""CIFAR-100 loading and ResNet34 features, on a tiny CIFAR-100 written in the real on-disk format.

torchvision's own CIFAR100 class reads the files (download=False); only its table of md5 sums is
pointed at the tiny files. ResNet34 runs with random weights (ImageNet's cannot be fetched here).
"""

import pickle
import urllib.error

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from anomaly_fixtures import accept_tiny_cifar_md5, write_tiny_cifar100
from transformer_lab import cli
from transformer_lab import features as feat
from transformer_lab.cifar import IMAGENET_MEAN, IMAGENET_STD, load_cifar100


@pytest.fixture
def tiny_cifar(tmp_path, monkeypatch):
    data = write_tiny_cifar100(tmp_path / "data", num_classes=4, train_per_class=2, test_per_class=1)
    accept_tiny_cifar_md5(monkeypatch, data["md5"])
    return tmp_path / "data", data


def test_torchvision_reads_the_tiny_cifar(tiny_cifar):
    root, data = tiny_cifar
    for split in ("train", "test"):
        got = load_cifar100(root, train=(split == "train"))
        images, labels = data[split]
        assert got.images.dtype == np.uint8 and got.images.shape == images.shape
        assert np.array_equal(got.images, images), "HWC images must come back exactly (R, G, B planes)"
        assert torch.equal(got.labels, labels)
        assert got.classes == ["class_0", "class_1", "class_2", "class_3"]
    with open(root / "cifar-100-python" / "meta", "rb") as f:  # the CIFAR website's way of reading it
        assert b"fine_label_names" in pickle.load(f, encoding="bytes")


def test_missing_data_says_where_it_must_go(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_cifar100(tmp_path / "nowhere")
    msg = str(e.value)
    assert str(tmp_path / "nowhere" / "cifar-100-python") in msg and "--data-dir" in msg and "--features FILE" in msg
    # the same message reaches the notebook: it names the notebook's settings too
    assert "DATASET_PATH" in msg and "FEATURE_FILE" in msg and "\n" not in msg


def test_missing_data_via_the_cli_is_one_line(tmp_path, capsys):
    assert cli.main(["features", "--data-dir", str(tmp_path / "nowhere"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("transformer-lab: error: CIFAR-100 not found") and "--features FILE" in err


def test_corrupt_files_fail_torchvisions_checksum(tmp_path):
    write_tiny_cifar100(tmp_path)  # real md5 table: the tiny files do not match it
    with pytest.raises(ValueError, match="checksum"):
        load_cifar100(tmp_path)


def test_device_preprocessing_matches_the_tutorials_pil_transform():
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    tutorial = T.Compose([T.Resize((224, 224)), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    expected = torch.stack([tutorial(Image.fromarray(im)) for im in images])
    got = feat.preprocess(torch.from_numpy(images))
    assert got.shape == (3, 3, 224, 224)
    # PIL rounds the resized image to uint8; we do not. One grey level, normalised, is the bound.
    assert (got - expected).abs().max() <= 1 / 255 / min(IMAGENET_STD) + 1e-6


def test_extract_cache_hit_and_stale_cache(tiny_cifar, tmp_path, monkeypatch):
    root, _ = tiny_cifar
    train = load_cifar100(root)
    cache = tmp_path / "feats.pt"
    logs = []
    out, status = feat.cached_features(cache, {"train": (train.images, train.labels)}, weights="none",
                                       batch_size=4, progress=False, log=logs.append)
    assert status == {"train": "computed"} and out["train"]["features"].shape == (8, 512)
    assert out["train"]["features"].dtype == torch.float32 and torch.isfinite(out["train"]["features"]).all()

    stored = torch.load(cache, weights_only=True)  # a plain dict: safe to load
    assert stored["model"] == "resnet34" and stored["weights"] == "none"
    assert stored["splits"]["train"]["input_sha256"] == feat.images_sha256(train.images)

    def no_extraction(*a, **k):
        raise AssertionError("a fresh cache must not run the network")

    real_extract = feat.extract_features
    monkeypatch.setattr(feat, "extract_features", no_extraction)
    again, status = feat.cached_features(cache, {"train": (train.images, train.labels)}, weights="none",
                                         progress=False, log=logs.append)
    assert status == {"train": "cached"}
    assert torch.equal(again["train"]["features"], out["train"]["features"])

    changed = train.images.copy()
    changed[0, 0, 0, 0] ^= 1  # one bit of one pixel
    with pytest.raises(AssertionError, match="must not run"):
        feat.cached_features(cache, {"train": (changed, train.labels)}, weights="none", progress=False,
                             log=logs.append)
    assert "is stale (made from other images" in logs[-1]
    monkeypatch.setattr(feat, "extract_features", real_extract)
    random_resnet = feat.build_resnet34("none")  # stands in for ImageNet weights (offline)
    monkeypatch.setattr(feat, "build_resnet34", lambda weights: random_resnet)
    _, status = feat.cached_features(cache, {"train": (train.images, train.labels)}, weights="imagenet",
                                     batch_size=8, progress=False, log=logs.append)
    assert status["train"].startswith("stale (made with resnet34/none")


def test_feature_files_bare_tensor_and_dict(tmp_path):
    bare = tmp_path / "train_set_features.tar"  # the tutorial's format
    torch.save(torch.randn(6, 512), bare)
    f = feat.read_feature_file(bare)
    assert f["meta"]["format"] == "tensor" and f["splits"]["features"]["features"].shape == (6, 512)
    assert f["splits"]["features"]["labels"] is None
    ours = tmp_path / "ours.pt"
    feat.save_feature_file(ours, {"test": {"features": torch.randn(4, 512), "labels": torch.arange(4)}}, "none")
    assert feat.read_feature_file(ours)["splits"]["test"]["labels"].tolist() == [0, 1, 2, 3]
    with pytest.raises(FileNotFoundError, match="notebook in full mode.*feature file your course hands out"):
        feat.read_feature_file(tmp_path / "absent.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="corrupt"):
        feat.read_feature_file(tmp_path / "junk.pt")


def test_missing_pretrained_weights_suggest_what_to_do(tmp_path, monkeypatch):
    import torchvision.models._api as api

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    with pytest.raises(FileNotFoundError) as e:
        feat.build_resnet34("imagenet")
    msg = str(e.value)
    assert "--weights none" in msg and "weights='none'" in msg and "TORCH_HOME" in msg and "resnet34-b627a593.pth" in msg
    assert str(tmp_path / "torch_home") in msg


def test_features_cli_on_tiny_cifar(tiny_cifar, tmp_path, capsys):
    root, _ = tiny_cifar
    out = tmp_path / "f.pt"
    args = ["features", "--data-dir", str(root), "--out", str(out), "--weights", "none", "--quiet",
            "--batch-size", "6", "--device", "cpu"]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "train: features [8, 512], labels [8]" in printed and "test: features [4, 512]" in printed
    f = feat.read_feature_file(out)
    assert f["meta"]["weights"] == "none" and set(f["splits"]) == {"train", "test"}
    assert cli.main(args) == 0  # second run: from the cache
    assert "cached" in capsys.readouterr().err


def _train_args(*argv):
    return cli.build_parser().parse_args(["train", "anomaly", *argv])


def test_train_anomaly_reads_both_feature_formats(tiny_cifar, tmp_path):
    from transformer_lab.anomaly_cli import _load_splits

    root, data = tiny_cifar
    ours = tmp_path / "ours.pt"
    feat.save_feature_file(ours, {"train": {"features": torch.randn(8, 512), "labels": data["train"][1]},
                                  "test": {"features": torch.randn(4, 512), "labels": data["test"][1]}}, "none")
    splits = _load_splits(_train_args("--features", str(ours), "--data-dir", str(root)))
    assert splits["train"][0].shape == (8, 512) and torch.equal(splits["test"][1], data["test"][1])
    assert np.array_equal(splits["test"][2], data["test"][0]), "images for the figures come from --data-dir"

    # the tutorial's two bare tensors: labels (and images) are read from CIFAR-100
    torch.save(torch.randn(8, 512), tmp_path / "train_set_features.tar")
    torch.save(torch.randn(4, 512), tmp_path / "test_set_features.tar")
    splits = _load_splits(_train_args("--features", str(tmp_path / "train_set_features.tar"), "--test-features",
                                      str(tmp_path / "test_set_features.tar"), "--data-dir", str(root)))
    assert torch.equal(splits["train"][1], data["train"][1]) and splits["test"][0].shape == (4, 512)
    with pytest.raises(ValueError, match="--test-features"):
        _load_splits(_train_args("--features", str(tmp_path / "train_set_features.tar")))
    with pytest.raises(FileNotFoundError, match="carry no labels.*cifar-100-python"):
        _load_splits(_train_args("--features", str(tmp_path / "train_set_features.tar"), "--test-features",
                                 str(tmp_path / "test_set_features.tar"), "--data-dir", str(tmp_path / "none")))


def test_plot_anomaly_sets_cli_on_tiny_cifar(tiny_cifar, tmp_path, capsys):
    root, _ = tiny_cifar
    out = tmp_path / "sets.png"
    assert cli.main(["plot", "anomaly-sets", "--data-dir", str(root), "--set-size", "2", "--num-sets", "3",
                     "--out", str(out)]) == 0
    assert out.stat().st_size > 0


@pytest.mark.gpu
def test_cuda_features_match_cpu_features():
    images = np.random.default_rng(1).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    torch.manual_seed(0)
    model = feat.build_resnet34("none")
    cpu = feat.extract_features(images, model, batch_size=4, device="cpu", progress=False)
    gpu = feat.extract_features(images, model, batch_size=4, device="cuda", progress=False)  # float16 autocast
    assert gpu.dtype == torch.float32 and gpu.shape == (8, 512)
    assert ((gpu - cpu).norm(dim=1) / cpu.norm(dim=1)).max() < 1e-2
