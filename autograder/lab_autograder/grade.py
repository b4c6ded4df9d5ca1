"""Grading a batch of submissions: snapshot each, run the sandboxed worker in stages, check, report."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import resource
import shutil
import signal
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import parts as P
from .feedback import atomic_write, feedback_html, feedback_md
from .job import Job
from .layout import Entry, expand
from .notebook import (
    NotebookError,
    cells_from_bytes,
    given_cell_sources,
    labeled_code_cells,
    points_from_source,
)
from .checkpoint_eval import reference_accuracy
from .oracles import oracle_source
from .provenance import checkpoint_marks, own_code
from .registry import GIVEN_FILES, PARTS, STAGES
from .report import LateRule, rebuild
from .sandbox import UID_BASE, lease_slot, run_worker, sandbox_level
from .submission import snapshot
from .version import VERSION, code_fingerprint, file_sha256
from .untrusted import Malformed, clean_text, load_output, MAX_OUTPUT_BYTES

WORKER = Path(__file__).with_name("worker")  # the package shipped into every job
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SOURCE = PROJECT_ROOT / "source" / "transformer_lab" / "transformer_lab.ipynb"

ISO_STAGE = {name: part.iso_stage for name, part in PARTS.items() if part.iso_stage}
#: what the feedback says of an error in a stand-in stage, whatever its text was: code that shares a
#: process with stand-ins must not get words of its choosing (a payload) into the feedback
ISO_ERROR = "failed again when re-run on correct components (that run's messages are not shown)"


def stand_in_run(out: dict) -> dict:
    """A stand-in stage's outputs as the checks may read them: its numbers, and no words."""
    return {k: ISO_ERROR if isinstance(v, str) else v for k, v in out.items()}


#: pauses before the relaunches of a launch that failed in the grader's own machinery
RETRY_BACKOFF = (1.0, 4.0, 10.0)
#: key of the student's own code in a graded result: written to OUT/<student>/own_code.py, for the
#: class's provenance flags, and never to results.json (Gradescope shows that file's contents)
OWN_CODE = "_own_code"
#: a submission's budget (3 x --timeout of worker time) is not spent on a launch shorter than this
MIN_LAUNCH_SECONDS = 30.0


class GraderFault(RuntimeError):
    """Every try of a launch failed in the grader's own machinery: the submission is not graded
    (no score is written; the next run grades it), and nobody is charged."""


@dataclass
class Settings:
    out: Path
    jobs: int = 1
    timeout: float = 300.0  # wall clock per worker launch
    memory_mb: int = 6144  # RLIMIT_AS of the worker (torch alone maps ~3.6 GB)
    seed: int = 20240611
    source: Path | None = None
    anomaly_features: Path | str | None = None
    cell_timeout: float = 60.0
    probe_timeout: float = 45.0
    train_probe_timeout: float = 150.0
    max_launches: int = 8
    parts: list[str] = field(default_factory=lambda: list(P.PART_ORDER))
    quiet: bool = False
    #: the due date and late policy of the class outputs (None: the one OUT already has)
    late: "LateRule | None" = None
    #: rebuild the class outputs (grades.csv, LMS files, provenance) at the end of the run
    class_outputs: bool = True


def safe_name(s: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("._") or "submission"
    return s[:80]


@dataclass
class Features:
    """The anomaly part's test features, where they came from, and what accuracy they demand."""

    feats: torch.Tensor | None
    labels: torch.Tensor | None
    spec: str
    threshold: float
    described: str
    sha256: str = ""


def load_features(spec, seed: int = 20240611) -> Features:
    """``--anomaly-features``: a ``.pt`` (dict feats/labels, or the ``transformer-lab features`` file,
    whose ``test`` split is used; weights_only) or ``.npz`` file, ``synthetic``
    (held-out images of the notebook's quick-mode classes, drawn from the grader's ``seed``) or
    ``synthetic:SEED[:DIM[:NOISE]]`` (the tests' data)."""
    if spec is None:
        return Features(None, None, "none", P.ANOMALY_THRESHOLD, "no test features")
    spec = str(spec)
    threshold, described = P.ANOMALY_THRESHOLD, "the instructor's features"
    if spec == "synthetic":  # the quick mode's classes, images no student has (the notebook's test
        from transformer_lab.set_anomaly import QUICK_MODE, synthetic_features  # split is theirs to train on)

        feats, labels = synthetic_features(per_class=20, sample_seed=seed + 1, **QUICK_MODE)
        threshold, described = (
            P.ANOMALY_THRESHOLD_QUICK,
            "held-out images of the notebook's quick-mode classes",
        )
    elif spec.startswith("synthetic:"):
        from transformer_lab.set_anomaly import synthetic_features

        bits = spec.split(":")[1:]  # SEED[:DIM[:NOISE]]: 100 classes x 20 images
        seed = int(bits[0]) if bits and bits[0] else 0
        dim = int(bits[1]) if len(bits) > 1 else 512
        noise = float(bits[2]) if len(bits) > 2 else 1.0
        feats, labels = synthetic_features(num_classes=100, per_class=20, dim=dim, noise=noise, seed=seed)
        described = f"synthetic features ({spec})"
    elif Path(spec).suffix == ".npz":
        import numpy as np

        with np.load(spec, allow_pickle=False) as z:
            feats, labels = torch.from_numpy(z["feats"]), torch.from_numpy(z["labels"])
    else:
        d = torch.load(spec, map_location="cpu", weights_only=True)
        if isinstance(d, dict) and isinstance(
            d.get("splits"), dict
        ):  # `transformer-lab features`' file: its test split
            from transformer_lab.features import read_feature_file

            test = read_feature_file(spec)["splits"].get("test") or {}
            d = {"feats": test.get("features"), "labels": test.get("labels")}
            if d["feats"] is None or d["labels"] is None:
                raise ValueError(
                    f"{spec} has no labelled 'test' split; extract the CIFAR-100 test features into it"
                )
        if isinstance(d, dict):
            feats, labels = d.get("feats", d.get("test_feats")), d.get("labels", d.get("test_labels"))
        else:
            feats, labels = d
    feats, labels = torch.as_tensor(feats).float(), torch.as_tensor(labels).long()
    digest = hashlib.sha256(feats.numpy().tobytes() + labels.numpy().tobytes()).hexdigest()[:16]
    return Features(feats, labels, spec, threshold, described, digest)


def trusted_eval_data(features: Features, seed: int) -> dict:
    """Each training part's test data ``(inputs, targets)``: made here, never shown to student code."""
    rev = P.reverse_eval_data(seed)
    data = {"train_reverse": (rev, rev.flip(-1)), "train_anomaly": (None, None)}
    if features.feats is not None:
        data["train_anomaly"] = P.anomaly_eval_sets(features.feats, features.labels, 1000, seed)
    return data


def measure_checkpoints(parts, ckpts: dict, eval_data: dict) -> dict:
    """Accuracy of each submitted checkpoint (``{file name: bytes}``), evaluated in this process."""
    res = {}
    for part, fname in (("train_reverse", "reverse.ckpt"), ("train_anomaly", "anomaly.ckpt")):
        if part in parts:
            try:
                res[part] = reference_accuracy(part, ckpts.get(fname), *eval_data[part])
            except Exception as e:  # noqa: BLE001 - never let a checkpoint crash the grader
                res[part] = (None, f"could not be evaluated ({type(e).__name__})")
    return res


def grade_outputs(part, inputs, runs, points, trusted, features: Features) -> P.PartResult:
    """A part's checks on its probe's outputs (``runs``: ``{"student": ...}``, and ``"iso"``, the
    stand-in stage's, when it ran) and, for training, the grader's own accuracy."""
    out, iso = runs.get("student", {}), ({"iso": runs.get("iso", {})} if part in ISO_STAGE else {})
    try:
        if part == "train_anomaly":
            extra = (trusted[part], features.threshold, features.described)
            return P.GRADERS[part](inputs, out, points, *extra, **iso)
        if part == "train_reverse":
            return P.GRADERS[part](inputs, out, points, trusted[part], **iso)
        return P.GRADERS[part](inputs, out, points, **iso)
    except Exception as e:  # noqa: BLE001 - outputs of unexpected types earn nothing
        if os.environ.get("LAB_AUTOGRADER_DEBUG"):
            traceback.print_exc()
        why = f"{type(e).__name__}: {str(e)[:200]}"
        return P.PartResult.failed(
            part, points, "outputs could be checked", "tensors of the expected kind", why
        )


def given_files(source: Path | None) -> dict[str, bytes]:
    """The given modules the notebook imports (``GIVEN_FILES``), read beside the points notebook: the
    assignment's own copies, which every job gets (a student's copy is never read)."""
    folder = (source or DEFAULT_SOURCE).parent
    missing = [n for n in GIVEN_FILES if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{', '.join(missing)} not found in {folder}: the notebook imports this given code, "
            "which must sit beside the notebook that --source names (`make release` builds "
            "source/transformer_lab/ and release/transformer_lab/ with it)"
        )
    return {n: (folder / n).read_bytes() for n in GIVEN_FILES}


class Grader:
    def __init__(self, settings: Settings):
        self.s = settings
        src = (
            settings.source
            if settings.source is not None
            else (DEFAULT_SOURCE if DEFAULT_SOURCE.is_file() else None)
        )
        self.points, self.points_origin = points_from_source(src)
        self.given = given_files(src)
        self.given_cells = given_cell_sources(src)
        self.features = load_features(settings.anomaly_features, settings.seed)
        # what a score depends on besides the submission: regrade when any of it changes
        self.identity = {
            "version": VERSION,
            "code_sha256": code_fingerprint(),
            "source_sha256": file_sha256(src),
            "given_sha256": {n: hashlib.sha256(b).hexdigest()[:16] for n, b in self.given.items()},
        }
        self.key = hashlib.sha256(
            json.dumps(
                [
                    self.identity,
                    self.points,
                    self.features.spec,
                    self.features.sha256,
                    settings.seed,
                    settings.parts,
                ]
            ).encode()
        ).hexdigest()[:16]
        self.identity["settings_sha256"] = self.key
        torch.set_num_threads(1)
        self.inputs = {part: P.INPUTS[part](settings.seed) for part in settings.parts}
        # the trusted evaluations' data stay in this process: the worker never sees them
        self.eval = trusted_eval_data(self.features, settings.seed)
        buf = io.BytesIO()
        torch.save(self.inputs, buf)
        self.inputs_bytes = buf.getvalue()
        self.level = sandbox_level()
        self.base = None
        self.redact: tuple[str, ...] = ()

    # ------------------------------------------------------------------ one submission
    def _points(self, part):
        return self.points.get(part, P.DEFAULT_POINTS[part])

    def _grade_part(self, part, runs, trusted) -> P.PartResult:
        return grade_outputs(part, self.inputs[part], runs, self._points(part), trusted, self.features)

    def _lost_in_worker(self, part, outputs, trusted) -> bool:
        """Whether ``part`` failed a check decided from the worker's outputs (not the grader's own)."""
        pr = self._grade_part(part, outputs.get(part, {}), trusted)
        return any(not c.passed and not c.trusted for c in pr.checks)

    def _trusted(self, ckpts: dict) -> dict:
        return measure_checkpoints(self.s.parts, ckpts, self.eval)

    def _read_launch(self, job: Job, out_dir: Path, names: list[str]) -> dict[str, dict]:
        got = {}
        for name, data in job.read_outputs(out_dir, [f"{n}.pt" for n in names], MAX_OUTPUT_BYTES).items():
            key = name[:-3]
            if isinstance(data, str):
                got[key] = {"error_probe": data}
                continue
            try:
                got[key] = load_output(data)
            except Malformed as e:
                got[key] = {"error_probe": f"output refused: {e}"}
        return got

    @staticmethod
    def _progress(job: Job, out_dir: Path) -> list[str]:
        raw = job.read_outputs(out_dir, ["progress.log"], 2**20).get("progress.log")
        return raw.decode("utf-8", "replace").splitlines() if isinstance(raw, bytes) else []

    def _job_json(self, labeled, probes, skip, hung) -> bytes:
        return json.dumps(
            {
                "cells": [src for _, src in labeled],
                "labels": [label for label, _ in labeled],
                "probes": probes,
                "skip_cells": skip,
                "hung": sorted(hung),
                "depends": P.DEPENDS,
                "cell_timeout": self.s.cell_timeout,
                "probe_timeout": self.s.probe_timeout,
                "train_probe_timeout": self.s.train_probe_timeout,
            }
        ).encode()

    def _launch(self, job, ckpts, meta) -> tuple | None:
        """One worker run, within what is left of the submission's budget (None: nothing is left).

        A launch that failed in the grader's own machinery (``RunResult.grader_fault``) is not the
        student's: it is retried after ``RETRY_BACKOFF``, uncounted, and ``GraderFault`` is raised
        when every try failed. Returns ``(result, out folder, progress lines)``.
        """
        left = 3 * self.s.timeout - meta["worker_seconds"]
        if meta["launches"] >= self.s.max_launches or left < min(self.s.timeout, MIN_LAUNCH_SECONDS):
            return None
        timeout = min(self.s.timeout, left)
        for pause in (0.0, *RETRY_BACKOFF):
            time.sleep(pause)
            paths, log = job.new_launch(ckpts, self.given)
            res = run_worker(
                job.dir,
                paths,
                slot=self.slot_of(job),
                timeout=timeout,
                memory_mb=self.s.memory_mb,
                log_path=log,
            )
            progress = self._progress(job, paths["out"])
            fault = res.grader_fault(progress)
            if fault and res.timed_out and timeout < self.s.timeout and res.started:
                fault = ""  # the submission's own budget ran out, not the grader
            if not fault:
                meta["launches"] += 1
                meta["worker_seconds"] += res.seconds
                return res, paths["out"], progress
            meta["grader_faults"].append(fault)
        raise GraderFault(fault)

    def _collect(self, job, out_dir, progress, remaining, stage, meta) -> dict[str, dict]:
        """The outputs of the parts a launch finished (a file left by a part that died is ignored)."""
        got = self._read_launch(job, out_dir, ["_cells", "_timings"] + [p for p, _ in remaining])
        cells_out = got.pop("_cells", {})
        if stage == "student" and not meta["cell_errors"] and isinstance(cells_out.get("errors"), str):
            meta["cell_errors"] = cells_out["errors"]
        timings = {k: cells_out.get(k) for k in ("import_seconds", "cells_seconds")}
        timings.update(got.pop("_timings", {}))
        meta["timings"].update(
            {f"{stage}_{k}": round(v, 2) for k, v in timings.items() if isinstance(v, float)}
        )
        done = {line.split()[1] for line in progress if line.startswith("part ") and line.endswith(" done")}
        return {part: got[part] for part, _ in remaining if part in got and part in done}

    def _only_given_ran(self, i: int, labeled, skip) -> bool:
        """Whether cell ``i`` and every cell run before it are the release's own, unchanged."""
        return all(j in skip or labeled[j][1] in self.given_cells for j in range(i + 1))

    def _given_cell_died(self, res, why, label, meta) -> bool:
        """The worker died in the course's own code before any of the student's ran (the imports
        cell under a loaded machine's memory or OOM killer): the machine's fault, never the
        student's. Run again, uncounted, after ``RETRY_BACKOFF``; ``GraderFault`` when it persists.
        Skipping the cell instead would grade the same bytes 2/25 on one machine, 25 on another."""
        fault = f"the worker {why} in the release's own cell {label}, before any student code ran"
        meta["grader_faults"].append(fault)
        meta["launches"] -= 1
        meta["worker_seconds"] -= res.seconds
        tries = sum(f.startswith("the worker") and "release's own cell" in f for f in meta["grader_faults"])
        if tries > len(RETRY_BACKOFF):
            raise GraderFault(fault)
        time.sleep(RETRY_BACKOFF[tries - 1])
        return True

    def _recover(self, res, progress, remaining, outputs, skip, hung, notes, meta, labeled) -> bool:
        """After a launch that died with probes left: decide what the next launch leaves out (the
        cell or part that was running). False: nothing to relaunch for."""
        labels = [label for label, _ in labeled]
        why = "timed out" if res.timed_out else f"exited (code {res.worker_exit})"
        started = None
        for line in progress:
            if line.endswith(" done"):
                started = None
            elif line.startswith(("cell ", "part ")):
                started = line
        if started is None:
            notes.append(f"the worker {why} between the notebook's cells and the checks")
            return False
        kind, what = started.split()[:2]
        i = int(what) if kind == "cell" and what.isdigit() else -1
        if kind == "cell" and (i in skip or not 0 <= i < len(labels)):
            return False
        if kind == "cell" and self._only_given_ran(i, labeled, skip):
            return self._given_cell_died(res, why, labels[i], meta)
        signalled = not res.timed_out and (res.worker_exit or 0) < 0 and res.worker_exit != -signal.SIGXCPU
        if signalled and started not in meta["signal_retried"]:  # a kill the grader did not send: the
            meta["signal_retried"].append(started)  # host's? The same death in one place twice is the code's
            notes.append(f"the worker was killed (signal {-res.worker_exit}) during {started}; run again")
            return True
        if kind == "cell":
            skip.append(i)
            notes.append(
                f"the worker {why} while running cell {labels[i]} of the notebook; "
                "that cell was skipped and the notebook run again"
            )
            return True
        hit = [pv for pv in remaining if pv[0] == what]
        if not hit:
            return False
        outputs[what] = {
            "error_probe": f"the worker {why} while checking this part (an infinite loop, "
            "a memory bomb or an exit in your code?)"
        }
        remaining.remove(hit[0])
        hung.add(what)
        return True

    def _stage(self, job, stage, probes, labeled, ckpts, skip, hung, notes, meta) -> dict[str, dict]:
        """Run one stage's probes, relaunching past a cell or part that kills the worker."""
        remaining, outputs = list(probes), {}
        while remaining:
            job.put("job.json", self._job_json(labeled, remaining, skip, hung))
            launched = self._launch(job, ckpts, meta)
            if launched is None:
                break
            res, out_dir, progress = launched
            got = self._collect(job, out_dir, progress, remaining, stage, meta)
            outputs.update(got)
            remaining = [pv for pv in remaining if pv[0] not in got]
            if remaining and not self._recover(
                res, progress, remaining, outputs, skip, hung, notes, meta, labeled
            ):
                break
        for part, _ in remaining:
            outputs[part] = {
                "error_probe": "not checked: the notebook's code stopped every attempt to run it"
            }
        return outputs

    def slot_of(self, job: Job) -> int:
        return 0 if job.uid is None else job.uid - UID_BASE

    def _run(self, labeled, ckpts: dict, slot: int, trusted: dict) -> tuple[dict, list[str], dict]:
        uid = UID_BASE + slot if self.level in ("namespaces", "setuid") else None
        job = Job(self.base, slot, uid)
        outputs, notes, skip, hung = {}, [], [], set()
        meta = {
            "launches": 0,
            "worker_seconds": 0.0,
            "cell_errors": "",
            "timings": {},
            "stages": [],
            "grader_faults": [],
            "signal_retried": [],
        }
        try:
            job.put_package("worker", WORKER)
            job.put("inputs.pt", self.inputs_bytes)
            for stage, oracles in STAGES:
                if stage == "student":
                    probes = [[p, "student"] for p in self.s.parts]
                else:  # re-check a part on stand-ins only if it lost points a part below it may have caused
                    probes = [
                        [p, "iso"]
                        for p in self.s.parts
                        if ISO_STAGE.get(p) == stage
                        and self._lost_in_worker(p, outputs, trusted)
                        and any(
                            d not in outputs or d in hung or self._lost_in_worker(d, outputs, trusted)
                            for d in P.DEPENDS[p]
                        )
                    ]
                if not probes:
                    continue
                if oracles:
                    job.put("oracles.py", oracle_source(oracles).encode(), private=True)
                else:
                    job.drop("oracles.py")
                meta["stages"].append(stage)
                got = self._stage(job, stage, probes, labeled, ckpts, skip, hung, notes, meta)
                for part, out in got.items():  # each run its own dict: no stage writes another's
                    if stage == "student":
                        outputs[part] = {"student": out}
                    else:  # a stand-in stage's words are never shown: its process held grader code
                        outputs.setdefault(part, {"student": {}})["iso"] = stand_in_run(out)
        finally:
            if os.environ.get("LAB_AUTOGRADER_KEEP"):
                print(f"kept {job.dir} (LAB_AUTOGRADER_KEEP)")
            else:
                job.cleanup()
        return outputs, notes, meta

    def grade_submission(self, entry: Entry, name: str) -> dict:
        t0 = time.monotonic()
        sub = snapshot(entry.path, name)  # before any student code runs: all the grader ever reads of it
        notes, meta, outputs = list(sub.notes), {}, {}
        labeled = None
        if sub.notebook is not None:
            try:
                labeled = labeled_code_cells(
                    cells=cells_from_bytes(sub.notebook, Path(sub.notebook_name).name)
                )
            except NotebookError as e:
                notes.append(str(e))
            if labeled == []:  # one message, not a NameError per part
                notes.append(
                    f"{sub.notebook_name} has no code in it: was it saved before it was submitted? "
                    "Submit the notebook you worked in (File > Save, then submit)"
                )
                labeled = None
        trusted = self._trusted(sub.checkpoints)
        if labeled is not None:
            with lease_slot() as slot:  # its uid is this job's alone, in this process and any other
                outputs, more, meta = self._run(labeled, sub.checkpoints, slot, trusted)
                notes += more
        results = {}
        for part in self.s.parts:
            if labeled is None:
                why = notes[0] if notes else "not run"
                results[part] = P.PartResult.failed(
                    part, self._points(part), "notebook graded", "a readable notebook", why
                )
                continue
            runs = outputs.get(part, {"student": {"error_probe": "not run"}})
            out = runs["student"]
            pr = self._grade_part(part, runs, trusted)
            if "error_probe" in out and all(not c.passed for c in pr.checks):
                pr.note = (pr.note + " " if pr.note else "") + str(out["error_probe"])
            results[part] = pr
        meta["checkpoints"] = {k: hashlib.sha256(v).hexdigest()[:16] for k, v in sub.checkpoints.items()}
        meta["entry"], meta["content_sha256"] = entry, sub.content_sha256()
        meta["provenance"] = {"checkpoints": {k: checkpoint_marks(v) for k, v in sub.checkpoints.items()}}
        res = self._results_json(name, results, notes, meta, time.monotonic() - t0)
        res[OWN_CODE] = own_code(
            labeled or [], self.given_cells
        )  # the class's copy check; not in results.json
        return res

    # ------------------------------------------------------------------ reports
    def _text(self, s, cap=2000) -> str:
        return clean_text(s, cap, self.redact)

    def _test_entry(self, number, part, pr) -> dict:
        """One part's entry of ``results.json``: its score and the lines of its feedback."""
        lines = []
        for c in pr.checks:
            lines.append(f"[{'PASS' if c.passed else ('PART' if c.partial else 'FAIL')}] {c.name}")
            if not c.passed:  # expected values and hints are the grader's; what was received may not be
                lines.append(f"    expected: {c.expected}")
                lines.append(f"    received: {self._text(c.received, 1200)}")
                if c.hint:
                    lines.append(f"    hint: {c.hint}")
        if pr.note:
            lines.append(f"note: {self._text(pr.note, 1200)}")
        return {
            "name": f"{P.TITLES[part]} (test_{part})",
            "number": str(number),
            "score": pr.score,
            "max_score": float(pr.points),
            "status": "passed" if pr.score >= pr.points else "failed",
            "output": "\n".join(lines),
            "output_format": "text",
            "visibility": "visible",
            "tags": [part],
        }

    def _extra_data(self, name, results, meta, maximum) -> dict:
        """What the grader records of a grading beside the score: provenance, identity, timings."""
        f, entry = self.features, meta.get("entry")
        return {
            "submission": name,
            "student_id": entry.student_id if entry else name,
            "timestamp": entry.timestamp if entry else "",
            "arrived": entry.arrived if entry else "",
            "arrived_from": entry.arrived_from if entry else "",
            "content_sha256": meta.get("content_sha256", ""),
            "grader": self.identity,
            "max_score": maximum,
            "parts": {p: r.score for p, r in results.items()},
            "sandbox": self.level,
            "points_from": self.points_origin,
            "seed": self.s.seed,
            "anomaly_features": {
                "spec": f.spec,
                "described": f.described,
                "sha256": f.sha256,
                "threshold": f.threshold,
            },
            "checkpoints_sha256": meta.get("checkpoints", {}),
            "provenance": meta.get("provenance", {}),
            "stages": meta.get("stages", []),
            "launches": meta.get("launches", 0),
            "grader_faults": [
                self._text(x, 400) for x in meta.get("grader_faults", [])[:8]
            ],  # retried, overcome
            "worker_seconds": round(meta.get("worker_seconds", 0), 2),
            "timings": meta.get("timings", {}),
        }

    def _results_json(self, name, results: dict, notes, meta, seconds) -> dict:
        tests = [self._test_entry(i, part, pr) for i, (part, pr) in enumerate(results.items(), 1)]
        total = round(sum(t["score"] for t in tests), 4)
        maximum = float(sum(t["max_score"] for t in tests))
        summary = [f"{name}: {total:g} / {maximum:g} points"] + [
            f"note: {self._text(n, 600)}" for n in notes[:20]
        ]
        if meta.get("cell_errors"):
            summary.append(
                "errors while running the notebook's cells (the autograder went on):\n"
                + self._text(meta["cell_errors"], 3000)
            )
        return {
            "score": total,
            "execution_time": round(seconds, 2),
            "output": "\n".join(summary),
            "output_format": "text",
            "test_output_format": "text",
            "visibility": "visible",
            "stdout_visibility": "hidden",
            "tests": tests,
            "extra_data": self._extra_data(name, results, meta, maximum),
        }


def _previous(path: Path) -> dict:
    """``extra_data`` of the results.json an earlier run wrote (the grader's own folder), or ``{}``."""
    try:
        return json.loads(path.read_text()).get("extra_data", {})
    except (OSError, ValueError, AttributeError):
        return {}


def _plan(grader: "Grader", entries: list[Entry], out: Path, log) -> tuple[list[tuple[Entry, str]], dict]:
    """Name each submission after its student; skip those graded before with the same content and
    settings. Returns what to grade and the run's counts: ``new``, ``regraded``, ``unchanged``."""
    names, todo, counts = set(), [], {"new": 0, "regraded": 0, "unchanged": 0}
    for entry in entries:
        base = safe_name(entry.student_id)
        name, k = base, 2
        while name in names:  # two submissions of one student in one run: both graded, neither lost
            name, k = f"{base}-{k}", k + 1
        names.add(name)
        prev = _previous(out / name / "results.json")
        if not prev:
            counts["new"] += 1
        elif (
            prev.get("content_sha256") == snapshot(entry.path, name).content_sha256()
            and prev.get("grader", {}).get("settings_sha256") == grader.key
        ):
            counts["unchanged"] += 1
            continue
        else:
            counts["regraded"] += 1
        todo.append((entry, name))
    if not grader.s.quiet:
        log(
            f"{counts['new']} new, {counts['regraded']} changed since graded (a new submission, grader or "
            f"settings: graded again), {counts['unchanged']} unchanged since graded in {out} (skipped)"
        )
    return todo, counts


class GradeRun(list):
    """The results of a grading run (one dict per graded submission), and ``not_graded``: the
    submissions a grader fault left without a score, with the reason (``{name: reason}``)."""

    def __init__(self):
        super().__init__()
        self.not_graded: dict[str, str] = {}


def _start(settings: Settings, entries: list[Entry], out: Path) -> "Grader":
    """The grader of a run, with its private scratch folder and the paths its reports redact."""
    grader = Grader(settings)
    tmp_root = os.environ.get("LAB_AUTOGRADER_TMP") or None
    grader.base = tempfile.mkdtemp(prefix="lab_autograder_", dir=tmp_root)
    os.chmod(grader.base, 0o711)
    paths = {out.resolve(), Path(grader.base), PROJECT_ROOT, Path(os.sys.prefix)}
    paths |= {e.path.resolve().parent for e in entries}
    grader.redact = tuple(sorted({str(p) for p in paths}, key=len, reverse=True))
    return grader


def _write_not_graded(d: Path, name: str, e: Exception, log) -> str:
    """The grader failed this submission: no score stands for it, ``grader_fault.json`` says why."""
    if not isinstance(e, GraderFault):
        traceback.print_exc()
    reason = f"{'' if isinstance(e, GraderFault) else 'internal error: '}{type(e).__name__}: {e}"
    d.mkdir(exist_ok=True)
    for stale in ("results.json", "feedback.md", "feedback.html"):  # no old score stands in for it
        (d / stale).unlink(missing_ok=True)
    atomic_write(d / "grader_fault.json", json.dumps({"submission": name, "not_graded": reason}, indent=1))
    log(f"  {name}: NOT GRADED (grader fault, not the student's): {reason[:300]}")
    return reason[:2000]


def _write_graded(d: Path, res: dict) -> None:
    d.mkdir(exist_ok=True)
    (d / "grader_fault.json").unlink(missing_ok=True)
    atomic_write(d / "own_code.py", res.pop(OWN_CODE, ""))
    atomic_write(d / "feedback.md", feedback_md(res))
    atomic_write(d / "feedback.html", feedback_html(res))
    atomic_write(d / "results.json", json.dumps(res, indent=1))


def _finish(grader: "Grader", out: Path, results: "GradeRun", counts: dict, seconds: float, log) -> None:
    """The class outputs rebuilt, the grader faults announced, and ``run.json``."""
    settings = grader.s
    counts["not_graded"] = len(results.not_graded)
    if settings.class_outputs:
        summary = rebuild(out, settings.late)["summary"]
        if not settings.quiet:
            log("\n".join(summary))
    if results.not_graded:
        log(
            f"{len(results.not_graded)} submission(s) NOT GRADED because of a grader fault "
            f"({', '.join(sorted(results.not_graded))}; reasons in OUT/<student>/grader_fault.json): "
            "no score was written for them; run the same command again to grade them"
        )
    run = {
        "graded": len(results),
        "not_graded": results.not_graded,
        "counts": counts,
        "seconds": round(seconds, 2),
        "jobs": settings.jobs,
        "sandbox": grader.level,
        "grader": grader.identity,
        # the grading process's own peak memory (workers not included: each has its RLIMIT_AS)
        "grader_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }
    atomic_write(out / "run.json", json.dumps(run))


def grade_all(submissions: list[Path | Entry], settings: Settings, log=print) -> GradeRun:
    """Grade ``submissions`` into ``settings.out``: per student results.json and feedback.md/.html
    (or grader_fault.json, when the grader failed them), then the class outputs (``report.rebuild``)."""
    entries = [s for s in submissions if isinstance(s, Entry)]
    entries += expand([Path(s) for s in submissions if not isinstance(s, Entry)])
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    grader = _start(settings, entries, out)
    todo, counts = _plan(grader, entries, out, log)
    if not settings.quiet:
        f = grader.features
        log(
            f"grading {len(todo)} submission(s), {settings.jobs} at a time; sandbox: {grader.level}; "
            f"points from {grader.points_origin}\nanomaly part graded on {f.described} "
            f"(--anomaly-features {f.spec}), threshold {f.threshold:.0%}"
        )
    results = GradeRun()

    def one(item):
        entry, name = item
        try:
            res = grader.grade_submission(entry, name)
        except Exception as e:  # noqa: BLE001 - the grader's failure is nobody's score, and stops no batch
            results.not_graded[name] = _write_not_graded(out / name, name, e, log)
            return None
        _write_graded(out / name, res)
        if not settings.quiet:
            total = f"{res['score']:g} / {res['extra_data']['max_score']:g}"
            log(f"  {name}: {total}  ({res['execution_time']:.0f} s)")
        return res

    t0 = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=max(1, settings.jobs)) as ex:
            results.extend(r for r in ex.map(one, todo) if r is not None)
    finally:
        if not os.environ.get("LAB_AUTOGRADER_KEEP"):
            shutil.rmtree(grader.base, ignore_errors=True)
        _finish(grader, out, results, counts, time.monotonic() - t0, log)
    return results
