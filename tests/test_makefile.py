"""The Makefile's targets run in the environment they are given (a conda user's ``VENV=$CONDA_PREFIX``),
and ``make demo`` writes a log-sized log."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def _dry_run(target: str, *args: str) -> str:
    return subprocess.run(["make", "-n", "-B", target, *args], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout


def test_targets_use_the_environment_they_are_given():
    env = "/opt/conda/envs/transformer-lab"
    for target in ("test", "test-fast", "demo", "release", "gradescope"):
        commands = _dry_run(target, f"VENV={env}")
        assert ".venv" not in commands, (target, commands)
        assert f"{env}/bin/python -m pip install -q -e '.[dev]'" in commands  # installs into that env
    assert f"{env}/bin/python -m pytest -q\n" in _dry_run("test", f"VENV={env}")


def test_demo_trains_quietly_into_one_folder_per_task_and_stops_on_a_failed_step():
    demo = _dry_run("demo")
    assert ".venv/bin/transformer-lab train reverse --out runs/demo/reverse --quiet" in demo
    assert ".venv/bin/transformer-lab train anomaly --quick --out runs/demo/anomaly --quiet" in demo
    makefile = (ROOT / "Makefile").read_text()
    assert "-include" not in makefile and "|| true" not in makefile and "\t-" not in makefile  # no ignored failure
