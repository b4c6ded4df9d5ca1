"""Given code of the transformer_lab notebook: the data plumbing you need not read to do the lab.

* batched loaders (``batched_loader``): a whole batch gathered with one tensor index, fast on a CPU;
* CIFAR-100 (``load_cifar100``): torchvision's download and loading, with a message saying where the
  files must go when they cannot be downloaded;
* ResNet34 features (``extract_features``, ``cached_features``): the images resized to 224x224,
  normalised with the ImageNet statistics and passed through a pretrained ResNet34 without its
  classifier, extracted once and cached in a file;
* the anomaly sets (``SetAnomalyDataset``, ``SetBatchLoader``): nine images of one class and one of
  another, drawn afresh for training and fixed (seeded) for validation and testing; the balanced
  train/validation split; the synthetic features of the quick mode.

Keep this file next to the notebook (on Colab: in ``/content``, the *Files* pane) and do not edit it:
grading uses its own copy.
"""

import hashlib
import numpy as np
import os
import pickle
import sys
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.data as data
import urllib.error
import zipfile
from dataclasses import dataclass, field


def _fmt(shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def check_tensor(where: str, name: str, t, *, ndim: int | None = None, last_dim: int | None = None,
                 expected: str = "", floating: bool | None = None) -> None:
    """Raise ValueError/TypeError naming ``where``, the argument and the expected/received shape."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{where}: argument '{name}' must be a torch.Tensor, got {type(t).__name__}")
    if ndim is not None and t.dim() != ndim:
        raise ValueError(
            f"{where}: argument '{name}' must have {ndim} dimensions {expected}, "
            f"got shape {_fmt(t.shape)} ({t.dim()} dimensions)"
        )
    if last_dim is not None and t.size(-1) != last_dim:
        raise ValueError(
            f"{where}: argument '{name}' must have last dimension {last_dim} {expected}, got shape {_fmt(t.shape)}"
        )
    if floating is True and not t.is_floating_point():
        raise TypeError(f"{where}: argument '{name}' must be a floating-point tensor, got dtype {t.dtype}")
    if floating is False and (t.is_floating_point() or t.is_complex()):
        raise TypeError(f"{where}: argument '{name}' must be an integer tensor of class indices, got dtype {t.dtype}")


class BatchIndexSampler(data.Sampler):
    """Yields one index tensor per batch: ``dataset[indices]`` then fetches a batch in one tensor index.

    Shuffles every epoch with ``generator`` when ``shuffle``; ``drop_last`` drops a short last batch.
    Index tensors, not lists: turning a list of 128 Python ints into an index costs more than the
    lookup itself.
    """

    def __init__(self, size, batch_size, shuffle=False, drop_last=False, generator=None):
        if batch_size < 1:
            raise ValueError(f"BatchIndexSampler: batch_size must be >= 1, got {batch_size}")
        self.size, self.batch_size = size, batch_size
        self.shuffle, self.drop_last, self.generator = shuffle, drop_last, generator

    def __len__(self):
        full, rest = divmod(self.size, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self):
        order = torch.randperm(self.size, generator=self.generator) if self.shuffle else torch.arange(self.size)
        return iter(order.split(self.batch_size)[:len(self)])


def batched_loader(dataset, batch_size, shuffle=False, drop_last=False, generator=None) -> data.DataLoader:
    """A DataLoader that fetches each batch with one ``dataset[indices]`` call.

    ``batch_size=None`` turns off auto-collation, and :class:`BatchIndexSampler` hands the dataset
    a tensor of a batch's indices, so the dataset must accept one (ReverseDataset does).
    """
    sampler = BatchIndexSampler(len(dataset), batch_size, shuffle=shuffle, drop_last=drop_last, generator=generator)
    return data.DataLoader(dataset, batch_size=None, sampler=sampler)


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


FEATURE_DIM = 512


MODEL_NAME = "resnet34"


FORMAT = "transformer_lab.features/1"


#: ``--weights`` choices -> the tag recorded in caches (torchvision's enum name, or "none").
WEIGHTS = {"imagenet": "IMAGENET1K_V1", "none": "none"}


def weights_tag(weights: str) -> str:
    if weights not in WEIGHTS:
        raise ValueError(f"features: weights must be one of {sorted(WEIGHTS)}, got {weights!r}")
    return WEIGHTS[weights]


def build_resnet34(weights: str = "imagenet") -> nn.Module:
    """ResNet34 without its classifier (``fc = Identity``): images -> ``[B, 512]``; eval mode, frozen.

    ``weights="imagenet"`` loads torchvision's ImageNet weights (downloaded once into
    ``$TORCH_HOME/hub/checkpoints``); ``"none"`` is a random initialisation, for tests and
    timing runs only (its features carry no meaning).
    """
    import torchvision

    tag = weights_tag(weights)
    if tag == "none":
        model = torchvision.models.resnet34(weights=None)
    else:
        w = torchvision.models.ResNet34_Weights[tag]
        try:
            model = torchvision.models.resnet34(weights=w)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, RuntimeError) as e:
            target = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(w.url))
            raise FileNotFoundError(
                f"could not load the pretrained ResNet34 ImageNet weights ({str(e).splitlines()[0]}): put "
                f"{os.path.basename(w.url)} (from {w.url}) at {target} (set TORCH_HOME to choose the folder "
                "above hub/). To test the pipeline without them: weights='none' (--weights none on the command "
                "line): random weights, meaningless features"
            ) from None
    model.fc = nn.Identity()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def preprocess(images: torch.Tensor, size: int = 224) -> torch.Tensor:
    """uint8 ``[B, 32, 32, 3]`` (on any device) -> normalised float ``[B, 3, size, size]``.

    Bilinear upsampling (half-pixel centres, as PIL's ``Resize``); antialiasing only matters when
    shrinking, so it is off. The result is channels-last in memory (the permuted HWC input),
    which cuDNN convolutions prefer.
    """
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[-1] != 3:
        raise ValueError(f"preprocess: argument 'images' must be uint8 [Batch, H, W, 3], "
                         f"got {images.dtype} {list(images.shape)}")
    x = images.permute(0, 3, 1, 2).float().div_(255)  # (B, 3, H, W), channels-last strides
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def _default_device():
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def extract_features(images, model: nn.Module | None = None, weights: str = "imagenet", batch_size: int = 256,
                     device=None, progress: bool = True) -> torch.Tensor:
    """uint8 images ``[N, 32, 32, 3]`` (numpy or tensor) -> float32 features ``[N, 512]`` on the CPU."""
    images = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[-1] != 3:
        raise ValueError(f"extract_features: argument 'images' must be uint8 [N, H, W, 3], "
                         f"got {images.dtype} {list(images.shape)}")
    device = torch.device(device) if device is not None else _default_device()
    model = (build_resnet34(weights) if model is None else model).to(device).eval()
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
        images = images.pin_memory()
    from tqdm.auto import tqdm

    out = torch.empty(len(images), FEATURE_DIM)
    with tqdm(total=len(images), unit="img", desc="ResNet34 features", disable=not progress) as bar:
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size].to(device, non_blocking=True)
            with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=cuda):
                feats = model(preprocess(batch))
            out[start:start + len(batch)] = feats.float().cpu()
            bar.update(len(batch))
    return out


def images_sha256(images) -> str:
    """Checksum of the raw image bytes (and shape), so a cache knows which images it came from."""
    arr = np.ascontiguousarray(images.numpy() if isinstance(images, torch.Tensor) else images)
    h = hashlib.sha256(str((arr.dtype.str, arr.shape)).encode())
    h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


def read_feature_file(path) -> dict:
    """Load a features file safely (``weights_only=True``) into ``{"meta": {...}, "splits": {name: {...}}}``.

    Accepts this package's dict format (splits with ``features`` and ``labels``) and the tutorial's
    ``train_set_features.tar`` / ``test_set_features.tar``: a bare tensor ``[N, 512]``, returned as
    the split ``"features"`` with ``labels = None`` (its labels come from CIFAR-100 itself).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"features file {path!r} does not exist; create it by running the notebook "
                                "in full mode (it extracts and caches the features in FEATURE_FILE), or put the "
                                "feature file your course hands out there")
    if not zipfile.is_zipfile(path):  # torch.save has written zip archives since torch 1.6
        raise ValueError(f"features file {path!r} is corrupt or not a PyTorch file (not a torch.save archive)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(f"features file {path!r} holds objects other than tensors and plain containers "
                         f"and was not loaded: {str(e).splitlines()[0]}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"features file {path!r} is corrupt or not a PyTorch file: {str(e).splitlines()[0]}") from None
    if isinstance(obj, torch.Tensor):
        if obj.dim() != 2 or not obj.is_floating_point():
            raise ValueError(f"features file {path!r}: a bare tensor must be float [NumImages, D], got "
                             f"{obj.dtype} {list(obj.shape)}")
        return {"meta": {"format": "tensor"}, "splits": {"features": {"features": obj.float(), "labels": None}}}
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or not isinstance(obj.get("splits"), dict):
        raise ValueError(f"features file {path!r} is neither a bare [N, D] tensor nor a {FORMAT} dict")
    for name, s in obj["splits"].items():
        f, lab = s.get("features"), s.get("labels")
        if not isinstance(f, torch.Tensor) or f.dim() != 2 or (lab is not None and lab.shape != f.shape[:1]):
            raise ValueError(f"features file {path!r}: split {name!r} needs features [N, D] and labels [N]")
    meta = {k: v for k, v in obj.items() if k != "splits"}
    return {"meta": meta, "splits": obj["splits"]}


def save_feature_file(path, splits: dict, weights: str) -> None:
    """Write ``splits`` (``name -> {"features", "labels", "input_sha256", "input_shape"}``) in this package's format."""
    os.makedirs(os.path.dirname(os.path.abspath(os.fspath(path))), exist_ok=True)
    obj = {"format": FORMAT, "model": MODEL_NAME, "weights": weights_tag(weights), "feature_dim": FEATURE_DIM,
           "splits": splits}
    tmp = os.fspath(path) + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)  # never leave a half-written cache behind


def cached_features(path, splits: dict, weights: str = "imagenet", batch_size: int = 256, device=None,
                    progress: bool = True, log=None):
    """Features of every split, from the cache at ``path`` when it is fresh, else computed and saved.

    Args:
        splits: ``name -> (images uint8 [N, 32, 32, 3], labels [N])``
        log: called with one line per split saying what happened (default: print to stderr)

    Returns ``(features, status)``: ``name -> {"features" [N, 512], "labels" [N]}`` and
    ``name -> "cached" | "computed" | "stale (reason), recomputed"``.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    tag = weights_tag(weights)
    old = {}
    if os.path.isfile(os.fspath(path)):
        try:
            f = read_feature_file(path)
            if f["meta"].get("format") == FORMAT:
                old = {"meta": f["meta"], **f["splits"]}
        except ValueError as e:
            log(f"feature cache {os.fspath(path)!r} unreadable ({e}); recomputing")
    model, computed = None, False
    result, status = {}, {}
    for name, (images, labels) in splits.items():
        sha = images_sha256(images)
        entry = old.get(name)
        reason = None
        if entry is None:
            reason = "absent"
        elif old["meta"].get("model") != MODEL_NAME or old["meta"].get("weights") != tag:
            reason = f"made with {old['meta'].get('model')}/{old['meta'].get('weights')}, not {MODEL_NAME}/{tag}"
        elif entry.get("input_sha256") != sha:
            reason = "made from other images (sha256 of the input differs)"
        if reason is None:
            result[name] = entry
            status[name] = "cached"
        else:
            if reason != "absent":
                log(f"features[{name}]: cache {os.fspath(path)!r} is stale ({reason}); recomputing")
            if model is None:
                model = build_resnet34(weights)
            computed = True
            feats = extract_features(images, model, batch_size=batch_size, device=device, progress=progress)
            result[name] = {"features": feats, "labels": torch.as_tensor(labels).long(), "input_sha256": sha,
                            "input_shape": list(np.shape(images))}
            status[name] = "computed" if reason == "absent" else f"stale ({reason}), recomputed"
        log(f"features[{name}]: {status[name]} ({os.fspath(path)})")
    if computed:
        keep = {k: v for k, v in old.items() if k != "meta" and k not in result
                and old["meta"].get("weights") == tag}
        save_feature_file(path, {**keep, **result}, weights)
    return result, status


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
