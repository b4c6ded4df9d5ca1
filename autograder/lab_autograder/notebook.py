"""Reading submissions and the source notebook's points, without running anything."""

from __future__ import annotations

import json
from pathlib import Path

from .parts import DEFAULT_POINTS, PART_ORDER

MAX_NOTEBOOK_BYTES = 50 * 2**20


class NotebookError(ValueError):
    """The submission cannot be read as a notebook; the message says why."""


def _source(cell) -> str:
    src = cell.get("source", "")
    if isinstance(src, list):
        src = "".join(s for s in src if isinstance(s, str))
    return src if isinstance(src, str) else ""


def transform_magics(src: str) -> str:
    """A cell as the Python that IPython itself would run: its own transformer turns ``%magic``,
    ``!shell`` and ``%%cell`` magics into calls of ``get_ipython()``, and leaves everything else
    alone (a ``!=`` continuation line, a ``%`` operator). The worker's ``get_ipython()`` runs the
    magics that matter for grading (``%%writefile``, ``%time``, ``%%capture``, ...) and no shell."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        return TransformerManager().transform_cell(src)
    except Exception:  # noqa: BLE001 - a cell IPython cannot read runs as it is (and fails as it would)
        return src


def read_cells(path: Path) -> list[dict]:
    """The notebook's cells as plain dicts; tolerant of files nbformat would reject, strict about JSON."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise NotebookError(f"cannot read {path.name}: {e.strerror}") from None
    if size > MAX_NOTEBOOK_BYTES:
        raise NotebookError(
            f"{path.name} is {size / 2**20:.0f} MiB; notebooks over {MAX_NOTEBOOK_BYTES // 2**20} MiB are "
            "refused "
            "(clear the outputs before submitting)"
        )
    return cells_from_bytes(path.read_bytes(), path.name)


def cells_from_bytes(raw: bytes, name: str) -> list[dict]:
    """:func:`read_cells` on a notebook already read (the grader's snapshot of a submission)."""
    try:
        nb = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        why = "nested too deeply" if isinstance(e, RecursionError) else f"JSON error: {e}"
        raise NotebookError(
            f"{name} is not a valid notebook ({why}); open it in Jupyter and save it again"
        ) from None
    try:  # normalise old formats when nbformat can; fall back to the raw JSON
        import nbformat

        nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
    except Exception:  # noqa: BLE001 - malformed but JSON: use what we can
        pass
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if cells is None and isinstance(nb, dict) and isinstance(nb.get("worksheets"), list):  # nbformat 3
        cells = [c for ws in nb["worksheets"] if isinstance(ws, dict) for c in ws.get("cells", [])]
    if not isinstance(cells, list):
        raise NotebookError(f"{name} has no list of cells; is it a Jupyter notebook?")
    return [c for c in cells if isinstance(c, dict)]


def code_cells(path: Path) -> list[str]:
    """Sources of the code cells to run (see :func:`labeled_code_cells`)."""
    return [src for _, src in labeled_code_cells(path)]


def labeled_code_cells(path: Path | None = None, cells: list[dict] | None = None) -> list[tuple[str, str]]:
    """``(label, source)`` of the code cells to run, magics transformed, nbgrader test cells left out.

    The label names the cell in feedback: its nbgrader ``grade_id``, else ``In [n]`` with ``n``
    its position among the notebook's cells (1-based).

    Test cells (``grade: true`` without ``solution``) hold the public tests, which the
    autograder replaces by its own behavioural checks; skipping them also means a student
    cannot smuggle code into the grading run through them.
    """
    out = []
    for n, cell in enumerate(read_cells(path) if cells is None else cells, 1):
        if cell.get("cell_type") != "code":
            continue
        meta = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
        nbg = meta.get("nbgrader") if isinstance(meta.get("nbgrader"), dict) else {}
        if nbg.get("grade") and not nbg.get("solution"):
            continue
        src = transform_magics(_source(cell))
        if src.strip():
            gid = nbg.get("grade_id")
            label = str(gid) if isinstance(gid, str) and gid.isidentifier() else f"In [{n}]"
            out.append((label, src))
    return out


def given_cell_sources(path: Path | None) -> frozenset[str]:
    """The code cells the release hands out unchanged (no nbgrader ``solution``, not a test cell),
    as the grader runs them: a submission's cell with one of these sources is the course's code."""
    if path is None or not Path(path).is_file():
        return frozenset()
    given = []
    for cell in read_cells(Path(path)):
        nbg = (cell.get("metadata") or {}).get("nbgrader") or {}
        if cell.get("cell_type") == "code" and not nbg.get("solution") and not nbg.get("grade"):
            given.append(transform_magics(_source(cell)))
    return frozenset(src for src in given if src.strip())


def points_from_source(path: Path | None) -> tuple[dict[str, float], str]:
    """Points per part from the source notebook's graded test cells (``grade_id: test_<part>``).

    Returns ``(points, origin)``; parts missing from the notebook keep the PARTS.md default.
    """
    points = dict(DEFAULT_POINTS)
    if path is None or not Path(path).is_file():
        return points, "defaults (source notebook not found)"
    found = {}
    for cell in read_cells(Path(path)):
        nbg = (cell.get("metadata") or {}).get("nbgrader") or {}
        gid = str(nbg.get("grade_id", ""))
        if nbg.get("grade") and gid.startswith("test_") and gid[5:] in PART_ORDER:
            found[gid[5:]] = float(nbg.get("points", 0))
    points.update(found)
    return points, f"{path} ({len(found)} graded cells)"
