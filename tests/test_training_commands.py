"""How ``transformer-lab train`` behaves in a log and when it is stopped: a line per epoch with
``--quiet``, and a stopped run fails instead of passing for a finished one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quiet_prints_epochs_and_sigterm_fails_the_command(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT / "reference"))
    proc = subprocess.Popen([sys.executable, "-m", "transformer_lab.cli", "train", "reverse", "--out", str(tmp_path),
                             "--quiet", "--epochs", "40", "--accelerator", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines, deadline = [], time.monotonic() + 300
    for line in proc.stdout:  # one line per epoch, even without progress bars
        lines.append(line)
        if "epoch 1/40 done, val_acc" in line or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGTERM)  # what `timeout`, a scheduler or a closed CI job sends
    rest, _ = proc.communicate(timeout=300)
    printed = "".join(lines) + rest
    assert "epoch 1/40 done, val_acc" in printed, printed[-2000:]
    assert proc.returncode == 128 + signal.SIGTERM, printed[-2000:]  # Lightning alone exits 0 here
    assert "transformer-lab train was stopped (SIGTERM): no result written" in printed
    assert not (tmp_path / "reverse_result.json").exists()  # nothing downstream mistakes it for a result
