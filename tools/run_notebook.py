#!/usr/bin/env python
"""Run the assignment notebook top to bottom in a work directory, as a student would, and time it.

``python tools/run_notebook.py --out runs/notebook``            the source notebook (solutions), quick mode
``python tools/run_notebook.py --release --out runs/student``   the release (stops at the first stub)
``python tools/run_notebook.py --full --until test_train_reverse --out runs/full``   full recipe, reverse only

The directory gets the notebook and its given modules, the executed copy (``executed.ipynb``), the ``checkpoints/`` its
training cells write and the ``submission.zip`` its last cell packs: a complete submission of the
reference solution (for the autograder's "the reference earns full marks" check). Prints the
slowest cells and what ``checkpoints/`` holds (exit status 1 if anything but the two checkpoints).
Quick mode unless the environment or ``--full`` say otherwise (``TL_QUICK``); the threads are the
notebook's own (as a student gets them). ``--cpu-hogs N`` runs it while N processes spin on the
CPU: a shared machine, for the notebook's time table.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
NAME = "transformer_lab.ipynb"
sys.path[:0] = [str(ROOT / "tools"), str(ROOT / "tests")]
from build_notebook import assignment_files  # noqa: E402
from loadgen import cpu_hogs  # noqa: E402


def _seconds(cell) -> float:
    ex = cell.get("metadata", {}).get("execution", {})
    try:
        start = dt.datetime.fromisoformat(ex["iopub.execute_input"].replace("Z", "+00:00"))
        end = dt.datetime.fromisoformat(ex["shell.execute_reply"].replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return 0.0
    return (end - start).total_seconds()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="work directory (created; the notebook runs there)")
    ap.add_argument("--release", action="store_true", help="run the student release instead of the source")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    ap.add_argument("--full", action="store_true", help="the full recipe (TL_QUICK=0) instead of the quick mode")
    ap.add_argument("--until", metavar="GRADE_ID", help="stop after the cell with this nbgrader grade_id")
    ap.add_argument("--cpu-hogs", type=int, default=0, metavar="N", help="run while N CPU hogs compete (default 0)")
    args = ap.parse_args(argv)
    src = ROOT / ("release" if args.release else "source") / "transformer_lab" / NAME
    args.out.mkdir(parents=True, exist_ok=True)
    for f in assignment_files(src.parent):  # the notebook and the given modules it imports
        shutil.copy(f, args.out / f.name)
    if args.full:
        os.environ["TL_QUICK"] = "0"
    os.environ.setdefault("TL_QUICK", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    nb = nbformat.read(args.out / NAME, as_version=4)
    if args.until:
        ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
        if args.until not in ids:
            ap.error(f"no cell with grade_id {args.until!r}")
        nb.cells = nb.cells[:ids.index(args.until) + 1]
    client = NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(args.out)}})
    t0 = time.perf_counter()
    status = 0
    with cpu_hogs(args.cpu_hogs) if args.cpu_hogs else contextlib.nullcontext():
        try:
            client.execute()
        except CellExecutionError as e:
            print(str(e).splitlines()[-1] if str(e) else "a cell failed", file=sys.stderr)
            status = 1
        load = os.getloadavg()[0]
    total = time.perf_counter() - t0
    nbformat.write(nb, args.out / "executed.ipynb")
    timed = sorted(((_seconds(c), c.metadata.get("nbgrader", {}).get("grade_id") or c.source.splitlines()[0][:50])
                    for c in nb.cells if c.cell_type == "code"), reverse=True)
    print(f"{src.relative_to(ROOT)}: {'ok' if status == 0 else 'FAILED'} in {total:.0f} s (kernel start included; "
          f"{args.cpu_hogs} CPU hogs, load average {load:.1f} at the end)")
    for seconds, name in timed[:6]:
        print(f"  {seconds:6.1f} s  {name}")
    print(f"executed notebook: {args.out / 'executed.ipynb'}; checkpoints: {args.out / 'checkpoints'}")
    ckpt_dir = args.out / "checkpoints"
    held = sorted(p.name for p in ckpt_dir.iterdir()) if ckpt_dir.is_dir() else []
    extra = [n for n in held if n not in ("reverse.ckpt", "anomaly.ckpt")]
    print(f"checkpoints/ holds: {', '.join(held) or 'nothing'}")
    if extra:
        print(f"checkpoints/ must hold only reverse.ckpt and anomaly.ckpt; also found {extra}", file=sys.stderr)
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
