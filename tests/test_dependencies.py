"""What the code imports is what ``pyproject.toml`` declares, and the declared Python floor is the
one the suite runs on.

The package's own code (reference, grader, the release notebook and its given module) may import
only the standard library and the distributions ``[project.dependencies]`` names; tests,
benchmarks and tools may add the ``dev`` extra. Each import is declared itself: a module that
arrives only through another package (PIL through torchvision, nbformat through the dev tools)
fails here until it is named.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from dependency_check import notebook_code, undeclared  # noqa: E402

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
RELEASE = ROOT / "release" / "transformer_lab"


def _sources(*globs) -> dict[str, str]:
    found = {}
    for pattern in globs:
        for f in sorted(ROOT.glob(pattern)):
            rel = str(f.relative_to(ROOT))
            found[rel] = notebook_code(f.read_text()) if f.suffix == ".ipynb" else f.read_text()
    return found


def _local() -> set[str]:
    """Our own modules: the packages, and every script folder's files (imported by path)."""
    mine = {"transformer_lab", "lab_autograder", "tutorial6", "autograder_fixtures", "lab_data"}
    for folder in ("tests", "tests/autograder_fixtures", "tests/parts", "tools", "benchmarks"):
        mine |= {f.stem for f in (ROOT / folder).glob("*.py")}
    return mine


def test_the_package_imports_only_what_it_declares():
    sources = _sources("reference/transformer_lab/*.py", "autograder/lab_autograder/*.py",
                       "release/transformer_lab/*.ipynb", "release/transformer_lab/*.py")
    assert len(sources) > 30
    assert undeclared(sources, PROJECT["dependencies"], _local(), transitive=False) == {}


def test_tests_benchmarks_and_tools_import_only_what_dev_declares():
    sources = _sources("tests/**/*.py", "benchmarks/*.py", "tools/*.py")
    declared = PROJECT["dependencies"] + PROJECT["optional-dependencies"]["dev"]
    assert undeclared(sources, declared, _local(), transitive=False) == {}


def test_an_undeclared_import_is_caught():
    code = {"x.py": "import PIL.Image\nfrom nbformat import v4\nimport json\n"}
    assert undeclared(code, ["torch"], ()) == {"PIL": ["x.py"], "nbformat": ["x.py"]}  # neither comes with torch
    assert undeclared({"x.py": "import PIL"}, ["torchvision"], ()) == {}  # it does with torchvision...
    assert undeclared({"x.py": "import PIL"}, ["torchvision"], (), transitive=False) == {"PIL": ["x.py"]}


def test_the_declared_python_floor_is_the_one_the_suite_runs_on_or_below():
    """``requires-python`` names the oldest Python the build and the tests have run on: CI runs them on
    exactly that version (3.11: the builder reads TOML with ``tomllib``), so a newer-only feature fails."""
    floor = tuple(int(x) for x in re.fullmatch(r">=\s*(\d+)\.(\d+)", PROJECT["requires-python"]).groups())
    assert floor >= (3, 11), "tools/build_notebook.py uses tomllib (Python 3.11)"
    assert sys.version_info[:2] >= floor
    notebook = (ROOT / "notebook" / "transformer_lab.py").read_text()
    assert f"Python {floor[0]}.{floor[1]} or newer" in notebook  # what students are told
