"""Where a submission came from, for the instructor: work shared between classmates and
checkpoints this lab's code did not write. These are flags to look at, never a change of score.

Per submission, while it is graded (:func:`marks`): the student's own code (the notebook's cells
that the release does not hand out), and per checkpoint a fingerprint of its weights that
re-saving does not change, a 64-number sketch of them (a fixed random projection: two checkpoints
fine-tuned from one another stay near cosine 1, independent trainings near 0) and what wrote it.

Per class (:func:`class_flags`), from every ``OUT/<student>/``:

* byte-identical submissions (notebook and checkpoints);
* near-identical own code: copydetect's winnowed fingerprints, the release's and the tutorial's
  (reference) code excluded as boilerplate, so two students who both followed the tutorial are
  not flagged for it;
* identical or near-identical checkpoint weights;
* checkpoints from elsewhere: written by Lightning 1.x (the tutorial's published files were saved
  by 1.0.2; this lab's environment writes 2.x), without the lab's task mark, or with weights
  listed in ``published_checkpoints.json`` (``autograder fingerprint FILE`` adds one).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
from pathlib import Path

import torch

PUBLISHED = Path(__file__).with_name("published_checkpoints.json")
SKETCH_DIM = 64
#: cosine of two weight sketches above which the checkpoints are one training, lightly changed
NEAR_WEIGHTS = 0.9
#: share of each student's own (non-boilerplate) code that the other's matches
NEAR_CODE = 0.8
#: own code shorter than this (tokens after boilerplate) is too little to call a copy
MIN_CODE_TOKENS = 200
_K, _WINDOW = 25, 4  # copydetect's noise threshold and winnowing window, in characters of filtered code
TASK_KEY = "transformer_lab_task"


def own_code(cells: list[tuple[str, str]], given: frozenset[str]) -> str:
    """The submission's code cells that are not the release's own, as one Python text."""
    return "\n\n".join(src for _, src in cells if src not in given)


def _weights(state: dict) -> list[tuple[str, torch.Tensor]]:
    """The trained matrices (2-D ``.weight`` tensors), by name: what a fresh training randomises.
    Norm scales (ones at init) and fixed buffers such as the positional encoding are left out."""
    return sorted(
        (k, v)
        for k, v in state.items()
        if isinstance(k, str) and k.endswith(".weight") and isinstance(v, torch.Tensor) and v.dim() == 2
    )


def _sketch(mats: list[tuple[str, torch.Tensor]], layout: str) -> list[float]:
    """A fixed Gaussian projection of the matrices to ``SKETCH_DIM`` numbers (seeded by the layout)."""
    gen = torch.Generator().manual_seed(int(layout[:15], 16))
    acc = torch.zeros(SKETCH_DIM, dtype=torch.float64)
    for _, m in mats:
        flat = m.detach().reshape(-1).to(torch.float64)
        for start in range(0, flat.numel(), 1 << 16):
            chunk = flat[start : start + (1 << 16)]
            acc += torch.randn(SKETCH_DIM, chunk.numel(), generator=gen, dtype=torch.float64) @ chunk
    return [round(float(x), 6) for x in acc / max(float(acc.norm()), 1e-12)]


def checkpoint_marks(raw: bytes | None) -> dict:
    """What the grader notes of one checkpoint file it has already accepted as safe to load."""
    if raw is None:
        return {}
    from .untrusted import check_zip

    try:
        check_zip(raw)
        data = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - the accuracy check already says what is wrong
        return {"file_sha256": hashlib.sha256(raw).hexdigest()}
    state = data.get("state_dict") if isinstance(data, dict) else None
    marks = {
        "file_sha256": hashlib.sha256(raw).hexdigest(),
        "lightning": str(data.get("pytorch-lightning_version", ""))[:20] if isinstance(data, dict) else "",
        "lab_task": str(data.get(TASK_KEY, ""))[:40] if isinstance(data, dict) else "",
    }
    mats = _weights(state) if isinstance(state, dict) else []
    if mats:
        layout = hashlib.sha256(json.dumps([[k, list(v.shape)] for k, v in mats]).encode()).hexdigest()
        h = hashlib.sha256(layout.encode())
        for _, m in mats:
            h.update(m.detach().to(torch.float32).contiguous().numpy().tobytes())
        marks.update(layout=layout[:16], weights_sha256=h.hexdigest(), sketch=_sketch(mats, layout))
    return marks


def published() -> dict[str, str]:
    """``{weights_sha256: name}`` of checkpoints published elsewhere (``published_checkpoints.json``)."""
    try:
        return {e["weights_sha256"]: e["name"] for e in json.loads(PUBLISHED.read_text())}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _foreign(name: str, m: dict, known: dict[str, str]) -> str:
    """Why a checkpoint looks written by something other than this lab's notebook, or ``""``."""
    if m.get("weights_sha256") in known:
        return f"{name} has the weights of {known[m['weights_sha256']]}"
    if m.get("lightning", "").startswith(("0.", "1.")):
        return (
            f"{name} was written by Lightning {m['lightning']} (the tutorial's published checkpoints were "
            "saved by 1.0.2; the lab's environment writes 2.x)"
        )
    if "weights_sha256" in m and not m.get("lab_task"):
        return f"{name} lacks the mark the lab's training code writes ({TASK_KEY}): trained elsewhere?"
    return ""


def _cosine(a: list[float], b: list[float]) -> float:
    return float(sum(x * y for x, y in zip(a, b)))


def _code_fingerprints(codes: dict[str, str], boilerplate: str) -> dict:
    from copydetect import CodeFingerprint

    base = CodeFingerprint("boilerplate.py", _K, _WINDOW, fp=io.StringIO(boilerplate)).hashes
    return {
        s: CodeFingerprint(f"{s}.py", _K, _WINDOW, boilerplate=list(base), fp=io.StringIO(c))
        for s, c in codes.items()
        if c.strip()
    }


def _code_pairs(codes: dict[str, str], boilerplate: str) -> list[dict]:
    """Pairs whose own code is mostly the same, beyond what the course published."""
    from copydetect import compare_files

    prints = _code_fingerprints(codes, boilerplate)
    flags = []
    for a, b in itertools.combinations(sorted(prints), 2):
        fa, fb = prints[a], prints[b]
        if min(fa.token_coverage, fb.token_coverage) < MIN_CODE_TOKENS or not fa.hashes & fb.hashes:
            continue
        _, (sa, sb), _ = compare_files(fa, fb)
        if min(sa, sb) >= NEAR_CODE:
            flags.append(
                {
                    "kind": "near-identical code",
                    "students": [a, b],
                    "detail": f"{sa:.0%} / {sb:.0%} of each one's own code is shared (copydetect)",
                }
            )
    return flags


def _weight_pairs(ckpts: dict[str, dict[str, dict]]) -> list[dict]:
    flags = []
    for a, b in itertools.combinations(sorted(ckpts), 2):
        for fname in sorted(set(ckpts[a]) & set(ckpts[b])):
            ma, mb = ckpts[a][fname], ckpts[b][fname]
            if "sketch" not in ma or "sketch" not in mb or ma.get("layout") != mb.get("layout"):
                continue
            if ma["weights_sha256"] == mb["weights_sha256"]:
                kind, detail = "identical weights", f"{fname}: the same weights (re-saved or copied)"
            elif _cosine(ma["sketch"], mb["sketch"]) >= NEAR_WEIGHTS:
                cos = _cosine(ma["sketch"], mb["sketch"])
                kind, detail = "near-identical weights", f"{fname}: cosine {cos:.3f} (one training, changed)"
            else:
                continue
            flags.append({"kind": kind, "students": [a, b], "detail": detail})
    return flags


def class_flags(records: list[dict], codes: dict[str, str], boilerplate: str) -> list[dict]:
    """Every flag of the class. ``records``: ``{student, content_sha256, checkpoints: {file: marks}}``."""
    flags = []
    by_content: dict[str, list[str]] = {}
    for r in records:
        if r.get("content_sha256"):
            by_content.setdefault(r["content_sha256"], []).append(r["student"])
    for students in by_content.values():
        if len(students) > 1:
            flags.append(
                {
                    "kind": "identical submissions",
                    "students": sorted(students),
                    "detail": "notebook and checkpoints byte for byte",
                }
            )
    known = published()
    for r in records:
        for fname, m in sorted(r.get("checkpoints", {}).items()):
            why = _foreign(fname, m, known)
            if why:
                flags.append({"kind": "checkpoint from elsewhere", "students": [r["student"]], "detail": why})
    flags += _weight_pairs({r["student"]: r.get("checkpoints", {}) for r in records})
    flags += _code_pairs(codes, boilerplate)
    return flags


def fingerprint_entry(path: Path, name: str) -> dict:
    """The ``published_checkpoints.json`` entry of a checkpoint file (``autograder fingerprint``)."""
    marks = checkpoint_marks(Path(path).read_bytes())
    if "weights_sha256" not in marks:
        raise ValueError(f"{path}: no Lightning state_dict with weight matrices in it")
    return {"name": name, "weights_sha256": marks["weights_sha256"], "layout": marks["layout"]}
