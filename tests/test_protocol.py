"""The worker/grader protocol: every output key a grade function reads is one a probe writes.

The worker holds no expected value and imports nothing from the grader, so the protocol between
them is the keys of each part's output dict. Both sides are run here on the reference's own
definitions (``autograder_fixtures/protocol_probe.py``, in a subprocess): the keys the probes
write, the keys the grade functions ask for, and the score, which must be full marks. The keys
the grader reads anywhere (every literal ``out.get("…")`` / ``out["…"]`` in ``parts/``) must
be written by some probe: a key renamed on one side only fails here, not in a student's grade.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab_autograder.registry import PARTS

ROOT = Path(__file__).resolve().parents[1]
#: keys a probe writes only when the student's figure has them (bar charts of the probabilities)
CONDITIONAL = {"bars"}


@pytest.fixture(scope="module")
def protocol(tmp_path_factory):
    work = tmp_path_factory.mktemp("protocol")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "autograder"), str(ROOT / "reference")]),
               MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, str(Path(__file__).parent / "autograder_fixtures" / "protocol_probe.py"),
                           str(work)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


#: the names the checks give a probe's outputs: a run's own dict, or one of ``runs[...]``
OUTPUT_NAMES = {"out", "iso", "run"}


def _is_outputs(node) -> bool:
    if isinstance(node, ast.Name):
        return node.id in OUTPUT_NAMES
    return isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in ("runs", "outs")


def _literal(node):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def literal_keys_read() -> set[str]:
    """Every literal key the grader reads from a probe's outputs (``out.get("k")``, ``run["k"]``,
    ``runs[p].get("k")``, ``preferred(runs, "k")``, ``runs_with(runs, "k")``)."""
    trees = [ast.parse(f.read_text()) for f in sorted((ROOT / "autograder" / "lab_autograder" / "parts").glob("*.py"))]
    keys = set()
    for node in (n for tree in trees for n in ast.walk(tree)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and _is_outputs(node.func.value) and node.args and _literal(node.args[0]):
            keys.add(node.args[0].value)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("preferred", "runs_with") and len(node.args) > 1 and _literal(node.args[1]):
            keys.add(node.args[1].value)
        if isinstance(node, ast.Subscript) and _is_outputs(node.value) and _literal(node.slice):
            keys.add(node.slice.value)
    return keys - set(OUTPUT_NAMES) - {"student"}


def test_reference_outputs_earn_full_marks(protocol):
    for part, r in protocol.items():
        assert r["score"] == r["points"], (part, r["failed"])


def test_every_key_a_grade_function_reads_is_written(protocol):
    for part, r in protocol.items():
        missing = [k for k in r["read"] if k not in r["written"] and not k.startswith("error_")
                   and k not in CONDITIONAL]
        assert not missing, (part, missing)
    written = {k for r in protocol.values() for k in r["written"]}
    never = sorted(k for k in literal_keys_read() - written - CONDITIONAL if not k.startswith("error_"))
    assert not never, f"parts/ reads keys no probe writes: {never}"


def test_the_run_on_stand_ins_is_kept_apart_and_read_as_the_students(protocol):
    """A re-checked part's two runs fill two dicts with the same keys (the grader nests them, so
    no run can write the other's), and the checks read nothing of the stand-ins' run it lacks."""
    rechecked = {part: r for part, r in protocol.items() if "iso_written" in r}
    assert set(rechecked) == {name for name, part in PARTS.items() if part.iso_stage}
    for part, r in rechecked.items():
        assert r["iso_written"] == r["written"], part
        assert r["iso_read"], part  # the checks do read the stand-ins' run
        missing = [k for k in r["iso_read"] if k not in r["iso_written"] and not k.startswith("error_")]
        assert not missing, (part, missing)


def test_the_key_scan_sees_every_way_the_checks_read_outputs():
    """The scan above is what keeps a key renamed on one side from passing: it must find keys read
    through each accessor the checks use, or a rename there would go unseen."""
    keys = literal_keys_read()
    assert {"names_loaded", "mask_out2", "loss", "logs_val", "returned_epoch", "ckpt_written"} <= keys
    assert not keys & {"student", "iso", "run"}
