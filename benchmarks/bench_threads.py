"""CPU threads for training, idle and on a shared machine: the notebook's quick reverse run with 1
thread and with all of them, each in a fresh process, first on an idle machine, then while CPU hogs
(default 3 per core) compete for the cores. Prints the median wall time of each and the ratios.

    python benchmarks/bench_threads.py [--repeats 3] [--hogs N]

This picks the default of ``ReverseConfig.cpu_threads`` (and the notebook's training cells).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]
from loadgen import cpu_hogs  # noqa: E402

#: the notebook's quick-mode reverse run (its `run_reverse` cell), with a thread count
RUN = """
import sys, tempfile, warnings, logging
sys.path.insert(0, {ref!r})
warnings.filterwarnings("ignore")
logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
from transformer_lab.reverse import ReverseConfig, train_reverse
cfg = ReverseConfig(train_size=12800, test_size=2000, max_epochs=4, lr=2e-3, warmup=20, cpu_threads={n})
with tempfile.TemporaryDirectory() as d:
    _, r = train_reverse(d, cfg, progress=False, accelerator="cpu")
print(r["test_acc"])
"""


def one_run(threads: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", RUN.format(ref=str(ROOT / "reference"), n=threads)],
                         capture_output=True, text=True, check=True).stdout
    return time.perf_counter() - t0, float(out.split()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--hogs", type=int, default=None, help="CPU hogs for the loaded runs (default 3 per core)")
    args = ap.parse_args(argv)
    cores = os.cpu_count() or 1
    table = {}
    for load in ("idle", "loaded"):
        for threads in (1, cores):
            times = []
            with cpu_hogs(args.hogs) if load == "loaded" else contextlib.nullcontext():
                for _ in range(args.repeats):
                    seconds, acc = one_run(threads)
                    times.append(seconds)
                    print(f"{load:6s} {threads} thread(s): {seconds:6.1f} s (test acc {100 * acc:.2f}%)", flush=True)
            table[load, threads] = statistics.median(times)
    print(f"\nmedian of {args.repeats}, whole process (os.getloadavg at the end: {os.getloadavg()[0]:.1f})")
    for load in ("idle", "loaded"):
        one, all_ = table[load, 1], table[load, cores]
        print(f"{load:6s}: 1 thread {one:6.1f} s, {cores} threads {all_:6.1f} s -> 1 thread is {all_ / one:.2f}x as fast")
    print(f"1 thread, loaded vs idle: {table['loaded', 1] / table['idle', 1]:.2f}x the idle time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
