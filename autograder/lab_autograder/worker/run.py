"""The worker's run: the notebook's cells, then each probe the job names, each part's outputs
written to ``OUT/<part>.pt``."""

import json
import os
import sys

from .cells import notebook_namespace, progress, run_cells
from .harness import _LOAD, _REPLACE, _SAVE, _TIME, _OPEN, _stop_timers, Out, short_error
from .probes import ISO_PROBES, PROBES
from .stand_ins import load_oracles


def _write(paths, name, out):
    path = os.path.join(paths["out"], name + ".pt")
    _SAVE(dict(out), path + ".tmp")  # a plain dict: the grader loads it with weights_only=True
    _REPLACE(path + ".tmp", path)


def run_probe(ns, inputs, part, variant, oracles, hung, depends, out):
    """One part's probe, filling ``out``. Its plain run is skipped when a part it builds on
    (``depends``, from the grader) hung in this process: it would hang too; the grader re-checks
    it on stand-ins."""
    blocked = [d for d in depends.get(part, []) if d in hung]
    try:
        if variant == "iso":
            ISO_PROBES[part](ns, inputs.get(part, {}), out, {k: v for k, v in oracles.items()})
        elif blocked:
            out["error_student"] = out["error_training"] = (
                f"not run with your code: {blocked[0]} timed out earlier (checked on correct components "
                "instead)"
            )
        else:
            PROBES[part](ns, inputs.get(part, {}), out)
    except BaseException as e:  # noqa: BLE001
        _stop_timers()
        out["error_probe"] = short_error(e)
    if out.timed_out and variant == "student":
        hung.add(part)
    return out


def main():
    paths = dict(zip(("in", "work", "out"), (os.path.abspath(p) for p in sys.argv[1:4])))
    with _OPEN(os.path.join(paths["in"], "job.json")) as f:
        job = json.load(f)
    inputs = _LOAD(os.path.join(paths["in"], "inputs.pt"), weights_only=True)
    oracles = load_oracles()
    os.chdir(os.path.join(paths["work"], "nb"))  # the notebook's own folder (checkpoints/ beside it)
    progress(paths, "ready")  # no student code has run before this line: a failure earlier is the grader's
    sys.path.insert(0, os.getcwd())
    ns = notebook_namespace()
    _write(paths, "_cells", run_cells(job, ns, paths))
    limits = {
        "limit": float(job.get("probe_timeout", 45)),
        "train_limit": float(job.get("train_probe_timeout", 150)),
    }
    timings, hung = {}, set(job.get("hung", []))  # parts that hung in an earlier launch
    for part, variant in job["probes"]:
        progress(paths, f"part {part}")
        t0 = _TIME()
        out = run_probe(
            ns,
            inputs,
            part,
            variant,
            oracles,
            hung,
            job.get("depends", {}),
            Out(work=paths["work"], **limits),
        )
        out["seconds"] = timings[part] = _TIME() - t0
        try:
            _write(paths, part, out)
        except BaseException as e:  # noqa: BLE001 - e.g. an object that cannot be saved
            _write(paths, part, {"error_probe": f"could not record the outputs: {short_error(e)}"})
        progress(paths, f"part {part} done")
    _write(paths, "_timings", {k: float(v) for k, v in timings.items()})
    progress(paths, "finished")
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown (atexit hooks the notebook may have registered)
