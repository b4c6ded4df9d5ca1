"""Example submissions for the demo: the source solution, two buggy copies and the untouched release.

``autograder examples DIR [--checkpoints CKPT_DIR]`` writes ``DIR/<name>/transformer_lab.ipynb``
(+ ``checkpoints/`` copied from ``CKPT_DIR`` when given) for ``solution``, ``bug_no_sqrt_dk``,
``bug_pre_layernorm`` and ``release``; then ``autograder grade DIR/* --out OUT`` grades them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .grade import DEFAULT_SOURCE, PROJECT_ROOT

RELEASE = PROJECT_ROOT / "release" / "transformer_lab" / "transformer_lab.ipynb"
BUGS = {
    "bug_no_sqrt_dk": [
        ("torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(d_k)", "torch.matmul(q, k.transpose(-2, -1))")
    ],
    "bug_pre_layernorm": [
        (
            "x = self.norm1(x + self.dropout(self.self_attn(x, mask=mask)))",
            "x = x + self.dropout(self.self_attn(self.norm1(x), mask=mask))",
        ),
        (
            "x = self.norm2(x + self.dropout(self.linear_net(x)))",
            "x = x + self.dropout(self.linear_net(self.norm2(x)))",
        ),
    ],
}


def write_examples(dest: Path, checkpoints=(), source: Path = DEFAULT_SOURCE) -> list[Path]:
    """The example submissions in ``dest``; each gets the first ``reverse.ckpt`` / ``anomaly.ckpt`` found
    in the ``checkpoints`` folders (one folder, or a list of them)."""
    import nbformat

    dest = Path(dest)
    folders = [checkpoints] if isinstance(checkpoints, (str, Path)) else list(checkpoints or [])
    nb = nbformat.read(source, as_version=4)
    made = {"solution": nb}
    for name, edits in BUGS.items():
        bug = nbformat.reads(nbformat.writes(nb), as_version=4)
        for old, new in edits:
            cell = next(c for c in bug.cells if c.cell_type == "code" and old in c.source)
            cell.source = cell.source.replace(old, new)
        made[name] = bug
    out = []
    for name, book in made.items():
        d = dest / name
        d.mkdir(parents=True, exist_ok=True)
        nbformat.write(book, d / "transformer_lab.ipynb")
        for f in ("reverse.ckpt", "anomaly.ckpt"):
            found = [Path(c) / f for c in folders if (Path(c) / f).is_file()]
            if found:
                (d / "checkpoints").mkdir(exist_ok=True)
                shutil.copyfile(found[0], d / "checkpoints" / f)
        out.append(d)
    if RELEASE.is_file():
        (dest / "release").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(RELEASE, dest / "release" / "transformer_lab.ipynb")
        out.append(dest / "release")
    return out
