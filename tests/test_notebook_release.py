"""The student release: in sync with the source, no leaks, validates as nbgrader expects.

Fast tests: the committed release equals a fresh ``nbgrader generate_assignment`` (volatile
metadata ignored), no line of a solution region or hidden test appears anywhere under release/,
every graded part has a public test, and doctored copies (a changed cell type, a duplicated graded
cell) are refused by ``nbgrader validate`` with a clear message.

Slow tests (``-m slow``): the source notebook runs end to end on CPU in quick mode, in a fresh
directory, well within 10 minutes, printing no warning; its ``checkpoints/`` then holds only the two
checkpoints and its last cell packs exactly the submission (notebook + both checkpoints);
``nbgrader validate`` passes on it (with the checkpoints that run wrote); ``nbgrader validate
--invert`` passes on the release (no test passes untouched).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import build_notebook as bn  # noqa: E402
import build_release as br  # noqa: E402

SOURCE = bn.OUT
RELEASE_DIR = ROOT / "release"
RELEASE = RELEASE_DIR / bn.ASSIGNMENT / f"{bn.ASSIGNMENT}.ipynb"
NBGRADER = br.nbgrader_exe()
#: Execution budget of the source notebook in quick mode on a CPU (the brief's limit is 10 minutes).
BUDGET_S = 600


def _regions(source: str, begin: str, end: str) -> tuple[list[str], list[str]]:
    """(lines inside begin/end regions, lines outside), stripped."""
    inside, outside, depth = [], [], False
    for line in source.splitlines():
        s = line.strip()
        if s.endswith(begin):
            depth = True
            continue
        if s.endswith(end):
            depth = False
            continue
        (inside if depth else outside).append(s)
    return inside, outside


def secret_lines() -> set[str]:
    """Stripped lines that occur only in solution regions or hidden tests of the source notebook."""
    nb = nbformat.read(SOURCE, as_version=4)
    secret, public = set(), set()
    for cell in nb.cells:
        text = cell.source
        sol_in, rest = _regions(text, "### BEGIN SOLUTION", "### END SOLUTION")
        hid_in, rest = _regions("\n".join(rest), "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
        secret.update(sol_in + hid_in)
        public.update(rest)
    return {s for s in secret - public if s and not s.startswith("#") and sum(ch.isalnum() for ch in s) >= 3}


def release_lines() -> dict[Path, set[str]]:
    """Every file under release/, as the set of its stripped lines (notebook cells for .ipynb)."""
    out = {}
    for path in RELEASE_DIR.rglob("*"):
        if not path.is_file():
            continue
        raw = path.read_bytes().decode("utf-8", errors="replace")
        lines = {ln.strip() for ln in raw.splitlines()}
        if path.suffix == ".ipynb":
            nb = json.loads(raw)
            for cell in nb["cells"]:
                src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
                lines |= {ln.strip() for ln in src.splitlines()}
                for output in cell.get("outputs", []):
                    lines |= {ln.strip() for ln in json.dumps(output).split("\\n")}
        out[path] = lines
    return out


def run(cmd, cwd, timeout=900, env=None):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


# --- fast ----------------------------------------------------------------------------------------

def test_release_is_a_fresh_build():
    proc = run([sys.executable, str(ROOT / "tools" / "build_release.py"), "--check"], cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_solution_or_hidden_test_in_release():
    secrets = secret_lines()
    assert len(secrets) > 100, f"only {len(secrets)} secret lines found: is the source notebook built?"
    assert sum(s.startswith("grade_part(") for s in secrets) == 11, "every test cell's hidden block calls the grader"
    files = release_lines()
    assert RELEASE in files
    for path, lines in files.items():
        leaked = sorted(secrets & lines)
        assert not leaked, f"{path.relative_to(ROOT)} leaks {len(leaked)} solution/hidden-test lines, e.g. {leaked[:5]}"
        text = path.read_bytes().decode("utf-8", errors="replace")
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
            assert marker not in text, f"{path.relative_to(ROOT)} contains {marker!r}"
    assert not list(RELEASE_DIR.rglob("*.ckpt")) and not list(RELEASE_DIR.rglob("*.db"))


def test_every_part_has_a_public_test_and_a_stub():
    assert br.check_release(RELEASE) == []
    nb = nbformat.read(RELEASE, as_version=4)
    cells = {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}
    for part in bn.PARTS:
        stub = cells[f"impl_{part}"].source
        assert "raise NotImplementedError()" in stub and '"""' in stub, f"impl_{part}: stub without docstring"
        assert "assert" in cells[f"test_{part}"].source or "check_" in cells[f"test_{part}"].source


def _validate(path: Path, *args, timeout=600):
    env = {"TL_QUICK": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    return run([NBGRADER, "validate", str(path), *args], cwd=path.parent, timeout=timeout, env=env)


def _doctored(tmp_path, change) -> Path:
    nb = nbformat.read(RELEASE, as_version=4)
    change(nb)
    out = tmp_path / RELEASE.name
    nbformat.write(nb, out)
    return out


def test_validate_reports_a_changed_cell_type(tmp_path):
    def to_markdown(nb):
        i = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "test_encoder_block")
        cell = nb.cells[i]
        nb.cells[i] = nbformat.v4.new_markdown_cell(cell.source, metadata=copy.deepcopy(cell.metadata), id=cell.id)
    proc = _validate(_doctored(tmp_path, to_markdown))
    assert "THE TYPES OF 1 CELL(S) HAVE CHANGED" in proc.stdout, proc.stdout + proc.stderr


def test_validate_reports_a_duplicated_graded_cell(tmp_path):
    def duplicate(nb):
        i = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "impl_warmup_factor")
        dup = copy.deepcopy(nb.cells[i])
        dup.id = "copy-of-impl"
        nb.cells.insert(i + 1, dup)
    proc = _validate(_doctored(tmp_path, duplicate))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 or "Duplicate grade id" in out, out
    assert "Duplicate grade id: impl_warmup_factor" in out, out


# --- slow: execution ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def executed_source(tmp_path_factory):
    """The source notebook run top to bottom on CPU in quick mode, in a fresh directory."""
    from nbclient import NotebookClient

    work = tmp_path_factory.mktemp("source_run")
    for f in bn.assignment_files(SOURCE.parent):
        shutil.copy(f, work / f.name)
    nb = nbformat.read(work / SOURCE.name, as_version=4)
    env_before = dict(os.environ)
    os.environ.update(TL_QUICK="1", MPLBACKEND="Agg", OMP_NUM_THREADS="1")  # warnings on: none may show
    os.environ.pop("NBGRADER_EXECUTION", None)
    t0 = time.perf_counter()
    try:
        NotebookClient(nb, timeout=BUDGET_S, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    seconds = time.perf_counter() - t0
    nbformat.write(nb, work / "executed.ipynb")
    return work, nb, seconds


@pytest.mark.slow
def test_source_notebook_runs_on_cpu_in_quick_mode(executed_source):
    work, nb, seconds = executed_source
    print(f"source notebook executed in {seconds:.0f} s")
    assert seconds < BUDGET_S
    assert (work / "checkpoints" / "reverse.ckpt").is_file() and (work / "checkpoints" / "anomaly.ckpt").is_file()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    for part in ("scaled_dot_product", "MultiheadAttention", "EncoderBlock", "PositionalEncoding", "warmup_cosine_factor",
                 "ReversePredictor._calculate_loss", "train_reverse", "plot_attention_maps",
                 "AnomalyPredictor._calculate_loss", "train_anomaly", "plot_anomaly_prediction"):
        assert f"{part}: visible tests passed" in outputs, f"{part}: visible tests did not report success"


@pytest.mark.slow
def test_source_run_prints_no_warning(executed_source):
    """A student cannot act on library warnings: the given setup cell silences them (narrowly)."""
    _, nb, _ = executed_source
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            text = out.get("text", "") if out.get("output_type") == "stream" else ""
            assert not re.search(r"warn|\.py:\d+: ", text, re.I), \
                f"cell {cell.metadata.get('nbgrader', {}).get('grade_id') or cell.source[:60]!r} printed: {text[:500]}"


@pytest.mark.slow
def test_checkpoint_folder_holds_only_the_checkpoints_and_the_zip_the_submission(executed_source):
    import zipfile

    work, nb, _ = executed_source
    assert sorted(os.listdir(work / "checkpoints")) == ["anomaly.ckpt", "reverse.ckpt"]
    assert not list(work.rglob("lightning_logs")), "a Trainer wrote lightning_logs/"
    with zipfile.ZipFile(work / "submission.zip") as zf:
        assert sorted(zf.namelist()) == ["checkpoints/anomaly.ckpt", "checkpoints/reverse.ckpt", "transformer_lab.ipynb"]
        for name in ("reverse.ckpt", "anomaly.ckpt"):
            assert zf.read(f"checkpoints/{name}") == (work / "checkpoints" / name).read_bytes()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "missing:" not in outputs and "also holds" not in outputs


@pytest.mark.slow
def test_nbgrader_validate_passes_on_the_source(executed_source):
    work, _, _ = executed_source
    proc = _validate(work / SOURCE.name)
    assert proc.returncode == 0 and "Success! Your notebook passes all the tests." in proc.stdout, proc.stdout[-5000:] + proc.stderr[-3000:]


@pytest.mark.slow
def test_nbgrader_validate_invert_passes_on_the_release(tmp_path):
    for f in bn.assignment_files(RELEASE.parent):  # as a student gets it: the notebook and lab_data.py
        shutil.copy(f, tmp_path / f.name)
    proc = _validate(tmp_path / RELEASE.name, "--invert")
    assert proc.returncode == 0 and "Success! The notebook does not pass any tests." in proc.stdout, \
        proc.stdout[-5000:] + proc.stderr[-3000:]


#: what a student does not have: the project's folders, its command lines, its developer modules
DEVELOPER_ONLY = ("benchmarks/", "tools/", "reference/", "notebook/", "tests/", "transformer-lab ", "autograder ",
                  "lab_autograder", "runtime.", "set_anomaly.", "`make ", "make test", "make demo", "README")


def test_the_release_names_nothing_a_student_does_not_have():
    folder = RELEASE.parent
    nb = json.loads(RELEASE.read_text())
    texts = {f"{RELEASE.name} cell {i}": "".join(c["source"]) for i, c in enumerate(nb["cells"])}
    texts.update({f.name: f.read_text() for f in folder.glob("*.py")})
    found = [f"{where}: ...{text[max(0, m.start() - 40):m.end() + 20]!r}" for where, text in texts.items()
             for word in DEVELOPER_ONLY for m in re.finditer(re.escape(word), text)]
    assert not found, found
