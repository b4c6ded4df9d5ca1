"""What a hostile pickle costs the grading process, with and without the opcode scan.

    python benchmarks/bench_pickle_scan.py

Builds torch.save files the way a student could (no code needed): int dict keys that all share one
hash, the scan's limits, plain strings; then times ``untrusted.check_zip`` (the zip check and
``pickle_scan.scan``) and, where it accepts or the file is small, ``torch.load(weights_only=True)``
alone, in CPU seconds of this process.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "autograder"))
from lab_autograder.untrusted import Malformed, check_zip  # noqa: E402

COLLIDE = 2**61 - 1  # hash(i * COLLIDE) is 0 for every int i


def cases():
    yield "16 000 colliding int keys", {i * COLLIDE: 0 for i in range(16_000)}, True
    yield "75 000 colliding int keys (~1 MiB)", {i * COLLIDE: 0 for i in range(75_000)}, False
    yield "2048 colliding int keys (the cap)", {i * COLLIDE: 0 for i in range(2048)}, True
    yield "10 lists of 99 999 ints (over 1 M opcodes)", {f"a{i}": list(range(99_999)) for i in range(10)}, False
    yield "16 000 string keys", {f"s{i}": "x" * 1000 for i in range(16_000)}, True


def main() -> int:
    for name, obj, load_too in cases():
        buf = io.BytesIO()
        torch.save(obj, buf)
        data = buf.getvalue()
        t0 = time.process_time()
        try:
            check_zip(data)
            verdict = "accepted"
        except Malformed as e:
            verdict = f"refused ({e})"
        scan = time.process_time() - t0
        line = f"{name}: {len(data) / 2**10:.0f} KiB, check {scan * 1000:.1f} ms CPU, {verdict}"
        if load_too:
            t0 = time.process_time()
            torch.load(io.BytesIO(data), weights_only=True)
            line += f"; torch.load alone {time.process_time() - t0:.2f} s CPU"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
