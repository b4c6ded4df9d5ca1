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


def literal_keys_read() -> set[str]:
    """Every literal key the grader reads from a probe's outputs (``out.get("k")``, ``out["k"]``)."""
    trees = [ast.parse(f.read_text()) for f in sorted((ROOT / "autograder" / "lab_autograder" / "parts").glob("*.py"))]
    keys = set()
    for node in (n for tree in trees for n in ast.walk(tree)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "out" and node.args \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            keys.add(node.args[0].value)
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "out" \
                and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
            keys.add(node.slice.value)
    return keys


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
