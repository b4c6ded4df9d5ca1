"""Set-anomaly commands: ``train anomaly``, ``features`` and ``plot anomaly-sets`` / ``plot anomaly-prediction``.

Features come from one of: ``--synthetic`` (class means + noise, a CPU demo that needs no data),
``--features FILE`` (this package's file, or the tutorial's bare tensors with ``--test-features``,
whose labels are then read from CIFAR-100), or CIFAR-100 in ``--data-dir`` (ResNet34 features
extracted once and cached next to the data).
"""

from __future__ import annotations

import json
from pathlib import Path


def default_cache(data_dir, weights) -> Path:
    return Path(data_dir) / f"cifar100_resnet34_{weights}.pt"


def _images(args, train):
    """The CIFAR images of a split for figures, or None when the data is not there."""
    from .cifar import load_cifar100

    try:
        return load_cifar100(args.data_dir, train=train, download=False).images
    except (FileNotFoundError, ValueError):
        return None


def _load_splits(args):
    """``{"train": (feats, labels, images|None), "test": (...)}`` from the source the options name."""
    from .cifar import load_cifar100

    if getattr(args, "quick", False):  # the notebook's quick-mode data, graded by `--anomaly-features synthetic`
        from .set_anomaly import quick_mode_features

        return {k: (*v, None) for k, v in quick_mode_features().items()}
    if getattr(args, "synthetic", False):
        from .set_anomaly import synthetic_features

        c, n_tr, n_te = args.synthetic_classes, args.synthetic_train_per_class, args.synthetic_test_per_class
        feats, labels = synthetic_features(num_classes=c, per_class=n_tr + n_te, noise=args.synthetic_noise,
                                           seed=args.seed)
        k = c * n_tr  # labels cycle through the classes, so the first k rows hold n_tr of each
        return {"train": (feats[:k], labels[:k], None), "test": (feats[k:], labels[k:], None)}
    if args.features:
        from .features import read_feature_file

        f = read_feature_file(args.features)
        if f["meta"].get("format") == "tensor":  # the tutorial's train_set_features.tar
            if not args.test_features:
                raise ValueError(f"{args.features} is a bare feature tensor (the tutorial's format): pass the "
                                 "test features too (--test-features FILE); labels come from CIFAR-100 in --data-dir")
            test = read_feature_file(args.test_features)["splits"]
            test = test.get("features") or test.get("test")
            out = {}
            for name, s, train in (("train", f["splits"]["features"], True), ("test", test, False)):
                try:
                    data = load_cifar100(args.data_dir, train=train, download=args.download)
                except FileNotFoundError as e:
                    raise FileNotFoundError(f"the tutorial's bare feature tensors carry no labels, read from "
                                            f"CIFAR-100: {e}") from None
                if len(data.labels) != len(s["features"]):
                    raise ValueError(f"{name} features have {len(s['features'])} rows but CIFAR-100 {name} has "
                                     f"{len(data.labels)} images")
                out[name] = (s["features"], data.labels, data.images)
            return out
        missing = [n for n in ("train", "test") if n not in f["splits"] or f["splits"][n]["labels"] is None]
        if missing:
            raise ValueError(f"features file {args.features} lacks the split(s) {missing} with labels")
        return {n: (f["splits"][n]["features"], f["splits"][n]["labels"], _images(args, n == "train"))
                for n in ("train", "test")}
    return _extract(args)


def _extract(args, out=None):
    from .cifar import load_cifar100
    from .features import cached_features

    data = {n: load_cifar100(args.data_dir, train=(n == "train"), download=args.download) for n in ("train", "test")}
    cache = out or getattr(args, "feature_cache", None) or default_cache(args.data_dir, args.weights)
    feats, _ = cached_features(cache, {n: (d.images, d.labels) for n, d in data.items()}, weights=args.weights,
                               batch_size=getattr(args, "feature_batch_size", 256),
                               device=getattr(args, "device", None), progress=not args.quiet)
    return {n: (feats[n]["features"], feats[n]["labels"], data[n].images) for n in ("train", "test")}


def _figures(model, test_feats, test_labels, images, out: Path, set_size, seed, batch_size=64, index=None):
    """Set grid, prediction view and mistakes of the first fixed test batch; returns the paths."""
    from .anomaly import anomaly_probabilities
    from .anomaly_plots import find_mistakes, plot_anomaly_prediction, plot_anomaly_sets, plot_mistakes
    from .set_anomaly import SetAnomalyDataset

    ds = SetAnomalyDataset(test_feats, test_labels, set_size=set_size, train=False, seed=seed)
    idx = ds.set_indices(range(min(batch_size, len(ds))))
    sets = test_feats[idx].to(model.device)
    probs = anomaly_probabilities(model, sets).cpu()
    maps = model.get_attention_maps(sets)
    mistakes = find_mistakes(probs)
    if index is None:
        index = int(mistakes[-1]) if len(mistakes) else 0
    out.mkdir(parents=True, exist_ok=True)
    paths = {"sets_figure": out / "anomaly_sets.png", "prediction_figure": out / "anomaly_prediction.png",
             "mistakes_figure": out / "anomaly_mistakes.png"}
    plot_anomaly_sets(idx[:4], images, path=paths["sets_figure"])
    plot_anomaly_prediction(idx, probs, maps, idx=index, images=images, path=paths["prediction_figure"])
    plot_mistakes(idx, probs, images, path=paths["mistakes_figure"])
    print(f"set {index} of the first test batch: prediction {int(probs[index].argmax())}, probabilities "
          + " ".join(f"{100 * p:.1f}%" for p in probs[index].tolist()))
    print(f"mistakes in the first test batch ({len(probs)} sets): {mistakes.tolist()}")
    return {k: str(v) for k, v in paths.items()}


def _train_anomaly(args):
    from dataclasses import replace

    from .anomaly import AnomalyConfig, quick_anomaly_config, train_anomaly
    from .run_log import command_callbacks
    from .runtime import cpu_threads, uses_cpu
    from .set_anomaly import split_train_val

    splits = _load_splits(args)
    train_feats, train_labels, _ = splits["train"]
    test_feats, test_labels, test_images = splits["test"]
    tr_f, tr_l, va_f, va_l = split_train_val(train_feats, train_labels)
    if args.quick:
        cfg = replace(quick_anomaly_config(), seed=args.seed)
    else:
        cfg = AnomalyConfig(max_epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
    out = Path(args.out)
    with cpu_threads(1 if uses_cpu(args.accelerator) else None):  # as the notebook trains on a CPU
        model, result = train_anomaly(out, tr_f, tr_l, va_f, va_l, test_feats, test_labels, cfg,
                                      progress=not args.quiet, accelerator=args.accelerator,
                                      callbacks=command_callbacks(args.quiet))
    result.update(_figures(model, test_feats, test_labels, test_images, out, cfg.set_size, cfg.seed,
                           cfg.batch_size))
    (out / "anomaly_result.json").write_text(json.dumps(result, indent=2))
    print(f"train accuracy: {100 * result['train_acc']:.2f}%")
    print(f"val accuracy:   {100 * result['val_acc']:.2f}%")
    print(f"test accuracy:  {100 * result['test_acc']:.2f}%")
    print(f"fit:            {result['fit_seconds']:.1f} s for {result['steps']} steps")
    print(f"checkpoint:     {result['checkpoint']}")
    for k in ("sets_figure", "prediction_figure", "mistakes_figure"):
        print(f"{k.replace('_', ' ') + ':':<15} {result[k]}")
    print(f"result:         {out / 'anomaly_result.json'}")
    return 0


def _features(args):
    import time

    out = Path(args.out) if args.out else default_cache(args.data_dir, args.weights)
    t0 = time.perf_counter()
    splits = _extract(args, out=out)
    for name, (feats, labels, _) in splits.items():
        print(f"{name}: features {list(feats.shape)}, labels {list(labels.shape)}")
    print(f"{time.perf_counter() - t0:.1f} s; features file: {out}")
    return 0


def _plot_sets(args):
    import torch

    from .anomaly_plots import plot_anomaly_sets
    from .cifar import load_cifar100
    from .set_anomaly import SetAnomalyDataset, balanced_split

    data = load_cifar100(args.data_dir, train=(args.split != "test"), download=args.download)
    labels, index = data.labels, None
    if args.split == "val":
        _, index = balanced_split(labels)
        labels = labels[index]
    ds = SetAnomalyDataset(torch.zeros(len(labels), 1), labels, set_size=args.set_size, train=False, seed=args.seed)
    idx = ds.set_indices(range(args.num_sets))
    if index is not None:
        idx = index[idx]  # back to positions in the CIFAR training arrays
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    plot_anomaly_sets(idx, data.images, path=args.out)
    print(args.out)
    return 0


def _plot_prediction(args):
    from .anomaly import AnomalyPredictor

    model = AnomalyPredictor.load_from_checkpoint(args.checkpoint, map_location="cpu")
    test_feats, test_labels, images = _load_splits(args)["test"]
    if test_feats.shape[-1] != model.hparams.input_dim:
        raise ValueError(f"features are {test_feats.shape[-1]}-d but the checkpoint expects {model.hparams.input_dim}")
    out = Path(args.out)
    paths = _figures(model, test_feats, test_labels, images, out, args.set_size, args.seed, index=args.index)
    for v in paths.values():
        print(v)
    return 0


def _data_options(p, features=True):
    p.add_argument("--data-dir", default="data", help="folder holding cifar-100-python/ (default: data)")
    p.add_argument("--download", action="store_true", help="download CIFAR-100 if absent (needs the network)")
    p.add_argument("--weights", choices=["imagenet", "none"], default="imagenet",
                   help="ResNet34 weights for feature extraction (none: random, for pipeline tests)")
    if features:
        p.add_argument("--features", metavar="FILE", help="pre-extracted features (this package's file, or the "
                       "tutorial's train_set_features.tar with --test-features)")
        p.add_argument("--test-features", metavar="FILE", help="the tutorial's test_set_features.tar")
    p.add_argument("--quiet", action="store_true", help="no progress bars, one line per epoch instead (for CI logs)")


def _synthetic_options(p):
    p.add_argument("--synthetic", action="store_true",
                   help="synthetic 512-d features (class means + noise) instead of CIFAR-100: a CPU demo")
    p.add_argument("--synthetic-classes", type=int, default=100)
    p.add_argument("--synthetic-train-per-class", type=int, default=500)
    p.add_argument("--synthetic-test-per-class", type=int, default=100)
    p.add_argument("--synthetic-noise", type=float, default=0.8)


def register(train, top, plot):
    """Add ``train anomaly``, ``features`` and ``plot anomaly-*`` sub-commands to the given sub-parsers."""
    an = train.add_parser("anomaly", help="set anomaly detection on CIFAR-100 ResNet34 features "
                          "(4 layers, 4 heads, dim 256, 100 epochs)")
    _data_options(an)
    an.add_argument("--feature-cache", metavar="FILE",
                    help="where extracted features are cached (default: DATA_DIR/cifar100_resnet34_WEIGHTS.pt)")
    an.add_argument("--epochs", type=int, default=100)
    an.add_argument("--batch-size", type=int, default=64)
    an.add_argument("--seed", type=int, default=42)
    an.add_argument("--out", default="runs/anomaly", help="folder for the checkpoint, result JSON and figures")
    an.add_argument("--accelerator", default="auto", help="Lightning accelerator: auto, cpu or gpu")
    an.add_argument("--quick", action="store_true",
                    help="the notebook's CPU quick mode: its synthetic data and smaller recipe (about 25 s of "
                         "training on an idle 2-core CPU, measured; longer on a shared machine); the data "
                         "`autograder grade --anomaly-features synthetic` grades on")
    _synthetic_options(an)
    an.set_defaults(func=_train_anomaly)

    fe = top.add_parser("features", help="extract ResNet34 features of CIFAR-100 once, to a file")
    _data_options(fe, features=False)
    fe.add_argument("--out", metavar="FILE", help="features file (default: DATA_DIR/cifar100_resnet34_WEIGHTS.pt)")
    fe.add_argument("--batch-size", dest="feature_batch_size", type=int, default=256)
    fe.add_argument("--device", help="cuda, cpu, … (default: cuda when available)")
    fe.set_defaults(func=_features)

    ps = plot.add_parser("anomaly-sets", help="grid of fixed test sets (rows = sets, anomaly last)")
    ps.add_argument("--data-dir", default="data")
    ps.add_argument("--download", action="store_true")
    ps.add_argument("--split", choices=["test", "val"], default="test")
    ps.add_argument("--num-sets", type=int, default=4)
    ps.add_argument("--set-size", type=int, default=10)
    ps.add_argument("--seed", type=int, default=42)
    ps.add_argument("--out", default="runs/anomaly_sets.png")
    ps.set_defaults(func=_plot_sets)

    pp = plot.add_parser("anomaly-prediction", help="a trained model on the first fixed test batch: images, "
                         "probabilities, attention maps, mistakes")
    pp.add_argument("--checkpoint", required=True, help="anomaly.ckpt from `train anomaly`")
    _data_options(pp)
    pp.add_argument("--index", type=int, default=None, help="set of the batch to show (default: the last mistake, "
                    "or 0)")
    pp.add_argument("--set-size", type=int, default=10)
    _synthetic_options(pp)
    pp.add_argument("--seed", type=int, default=42)
    pp.add_argument("--out", default="runs/anomaly_prediction", help="folder for the figures")
    pp.set_defaults(func=_plot_prediction)
