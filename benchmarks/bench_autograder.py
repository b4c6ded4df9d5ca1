"""Autograder throughput against ``nbgrader autograde``, on the same notebooks, in one run.

A class of ``--n`` submissions (default 50) is made from the source notebook: the bug catalog and the
correct-but-different solutions of ``tests/autograder_fixtures/catalog.py``, topped up with copies of
the solution; each gets the trained checkpoints. Then:

* ``autograder grade ... --jobs J`` grades all of them (sandboxed worker per submission);
* ``nbgrader autograde`` (course dir in a temporary folder, gradebook built by
  ``nbgrader generate_assignment``) executes the same notebooks, ``--nbgrader-n`` of them
  (default: all; nbgrader runs one notebook at a time).

Prints seconds per submission and submissions per minute for both, and the ratio.
Usage: ``python benchmarks/bench_autograder.py [--n 50] [--jobs 2] [--nbgrader-n N]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "reference"), str(ROOT / "autograder")]

from autograder_fixtures import catalog, checkpoints  # noqa: E402


def make_class(root: Path, n: int, ck: dict) -> list[Path]:
    nb = catalog.load_source()
    present = catalog.grade_ids(nb)
    cks = {f"{k}.ckpt": v for k, v in ck.items()}
    subs = []
    for v in catalog.BUGS + catalog.CORRECT:
        if len(subs) < n and v.cells() <= present:
            subs.append(catalog.write_submission(root, v.id, catalog.apply_edits(nb, v.edits), cks))
    i = 0
    while len(subs) < n:
        i += 1
        subs.append(catalog.write_submission(root, f"solution_{i:02d}", nb, cks))
    return subs


def run_ours(subs, out: Path, jobs: int, features: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([str(Path(sys.executable).with_name("autograder")), "grade", *map(str, subs), "--out", str(out),
                    "--jobs", str(jobs), "--anomaly-features", features, "--quiet"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def run_nbgrader(subs, course: Path) -> float:
    """``nbgrader autograde`` of the same notebooks (+ checkpoints) in a scratch course directory."""
    shutil.copytree(ROOT / "source" / "transformer_lab", course / "source" / "transformer_lab",
                    ignore=shutil.ignore_patterns("checkpoints", "data", "lightning_logs", ".ipynb_checkpoints"))
    shutil.copy(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    db = course / "gradebook.db"
    env = dict(os.environ, TL_GRADEBOOK=str(db), MPLBACKEND="Agg", TL_QUICK="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")  # nbgrader runs `alembic`
    nbg = str(Path(sys.executable).with_name("nbgrader"))
    common = [f"--CourseDirectory.root={course}", f"--CourseDirectory.db_url=sqlite:///{db}", "--log-level=ERROR"]
    gen = subprocess.run([nbg, "generate_assignment", "transformer_lab", "--force", *common,
                          "--CourseDirectory.include=['*.ipynb']"], cwd=course, env=env, capture_output=True, text=True)
    if gen.returncode != 0:
        raise SystemExit(f"nbgrader generate_assignment failed:\n{gen.stdout[-3000:]}\n{gen.stderr[-3000:]}")
    for s in subs:
        dest = course / "submitted" / s.name / "transformer_lab"
        shutil.copytree(s, dest)
    t0 = time.perf_counter()
    proc = subprocess.run([nbg, "autograde", "transformer_lab", "--create", "--force", *common,
                           "--ExecutePreprocessor.timeout=600"], cwd=course, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    done = list((course / "autograded").glob("*/transformer_lab/transformer_lab.ipynb"))
    if proc.returncode != 0 or len(done) != len(subs):
        print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
        raise SystemExit(f"nbgrader autograde graded {len(done)} of {len(subs)} notebooks")
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{db}") as gb:
        scores = {s.name: gb.find_submission("transformer_lab", s.name).score for s in subs}
    print(f"nbgrader scores: {scores}")
    return seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--nbgrader-n", type=int, default=None, help="notebooks given to nbgrader (default: all n)")
    ap.add_argument("--skip-nbgrader", action="store_true")
    ap.add_argument("--nbgrader-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    ck = checkpoints.ensure()
    with tempfile.TemporaryDirectory(prefix="bench_autograder_") as tmp:
        tmp = Path(tmp)
        subs = make_class(tmp / "class", args.n, ck)
        if args.nbgrader_only:
            nbg = run_nbgrader(subs[: args.nbgrader_n or len(subs)], tmp / "course")
            print(f"nbgrader: {nbg:.1f} s")
            return 0
        ours = run_ours(subs, tmp / "out", args.jobs, checkpoints.FEATURES_SPEC)
        print(f"autograder (--jobs {args.jobs}): {len(subs)} submissions in {ours:.1f} s = "
              f"{ours / len(subs):.2f} s/submission, {60 * len(subs) / ours:.1f} submissions/min")
        if args.skip_nbgrader:
            return 0
        k = args.nbgrader_n or len(subs)
        nbg = run_nbgrader(subs[:k], tmp / "course")
        print(f"nbgrader autograde (sequential): {k} submissions in {nbg:.1f} s = {nbg / k:.2f} s/submission, "
              f"{60 * k / nbg:.1f} submissions/min")
        print(f"ratio (nbgrader s/submission / autograder s/submission): {(nbg / k) / (ours / len(subs)):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
