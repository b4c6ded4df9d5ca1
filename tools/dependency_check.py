"""Does what the code imports match what it declares? Used by ``build_gradescope.py`` (the bundle's
requirement files) and ``tests/test_dependencies.py`` (``pyproject.toml``)."""

from __future__ import annotations

import ast
import json
import sys
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def top_level_imports(code: str) -> set[str]:
    """The top-level modules ``code`` imports (absolute imports only); notebook magics are skipped."""
    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in code.splitlines())
    found = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def notebook_code(data: bytes | str) -> str:
    """The code cells of a notebook file's contents, as one script."""
    cells = json.loads(data)["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def installed_closure(requirements) -> set[str]:
    """The distributions ``requirements`` (names or PEP 508 strings) name, and every one they require
    (extras left out), by normalised name, as installed here."""
    seen, todo = set(), [canonicalize_name(Requirement(r).name) for r in requirements]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            specs = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for spec in specs:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    return seen


def undeclared(sources: dict[str, str], requirements, local=(), transitive=True) -> dict[str, list[str]]:
    """``{module: [where]}``: modules the ``sources`` (``{name: code}``) import that neither the standard
    library, the ``local`` modules nor the distributions ``requirements`` provide (with what they
    require, if ``transitive``: enough to install; without, each import must be declared itself)."""
    provides = metadata.packages_distributions()
    if transitive:
        installed = installed_closure(requirements)
    else:
        installed = {canonicalize_name(Requirement(r).name) for r in requirements}
    missing: dict[str, list[str]] = {}
    for where, code in sorted(sources.items()):
        for module in sorted(top_level_imports(code) - set(local) - set(sys.stdlib_module_names)):
            if not {canonicalize_name(d) for d in provides.get(module, [])} & installed:
                missing.setdefault(module, []).append(where)
    return missing
