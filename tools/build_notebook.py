#!/usr/bin/env python
"""Build the nbgrader source notebook from the narrative template and the reference package.

Single source of truth: solution code lives only in ``reference/transformer_lab``; the narrative
(markdown, given glue code, tests) lives in the jupytext percent script ``notebook/transformer_lab.py``.
This script assembles ``source/transformer_lab/transformer_lab.ipynb`` from the two.

Directives in the template's code cells (each on a line of its own):

``#@cell given <grade_id>``  read-only cell (nbgrader ``locked``), no points
``#@cell editable <id>``     a cell students may edit (settings): no nbgrader metadata, so nbgrader
                             neither locks nor checks nor overwrites it; cell id ``<id>``
``#@cell impl <part>``       solution cell of ``<part>`` (``grade_id: impl_<part>``)
``#@cell test <part>``       graded, read-only test cell (``grade_id: test_<part>``, points from PARTS)
``#@imports``                replaced by the merged absolute imports of every included module
``#@include mod:a,b``        replaced by the source of top-level objects ``a``, ``b`` of
                             ``transformer_lab.mod`` (functions, classes, assignments)

The given modules (``GIVEN_FILES`` of the registry, e.g. ``lab_data.py``: data plumbing students need
not read) are built the same way from their templates ``notebook/<name>`` (``#@include``, ``#@imports``)
into ``source/transformer_lab/<name>``, beside the notebook; nbgrader copies them into the release.

In an ``impl`` cell, the body (after the docstring) of each of the part's targets is wrapped in
``### BEGIN SOLUTION`` / ``### END SOLUTION``; nbgrader replaces it with ``raise NotImplementedError()``
in the release. Package-relative imports (``from .x import y``) are dropped: the notebook defines
everything itself. A target without a docstring gets the stub docstring of ``STUB_DOCS``.

Usage: ``python tools/build_notebook.py [--out PATH] [--check]`` (``--check``: exit 1 if PATH or a given
module beside it is stale).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import sys
import textwrap
import tomllib
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "reference" / "transformer_lab"
TEMPLATE = ROOT / "notebook" / "transformer_lab.py"
ASSIGNMENT = "transformer_lab"
OUT = ROOT / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


#: The graded parts (titles, points, solution targets) and the accuracy thresholds: the registry the
#: grader reads too. ``@@NAME@@`` in the template becomes the registry's value (``PLACEHOLDERS``).
sys.path.insert(0, str(ROOT / "autograder"))
from lab_autograder.registry import (  # noqa: E402
    ANOMALY_THRESHOLD, ANOMALY_THRESHOLD_QUICK, GIVEN_FILES, PARTS, REVERSE_THRESHOLD)


def points_table() -> str:
    """The notebook's table of parts and points (Markdown)."""
    rows = [f"| {i}. {p.title} | {p.points} |" for i, p in enumerate(PARTS.values(), 1)]
    return "\n".join(["| part | points |", "|---|---|", *rows])


def hidden_tests(part: str, points: float) -> str:
    """A test cell's hidden block: the autograder's own checks of the part, whose score the cell
    returns for nbgrader's partial credit (one owner per check: autograder/README.md)."""
    return ("### BEGIN HIDDEN TESTS\n"
            "try:  # the autograder's checks of this part\n"
            "    from lab_autograder.in_notebook import grade_part\n"
            "except ImportError as e:\n"
            "    raise ImportError(\"the hidden tests are the autograder's checks: pip install -e <this \"\n"
            "                      \"project's checkout> where nbgrader's kernel runs\") from e\n"
            f"grade_part({part!r}, globals(), points={points!r})\n"
            "### END HIDDEN TESTS")


def release_url() -> str:
    """``[tool.transformer-lab] release_url`` of pyproject.toml: where the course publishes the release
    folder, from which the notebook's first cell fetches a missing given module (Colab). ``""``: nowhere."""
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text()).get("tool", {}).get("transformer-lab", {})
    return str(conf.get("release_url", ""))


PLACEHOLDERS = {"POINTS_TABLE": points_table(), "REVERSE_THRESHOLD": repr(REVERSE_THRESHOLD),
                "ANOMALY_THRESHOLD": repr(ANOMALY_THRESHOLD), "ANOMALY_THRESHOLD_QUICK": repr(ANOMALY_THRESHOLD_QUICK),
                "RELEASE_URL": repr(release_url())}
PLACEHOLDER_RE = re.compile(r"@@(\w+)@@")


def fill_placeholders(text: str, where: str, values: dict[str, str] = PLACEHOLDERS) -> str:
    def sub(m):
        if m.group(1) not in values:
            raise BuildError(f"{where}: unknown placeholder {m.group(0)}; known: {sorted(values)}")
        return values[m.group(1)]
    return PLACEHOLDER_RE.sub(sub, text)


#: Docstrings for student stubs whose reference function has none (the reference's own wins).
STUB_DOCS: dict[str, str] = {
    "positional:PositionalEncoding.forward": '''\
"""``x``: ``[Batch, SeqLen, d_model]`` -> ``x`` plus the encoding of positions ``0..SeqLen-1`` (same shape).

Returns a new tensor (do not modify ``x`` in place, and do not forget to return the sum).
"""''',
    "reverse:ReversePredictor._calculate_loss": '''\
"""Loss and accuracy of one batch of the reverse task.

Args:
    batch: ``(inp_data, labels)``, both ``[Batch, SeqLen]`` int64 token ids; ``labels`` is
        ``inp_data`` reversed along the sequence.
    mode: ``"train"``, ``"val"`` or ``"test"``; log ``f"{mode}_loss"`` and ``f"{mode}_acc"``
        with ``self.log``.

Returns:
    ``(loss, acc)``: scalar tensors, the cross-entropy over all ``Batch * SeqLen`` tokens and the
    fraction of tokens predicted correctly. ``self.forward`` accepts the token ids directly (or
    their one-hot encoding) and returns logits ``[Batch, SeqLen, num_classes]``; sequences need
    their positional encoding.
"""''',
    "anomaly:AnomalyPredictor._calculate_loss": '''\
"""Loss and accuracy of one batch of set-anomaly detection.

Args:
    batch: ``(img_sets, indices, labels)``: features ``[Batch, SetSize, input_dim]``, image
        indices ``[Batch, SetSize]`` (for plots only) and the anomaly's position ``[Batch]``.
    mode: ``"train"``, ``"val"`` or ``"test"``; log ``f"{mode}_loss"`` and ``f"{mode}_acc"``.

Returns:
    ``(loss, acc)``: scalar tensors. The model gives one logit per set element; the softmax
    (cross-entropy) runs over the set dimension, and a set has no order, so no positional encoding.
"""''',
}


class BuildError(RuntimeError):
    pass


# --- reading the reference ------------------------------------------------------------------

class Module:
    """One reference module: its source lines, AST and top-level objects."""

    def __init__(self, name: str):
        self.name = name
        self.path = REF / f"{name}.py"
        if not self.path.is_file():
            raise BuildError(f"reference module {self.path.relative_to(ROOT)} does not exist")
        self.text = self.path.read_text()
        self.lines = self.text.splitlines()
        self.tree = ast.parse(self.text)

    def top_level(self, name: str) -> ast.stmt:
        for node in self.tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
                return node
            targets = []
            if isinstance(node, ast.Assign):
                targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                targets = [node.target.id]
            if name in targets:
                return node
        raise BuildError(f"{self.path.relative_to(ROOT)} has no top-level object {name!r}")

    def object_names(self) -> list[str]:
        """Names of the top-level functions, classes and assignments, in source order."""
        names = []
        for node in self.tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.append(node.name)
            elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                names.append(node.targets[0].id)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.append(node.target.id)
        return names

    def find(self, qualname: str) -> ast.AST:
        first, *rest = qualname.split(".")
        node = self.top_level(first)
        for part in rest:
            for child in getattr(node, "body", []):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and child.name == part:
                    node = child
                    break
            else:
                raise BuildError(f"{self.path.relative_to(ROOT)}: {qualname!r} not found")
        return node

    def imports(self) -> list[ast.stmt]:
        return [n for n in self.tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
                and not (isinstance(n, ast.ImportFrom) and (n.level or n.module == "__future__"))]


_MODULES: dict[str, Module] = {}


def module(name: str) -> Module:
    if name not in _MODULES:
        _MODULES[name] = Module(name)
    return _MODULES[name]


def _start_line(node: ast.stmt) -> int:
    decos = getattr(node, "decorator_list", [])
    return min([node.lineno] + [d.lineno for d in decos])


def _docstring_node(fn: ast.AST):
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[0]
    return None


def object_source(mod: Module, name: str, solution_targets: list[str]) -> str:
    """Source of top-level ``name``: relative imports dropped, solution targets wrapped."""
    node = mod.top_level(name)
    first, last = _start_line(node), node.end_lineno
    while first > 1 and mod.lines[first - 2].lstrip().startswith("#"):  # keep the comment block above
        first -= 1
    lines = {i: mod.lines[i - 1] for i in range(first, last + 1)}  # 1-based line -> text
    inserts_before: dict[int, list[str]] = {}
    inserts_after: dict[int, list[str]] = {}

    # Drop package-relative imports anywhere inside the object (and a blank line right after).
    for sub in ast.walk(node):
        if isinstance(sub, ast.ImportFrom) and sub.level:
            for i in range(sub.lineno, sub.end_lineno + 1):
                lines.pop(i, None)
            nxt = sub.end_lineno + 1
            if nxt in lines and not lines[nxt].strip():
                lines.pop(nxt)

    for target in solution_targets:
        mname, qual = target.split(":")
        if mname != mod.name or qual.split(".")[0] != name:
            continue
        fn = mod.find(qual)
        doc = _docstring_node(fn)
        body = fn.body[1:] if doc is not None else fn.body
        if not body:
            raise BuildError(f"{target}: nothing after the docstring to turn into a solution region")
        indent = re.match(r"\s*", mod.lines[body[0].lineno - 1]).group(0)
        if doc is not None:
            start = doc.end_lineno + 1
        else:
            # first body line, plus any comment lines right above it (still inside the function)
            start = body[0].lineno
            while start - 1 > fn.lineno and mod.lines[start - 2].strip().startswith("#"):
                start -= 1
            stub = STUB_DOCS.get(target)
            if stub is None:
                raise BuildError(f"{target} has no docstring; add one to the reference or to STUB_DOCS")
            inserts_before.setdefault(start, []).extend(textwrap.indent(stub, indent).splitlines())
        while start <= fn.end_lineno and start in lines and not lines[start].strip():
            start += 1
        inserts_before.setdefault(start, []).append(indent + BEGIN)
        inserts_after.setdefault(fn.end_lineno, []).append(indent + END)

    out: list[str] = []
    for i in range(first, last + 1):
        out.extend(inserts_before.get(i, []))
        if i in lines:
            out.append(lines[i])
        out.extend(inserts_after.get(i, []))
    return "\n".join(out)


def _bound(alias: ast.alias, plain: bool) -> str:
    return alias.asname or (alias.name.split(".")[0] if plain else alias.name)


def merged_imports(mods: list[Module], extra: str = "", used: set[str] | None = None) -> str:
    """One sorted block: the absolute imports of ``mods`` plus the import statements in ``extra``
    (only those binding a name in ``used``, when given)."""
    plain: set[str] = set()
    froms: dict[str, set[str]] = {}
    nodes = [n for mod in mods for n in mod.imports()] + list(ast.parse(extra).body)
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if used is None or _bound(alias, True) in used:
                    plain.add(f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else ""))
        else:
            for alias in node.names:
                if used is None or _bound(alias, False) in used:
                    froms.setdefault(node.module, set()).add(alias.name + (f" as {alias.asname}" if alias.asname else ""))
    out = sorted(plain, key=lambda s: s.split()[1])
    for m, n in sorted(froms.items()):
        line = f"from {m} import {', '.join(sorted(n))}"
        if len(line) > 100:
            line = textwrap.fill(", ".join(sorted(n)), 100, initial_indent=f"from {m} import (",
                                 subsequent_indent="    ", break_on_hyphens=False) + ")"
        out.append(line)
    return "\n".join(out)


# --- assembling the notebook ------------------------------------------------------------------

CELL_RE = re.compile(r"^#@cell\s+(given|editable|impl|test)\s+(\w+)\s*$")
INCLUDE_RE = re.compile(r"^#@include\s+(\w+):([\w, ]+|\*)\s*$")
IMPORTS_RE = re.compile(r"^#@imports\s*$")
IMPORTS_PLACEHOLDER = "\0imports\0"


def _cell_id(kind: str, key: str, index: int) -> str:
    return f"{kind}-{key}"[:64] if kind != "plain" else f"c{index:03d}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def _included_modules(lines: list[str]) -> list[str]:
    """The reference modules that ``#@include`` lines name, in order of first use."""
    out: list[str] = []
    for line in lines:
        m = INCLUDE_RE.match(line.strip())
        if m and m.group(1) not in out:
            out.append(m.group(1))
    return out


def expand(lines: list[str], role: str, key: str | None, where: str, imported: list[str],
           only_used: bool = False) -> list[str]:
    """``lines`` with ``#@include`` replaced by reference code and ``#@imports`` by the merged imports of
    the modules ``imported`` plus the import lines of ``lines`` themselves (``only_used``: those whose
    name the code uses)."""
    all_targets = [t for p in PARTS.values() for t in p.targets]
    body: list[str] = []
    for line in lines:
        stripped = line.strip()
        if m := INCLUDE_RE.match(stripped):
            mod = module(m.group(1))
            names = [n.strip() for n in m.group(2).split(",") if n.strip()]
            if names == ["*"]:
                names = mod.object_names()
            targets = list(PARTS[key].targets) if role == "impl" else []
            for j, name in enumerate(names):
                leaking = [t for t in all_targets if t.split(":")[0] == mod.name
                           and t.split(":")[1].split(".")[0] == name and t not in targets]
                if leaking:
                    raise BuildError(f"{where} ({role} {key}) includes {mod.name}:{name}, which "
                                     f"holds the solution of {leaking}: include it in that part's impl cell")
                if j:
                    body += ["", ""]
                body += object_source(mod, name, targets).splitlines()
            continue
        body.append(IMPORTS_PLACEHOLDER if IMPORTS_RE.match(stripped) else line)
    if IMPORTS_PLACEHOLDER in body:
        # merge the cell's own import lines into the generated block
        own = [ln for ln in body if re.match(r"(import|from)\s", ln)]
        body = [ln for ln in body if ln not in own]
        used = None
        if only_used:
            code = ast.parse("\n".join(ln for ln in body if ln != IMPORTS_PLACEHOLDER))
            used = {n.id for n in ast.walk(code) if isinstance(n, ast.Name)}
        block = merged_imports([module(n) for n in imported], "\n".join(own), used).splitlines()
        i = body.index(IMPORTS_PLACEHOLDER)
        body[i:i + 1] = block
    return body


def template_of(name: str) -> Path:
    return TEMPLATE.parent / name


def build_given(name: str) -> str:
    """The given module ``name``: its template ``notebook/<name>`` with the reference code included."""
    path = template_of(name)
    if not path.is_file():
        raise BuildError(f"{path.relative_to(ROOT)} (the template of the given module {name}) does not exist")
    lines = path.read_text().splitlines()
    body = expand(lines, "given", name, f"notebook/{name}", _included_modules(lines), only_used=True)
    return "\n".join(body).strip("\n") + "\n"


def given_modules() -> dict[str, str]:
    """``{name: text}`` of every given module."""
    return {name: build_given(name) for name in GIVEN_FILES}


def assignment_files(folder: Path) -> list[Path]:
    """What a student's notebook folder starts with (in ``source/`` or ``release/<assignment>``): the
    notebook and the given modules it imports."""
    return [Path(folder) / f"{ASSIGNMENT}.ipynb", *(Path(folder) / n for n in GIVEN_FILES)]


def build(partial: bool = False, template_path: Path = TEMPLATE) -> nbformat.NotebookNode:
    """The source notebook, from ``template_path`` and the reference package (raises BuildError)."""
    _MODULES.clear()
    template = jupytext.read(template_path, fmt="py:percent")
    # the first cell checks that the given modules next to the notebook are the ones built with it
    values = dict(PLACEHOLDERS, GIVEN_FILES=repr({n: hashlib.sha256(t.encode()).hexdigest()
                                                  for n, t in given_modules().items()}))
    # the imports cell merges the imports of what the notebook includes (given modules import their own)
    included = _included_modules([ln for c in template.cells if c.cell_type == "code" for ln in c.source.splitlines()])

    cells = []
    seen_ids: set[str] = set()
    part_cells: dict[str, dict[str, int]] = {p: {"impl": 0, "test": 0} for p in PARTS}
    for index, cell in enumerate(template.cells):
        if cell.cell_type == "markdown":
            new = nbformat.v4.new_markdown_cell(fill_placeholders(cell.source, f"template cell {index}", values))
            new.id = f"md{index:03d}"
            cells.append(new)
            continue
        if cell.cell_type != "code":
            raise BuildError(f"template cell {index} has unsupported type {cell.cell_type}")
        role, key = "plain", None
        lines = cell.source.splitlines()
        for i, line in enumerate(lines):
            if m := CELL_RE.match(line.strip()):
                role, key = m.groups()
                del lines[i]
                break
        body = expand(lines, role, key, f"template cell {index}", included)
        source = fill_placeholders("\n".join(body).strip("\n"), f"template cell {index}", values)
        new = nbformat.v4.new_code_cell(source)
        if role == "plain":
            new.id = _cell_id("plain", source, index)
        elif role == "editable":
            # No nbgrader metadata at all: a cell with a grade_id that is neither graded, solution nor
            # locked is not stored in nbgrader's database, and `nbgrader autograde` would warn about it.
            if "#@include" in cell.source or key in seen_ids:
                raise BuildError(f"template cell {index}: an editable cell takes no #@include and needs a new id")
            seen_ids.add(key)
            new.id = key.replace("_", "-")
        else:
            if role in ("impl", "test") and key not in PARTS:
                raise BuildError(f"template cell {index}: unknown part {key!r}; parts are {sorted(PARTS)}")
            grade_id = key if role == "given" else f"{role}_{key}"
            if grade_id in seen_ids:
                raise BuildError(f"duplicate grade id {grade_id!r} in the template")
            seen_ids.add(grade_id)
            meta = {"grade": role == "test", "grade_id": grade_id, "locked": role != "impl",
                    "schema_version": 3, "solution": role == "impl", "task": False}
            if role == "test":
                meta["points"] = PARTS[key].points
                if "### BEGIN HIDDEN TESTS" in source:
                    raise BuildError(f"test cell of {key!r}: hidden tests are the autograder's checks, "
                                     "written by this build; remove the hand-written block")
                new.source = source + "\n" + hidden_tests(key, PARTS[key].points)
            if role in ("impl", "test"):
                part_cells[key][role] += 1
            if role == "impl" and source.count(BEGIN) != len(PARTS[key].targets):
                raise BuildError(f"impl cell of {key!r} must include all of {PARTS[key].targets}")
            new.metadata["nbgrader"] = meta
            new.id = grade_id.replace("_", "-")
        cells.append(new)

    missing = [f"{r}_{p}" for p, c in part_cells.items() for r in ("impl", "test") if c[r] != 1]
    if missing and not partial:
        raise BuildError(f"template lacks (or repeats) the cells {missing}")

    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    nb.nbformat, nb.nbformat_minor = 4, 5
    nbformat.validate(nb)
    return nb


def dumps(nb) -> str:
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--check", action="store_true", help="do not write; exit 1 if --out differs from a fresh build")
    ap.add_argument("--partial", action="store_true", help="allow parts without cells (work in progress only)")
    args = ap.parse_args(argv)
    try:
        outputs = {args.out: dumps(build(partial=args.partial))}
        outputs.update({args.out.parent / name: text for name, text in given_modules().items()})
    except BuildError as e:
        print(f"build_notebook: {e}", file=sys.stderr)
        return 2
    if args.check:
        stale = [path for path, text in outputs.items() if (path.read_text() if path.is_file() else "") != text]
        for path in stale:
            print(f"{path} is stale: run `python tools/build_notebook.py`", file=sys.stderr)
        if stale:
            return 1
        print(f"{args.out} and its given modules are up to date")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for path, text in outputs.items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
