"""The source notebook is built from the template and the reference package, and nothing else.

Drift: a fresh build must equal the committed notebook, and every function of the notebook that
exists in the reference must be the reference's code (solution markers, the injected stub
docstrings and package-relative imports aside).
"""

from __future__ import annotations

import ast
import json
import os
import re
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import build_notebook as bn  # noqa: E402
from build_release import normalized  # noqa: E402

SOURCE = bn.OUT
RELEASE = ROOT / "release" / bn.ASSIGNMENT / f"{bn.ASSIGNMENT}.ipynb"


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def grade_cells(nb) -> dict:
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}


class _Normalise(ast.NodeTransformer):
    """Drop docstrings and package-relative imports, the two things the builder may change."""

    def _strip_doc(self, node):
        self.generic_visit(node)
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            body = body[1:]
        node.body = body or [ast.Pass()]
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _strip_doc

    def visit_ImportFrom(self, node):
        return None if node.level else node


def norm(node: ast.AST) -> str:
    import copy

    return ast.dump(_Normalise().visit(copy.deepcopy(node)))


@pytest.fixture(scope="module")
def source_nb():
    assert SOURCE.is_file(), f"{SOURCE} missing: run `python tools/build_notebook.py`"
    return nbformat.read(SOURCE, as_version=4)


@pytest.fixture(scope="module")
def reference_defs() -> dict:
    """name -> [normalised AST dumps] of every top-level def/class/assignment in the reference."""
    defs: dict[str, list[str]] = {}
    for path in sorted(bn.REF.glob("*.py")):
        for node in bn.Module(path.stem).tree.body:
            name = getattr(node, "name", None)
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                name = node.targets[0].id
            if name:
                defs.setdefault(name, []).append(norm(node))
    return defs


def test_source_notebook_is_a_fresh_build():
    fresh = json.loads(bn.dumps(bn.build()))
    committed = normalized(SOURCE)
    assert fresh == committed, "source notebook is stale: run `python tools/build_notebook.py` (make source)"
    for name, text in bn.given_modules().items():
        assert SOURCE.with_name(name).read_text() == text, f"{name} is stale: run `make source`"


def test_builder_is_deterministic():
    assert bn.dumps(bn.build()) == bn.dumps(bn.build())


def test_graded_code_equals_reference(source_nb):
    cells = grade_cells(source_nb)
    for part, spec in bn.PARTS.items():
        cell = cells[f"impl_{part}"]
        tree = ast.parse(cell.source)
        assert cell.source.count(bn.BEGIN) == len(spec.targets) == cell.source.count(bn.END)
        for target in spec.targets:
            mod, qual = target.split(":")
            ref = bn.Module(mod).find(qual)
            node = tree
            for name in qual.split("."):
                node = next(n for n in node.body if getattr(n, "name", None) == name)
            assert norm(node) == norm(ref), f"{target}: notebook code differs from the reference"
            # the solution region is exactly the body after the docstring
            lines = cell.source.splitlines()
            begin = [i for i, ln in enumerate(lines) if ln.strip() == bn.BEGIN]
            assert any(node.lineno < b + 1 < node.end_lineno for b in begin), f"{target}: no solution region in its body"


def test_every_notebook_definition_is_the_reference(source_nb, reference_defs):
    """Given cells and given modules too: any def/class they share with the reference is the reference's code."""
    shared = 0
    sources = [cell.source for cell in code_cells(source_nb)]
    sources += [SOURCE.with_name(name).read_text() for name in bn.GIVEN_FILES]
    for source in sources:
        for node in ast.parse(source).body:
            name = getattr(node, "name", None)
            if name in reference_defs and not name.startswith("_") or name in ("_save", "_draw_cell", "_fmt"):
                shared += 1
                assert norm(node) in reference_defs[name], f"notebook's {name} differs from the reference"
    assert shared >= 50, f"only {shared} reference definitions found in the notebook and its given modules"


def test_training_code_is_the_tutorials_plain_code(source_nb):
    """What students train with is the tutorial's plain Adam and logging: no private attribute, no fast path."""
    text = "\n".join(c.source for c in code_cells(source_nb))
    assert "optimizer = optim.Adam(self.parameters(), lr=self.hparams.lr)" in text
    assert "x = self.transformer(x, mask=mask)" in text and 'self.log(f"{mode}_loss", loss)' in text
    for private in ("_accelerator_graph_capture_health_check", "_trainer =", "fused=True"):
        assert private not in text, private


def test_notebook_needs_only_its_folder(source_nb):
    """The notebook and its given modules never import the reference package: a student has only the
    release folder."""
    pattern = re.compile(r"^\s*(import\s+transformer_lab|from\s+transformer_lab|from\s+\.)", re.M)
    for path in (SOURCE, RELEASE):
        nb = nbformat.read(path, as_version=4)
        for cell in code_cells(nb):
            assert not pattern.search(cell.source), f"{path.name}: a cell imports the reference package:\n{cell.source[:300]}"
        for name in bn.GIVEN_FILES:
            text = path.with_name(name).read_text()
            assert not pattern.search(text), f"{path.parent.name}/{name} imports the reference package"
            assert "do not edit" in text and "grading uses its own copy" in text, f"{name} must say not to edit it"


def test_given_module_is_data_plumbing_with_no_solution():
    """The given module holds no solution target and nothing of the graded parts: the builder refuses."""
    text = SOURCE.with_name("lab_data.py").read_text()
    for obj in ("def load_cifar100", "def cached_features", "class SetAnomalyDataset", "class SetBatchLoader",
                "def batched_loader"):
        assert obj in text, obj
    for target in (t for p in bn.PARTS.values() for t in p.targets):
        assert f"def {target.split(':')[1].split('.')[-1]}(" not in text, target


def test_builder_refuses_a_solution_in_a_given_module(tmp_path, monkeypatch):
    (tmp_path / "lab_data.py").write_text('"""x"""\n#@include attention:scaled_dot_product\n')
    monkeypatch.setattr(bn, "TEMPLATE", tmp_path / "transformer_lab.py")
    with pytest.raises(bn.BuildError, match="holds the solution"):
        bn.build_given("lab_data.py")


def test_parts_contract(source_nb):
    cells = grade_cells(source_nb)
    parts_md = (ROOT / "source" / "PARTS.md").read_text()
    total = 0
    for part, spec in bn.PARTS.items():
        impl, test = cells[f"impl_{part}"], cells[f"test_{part}"]
        assert impl.metadata["nbgrader"]["solution"] and not impl.metadata["nbgrader"]["grade"]
        meta = test.metadata["nbgrader"]
        assert meta["grade"] and meta["locked"] and not meta["solution"] and meta["points"] == spec.points
        hidden = test.source.split("### BEGIN HIDDEN TESTS\n")[1]
        assert hidden.endswith("### END HIDDEN TESTS"), f"test_{part}: the hidden block is not last"
        # the grader's own checks, the cell's value (nbgrader's partial credit): its last statement
        assert hidden.splitlines()[-2] == f"grade_part({part!r}, globals(), points={spec.points!r})", hidden
        public = test.source.split("### BEGIN HIDDEN TESTS")[0]
        assert "assert" in public or "check_" in public, f"test_{part} has no public assert"
        row = next((ln for ln in parts_md.splitlines() if ln.startswith(f"| `{part}`")), None)
        assert row is not None, f"PARTS.md lacks a row for {part}"
        assert f"`impl_{part}`" in row and f"`test_{part}`" in row and f"| {spec.points} |" in row, row
        total += spec.points
    assert total == 25 and "**25 points**" in parts_md
    grade_ids = [c.metadata["nbgrader"]["grade_id"] for c in source_nb.cells if "nbgrader" in c.metadata]
    assert len(grade_ids) == len(set(grade_ids))
    assert "check_helpers" in cells and cells["check_helpers"].metadata["nbgrader"]["locked"]


def test_percent_script_round_trip(source_nb):
    """The notebook reads as a jupytext percent script that keeps the nbgrader metadata."""
    text = jupytext.writes(source_nb, fmt="py:percent")
    assert '# %% nbgrader={"grade": true, "grade_id": "test_scaled_dot_product"' in text
    back = jupytext.reads(text, fmt="py:percent")
    assert [(c.cell_type, c.source, c.metadata.get("nbgrader")) for c in back.cells] == \
        [(c.cell_type, c.source, c.metadata.get("nbgrader")) for c in source_nb.cells]


def test_no_jupytext_pairing():
    """Release notebooks are never paired (jupytext could write solutions back into them)."""
    for path in (SOURCE, RELEASE):
        assert "jupytext" not in json.loads(path.read_text())["metadata"], f"{path} carries jupytext pairing metadata"
    for cfg in ("jupytext.toml", ".jupytext.toml", ".jupytext", "jupytext.yml", ".jupytext.yml"):
        p = ROOT / cfg
        assert not p.exists() or "release" not in p.read_text(), f"{cfg} must not pair release notebooks"


def _template_with(tmp_path, code: str) -> Path:
    path = tmp_path / "t.py"
    path.write_text(bn.TEMPLATE.read_text() + "\n# %%\n" + code + "\n")
    return path


def test_builder_refuses_a_solution_in_a_given_cell(tmp_path):
    with pytest.raises(bn.BuildError, match="holds the solution"):
        bn.build(template_path=_template_with(tmp_path, "#@cell given leak\n#@include attention:scaled_dot_product"))


def test_builder_refuses_a_repeated_part(tmp_path):
    with pytest.raises(bn.BuildError, match="duplicate grade id|lacks \\(or repeats\\)"):
        bn.build(template_path=_template_with(tmp_path, "#@cell impl warmup_factor\n#@include scheduler:warmup_cosine_factor"))


def test_builder_refuses_a_hand_written_hidden_block(tmp_path):
    path = tmp_path / "t.py"
    hand_written = "#@cell test warmup_factor\n### BEGIN HIDDEN TESTS\nassert 1\n### END HIDDEN TESTS\n"
    path.write_text(bn.TEMPLATE.read_text().replace("#@cell test warmup_factor\n", hand_written))
    with pytest.raises(bn.BuildError, match="hidden tests are the autograder's checks"):
        bn.build(template_path=path)


def test_builder_refuses_an_unknown_reference_object(tmp_path):
    with pytest.raises(bn.BuildError, match="no top-level object"):
        bn.build(template_path=_template_with(tmp_path, "#@cell given nothing\n#@include attention:does_not_exist"))


def test_install_cell_adds_only_what_is_missing(source_nb, monkeypatch):
    """The first code cell makes the notebook start on Colab (no Lightning there) and is a no-op here."""
    import subprocess

    first = code_cells(source_nb)[0]
    assert first.metadata["nbgrader"]["grade_id"] == "install"
    monkeypatch.chdir(SOURCE.parent)  # the notebook's folder, with its given modules
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    ns: dict = {}
    exec(first.source, ns)  # noqa: S102 - the project's own cell
    assert calls == [] and ns["_missing"] == []  # everything is installed here: nothing to do
    deps = (bn.ROOT / "pyproject.toml").read_text()
    for module, requirement in ns["REQUIREMENTS"].items():
        assert f'"{requirement}"' in deps, f"{requirement} is not pinned as in pyproject.toml"
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # as on Colab: Lightning missing
    exec(first.source, {})  # noqa: S102
    assert calls and calls[0][0][-1] == "pytorch-lightning>=2.2" and calls[0][0][1:4] == ["-m", "pip", "install"]


def test_install_cell_finds_fetches_or_explains_the_given_modules(source_nb, tmp_path, monkeypatch, capsys):
    """Colab starts with the notebook alone: the first cell fetches the given module from the course's
    release URL when there is one, says what to upload when there is none, and flags a stale copy."""
    first = code_cells(source_nb)[0].source
    assert re.search(r"^RELEASE_URL = '.*'", first, re.M), "the builder fills RELEASE_URL from pyproject.toml"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    no_url = re.sub(r"^RELEASE_URL = .*$", "RELEASE_URL = ''", first, flags=re.M)
    with pytest.raises(FileNotFoundError, match=r"lab_data.py is not in .*Upload to session storage"):
        exec(no_url, {})  # noqa: S102 - the project's own cell
    url = (SOURCE.parent.as_uri())
    with_url = re.sub(r"^RELEASE_URL = .*$", f"RELEASE_URL = {url!r}", first, flags=re.M)
    exec(with_url, {})  # noqa: S102
    assert (tmp_path / "lab_data.py").read_bytes() == SOURCE.with_name("lab_data.py").read_bytes()
    assert "fetching lab_data.py" in capsys.readouterr().out
    crlf = SOURCE.with_name("lab_data.py").read_bytes().replace(b"\n", b"\r\n")
    (tmp_path / "lab_data.py").write_bytes(crlf)  # a Windows checkout: the same file
    exec(with_url, {})  # noqa: S102
    assert "not the version" not in capsys.readouterr().out
    (tmp_path / "lab_data.py").write_text("# an old release\n")
    exec(with_url, {})  # noqa: S102 - present: never fetched again, but flagged
    assert "lab_data.py is not the version released with this notebook" in capsys.readouterr().out
    (tmp_path / "lab_data.py").unlink()
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")  # grading never fetches: the grader supplies it
    with pytest.raises(FileNotFoundError):
        exec(with_url, {})  # noqa: S102


def _cell_by_id(nb, cell_id):
    return next(c for c in nb.cells if c.get("id") == cell_id)


def test_settings_cell_is_editable_in_the_release():
    """Students set QUICK, CHECKPOINT_DIR, DATASET_PATH and FEATURE_FILE in a cell nbgrader leaves alone."""
    for path in (SOURCE, RELEASE):
        nb = nbformat.read(path, as_version=4)
        cell = _cell_by_id(nb, "settings")
        assert cell.cell_type == "code" and code_cells(nb)[1] is cell, "the settings cell follows the install cell"
        # no nbgrader metadata: not locked, not checked, not overwritten by `nbgrader autograde`
        assert "nbgrader" not in cell.metadata, cell.metadata
        assert cell.metadata.get("editable", True) and cell.metadata.get("deletable", True), cell.metadata
        for name in ("QUICK", "CHECKPOINT_DIR", "DATASET_PATH", "FEATURE_FILE"):
            assert re.search(rf"^{name} = None\b", cell.source, re.M), f"{path.name}: settings cell lacks {name} = None"
        assert _cell_by_id(nb, "setup").metadata["nbgrader"]["locked"]


def test_builder_refuses_an_include_in_an_editable_cell(tmp_path):
    with pytest.raises(bn.BuildError, match="editable cell takes no #@include"):
        bn.build(template_path=_template_with(tmp_path, "#@cell editable mine\n#@include runtime:cpu_threads"))


def _resolve_settings(source_nb, settings: str, env: dict, monkeypatch) -> dict:
    """Run the imports cell, ``settings`` (the settings cell as a student edited it) and the setup cell."""
    for var in ("TL_QUICK", "TL_CHECKPOINT_DIR", "PATH_DATASETS", "TL_FEATURES", "NBGRADER_EXECUTION"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    monkeypatch.syspath_prepend(str(SOURCE.parent))  # the given modules the imports cell imports
    ns: dict = {"__name__": "__settings_test__"}
    for source in (_cell_by_id(source_nb, "imports").source, settings, _cell_by_id(source_nb, "setup").source):
        exec(compile(source, "<cell>", "exec"), ns)  # noqa: S102 - the project's own cells
    return ns


@pytest.mark.parametrize("case", ["defaults", "environment", "settings cell", "grading"])
def test_settings_resolve_from_cell_then_environment(source_nb, monkeypatch, case):
    import torch

    default_cell = _cell_by_id(source_nb, "settings").source
    edited = (default_cell.replace("QUICK = None", "QUICK = False").replace("CHECKPOINT_DIR = None", "CHECKPOINT_DIR = 'mine'")
              .replace("DATASET_PATH = None", "DATASET_PATH = 'my_data'"))
    env = {"TL_QUICK": "1", "TL_CHECKPOINT_DIR": "env_ckpt", "PATH_DATASETS": "env_data"}
    if case == "defaults":
        ns = _resolve_settings(source_nb, default_cell, {}, monkeypatch)
        want = (not torch.cuda.is_available(), "checkpoints", "data")
    elif case == "environment":  # the tests, tools/run_notebook.py and the grader set these
        ns = _resolve_settings(source_nb, default_cell, dict(env, TL_FEATURES="f.pt"), monkeypatch)
        want = (True, "env_ckpt", "env_data")
        assert ns["FEATURE_FILE"] == "f.pt"
    elif case == "settings cell":  # a student's values win over the environment
        ns = _resolve_settings(source_nb, edited, env, monkeypatch)
        want = (False, "mine", "my_data")
    else:  # under grading the settings cell is ignored: the grader's environment decides
        ns = _resolve_settings(source_nb, edited, dict(env, NBGRADER_EXECUTION="autograde"), monkeypatch)
        want = (True, "env_ckpt", "env_data")
    assert (ns["QUICK"], ns["CHECKPOINT_DIR"], ns["DATASET_PATH"]) == want
    if case != "environment":
        assert ns["FEATURE_FILE"] == os.path.join(want[2], "cifar100_resnet34_imagenet.pt")


def test_notebook_speaks_notebook_not_command_line(source_nb):
    """Text and messages a student reads name the notebook's settings, never only a CLI flag or command."""
    for cell in source_nb.cells:
        if cell.cell_type == "markdown":
            assert "transformer-lab " not in cell.source and "--data-dir" not in cell.source, cell.source[:200]
    flags = ("--data-dir", "--download", "--features", "--weights", "transformer-lab ")
    checked = 0
    given = [SOURCE.with_name(name).read_text() for name in bn.GIVEN_FILES]  # their messages reach students too
    for source in [cell.source for cell in code_cells(source_nb)] + given:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.JoinedStr):
                text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
            else:
                continue
            if any(f in text for f in flags):
                checked += 1
                # a flag or command may appear only beside the notebook's own way of doing the same
                assert "notebook" in text or "weights='none'" in text, text
    assert checked >= 3, "the data messages (cifar, features) are not in the notebook or lab_data.py any more?"


def test_make_submission_packs_only_what_grading_reads(source_nb, tmp_path, monkeypatch, capsys):
    """The zip holds the notebook and the two checkpoints, whatever else the folders hold."""
    import zipfile

    ckpt = tmp_path / "ckpts"
    (ckpt / "lightning_logs" / "version_0").mkdir(parents=True)
    for name in ("reverse.ckpt", "anomaly.ckpt", "reverse-v1.ckpt"):
        (ckpt / name).write_bytes(name.encode())
    monkeypatch.chdir(tmp_path)
    ns = {"os": os, "GRADING": "autograde", "CHECKPOINT_DIR": str(ckpt), "CHECKPOINT_FILES": ("reverse.ckpt", "anomaly.ckpt")}
    exec(_cell_by_id(source_nb, "submission").source, ns)  # noqa: S102 - the project's own cell
    assert not (tmp_path / "submission.zip").exists(), "under grading the cell must not write anything"
    # Colab: the notebook is not in the working folder; the zip still gets the checkpoints, and says so
    assert ns["make_submission"]() == ["checkpoints/anomaly.ckpt", "checkpoints/reverse.ckpt"]
    assert "missing: transformer_lab.ipynb" in capsys.readouterr().out
    (tmp_path / "Copy of transformer_lab.ipynb").write_text("{}")
    ns["make_submission"](notebook="Copy of transformer_lab.ipynb")
    with zipfile.ZipFile(tmp_path / "submission.zip") as zf:
        assert sorted(zf.namelist()) == ["checkpoints/anomaly.ckpt", "checkpoints/reverse.ckpt", "transformer_lab.ipynb"]
        assert zf.read("checkpoints/reverse.ckpt") == b"reverse.ckpt"
