"""Seconds per submission of this checkout's grader against an older commit's, in one run.

The same submission (the source notebook's solution with the trained test checkpoints) is graded
``--repeats`` times by each version, alternating which goes first, each from its own git worktree
(``PYTHONPATH`` puts that tree's ``autograder/`` and ``reference/`` first). Prints the median
``execution_time`` and worker seconds of each and their ratio.

Usage: ``python benchmarks/bench_grader_versions.py --base 34ecbfe [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "reference"), str(ROOT / "autograder")]

from autograder_fixtures import catalog, checkpoints  # noqa: E402


def grade(tree: Path, sub: Path, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=f"{tree / 'autograder'}:{tree / 'reference'}")
    cmd = [sys.executable, "-m", "lab_autograder.cli", "grade", str(sub), "--out", str(out), "--quiet",
           "--anomaly-features", checkpoints.FEATURES_SPEC]
    subprocess.run(cmd, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
    res = json.loads(next(out.glob("*/results.json")).read_text())
    return {"seconds": res["execution_time"], "worker": res["extra_data"].get("worker_seconds", 0.0),
            "score": res["score"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", required=True, help="the older commit")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        base = tmp / "base"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(base), args.base], cwd=ROOT, check=True)
        try:
            ck = {f"{k}.ckpt": v for k, v in checkpoints.ensure().items()}
            sub = catalog.write_submission(tmp / "subs", "solution", catalog.load_source(), ck)
            runs: dict[str, list[dict]] = {"base": [], "head": []}
            for r in range(args.repeats):
                order = [("base", base), ("head", ROOT)][:: 1 if r % 2 == 0 else -1]
                for name, tree in order:
                    got = grade(tree, sub, tmp / f"out-{name}-{r}")
                    runs[name].append(got)
                    print(f"repeat {r + 1} {name}: {got['seconds']:.1f} s (worker {got['worker']:.1f} s), "
                          f"score {got['score']:g}", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False)
    med = {k: statistics.median(x["seconds"] for x in v) for k, v in runs.items()}
    print(f"median s / submission: {args.base} {med['base']:.1f}, this checkout {med['head']:.1f}, "
          f"ratio {med['head'] / med['base']:.2f}")


if __name__ == "__main__":
    main()
