"""One contract per graded part: the registry (``lab_autograder.registry``) and every file that
derives from it agree (the notebook builder, the source notebook's nbgrader points and points
table, ``source/PARTS.md``, the grader's views and its stand-in stages)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from lab_autograder import parts, registry  # noqa: E402
from lab_autograder.notebook import points_from_source  # noqa: E402
from lab_autograder.registry import PARTS, REVERSE_THRESHOLD  # noqa: E402

SOURCE = ROOT / "source" / "transformer_lab" / "transformer_lab.ipynb"


def test_parts_md_lists_the_registry():
    text = (ROOT / "source" / "PARTS.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| `impl_(\w+)` / `test_(\w+)` \| (\d+) \|", text, re.M)
    assert [r[0] for r in rows] == list(PARTS)
    assert all(a == b == c and int(p) == PARTS[a].points for a, b, c, p in rows)
    assert f"Total: **{sum(p.points for p in PARTS.values())} points**" in text


def test_source_notebook_points_and_table_are_the_registrys():
    points, origin = points_from_source(SOURCE)
    assert points == {n: float(p.points) for n, p in PARTS.items()} and "11 graded cells" in origin
    cells = json.loads(SOURCE.read_text())["cells"]
    ids = [c["metadata"].get("nbgrader", {}).get("grade_id") for c in cells]
    for name in PARTS:
        assert f"impl_{name}" in ids and f"test_{name}" in ids, name
    intro = "".join(cells[0]["source"])
    table = re.findall(r"^\| \d+\. [^|]+\| (\d+) \|$", intro, re.M)
    assert [int(p) for p in table] == [p.points for p in PARTS.values()]


def test_builder_and_grader_read_the_registry():
    import build_notebook

    assert {n: (p.points, p.targets) for n, p in build_notebook.PARTS.items()} == {
        n: (p.points, p.targets) for n, p in PARTS.items()
    }
    assert parts.PART_ORDER == list(PARTS) and parts.TITLES == {n: p.title for n, p in PARTS.items()}
    assert set(parts.INPUTS) == set(parts.GRADERS) == set(PARTS)
    stages = dict(registry.STAGES)
    for name, part in PARTS.items():
        if part.iso_stage:  # re-checked on stand-ins of what it builds on, never of itself
            assert name not in stages[part.iso_stage] and part.depends, name
    assert parts.REVERSE_THRESHOLD == REVERSE_THRESHOLD


def test_grades_table_columns_come_from_the_registry(tmp_path, capsys):
    from lab_autograder.cli import print_table

    columns = [p.column for p in PARTS.values()]
    assert all(columns) and len(set(columns)) == len(columns), "every part needs its own short column name"
    (tmp_path / "grades.csv").write_text("student_id," + ",".join(PARTS) + ",total\nalice," + "1," * len(PARTS) + "11\n")
    print_table(tmp_path)
    assert capsys.readouterr().out.split("\n")[0].split() == ["student_id", *columns, "total"]
