#!/usr/bin/env python
"""Build the student release with ``nbgrader generate_assignment`` (course dir = repository root).

``python tools/build_release.py``          regenerate ``release/transformer_lab/``
``python tools/build_release.py --check``  build into a temporary course directory and exit 1 if the
                                           committed release differs (volatile metadata ignored)

The gradebook is a throw-away database in a temporary directory: nothing is written outside
``release/``. Only the notebook and the given modules (``GIVEN_FILES``) are copied from
``source/<assignment>/`` (never checkpoints, data or logs a local run of the source notebook may have
left there). The release is then checked: no solution region, no hidden test, every graded part has
its (locked) test cell, and the given modules are the source's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "transformer_lab"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
sys.path.insert(0, str(ROOT / "autograder"))
from lab_autograder.registry import GIVEN_FILES  # noqa: E402

#: Notebook/cell metadata that differ between runs or tool versions and carry no content.
VOLATILE_NB_KEYS = ("widgets", "jupytext", "toc", "varInspector")
VOLATILE_CELL_KEYS = ("execution", "collapsed", "scrolled", "ExecuteTime", "jupyter")


def nbgrader_exe() -> str:
    exe = Path(sys.executable).with_name("nbgrader")
    return str(exe) if exe.exists() else "nbgrader"


def generate(course_root: Path) -> Path:
    """Run generate_assignment for ``course_root`` (which holds source/ and nbgrader_config.py)."""
    with tempfile.TemporaryDirectory(prefix="tl-gradebook-") as tmp:
        cmd = [
            nbgrader_exe(), "generate_assignment", ASSIGNMENT, "--force", "--no-db",
            f"--CourseDirectory.root={course_root}",
            f"--CourseDirectory.db_url=sqlite:///{tmp}/gradebook.db",
            f"--CourseDirectory.include={['*.ipynb', *GIVEN_FILES]!r}",
            "--CourseDirectory.ignore=['.ipynb_checkpoints','checkpoints','data','lightning_logs','__pycache__']",
            "--log-level=WARN",
        ]
        env = dict(os.environ, TL_GRADEBOOK=f"{tmp}/gradebook.db")
        proc = subprocess.run(cmd, cwd=course_root, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"nbgrader generate_assignment failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return course_root / "release" / ASSIGNMENT / NOTEBOOK


def normalized(path: Path) -> dict:
    """The notebook as JSON with volatile metadata removed (for comparisons)."""
    nb = json.loads(Path(path).read_text())
    for key in VOLATILE_NB_KEYS:
        nb.get("metadata", {}).pop(key, None)
    for cell in nb.get("cells", []):
        for key in VOLATILE_CELL_KEYS:
            cell.get("metadata", {}).pop(key, None)
    return nb


def check_release(path: Path) -> list[str]:
    """Problems of a release notebook: leaked solutions/hidden tests, missing or unlocked test cells,
    given modules missing or not the source's."""
    sys.path.insert(0, str(ROOT / "tools"))
    from build_notebook import PARTS

    nb = json.loads(Path(path).read_text())
    problems = []
    for name in GIVEN_FILES:
        given, source = Path(path).with_name(name), ROOT / "source" / ASSIGNMENT / name
        if not given.is_file() or not source.is_file() or given.read_bytes() != source.read_bytes():
            problems.append(f"{name}: missing beside the notebook, or not the source's copy (make release)")
    ids = {}
    for cell in nb["cells"]:
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
            if marker in src:
                problems.append(f"a cell still contains {marker!r}")
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if "grade_id" in meta:
            ids[meta["grade_id"]] = (meta, src, cell.get("outputs", []))
    for part, spec in PARTS.items():
        impl, test = ids.get(f"impl_{part}"), ids.get(f"test_{part}")
        if impl is None or "raise NotImplementedError()" not in impl[1]:
            problems.append(f"impl_{part}: missing, or without the NotImplementedError stub")
        if test is None:
            problems.append(f"test_{part}: missing")
            continue
        meta, src, _ = test
        if not (meta.get("grade") and meta.get("locked") and meta.get("points") == spec.points):
            problems.append(f"test_{part}: must be a locked grade cell worth {spec.points} points, got {meta}")
        if "assert" not in src and "check_" not in src:
            problems.append(f"test_{part}: has no public test left")
    if any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"):
        problems.append("the release has outputs")
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare a fresh build with the committed release")
    args = ap.parse_args(argv)
    committed = ROOT / "release" / ASSIGNMENT / NOTEBOOK
    if args.check:
        with tempfile.TemporaryDirectory(prefix="tl-release-") as tmp:
            course = Path(tmp)
            shutil.copytree(ROOT / "source" / ASSIGNMENT, course / "source" / ASSIGNMENT,
                            ignore=shutil.ignore_patterns("checkpoints", "data", "lightning_logs", ".ipynb_checkpoints"))
            shutil.copy(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
            fresh = generate(course)
            if not committed.is_file() or normalized(fresh) != normalized(committed):
                print(f"{committed.relative_to(ROOT)} is stale: run `python tools/build_release.py`", file=sys.stderr)
                return 1
        problems = check_release(committed)
        for p in problems:
            print(f"release problem: {p}", file=sys.stderr)
        if problems:
            return 1
        print(f"{committed.relative_to(ROOT)} is up to date")
        return 0
    out = generate(ROOT)
    problems = check_release(out)
    for p in problems:
        print(f"release problem: {p}", file=sys.stderr)
    print(f"wrote {out.relative_to(ROOT)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
