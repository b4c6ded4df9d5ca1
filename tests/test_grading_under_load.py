"""The same scores on a loaded grading machine as on an idle one.

The solution and a few catalogued bugs are graded with the deployed limits (the CLI's defaults),
once on an idle machine and once while CPU hogs (3 per core) compete for the cores. The limits
of cells and probes are CPU seconds (a wall clock only backs them up, at 3x, for code that
sleeps), so a loaded machine stretches no verdict; the per-launch wall clock (300 s) is over 30x
what the solution's launch needs on an idle machine.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from autograder_fixtures import catalog, checkpoints  # noqa: E402
from lab_autograder.grade import Settings, grade_all  # noqa: E402
from loadgen import cpu_hogs  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not catalog.SOURCE.is_file(), reason="source notebook not built yet")]

BUG_PARTS = ("scaled_dot_product", "encoder_block", "reverse_loss")


def test_loaded_machine_gives_the_idle_scores(tmp_path):
    ck = {f"{k}.ckpt": v for k, v in checkpoints.ensure().items()}
    src = catalog.load_source()
    subs = [catalog.write_submission(tmp_path / "subs", "solution", src, ck)]
    for part in BUG_PARTS:
        bug = next(v for v in catalog.BUGS if v.part == part)
        subs.append(catalog.write_submission(tmp_path / "subs", bug.id, catalog.apply_edits(src, bug.edits), ck))
    graded, seconds = {}, {}
    for load in ("idle", "loaded"):
        settings = Settings(out=tmp_path / load, jobs=2, quiet=True, anomaly_features=checkpoints.FEATURES_SPEC)
        t0 = time.monotonic()
        if load == "idle":
            run = grade_all(subs, settings)
        else:
            with cpu_hogs():
                run = grade_all(subs, settings)
                loadavg = os.getloadavg()[0]
        seconds[load] = time.monotonic() - t0
        assert not run.not_graded
        graded[load] = {r["extra_data"]["submission"]: r["extra_data"]["parts"] for r in run}
    print(f"idle {seconds['idle']:.0f} s, loaded {seconds['loaded']:.0f} s (load average {loadavg:.1f} "
          f"on {os.cpu_count()} cores) for {len(subs)} submissions")
    assert graded["loaded"] == graded["idle"]
    assert sum(graded["idle"]["solution"].values()) == 25
    assert all(sum(graded["idle"][s.name].values()) < 25 for s in subs[1:])
