"""The notebook's test cells, as ``nbgrader autograde`` runs them: public tests, then the hidden
block, which is the autograder's own checks of the part (``lab_autograder.in_notebook.grade_part``,
one owner per check) and whose value nbgrader takes as the part's partial credit.

Each case runs the source notebook, edited as one entry of the one catalog of student bugs and
correct variants (``tests/autograder_fixtures/catalog.py``, which the sandboxed grader's tests use
too), in a plain namespace (no kernel, no training), then the test cells of the parts it touches.
The reference earns every point; every bug loses points in its part's cell (an assertion of the
public tests, or a lower score with the catalogued symptom); every correct variant earns every point.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import shutil
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from autograder_fixtures import catalog  # noqa: E402
from lab_autograder import parts as P  # noqa: E402
from lab_autograder.notebook import transform_magics  # noqa: E402
from lab_autograder.registry import PARTS  # noqa: E402

SOURCE = catalog.SOURCE
# not slow: the notebook without its training cells, and each part's checks in-process: ~20 s in all

#: cells not run: training and its checks (the slow executed-notebook tests run those), and the
#: cell that writes submission.zip into the working directory
NOT_RUN = {"run_reverse", "run_anomaly", "submission"}
TRAINING = {"train_reverse", "train_anomaly"}  # their public tests need a trained checkpoint
CHECKED = [p for p in P.PART_ORDER if p not in TRAINING]


def _namespace() -> dict:
    from lab_autograder.worker.cells import notebook_namespace  # the grader's: magics work

    return notebook_namespace()


def _value_of(source: str, name: str, ns: dict):
    """Exec a cell as IPython does and return its last expression's value (what nbgrader scores)."""
    tree = ast.parse(source)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, name, "exec"), ns)  # noqa: S102 - the catalog's own notebooks
    return eval(compile(ast.Expression(last.value), name, "eval"), ns) if last else None  # noqa: S307


def _test_cells(nb, parts, public_only=False) -> dict:
    """``{part: (exception or None, value, printed)}`` of the test cells of ``parts``, the notebook's
    other cells run before them (a failing non-test cell is left for the test cells to report)."""
    ns, results = _namespace(), {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        gid = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        part = gid.removeprefix("test_") if gid.startswith("test_") else None
        if gid in NOT_RUN or (part is not None and part not in parts):
            continue
        if part is None:
            try:
                exec(compile(transform_magics(cell.source), f"<{gid or 'cell'}>", "exec"), ns)  # noqa: S102
            except Exception:  # noqa: BLE001 - e.g. a display cell that needs the training cell
                pass
            continue
        source = cell.source.split("### BEGIN HIDDEN TESTS")[0] if public_only else cell.source
        printed, err, value = io.StringIO(), None, None
        try:
            with contextlib.redirect_stdout(printed):
                value = _value_of(source, f"<{gid}>", ns)
        except Exception as e:  # noqa: BLE001 - any failure of the test cell counts
            err = e
        results[part] = (err, value, printed.getvalue())
        if len(results) == len(parts):
            break
    return results


def _touched(variant) -> list[str]:
    """The checked parts whose solution cells the variant edits or follows with a cell."""
    return [p for p in CHECKED if f"impl_{p}" in variant.cells()] or CHECKED


@pytest.fixture(scope="session")
def notebook_folder(tmp_path_factory) -> Path:
    """A folder holding the notebook's given modules, as a student's notebook folder does."""
    from lab_autograder.registry import GIVEN_FILES

    folder = tmp_path_factory.mktemp("notebook")
    for name in GIVEN_FILES:
        shutil.copy(SOURCE.with_name(name), folder / name)
    return folder


@pytest.fixture(autouse=True)
def _quiet(monkeypatch, notebook_folder):
    monkeypatch.chdir(notebook_folder)  # the first cell checks the given modules there; imports find them
    monkeypatch.syspath_prepend(str(notebook_folder))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TL_QUICK", "1")
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    import IPython
    import IPython.core.getipython

    monkeypatch.setattr(IPython, "get_ipython", IPython.get_ipython)  # the namespace's shell, undone after
    monkeypatch.setattr(IPython.core.getipython, "get_ipython", IPython.core.getipython.get_ipython)
    warnings.filterwarnings("ignore")
    yield
    import matplotlib.pyplot as plt

    plt.close("all")



def test_reference_earns_every_point():
    for part, (err, value, printed) in _test_cells(catalog.load_source(), CHECKED).items():
        assert err is None, f"test_{part} fails the reference: {type(err).__name__}: {err}\n{printed}"
        assert value == PARTS[part].points, f"test_{part} scores the reference {value}:\n{printed}"


BUGS = [v for v in catalog.BUGS if v.part in CHECKED and v.checkpoint_edit is None]


@pytest.mark.parametrize("bug", BUGS, ids=lambda v: v.id)
def test_each_bug_loses_points_in_its_test_cell(bug):
    err, value, printed = _test_cells(bug.apply(catalog.load_source()), [bug.part])[bug.part]
    if err is not None:  # a public test (or the part's own code) stopped the cell: nbgrader gives 0
        assert str(err), f"{type(err).__name__} without a message"
        return
    assert value < PARTS[bug.part].points, printed
    assert re.search(bug.symptom, printed, re.I | re.S), printed


@pytest.mark.parametrize("variant", [v for v in catalog.CORRECT if v.checkpoint_edit is None], ids=lambda v: v.id)
def test_each_correct_variant_earns_every_point(variant):
    for part, (err, value, printed) in _test_cells(variant.apply(catalog.load_source()), _touched(variant)).items():
        assert err is None, f"test_{part} rejects a correct solution: {type(err).__name__}: {err}"
        assert value == PARTS[part].points, f"test_{part} scores a correct solution {value}:\n{printed}"


#: bugs the release's own (public) checks must catch: a student should not learn of them from a grade
PUBLIC_CATCHES = ["block_no_attention_residual", "block_no_mlp_residual", "block_pre_ln", "block_mlp_skipped"]


@pytest.mark.parametrize("bug_id", PUBLIC_CATCHES)
def test_public_checks_catch_what_layernorm_hides(bug_id):
    bug = next(v for v in catalog.BUGS if v.id == bug_id)
    err, _, _ = _test_cells(bug.apply(catalog.load_source()), [bug.part], public_only=True)[bug.part]
    assert isinstance(err, AssertionError), f"the public checks of {bug.part} miss {bug_id!r}"
    assert _test_cells(catalog.load_source(), [bug.part], public_only=True)[bug.part][0] is None


def test_anomaly_data_cell_reads_a_feature_file(tmp_path, monkeypatch):
    """With a features file (this package's format) the notebook uses it instead of synthetic data."""
    import torch

    gen = torch.Generator().manual_seed(0)
    splits = {}
    for name, per_class in (("train", 100), ("test", 20)):
        labels = torch.arange(10).repeat(per_class)
        splits[name] = {"features": torch.randn(len(labels), 512, generator=gen), "labels": labels,
                        "input_sha256": "0" * 64, "input_shape": [len(labels), 32, 32, 3]}
    path = tmp_path / "feats.pt"
    torch.save({"format": "transformer_lab.features/1", "model": "resnet34", "weights": "IMAGENET1K_V1",
                "feature_dim": 512, "splits": splits}, path)
    monkeypatch.setenv("TL_FEATURES", str(path))
    monkeypatch.setenv("PATH_DATASETS", str(tmp_path / "no-cifar-here"))
    ns = _namespace()
    for cell in catalog.load_source().cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        if cell.cell_type != "code" or not grade_id or grade_id.startswith("test_"):
            continue
        exec(compile(transform_magics(cell.source), f"<{grade_id}>", "exec"), ns)
        if grade_id == "anomaly_data":
            break
    assert ns["ANOMALY_SOURCE"] == "cifar"
    assert tuple(ns["train_feats"].shape) == (900, 512) and tuple(ns["val_feats"].shape) == (100, 512)
    assert tuple(ns["test_feats"].shape) == (200, 512)
    assert ns["anomaly_images"] == {"train": None, "test": None}  # no CIFAR images: figures show indices
