"""Which grader graded: a version, and a fingerprint of the code that computed the score.

Both go into every ``results.json``; a grading run regrades a student when either, the
submission's content or the grading settings changed since their last ``results.json``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

VERSION = "1.1.0"


def file_sha256(path: Path | None) -> str:
    """First 16 hex digits of the file's SHA-256 (``""`` when there is no file)."""
    if path is None or not Path(path).is_file():
        return ""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def code_fingerprint() -> str:
    """SHA-256 (16 hex digits) of the grader's and the reference package's Python sources."""
    import transformer_lab

    h = hashlib.sha256()
    for pkg in (Path(__file__).parent, Path(transformer_lab.__file__).parent):
        for f in sorted(pkg.rglob("*.py")):
            h.update(f.relative_to(pkg.parent).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]
