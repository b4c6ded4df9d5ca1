#!/usr/bin/env python
"""Build Gradescope's ``autograder.zip`` (``make gradescope [FEATURES=path]``).

    python tools/build_gradescope.py [--features FILE] [--out build/gradescope]

The zip unpacks into ``/autograder/source``::

    setup.sh, harden.sh            install the pinned stack (CPU torch), make the grading users, lock all
    run_autograder                 Gradescope's entry point (absolute paths: Gradescope runs a copy of it)
    requirements*.txt              the versions this build was tested with
    bundle.env, manifest.json      the anomaly features it grades on; versions and hashes, for the instructor
    lib/lab_autograder, lib/transformer_lab    the grader and the reference it compares with
    points/transformer_lab.ipynb   the student release (no solution): its nbgrader metadata gives the points
    points/lab_data.py             the given code the notebook imports (every job gets this copy)
    data/anomaly_test_features.pt  the instructor's features (only with --features)

Nothing in it is readable by student code once ``harden.sh`` has run (see autograder/README.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "autograder"), str(ROOT / "tools")]
from dependency_check import notebook_code, undeclared  # noqa: E402
from lab_autograder.registry import GIVEN_FILES  # noqa: E402

GRADESCOPE = ROOT / "autograder" / "gradescope"
RELEASE = ROOT / "release" / "transformer_lab" / "transformer_lab.ipynb"
SOURCE = ROOT / "source" / "transformer_lab" / "transformer_lab.ipynb"
PACKAGES = {
    "lab_autograder": ROOT / "autograder" / "lab_autograder",
    "transformer_lab": ROOT / "reference" / "transformer_lab",
}
#: installed from download.pytorch.org's CPU index
TORCH = ("torch", "torchvision")
#: what the grader and the student's notebook import (the rest comes with them); ``undeclared_imports``
#: checks that nothing they import is missing from these and what they require
RUNTIME = ("pytorch-lightning", "numpy", "matplotlib", "nbformat", "tqdm", "ipython", "copydetect")
FEATURES_NAME = "data/anomaly_test_features.pt"
#: the grader's modules for an nbgrader course (its exchange, gradebook, feedback folder): not on Gradescope
INSTRUCTOR_ONLY = ("course.py", "class_commands.py")


def pin(dist: str) -> str:
    """``name==version`` of the installed distribution, without a local tag (``2.5.1+cu124`` -> ``2.5.1``)."""
    return f"{dist}=={metadata.version(dist).split('+')[0]}"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _features(path: Path) -> bytes:
    """The test features only (``{feats, labels}``), checked: a whole feature cache holds the training
    split too (~100 MB for CIFAR-100), which grading never reads."""
    import io

    import torch

    sys.path[:0] = [str(ROOT / "autograder"), str(ROOT / "reference")]
    from lab_autograder.grade import load_features

    f = load_features(path)
    if f.feats is None or f.feats.ndim != 2 or len(f.feats) != len(f.labels):
        raise SystemExit(f"{path}: expected feats [N, D] and labels [N]")
    print(f"features: {path} ({len(f.feats)} test images, {f.feats.shape[1]}-d, sha256 {f.sha256})")
    buf = io.BytesIO()
    torch.save({"feats": f.feats.contiguous(), "labels": f.labels.contiguous()}, buf)
    return buf.getvalue()


def undeclared_imports(bundle: dict[str, bytes]) -> dict[str, list[str]]:
    """Modules that the bundle's code (grader, reference, given modules, the notebook's cells) imports
    but that neither the standard library nor the bundle's requirement files provide: ``{module: [files]}``.
    A grading machine built from the bundle alone would fail on each of them."""
    sources = {n: d.decode() for n, d in bundle.items() if n.endswith(".py")}
    sources.update({n: notebook_code(d) for n, d in bundle.items() if n.endswith(".ipynb")})
    # "worker": lab_autograder/worker, which each job imports by its own name (worker/__main__.py)
    local = set(PACKAGES) | {"worker"} | {Path(n).stem for n in GIVEN_FILES}
    return undeclared(sources, TORCH + RUNTIME, local=local)


def files(features: Path | None) -> dict[str, bytes]:
    """Every file of the bundle, by its path inside the zip."""
    out = {name: (GRADESCOPE / name).read_bytes() for name in ("setup.sh", "harden.sh", "run_autograder")}
    out["requirements-torch.txt"] = "\n".join(pin(d) for d in TORCH).encode() + b"\n"
    out["requirements.txt"] = "\n".join(pin(d) for d in RUNTIME).encode() + b"\n"
    for name, folder in PACKAGES.items():
        for f in sorted(folder.rglob("*")):
            if (
                f.is_file()
                and "__pycache__" not in f.parts
                and f.suffix in (".py", ".md")
                and (f.name not in INSTRUCTOR_ONLY)
            ):
                out[f"lib/{name}/{f.relative_to(folder).as_posix()}"] = f.read_bytes()
    out["points/transformer_lab.ipynb"] = RELEASE.read_bytes()
    for name in GIVEN_FILES:
        out[f"points/{name}"] = RELEASE.with_name(name).read_bytes()
    spec = "synthetic"
    if features is not None:
        out[FEATURES_NAME] = _features(features)
        spec = FEATURES_NAME
    out["bundle.env"] = f"ANOMALY_FEATURES={spec}\n".encode()
    out["manifest.json"] = json.dumps(
        {
            "commit": _commit(),
            "python_built_with": sys.version.split()[0],
            "anomaly_features": spec,
            "features_sha256": _sha(out[FEATURES_NAME]) if features else "",
            "source_notebook_sha256": _sha(SOURCE.read_bytes()) if SOURCE.is_file() else "",
            "release_notebook_sha256": _sha(out["points/transformer_lab.ipynb"]),
            "given_sha256": {name: _sha(out[f"points/{name}"]) for name in GIVEN_FILES},
            "pins": [pin(d) for d in TORCH + RUNTIME],
        },
        indent=1,
    ).encode()
    return out


def build(out_dir: Path, features: Path | None = None) -> Path:
    bundle = files(features)
    missing = undeclared_imports(bundle)
    if missing:
        raise SystemExit(
            "build_gradescope: the bundle's code imports modules its requirement files do not install: "
            + "; ".join(f"{m} (in {', '.join(w[:3])})" for m, w in missing.items())
            + ". Add their distributions to RUNTIME in tools/build_gradescope.py."
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    zpath = out_dir / "autograder.zip"
    tmp = zpath.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in sorted(bundle.items()):
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))  # same inputs, same zip
            executable = name in ("setup.sh", "harden.sh", "run_autograder")
            info.external_attr = (0o100755 if executable else 0o100644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    tmp.replace(zpath)
    return zpath


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.replace("``", ""), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--features",
        type=Path,
        help="the anomaly test features to grade on (.pt {feats, labels} "
        "or .npz); default: the notebook's quick-mode synthetic data",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "gradescope")
    args = ap.parse_args(argv)
    if args.features is not None and not args.features.is_file():
        print(f"build_gradescope: no such features file: {args.features}", file=sys.stderr)
        return 2
    if args.features is None:
        print(
            "note: no FEATURES given: the anomaly checkpoint is graded on the notebook's quick-mode "
            "synthetic "
            "features, which a model trained on CIFAR-100 does not pass; give FEATURES=path to grade on CIFAR"
        )
    zpath = build(args.out, args.features)
    print(
        f"wrote {zpath} ({zpath.stat().st_size / 2**20:.2f} MiB): upload it under Configure Autograder "
        "(base image: Ubuntu 24.04)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
