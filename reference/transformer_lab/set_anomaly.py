"""Set-anomaly data: the balanced train/val split, the set dataset and a batched on-device loader.

A set is ``set_size - 1`` images of one class plus one image (the anomaly) of another class,
always in the last position (index ``set_size - 1``, the label). Features, not pixels, are the
elements: ``[N, D]`` with ``D = 512`` for ResNet34.

Randomness never touches numpy's global RNG: fixed (val/test) sets come from a seeded
``torch.Generator`` on the CPU, whose stream is the same on every platform, so they are identical
everywhere (the tutorial's were not). Training sets are resampled every epoch.
"""

from __future__ import annotations

import torch
import torch.utils.data as data

from ._checks import check_tensor


def _check_labels(where, labels, n=None):
    check_tensor(where, "labels", labels, ndim=1, expected="[NumImages] of class indices", floating=False)
    if n is not None and labels.numel() != n:
        raise ValueError(f"{where}: 'labels' has {labels.numel()} entries but 'img_feats' has {n} rows")
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError(f"{where}: 'labels' must be class indices >= 0, got min {int(labels.min())}")


def images_by_class(labels: torch.Tensor, where: str = "images_by_class") -> torch.Tensor:
    """Indices of the images of each class, ``[NumClasses, ImagesPerClass]`` (ascending within a class).

    Every class must hold the same number of images (CIFAR-100 does: 500 train, 100 test), as in
    the tutorial, which reshapes the sorted indices. The sort is stable, so the table is unique.
    """
    _check_labels(where, labels)
    num_labels = int(labels.max()) + 1
    counts = torch.bincount(labels, minlength=num_labels)
    if int(counts.min()) != int(counts.max()):
        raise ValueError(
            f"{where}: every class needs the same number of images (classes 0..{num_labels - 1}); "
            f"got between {int(counts.min())} (class {int(counts.argmin())}) and {int(counts.max())} "
            f"(class {int(counts.argmax())})"
        )
    return torch.argsort(labels, stable=True).reshape(num_labels, -1)


def balanced_split(labels: torch.Tensor, val_fraction: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train_indices, val_indices)``: the first ``val_fraction`` of each class's images go to val.

    As the tutorial: sort by label, take the first 10% of every class (50 of 500 for CIFAR-100),
    so both parts stay balanced (450 / 50 per class). Indices are grouped by class.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"balanced_split: val_fraction must lie in (0, 1), got {val_fraction}")
    by_class = images_by_class(labels, "balanced_split")  # [C, n]
    num_val = int(by_class.shape[1] * val_fraction)
    if num_val < 1 or num_val == by_class.shape[1]:
        raise ValueError(f"balanced_split: {by_class.shape[1]} images per class cannot be split by {val_fraction}")
    return by_class[:, num_val:].reshape(-1), by_class[:, :num_val].reshape(-1)


def split_train_val(feats, labels, val_fraction=0.1):
    """``(train_feats, train_labels, val_feats, val_labels)`` with :func:`balanced_split`."""
    train_idx, val_idx = balanced_split(labels, val_fraction)
    return feats[train_idx], labels[train_idx], feats[val_idx], labels[val_idx]


def sample_set_indices(anomaly_idx, labels, idx_by_class, set_size, generator=None) -> torch.Tensor:
    """Sample one set per anomaly, all at once: ``[B]`` anomaly indices -> ``[B, set_size]`` image indices.

    For each anomaly: a class different from its own (uniform over the other ``C - 1``), then
    ``set_size - 1`` distinct images of that class (the positions of the ``k`` smallest of
    ``per_class`` random float64 keys: the first ``k`` of a random permutation, found with
    ``topk`` rather than a full sort); the anomaly goes last. Everything runs on the device of
    ``idx_by_class`` (the generator must live there too).
    """
    num_classes, per_class = idx_by_class.shape
    k = set_size - 1
    device = idx_by_class.device
    anomaly_idx = anomaly_idx.to(device)
    anomaly_label = labels[anomaly_idx]
    set_label = torch.randint(num_classes - 1, anomaly_idx.shape, generator=generator, device=device)
    set_label = set_label + (set_label >= anomaly_label).long()  # skip the anomaly's class
    keys = torch.rand(anomaly_idx.numel(), per_class, generator=generator, device=device, dtype=torch.float64)
    # The k smallest keys = the first k of a random permutation; [B, k], distinct per row. Ties
    # among 2^53 float64 values are practically impossible, so the result is fully determined.
    pos = keys.topk(k, dim=1, largest=False, sorted=True).indices
    img_idx = idx_by_class[set_label.unsqueeze(1), pos]
    return torch.cat([img_idx, anomaly_idx.unsqueeze(1)], dim=1)


class SetAnomalyDataset(data.Dataset):
    """Sets of ``set_size - 1`` same-class images plus one anomaly (last), as in the tutorial.

    ``dataset[i]`` is the set whose anomaly is image ``i``: ``(img_set [set_size, D],
    indices [set_size] long, label)`` with ``label = set_size - 1``. So an epoch shows every
    image once as the anomaly. ``train=True`` samples a fresh set on every access from torch's
    global RNG (seeded per DataLoader worker); ``train=False`` draws all sets once in
    ``__init__`` from ``torch.Generator().manual_seed(seed)``, stored in ``test_sets``
    ``[N, set_size - 1]``, identical across runs and platforms.

    Args:
        img_feats: ``[NumImages, D]`` image features
        labels: ``[NumImages]`` class indices, the same number of images in every class
        set_size: elements per set (``set_size - 1`` of one class + the anomaly)
        train: resample on every access (True) or fixed sets (False)
        seed: seed of the fixed sets
    """

    def __init__(self, img_feats, labels, set_size=10, train=True, seed=42):
        super().__init__()
        check_tensor("SetAnomalyDataset", "img_feats", img_feats, ndim=2, expected="[NumImages, D]", floating=True)
        _check_labels("SetAnomalyDataset", labels, img_feats.shape[0])
        self.img_feats = img_feats
        self.labels = labels.long()
        self.set_size = set_size - 1  # the tutorial's meaning: the number of same-class images
        self.train = train
        self.seed = seed
        self.img_idx_by_label = images_by_class(self.labels, "SetAnomalyDataset")
        self.num_labels = self.img_idx_by_label.shape[0]
        if self.num_labels < 2:
            raise ValueError("SetAnomalyDataset: need at least 2 classes (the anomaly comes from another class)")
        if not 2 <= set_size <= self.img_idx_by_label.shape[1] + 1:
            raise ValueError(
                f"SetAnomalyDataset: set_size must lie in [2, {self.img_idx_by_label.shape[1] + 1}] "
                f"(images per class + 1), got {set_size}"
            )
        if not train:
            self.test_sets = self._create_test_sets()

    def _create_test_sets(self):
        gen = torch.Generator().manual_seed(self.seed)
        idx = torch.arange(self.img_feats.shape[0])
        return sample_set_indices(idx, self.labels, self.img_idx_by_label, self.set_size + 1, gen)[:, :-1]

    def sample_img_set(self, anomaly_label, generator=None):
        """``set_size - 1`` distinct image indices of one random class other than ``anomaly_label``."""
        label = torch.as_tensor(anomaly_label).long().reshape(1)
        fake_anomaly = (self.labels == label).nonzero()[0]  # any image with that label
        return sample_set_indices(fake_anomaly, self.labels, self.img_idx_by_label, self.set_size + 1,
                                  generator)[0, :-1]

    def set_indices(self, anomaly_idx, generator=None) -> torch.Tensor:
        """``[B]`` anomaly indices -> ``[B, set_size]`` image indices (fresh if train, else the fixed sets)."""
        anomaly_idx = torch.as_tensor(anomaly_idx).long().reshape(-1)
        if self.train:
            return sample_set_indices(anomaly_idx, self.labels, self.img_idx_by_label, self.set_size + 1, generator)
        return torch.cat([self.test_sets[anomaly_idx], anomaly_idx.unsqueeze(1)], dim=1)

    def __len__(self):
        return self.img_feats.shape[0]

    def __getitem__(self, idx):
        if not 0 <= int(idx) < len(self) and not -len(self) <= int(idx) < 0:
            raise IndexError(f"SetAnomalyDataset: index {int(idx)} out of range for {len(self)} sets")
        indices = self.set_indices(int(idx) % len(self))[0]
        return self.img_feats[indices], indices, self.set_size


class SetBatchLoader:
    """Whole batches of sets, sampled and gathered with tensor ops on ``device`` (no per-item Python).

    Iterating yields ``(sets [B, set_size, D], indices [B, set_size], labels [B])`` like a
    DataLoader over :class:`SetAnomalyDataset` with the default collate, but each batch is a few
    kernels: a permutation of anomaly indices per epoch, :func:`sample_set_indices` (training) or a
    slice of the fixed sets, and one gather of the features. Features live on ``device`` once.

    Args:
        dataset: a :class:`SetAnomalyDataset` (``train`` decides fresh vs fixed sets)
        batch_size: sets per batch
        shuffle: new order of anomalies every epoch (default: ``dataset.train``)
        drop_last: drop the last incomplete batch (default: ``dataset.train``, as the tutorial)
        device: where sampling and batches live (default: CPU)
        seed: seed of this loader's generator (order and training sets)
    """

    def __init__(self, dataset: SetAnomalyDataset, batch_size=64, shuffle=None, drop_last=None, device=None,
                 seed=0):
        if batch_size < 1:
            raise ValueError(f"SetBatchLoader: batch_size must be >= 1, got {batch_size}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = dataset.train if shuffle is None else shuffle
        self.drop_last = dataset.train if drop_last is None else drop_last
        self.device = torch.device(device or "cpu")
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.feats = dataset.img_feats.to(self.device)
        self.labels = dataset.labels.to(self.device)
        self.by_class = dataset.img_idx_by_label.to(self.device)
        self.fixed = None if dataset.train else dataset.test_sets.to(self.device)
        self.label = dataset.set_size

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.dataset)
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator, device=self.device)
        else:
            order = torch.arange(n, device=self.device)
        for b in range(len(self)):
            anomaly = order[b * self.batch_size:(b + 1) * self.batch_size]
            if self.fixed is None:
                idx = sample_set_indices(anomaly, self.labels, self.by_class, self.label + 1, self.generator)
            else:
                idx = torch.cat([self.fixed[anomaly], anomaly.unsqueeze(1)], dim=1)
            labels = torch.full((idx.shape[0],), self.label, dtype=torch.long, device=self.device)
            yield self.feats[idx], idx, labels


def synthetic_features(num_classes=100, per_class=600, dim=512, rank=16, noise=0.8, seed=0, sample_seed=None):
    """Class means + Gaussian noise: a stand-in for ResNet features when CIFAR-100 is absent.

    The class means are standard normal in a random ``rank``-dimensional subspace of the
    ``dim``-dimensional space; every feature is its class mean plus ``noise * N(0, I_dim)``. So, as
    with real features, the classes are not separable (with the defaults a classifier that knows
    the true means labels ~94% of images right, and picking the element farthest from the others'
    mean finds only ~45% of anomalies in the raw 512-d space), and a model has to learn which
    directions matter. Returns ``(feats [num_classes * per_class, dim], labels)``, labels cycling
    through the classes like CIFAR's, so the first ``k * num_classes`` rows hold ``k`` per class.
    ``sample_seed`` draws the images' noise from a generator of its own: the same classes (``seed``
    fixes them), other images, as a held-out split is.
    """
    gen = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(dim, rank, generator=gen))[0].T  # [rank, dim], orthonormal rows
    means = torch.randn(num_classes, rank, generator=gen) @ basis  # [C, dim]
    labels = torch.arange(num_classes).repeat(per_class)
    images = gen if sample_seed is None else torch.Generator().manual_seed(sample_seed)
    feats = means[labels] + noise * torch.randn(labels.numel(), dim, generator=images)
    return feats, labels


#: the quick mode's classes: 50 of them, 512-d, as ``synthetic_features`` draws them
QUICK_MODE = {"num_classes": 50, "dim": 512, "rank": 16, "noise": 0.8, "seed": 0}


def quick_mode_features():
    """The notebook's stand-in data when no CIFAR-100 feature file exists (its quick mode).

    ``{"train": (feats, labels), "test": (feats, labels)}``: 50 classes of 512-d synthetic
    features, 100 per class for training (90 + 10 after the validation split) and 20 per class
    for testing. The autograder's ``--anomaly-features synthetic`` grades on other images of the
    same classes (``QUICK_MODE`` with a ``sample_seed`` of the grader's), which no student has.
    """
    feats, labels = synthetic_features(per_class=120, **QUICK_MODE)
    k = 50 * 100  # labels cycle through the classes: the first 100 rows per class train
    return {"train": (feats[:k], labels[:k]), "test": (feats[k:], labels[k:])}
