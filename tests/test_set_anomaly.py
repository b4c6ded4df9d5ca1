"""Set-anomaly data: balanced split, the sets' rules, reproducible fixed sets, the batched loader."""

import pytest
import torch
import torch.utils.data as data

from anomaly_fixtures import cifar_like_labels, random_feats
from transformer_lab.set_anomaly import (
    SetAnomalyDataset,
    SetBatchLoader,
    balanced_split,
    images_by_class,
    sample_set_indices,
    split_train_val,
    synthetic_features,
)

# A CIFAR-100 test split in miniature: 100 classes x 100 images (labels cycle like CIFAR's).
LABELS = cifar_like_labels(100, 100)
FEATS = random_feats(len(LABELS), dim=8)


def assert_set_rules(indices, labels, where):
    """Every row: 9 distinct images of one class, then an anomaly of another class."""
    lab = labels[indices]  # (B, 10)
    assert (lab[:, :-1] == lab[:, :1]).all(), f"{where}: the 9 normal images must share one class"
    assert (lab[:, -1] != lab[:, 0]).all(), f"{where}: the anomaly (last) must come from another class"
    for row in indices[:, :-1]:
        assert len(set(row.tolist())) == row.numel(), f"{where}: an image appears twice in a set: {row.tolist()}"


def test_balanced_split_is_90_10_per_class():
    labels = cifar_like_labels(100, 500)  # CIFAR-100 train
    train_idx, val_idx = balanced_split(labels)
    assert len(train_idx) == 45000 and len(val_idx) == 5000
    assert torch.bincount(labels[train_idx]).tolist() == [450] * 100
    assert torch.bincount(labels[val_idx]).tolist() == [50] * 100
    assert len(set(train_idx.tolist()) | set(val_idx.tolist())) == 50000, "the parts must not overlap"
    # as the tutorial: the first 10% (by position) of every class go to val
    assert val_idx[:50].tolist() == [100 * i for i in range(50)]
    tf, tl, vf, vl = split_train_val(torch.zeros(50000, 3), labels)
    assert tf.shape == (45000, 3) and vf.shape == (5000, 3) and tl.shape == (45000,) and vl.shape == (5000,)


def test_unbalanced_classes_are_refused_with_counts():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError, match="same number of images.*3 .*class 0"):
        balanced_split(labels)


@pytest.mark.parametrize("train", [True, False])
def test_dataset_items_obey_the_rules(train):
    ds = SetAnomalyDataset(FEATS, LABELS, set_size=10, train=train)
    assert len(ds) == len(LABELS)
    for i in (0, 1, 77, 9999):
        img_set, indices, label = ds[i]
        assert img_set.shape == (10, 8) and indices.shape == (10,) and indices.dtype == torch.long
        assert label == 9, "the label is the anomaly's position: last"
        assert indices[-1] == i, "set i has image i as its anomaly"
        assert torch.equal(img_set, FEATS[indices])
        assert_set_rules(indices[None], LABELS, f"dataset[{i}] (train={train})")


def test_fixed_sets_follow_the_rules_and_are_identical_across_constructions():
    a = SetAnomalyDataset(FEATS, LABELS, train=False)
    b = SetAnomalyDataset(FEATS.clone(), LABELS.clone(), train=False)
    assert a.test_sets.shape == (10000, 9)
    assert torch.equal(a.test_sets, b.test_sets)
    assert_set_rules(a.set_indices(torch.arange(10000)), LABELS, "fixed sets")
    assert torch.equal(a[5][1], a[5][1]), "a fixed set must not change between accesses"
    assert not torch.equal(SetAnomalyDataset(FEATS, LABELS, train=False, seed=1).test_sets, a.test_sets)


def test_fixed_sets_are_pinned():
    # Pinned literally: the sets come from torch.Generator().manual_seed(42) on the CPU (same stream
    # on every platform), not from numpy's global RNG, so these values must never change. If they
    # do, every reported val/test accuracy stops being comparable.
    ds = SetAnomalyDataset(torch.zeros(10000, 4), LABELS, train=False, seed=42)
    assert ds.test_sets[:3].tolist() == [
        [4007, 5307, 3607, 2307, 9107, 2807, 407, 1907, 8507],
        [3896, 6496, 2596, 7296, 2896, 9896, 6996, 2696, 7496],
        [7298, 4998, 8898, 1198, 8398, 4098, 3598, 198, 4598],
    ]
    gen = torch.Generator().manual_seed(0)
    got = sample_set_indices(torch.tensor([0, 5, 123]), LABELS, images_by_class(LABELS), 10, gen)
    assert got.tolist() == [
        [4099, 4499, 6299, 8199, 99, 399, 199, 7199, 9099, 0],
        [1919, 2019, 4719, 5119, 5719, 9419, 8519, 7919, 6319, 5],
        [9057, 8357, 8057, 3957, 2557, 1257, 5957, 257, 7057, 123],
    ]


def test_training_sets_are_resampled():
    ds = SetAnomalyDataset(FEATS, LABELS, train=True)
    torch.manual_seed(0)
    first = torch.stack([ds[i][1] for i in range(20)])
    second = torch.stack([ds[i][1] for i in range(20)])
    assert not torch.equal(first, second), "training sets must be drawn afresh on every access"
    assert torch.equal(first[:, -1], second[:, -1])


def test_class_choice_is_uniform_and_never_the_anomalys():
    # 20000 sets for anomaly label 0: the set's class is uniform over the 99 others.
    gen = torch.Generator().manual_seed(1)
    anomaly = torch.zeros(20000, dtype=torch.long)  # image 0 has class 0
    idx = sample_set_indices(anomaly, LABELS, images_by_class(LABELS), 10, gen)
    counts = torch.bincount(LABELS[idx[:, 0]], minlength=100)
    assert counts[0] == 0
    assert counts[1:].min() > 120 and counts[1:].max() < 290, f"class counts look non-uniform: {counts.tolist()}"


def test_plain_dataloader_collates_batches():
    ds = SetAnomalyDataset(FEATS, LABELS, train=False)
    sets, indices, labels = next(iter(data.DataLoader(ds, batch_size=16)))
    assert sets.shape == (16, 10, 8) and indices.shape == (16, 10) and labels.tolist() == [9] * 16


def test_batched_loader_matches_the_dataset_on_fixed_sets():
    ds = SetAnomalyDataset(FEATS, LABELS, train=False)
    plain = list(data.DataLoader(ds, batch_size=64))
    fast = list(SetBatchLoader(ds, batch_size=64))
    assert len(fast) == len(plain) == 157  # 10000 / 64, last one partial (drop_last=False for eval)
    for (s1, i1, l1), (s2, i2, l2) in zip(plain, fast):
        assert torch.equal(s1, s2) and torch.equal(i1, i2) and torch.equal(l1, l2)


def test_batched_loader_training_epochs_obey_the_rules():
    ds = SetAnomalyDataset(FEATS, LABELS, train=True)
    loader = SetBatchLoader(ds, batch_size=64, drop_last=False, seed=3)
    epochs = []
    for _ in range(2):
        batches = list(loader)
        idx = torch.cat([b[1] for b in batches])
        for sets, indices, labels in batches:
            assert torch.equal(sets, FEATS[indices]) and (labels == 9).all()
        assert_set_rules(idx, LABELS, "SetBatchLoader")
        assert sorted(idx[:, -1].tolist()) == list(range(10000)), "each image is the anomaly once per epoch"
        epochs.append(idx)
    assert not torch.equal(epochs[0], epochs[1]), "a new epoch must bring new sets in a new order"
    assert len(SetBatchLoader(ds, batch_size=64)) == 10000 // 64, "training drops the last partial batch"
    again = torch.cat([b[1] for b in SetBatchLoader(ds, batch_size=64, drop_last=False, seed=3)])
    assert torch.equal(again, epochs[0]), "the loader's sampling is reproducible from its seed"


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="img_feats"):
        SetAnomalyDataset(torch.zeros(10), torch.zeros(10, dtype=torch.long))
    with pytest.raises(ValueError, match="'labels' has 5 entries"):
        SetAnomalyDataset(torch.zeros(10, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="set_size"):
        SetAnomalyDataset(torch.zeros(4, 3), torch.tensor([0, 1, 0, 1]), set_size=10)


def test_synthetic_features_have_the_real_shape():
    feats, labels = synthetic_features(num_classes=100, per_class=6)
    assert feats.shape == (600, 512) and feats.dtype == torch.float32
    assert torch.bincount(labels).tolist() == [6] * 100 and labels[:100].tolist() == list(range(100))


@pytest.mark.gpu
def test_batched_loader_samples_on_cuda():
    ds = SetAnomalyDataset(FEATS, LABELS, train=True)
    loader = SetBatchLoader(ds, batch_size=64, device="cuda", seed=0)
    sets, indices, labels = next(iter(loader))
    assert sets.is_cuda and indices.is_cuda and labels.is_cuda
    idx = torch.cat([b[1].cpu() for b in loader])
    assert_set_rules(idx, LABELS, "SetBatchLoader on CUDA")
    assert len(set(idx[:, -1].tolist())) == len(idx), "each image at most once as the anomaly per epoch"
