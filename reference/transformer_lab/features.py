"""ResNet34 image features (512-d) for the set-anomaly task, extracted once and cached.

Differences from the tutorial, same features: the uint8 images go to the device in batches and
are resized to 224x224 and normalised there (``F.interpolate`` + ImageNet statistics) instead of
image by image in PIL worker processes; on CUDA the network runs channels-last under float16
autocast. The cache is a plain dict of tensors and strings (loaded with ``weights_only=True``)
that records the model, the weights and the sha256 of the input images, so a cache made from
other images or other weights is detected and recomputed instead of silently reused.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import urllib.error
import zipfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .cifar import IMAGENET_MEAN, IMAGENET_STD

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
