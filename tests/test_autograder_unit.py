"""Fast tests of the autograder's pieces that run no worker (seconds)."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from autograder_fixtures import catalog  # noqa: E402
from lab_autograder import parts as P  # noqa: E402
from lab_autograder.cli import main as cli_main  # noqa: E402
from lab_autograder.grade import Settings, grade_all, safe_name  # noqa: E402
from lab_autograder.submission import snapshot  # noqa: E402
from lab_autograder.notebook import NotebookError, code_cells, points_from_source, transform_magics  # noqa: E402
from lab_autograder.sandbox import sandbox_level  # noqa: E402

needs_source = pytest.mark.skipif(not catalog.SOURCE.is_file(), reason="source notebook not built yet")


def test_magics_become_what_ipython_runs():
    """IPython's own transformer: magics become calls of the worker's ``get_ipython()``, Python stays."""
    src = "%matplotlib inline\n!pip install evil\nx = 1\nfiles = !ls\nif x:\n    %time y = 2\nz = 3 % 2\n"
    out = transform_magics(src)
    assert "get_ipython().system('pip install evil')" in out and "files = get_ipython().getoutput('ls')" in out
    assert "x = 1" in out and "z = 3 % 2" in out and "get_ipython().run_line_magic('time', 'y = 2')" in out
    compile(out, "<cell>", "exec")
    black = "ok = (1\n      != 2)\n"  # a continuation line is not a shell escape
    assert transform_magics(black) == black
    assert transform_magics("%%writefile helper.py\ndef f():\n    return 1\n") == (
        "get_ipython().run_cell_magic('writefile', 'helper.py', 'def f():\\n    return 1\\n')\n")


@pytest.mark.parametrize("name", list(catalog.malformed_notebooks()) if catalog.SOURCE.is_file() else [])
def test_malformed_notebooks_are_refused_with_a_message(tmp_path, name):
    raw = catalog.malformed_notebooks()[name]
    p = tmp_path / "nb.ipynb"
    p.write_bytes(raw)
    if name == "malformed_bad_cells":  # JSON with junk cells: readable, the junk is ignored
        assert code_cells(p) == []
        return
    with pytest.raises(NotebookError) as e:
        code_cells(p)
    assert "nb.ipynb" in str(e.value)


@needs_source
def test_test_cells_are_not_run_and_points_come_from_the_source():
    nb_cells = code_cells(catalog.SOURCE)
    assert not any("### BEGIN HIDDEN TESTS" in c for c in nb_cells)
    points, origin = points_from_source(catalog.SOURCE)
    parts = catalog.graded_parts(catalog.load_source())
    assert str(catalog.SOURCE) in origin
    for part in parts:  # the notebook's metadata and PARTS.md agree
        assert points[part] == P.DEFAULT_POINTS[part], part
    if len(parts) == len(P.PART_ORDER):
        assert sum(points.values()) == 25


def test_points_fall_back_to_the_parts_table(tmp_path):
    points, origin = points_from_source(tmp_path / "missing.ipynb")
    assert points == P.DEFAULT_POINTS and "defaults" in origin


def test_names_and_notebook_discovery(tmp_path):
    assert safe_name("../../etc/passwd") == "etc_passwd"
    d = tmp_path / "alice smith"
    (d / "checkpoints").mkdir(parents=True)
    (d / "other.ipynb").write_text("{}")
    (d / "transformer_lab.ipynb").write_text("{}")
    (d / "checkpoints" / "reverse.ckpt").write_bytes(b"ck")
    sub = snapshot(d, "alice")
    assert sub.notebook_name == "transformer_lab.ipynb" and sub.notebook == b"{}"
    assert sub.checkpoints == {"reverse.ckpt": b"ck"}
    assert sub.notes == ["graded transformer_lab.ipynb; not graded: other.ipynb"]  # the rule, said


def test_snapshot_follows_no_link(tmp_path):
    secret = tmp_path / "grader" / "solution.ipynb"
    secret.parent.mkdir()
    secret.write_text('{"cells": []}')
    d = tmp_path / "bob"
    (d / "checkpoints").mkdir(parents=True)
    (d / "transformer_lab.ipynb").symlink_to(secret)
    (d / "checkpoints" / "reverse.ckpt").symlink_to(secret)
    sub = snapshot(d, "bob")
    assert sub.notebook is None and sub.checkpoints == {}
    assert any("transformer_lab.ipynb is a symbolic link" in n for n in sub.notes), sub.notes
    (d / "transformer_lab.ipynb").unlink()
    (d / "transformer_lab.ipynb").write_text("{}")
    sub = snapshot(d, "bob")
    assert sub.notebook == b"{}" and sub.checkpoints == {}
    assert any("reverse.ckpt is a symbolic link" in n for n in sub.notes), sub.notes
    os.mkfifo(d / "checkpoints" / "anomaly.ckpt")  # a FIFO would block a plain open()
    assert any("not a regular file" in n for n in snapshot(d, "bob").notes)


def _probe(name, ns, inp) -> dict:
    """The worker's probe of part ``name`` run here, in-process, on the definitions in ``ns`` (no sandbox)."""
    from lab_autograder.worker import Out, PROBES

    out = Out()
    PROBES[name](ns, inp, out)
    return dict(out)


def test_scaled_dot_product_is_checked_where_the_hidden_tests_look():
    """Gradients, 0/1 int and float masks, a fully masked row, float16 (issue 19, item 8)."""
    import math

    inp = P.INPUTS["scaled_dot_product"](0)

    def sloppy(q, k, v, mask=None):  # right on bool masks in float32, and nowhere else
        q, k, v = q.detach(), k.detach(), v.detach()
        logits = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
        if mask is not None:
            logits = logits.masked_fill(~mask, float("-inf"))
        att = torch.softmax(logits, -1)
        return att @ v, att

    pr = P.GRADERS["scaled_dot_product"](inp, _probe("scaled_dot_product", {"scaled_dot_product": sloppy}, inp), 3)
    failed = [c for c in pr.checks if not c.passed]
    assert len(failed) == 1 and 2.5 < pr.score < 3
    for symptom in ("0/1 integer mask", "0/1 float mask", "fully masked row", "gradients (none reach q, k, v)"):
        assert symptom in failed[0].received, failed[0].received
    assert "mask == 0" in failed[0].hint and "do not detach" in failed[0].hint and "-inf" in failed[0].hint


def test_grading_logic_full_marks_on_reference_outputs_and_diagnoses():
    """The checks themselves, on outputs computed here (no worker): right answers pass, a known bug is named."""
    inp = P.INPUTS["scaled_dot_product"](0)
    out = _probe("scaled_dot_product", {"scaled_dot_product": P.ref().scaled_dot_product}, inp)
    pr = P.GRADERS["scaled_dot_product"](inp, out, 3)
    assert pr.score == 3, [c for c in pr.checks if not c.passed]
    bad = {k: v for k, v in out.items()}
    for case in ("plain", "mask", "rect", "pad"):
        bad[f"{case}_values"], bad[f"{case}_attention"] = P._attention_variant(
            *(inp[f"{case}_{n}"] for n in "qkv"), mask=inp.get(f"{case}_mask"), scale=None)
    pr = P.GRADERS["scaled_dot_product"](inp, bad, 3)
    assert pr.score < 3
    assert any("not divided by sqrt(d_k)" in c.hint for c in pr.checks)
    # forged outputs of the wrong kind earn nothing and do not crash the checks
    pr = P.GRADERS["scaled_dot_product"](inp, {"plain_values": "passed", "plain_attention": 1.0, "error_probe": "x"}, 3)
    assert pr.score == 0


def test_warmup_checks_name_an_off_by_one():
    inp = P.INPUTS["warmup_factor"](0)
    steps = inp["steps"].tolist()
    good = torch.tensor([P._factor(s, 10, 100) for s in steps], dtype=torch.float64)
    assert P.GRADERS["warmup_factor"](inp, {"factors": good, "method_factors": good, "lrs": torch.tensor(
        [0.5 * P._factor(s, 10, 100) for s in range(25)], dtype=torch.float64)}, 2).score == 2
    import math
    shifted = torch.tensor([0.5 * (1 + math.cos(math.pi * s / 100)) * ((s + 1) / 10 if s <= 10 else 1) for s in steps],
                           dtype=torch.float64)
    pr = P.GRADERS["warmup_factor"](inp, {"factors": shifted}, 2)
    assert pr.score == 0 and "off by one" in pr.checks[0].hint


def test_checkpoints_beside_the_notebook_are_found_with_a_note(tmp_path):
    """Gradescope's upload of loose files puts reverse.ckpt next to the notebook, not in checkpoints/."""
    from lab_autograder.submission import snapshot

    (tmp_path / "transformer_lab.ipynb").write_text("{}")
    (tmp_path / "reverse.ckpt").write_bytes(b"beside")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "anomaly.ckpt").write_bytes(b"inside")
    (tmp_path / "anomaly.ckpt").write_bytes(b"a second copy")  # checkpoints/ wins
    sub = snapshot(tmp_path, "s")
    assert sub.checkpoints == {"reverse.ckpt": b"beside", "anomaly.ckpt": b"inside"}
    assert sub.notes == ["reverse.ckpt found beside the notebook (not in checkpoints/): graded"]


def test_malformed_submissions_are_graded_zero_with_csv_and_resume(tmp_path, capsys):
    subs = tmp_path / "subs"
    empty = json.dumps({"cells": [{"cell_type": "code", "source": "", "metadata": {}, "outputs": []}],
                        "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()
    for name, raw in {"broken": b"{not json", "empty_folder": None, "empty_notebook": empty}.items():
        d = subs / name
        d.mkdir(parents=True)
        if raw is not None:
            (d / "transformer_lab.ipynb").write_bytes(raw)
    out = tmp_path / "out"
    res = grade_all(sorted(subs.iterdir()), Settings(out=out, quiet=True))
    assert [r["score"] for r in res] == [0, 0, 0]
    broken = json.loads((out / "broken" / "results.json").read_text())
    assert "not a valid notebook" in broken["output"]
    assert {t["status"] for t in broken["tests"]} == {"failed"}
    assert all(set(t) >= {"name", "score", "max_score", "status", "output", "visibility"} for t in broken["tests"])
    assert "no notebook found" in (out / "empty_folder" / "feedback.md").read_text()
    blank = (out / "empty_notebook" / "feedback.md").read_text()
    assert blank.count("has no code in it: was it saved before it was submitted?") == 1 + len(P.PART_ORDER)
    assert "NameError" not in blank  # one message (in the notes, and as each part's reason), nothing else
    rows = (out / "grades.csv").read_text().splitlines()
    assert rows[0].startswith("student_id,timestamp,scaled_dot_product") and rows[0].endswith("total,max,submitted_at,submitted_at_from,late_hours,late_penalty,final,provenance_flags")
    assert len(rows) == 4
    # a second run on the same OUT grades nothing again
    before = (out / "broken" / "results.json").stat().st_mtime_ns
    assert grade_all(sorted(subs.iterdir()), Settings(out=out, quiet=True)) == []
    assert (out / "broken" / "results.json").stat().st_mtime_ns == before
    assert not list(out.rglob("*.tmp"))  # atomic writes leave no temp files
    assert cli_main(["table", str(out)]) == 0
    assert "broken" in capsys.readouterr().out


def _nbgrader_course(root: Path, students: dict[str, bytes]) -> Path:
    """nbgrader's ``submitted/<student>/transformer_lab/`` with a notebook and ``timestamp.txt`` each."""
    for student, raw in students.items():
        d = root / "submitted" / student / "transformer_lab"
        d.mkdir(parents=True)
        (d / "transformer_lab.ipynb").write_bytes(raw)
        (d / "timestamp.txt").write_text(f"2026-11-2{len(student)} 10:00:00.000000 UTC\n")
    return root / "submitted"


def test_nbgrader_layout_is_keyed_by_student_and_regraded_by_content(tmp_path, capsys):
    submitted = _nbgrader_course(tmp_path, {"alice": b"{not json", "bob": b"{also not json"})
    out = tmp_path / "out"
    assert cli_main(["grade", str(submitted), "--out", str(out), "--quiet"]) == 2  # no anomaly features
    assert "grading the anomaly part needs its test features" in capsys.readouterr().err
    features = ["--anomaly-features", "synthetic"]
    assert cli_main(["grade", str(submitted), "--out", str(out), "--quiet", *features]) == 0
    rows = {r["student_id"]: r for r in csv.DictReader((out / "grades.csv").open())}
    assert set(rows) == {"alice", "bob"} and rows["alice"]["timestamp"] == "2026-11-25 10:00:00.000000 UTC"
    alice = json.loads((out / "alice" / "results.json").read_text())["extra_data"]
    assert alice["student_id"] == "alice" and len(alice["content_sha256"]) == 16
    assert set(alice["grader"]) == {"version", "code_sha256", "source_sha256", "given_sha256", "settings_sha256"}
    assert alice["anomaly_features"]["spec"] == "synthetic"
    # one student path, as `submitted/*/transformer_lab` expands: same names, nothing graded again
    capsys.readouterr()
    paths = sorted(str(p) for p in submitted.glob("*/transformer_lab"))
    assert cli_main(["grade", *paths, "--out", str(out), *features]) == 0
    assert "2 unchanged since graded" in capsys.readouterr().out
    # bob resubmits: his notebook changed, so he is graded again although his folder name did not
    before = (out / "alice" / "results.json").stat().st_mtime_ns
    (submitted / "bob" / "transformer_lab" / "transformer_lab.ipynb").write_bytes(b'{"cells": 3}')
    assert cli_main(["grade", str(submitted), "--out", str(out), *features]) == 0
    assert "1 changed since graded" in capsys.readouterr().out
    assert "no list of cells" in (out / "bob" / "feedback.md").read_text()
    assert (out / "alice" / "results.json").stat().st_mtime_ns == before
    # the course fixes its given code: everyone is graded again with it
    assignment = tmp_path / "assignment"
    assignment.mkdir()
    for f in ("transformer_lab.ipynb", "lab_data.py"):
        (assignment / f).write_bytes((catalog.SOURCE.parent / f).read_bytes())
    with (assignment / "lab_data.py").open("a") as f:
        f.write("# fixed\n")
    source = str(assignment / "transformer_lab.ipynb")
    assert cli_main(["grade", str(submitted), "--out", str(out), "--source", source, *features]) == 0
    assert "2 changed since graded" in capsys.readouterr().out


def test_feedback_html_escapes_everything(tmp_path):
    from lab_autograder.feedback import feedback_html

    res = {"score": 1, "output": "x: 1 / 2 points\nnote: <script>alert(1)</script>",
           "tests": [{"name": "part <b>", "score": 1, "max_score": 2, "output": "received: </pre><img src=x>"}],
           "extra_data": {"submission": "<i>eve</i>", "max_score": 2}}
    page = feedback_html(res)
    assert "<script>" not in page and "<img" not in page and "<i>eve" not in page and "<b>" not in page
    assert "&lt;script&gt;" in page and page.count("<pre>") == page.count("</pre>") == 2


def test_report_writes_histograms_and_lms_csv(tmp_path, capsys):
    out = tmp_path / "out"
    for student, scores in {"s1": {"scaled_dot_product": 3.0, "train_reverse": 0.0},
                            "s2": {"scaled_dot_product": 1.5, "train_reverse": 3.0}}.items():
        (out / student).mkdir(parents=True)
        tests = [{"name": P.TITLES[p], "score": v, "max_score": 3.0, "tags": [p]} for p, v in scores.items()]
        (out / student / "results.json").write_text(json.dumps({"score": sum(scores.values()), "tests": tests,
            "extra_data": {"student_id": student, "max_score": 6.0, "parts": scores}}))
    assert cli_main(["report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "scaled dot-product" in text.lower() and "1/2" in text  # one of two at full marks
    assert list(csv.reader((out / "lms_grades.csv").open())) == [["student_id", "score"], ["s1", "3"], ["s2", "4.5"]]
    assert (out / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cli_main(["report", str(tmp_path / "nothing")]) == 2


def test_examples_for_the_demo(tmp_path, capsys):
    assert cli_main(["examples", str(tmp_path / "ex")]) == 0
    names = sorted(p.name for p in (tmp_path / "ex").iterdir())
    assert {"solution", "bug_no_sqrt_dk", "bug_pre_layernorm"} <= set(names)
    sol = (tmp_path / "ex" / "solution" / "transformer_lab.ipynb").read_text()
    for bug in ("bug_no_sqrt_dk", "bug_pre_layernorm"):
        assert (tmp_path / "ex" / bug / "transformer_lab.ipynb").read_text() != sol


def test_untrusted_outputs_are_bounded():
    """Views that would materialise terabytes, compressed entries and non-dict payloads are refused;
    strings are capped and cannot open HTML or close a code fence."""
    import io
    import zipfile

    from lab_autograder.untrusted import Malformed, clean_text, load_output

    def saved(obj):
        buf = io.BytesIO()
        torch.save(obj, buf)
        return buf.getvalue()
    ok = load_output(saved({"out": torch.ones(3, 4), "n": 2, "s": "x" * 10**5, "bad key!": 1}))
    assert ok["out"].shape == (3, 4) and ok["n"] == 2.0 and len(ok["s"]) == 4000 and "bad key!" not in ok
    for evil in ({"x": torch.zeros(1).expand(2**40)}, {"x": torch.zeros(2**21).as_strided((2**20, 2**20), (1, 1))},
                 {"x": torch.zeros(2**21)}, [torch.zeros(1)]):
        with pytest.raises(Malformed):
            load_output(saved(evil))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data/0", b"\0" * 2**24)
    with pytest.raises(Malformed, match="compressed"):
        load_output(buf.getvalue())
    text = clean_text("**Total: 25 / 25**\n```\n<script>x</script>\x1b[31m /srv/grader/out", 60, ("/srv/grader",))
    assert "**" not in text and "```" not in text and "<" not in text and "\x1b" not in text
    assert "/srv/grader" not in text and "characters cut" in text


def test_jail_hides_an_installed_copy_of_the_solution(monkeypatch):
    """Installed without -e, the reference would sit in the venv the jail binds: an empty mount covers it."""
    import sys as _sys

    from lab_autograder import sandbox

    site = f"{_sys.prefix}/lib/python3/site-packages"
    monkeypatch.setattr(sandbox, "grader_packages", lambda: [f"{site}/transformer_lab", "/elsewhere/lab_autograder",
                                                             "/usr/lib/python3/dist-packages/transformer_lab"])
    paths = {"in": "/j/in", "work": "/j/work", "out": "/j/out"}
    jail, python = sandbox._jail(Path("/j/root"), paths, 61000)
    masks = set(jail["masks"])
    assert "/usr/lib/python3/dist-packages/transformer_lab" in masks
    assert "/elsewhere/lab_autograder" not in " ".join(masks)  # not visible in the jail anyway
    if _sys.prefix != _sys.base_prefix:
        assert "/opt/venv/lib/python3/site-packages/transformer_lab" in masks and python.startswith("/opt/venv/")


def test_deeply_nested_notebook_is_refused(tmp_path):
    p = tmp_path / "deep.ipynb"
    p.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(NotebookError, match="nested too deeply|not a valid notebook"):
        code_cells(p)


def test_job_slots_are_exclusive_across_processes():
    """Two grading runs on one machine never share a job uid (each run kills its uid's processes)."""
    import subprocess

    from lab_autograder.sandbox import lease_slot

    code = ("import sys; sys.path[:0] = sys.argv[1:]\n"
            "from lab_autograder.sandbox import lease_slot\n"
            "with lease_slot() as s: print(s)\n")
    paths = [str(Path(__file__).resolve().parents[1] / d) for d in ("autograder", "reference")]
    with lease_slot() as a, lease_slot() as b:
        other = subprocess.run([sys.executable, "-c", code, *paths], capture_output=True, text=True, check=True)
        assert len({a, b, int(other.stdout)}) == 3
    import fcntl

    from lab_autograder.sandbox import _lock_dir

    fd = os.open(_lock_dir() / f"slot-{a}.lock", os.O_RDWR)
    try:  # released on exit: nothing holds the lock any more
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)


def test_stand_ins_are_the_reference_definitions():
    """One copy of the maths: a stage's stand-ins are the reference's own source, and hold nothing
    of the parts the stage grades."""
    import math

    import torch.nn as nn
    import torch.nn.functional as F
    from transformer_lab import attention, encoder, positional

    from lab_autograder.registry import STAGES
    from lab_autograder.oracles import oracle_source

    stages = dict(STAGES)
    assert "class MultiheadAttention" not in oracle_source(stages["iso_sdp"])
    assert "class EncoderBlock" not in oracle_source(stages["iso_mha"])
    src = oracle_source(stages["iso_all"])
    import inspect

    for obj in (attention.scaled_dot_product, attention.MultiheadAttention, encoder.EncoderBlock,
                positional.sinusoidal_table):
        assert inspect.getsource(obj) in src
    ns = {}
    exec(compile(src, "<oracles>", "exec"), {"math": math, "torch": torch, "nn": nn, "F": F, "ORACLES": ns})
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=g) for _ in range(3))
    mask = torch.rand(2, 1, 5, 5, generator=g) > 0.3
    for got, want in zip(ns["scaled_dot_product"](q, k, v, mask), attention.scaled_dot_product(q, k, v, mask)):
        assert torch.equal(got, want)
    torch.manual_seed(1)
    block = ns["EncoderBlock"](input_dim=8, num_heads=2, dim_feedforward=16, dropout=0.0).eval()
    ref = encoder.EncoderBlock(input_dim=8, num_heads=2, dim_feedforward=16, dropout=0.0).eval()
    ref.load_state_dict(block.state_dict(), strict=True)
    x = torch.randn(2, 5, 8, generator=g)
    assert torch.equal(block(x), ref(x))
    assert torch.equal(ns["sinusoidal_table"](7, 6), positional.sinusoidal_table(7, 6))


def test_student_text_never_reaches_a_gradebook_as_a_formula(tmp_path):
    """Folder names and timestamps are the student's text: a spreadsheet must show them, not run them."""
    from lab_autograder.report import write_report

    hostile = ["=HYPERLINK(\"http://x\",\"y\")", "+1-1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"]
    for i, text in enumerate(hostile):
        d = tmp_path / f"s{i}"
        d.mkdir()
        res = {"score": 1.0, "tests": [{"tags": ["warmup_factor"], "score": 1.0, "max_score": 1.0}],
               "extra_data": {"student_id": text, "timestamp": text, "max_score": 1.0,
                              "parts": {"warmup_factor": 1.0}}}
        (d / "results.json").write_text(json.dumps(res))
    write_report(tmp_path)
    for name in ("grades.csv", "lms_grades.csv"):
        rows = list(csv.reader((tmp_path / name).open(newline="")))[1:]
        cells = [c for r in rows for c in r[:2] if not c.replace(".", "").isdigit()]
        assert sorted(cells) == sorted("'" + t for t in hostile for _ in range(2 if name == "grades.csv" else 1))


def test_a_course_without_anomaly_features_is_not_the_students_fault():
    """Without test features the accuracy cannot be measured: the feedback says so, and hints nothing."""
    from lab_autograder import parts as P

    pr = P.GRADERS["train_anomaly"]({}, {}, 4.0, (None, P.NOT_CONFIGURED))
    failed = [c for c in pr.checks if not c.passed and c.trusted]
    assert failed and all(c.hint == "" for c in failed)
    assert all("submit" not in c.hint and "train" not in c.hint for c in failed)
    assert pr.note == P.NOT_CONFIGURED and "not a fault of your submission" in pr.note
    submitted = P.GRADERS["train_anomaly"]({}, {}, 4.0, (None, "no checkpoints/anomaly.ckpt in the submission"))
    assert "submit the checkpoints/ folder" in submitted.checks[0].hint  # a student's own omission still is


def test_the_graded_notebook_is_chosen_by_one_stated_rule():
    from lab_autograder.submission import choose_notebook

    top, draft = ("transformer_lab.ipynb",), ("drafts", "transformer_lab.ipynb")
    assert choose_notebook([draft, top]) == (top, "graded transformer_lab.ipynb; not graded: drafts/transformer_lab.ipynb")
    assert choose_notebook([("mine.ipynb",), draft])[0] == ("mine.ipynb",)  # the top level decides first
    assert choose_notebook([draft]) == (draft, "")  # e.g. a zip that holds the folder
    chosen, note = choose_notebook([("a.ipynb",), ("b.ipynb",)])
    assert chosen is None and "more than one notebook" in note and "a.ipynb, b.ipynb" in note
    assert choose_notebook([("x", "a.ipynb"), ("y", "b.ipynb")])[0] is None
    assert choose_notebook([]) == (None, "")


def test_an_embedding_input_layer_is_the_same_model_to_the_grader():
    """The lab sheet allows nn.Embedding for the reverse task's input; E = W^T + b is the same function."""
    from lab_autograder.checkpoint_eval import reference_accuracy

    linear = catalog.untrained_reverse_checkpoint()
    embedded = catalog.as_embedding_checkpoint("reverse.ckpt", linear)
    x = P.reverse_eval_data(0)
    acc_linear, _ = reference_accuracy("train_reverse", linear, x, x.flip(-1))
    acc_embedded, why = reference_accuracy("train_reverse", embedded, x, x.flip(-1))
    assert acc_embedded == acc_linear and why == ""
    # and the worker gives a student's embedding model the grader's Linear weights as that embedding
    import torch.nn as nn

    from transformer_lab import ReversePredictor

    hp = dict(input_dim=10, model_dim=32, num_classes=10, num_heads=1, num_layers=1, lr=5e-4, warmup=5, max_iters=10)
    grader = ReversePredictor(**hp)
    student = ReversePredictor(**hp)
    student.input_net[1] = nn.Embedding(10, 32)
    from lab_autograder.worker import load_state

    load_state(student, grader.state_dict())
    ids = torch.randint(10, (3, 16))
    onehot = torch.nn.functional.one_hot(ids, 10).float()
    assert torch.allclose(student.input_net(ids), grader.input_net(onehot), atol=1e-6)
