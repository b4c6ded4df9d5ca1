"""Run every worker probe in-process on the reference's own definitions and grade the outputs,
recording which output keys the probes write and which the grade functions read.

    python protocol_probe.py WORKDIR   ->  JSON on stdout: {part: {"written": [...], "read": [...], "score": s}}

A subprocess of ``tests/test_protocol.py``: importing the worker sets process-wide state (the
environment a notebook sees under grading, one torch thread) that must not leak into other tests.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import pkgutil
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class Recorder(dict):
    """A probe's outputs that remember which keys were asked for."""

    def __init__(self, data):
        super().__init__(data)
        self.read = set()

    def __getitem__(self, k):
        self.read.add(k)
        return super().__getitem__(k)

    def get(self, k, default=None):
        self.read.add(k)
        return super().get(k, default)

    def __contains__(self, k):
        self.read.add(k)
        return super().__contains__(k)


def main(workdir: str) -> None:
    import transformer_lab
    from lab_autograder import parts as P
    from lab_autograder import worker as W
    from lab_autograder.registry import STAGES
    from lab_autograder.oracles import oracle_source

    ns = {}
    for m in pkgutil.iter_modules(transformer_lab.__path__):
        mod = importlib.import_module(f"transformer_lab.{m.name}")
        ns.update({k: v for k, v in vars(mod).items() if not k.startswith("__")})
    oracles = {}
    exec(compile(oracle_source(dict(STAGES)["iso_all"]), "<oracles>", "exec"),  # noqa: S102
         {"math": math, "torch": torch, "nn": nn, "F": F, "ORACLES": oracles})
    report = {}
    os.chdir(workdir)
    for part in P.PART_ORDER:
        inp = P.INPUTS[part](20240611)
        out, iso = W.Out(work=workdir), W.Out(work=workdir)  # the two runs, each its own outputs
        W.PROBES[part](ns, inp, out)
        rec, kw = Recorder(out), {}
        if part in W.ISO_PROBES:
            W.ISO_PROBES[part](ns, inp, iso, oracles)
            kw["iso"] = rec_iso = Recorder(iso)
        pts = P.DEFAULT_POINTS[part]
        if part == "train_reverse":
            pr = P.GRADERS["train_reverse"](inp, rec, pts, (1.0, ""), **kw)
        elif part == "train_anomaly":
            pr = P.GRADERS["train_anomaly"](inp, rec, pts, (1.0, ""), P.ANOMALY_THRESHOLD, "test features", **kw)
        else:
            pr = P.GRADERS[part](inp, rec, pts, **kw)
        report[part] = {"written": sorted(out), "read": sorted(rec.read), "score": pr.score, "points": pts,
                        "failed": [c.name for c in pr.checks if not c.passed]}
        if kw:  # the run on stand-ins writes what the student's run writes, and is read as it is
            report[part].update(iso_written=sorted(iso), iso_read=sorted(rec_iso.read))
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
