"""Grading a batch of submissions: prepare each job, run the sandboxed worker, check, write results."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import parts as P
from .notebook import NotebookError, code_cells, labeled_code_cells, points_from_source
from .sandbox import UID_BASE, run_worker, sandbox_level

WORKER = Path(__file__).with_name("worker.py")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SOURCE = PROJECT_ROOT / "source" / "transformer_lab" / "transformer_lab.ipynb"
MAX_CKPT_BYTES = 200 * 2**20
MAX_OUTPUT_BYTES = 64 * 2**20


@dataclass
class Settings:
    out: Path
    jobs: int = 1
    timeout: float = 300.0          # wall clock per worker launch
    memory_mb: int = 6144           # RLIMIT_AS of the worker (torch alone maps ~3.6 GB)
    seed: int = 20240611
    source: Path | None = None
    anomaly_features: Path | str | None = None
    cell_timeout: float = 60.0
    probe_timeout: float = 45.0
    train_probe_timeout: float = 150.0
    max_launches: int = 4
    parts: list[str] = field(default_factory=lambda: list(P.PART_ORDER))
    hide: list[str] = field(default_factory=list)
    quiet: bool = False


def safe_name(s: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("._") or "submission"
    return s[:80]


def find_notebook(path: Path) -> tuple[Path | None, Path, str]:
    """``(notebook or None, folder holding checkpoints/, name)`` for a submission argument."""
    path = Path(path)
    if path.is_dir():
        nbs = sorted(p for p in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
        pref = [p for p in nbs if p.name == "transformer_lab.ipynb"]
        nb = (pref or nbs or [None])[0]
        return nb, (nb.parent if nb is not None else path), path.name
    return path, path.parent, path.stem


def load_features(spec) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Instructor's test features: ``.pt`` (dict feats/labels, weights_only) or ``.npz``; ``synthetic[:seed]``."""
    if spec is None:
        return None
    spec = str(spec)
    if spec.startswith("synthetic"):
        from transformer_lab.set_anomaly import synthetic_features

        # synthetic[:SEED[:DIM[:NOISE]]]: the reference's stand-in features (CI), 100 classes x 20 images
        bits = spec.split(":")[1:]
        seed = int(bits[0]) if len(bits) > 0 and bits[0] else 0
        dim = int(bits[1]) if len(bits) > 1 else 512
        noise = float(bits[2]) if len(bits) > 2 else 1.0
        return synthetic_features(num_classes=100, per_class=20, dim=dim, noise=noise, seed=seed)
    p = Path(spec)
    if p.suffix == ".npz":
        import numpy as np

        with np.load(p, allow_pickle=False) as z:
            return torch.from_numpy(z["feats"]).float(), torch.from_numpy(z["labels"]).long()
    d = torch.load(p, map_location="cpu", weights_only=True)
    if isinstance(d, dict):
        feats = d.get("feats", d.get("test_feats"))
        labels = d.get("labels", d.get("test_labels"))
    else:
        feats, labels = d
    return torch.as_tensor(feats).float(), torch.as_tensor(labels).long()


class Grader:
    def __init__(self, settings: Settings):
        self.s = settings
        src = settings.source if settings.source is not None else (DEFAULT_SOURCE if DEFAULT_SOURCE.is_file() else None)
        self.points, self.points_origin = points_from_source(src)
        feats = load_features(settings.anomaly_features)
        torch.set_num_threads(1)
        self.inputs, self.hidden = {}, {}
        for part in settings.parts:
            if part == "train_anomaly":
                inp = P.inputs_train_anomaly(settings.seed, feats)
                self.hidden[part] = inp.pop("_hidden_pos", None)
            else:
                inp = P.INPUTS[part](settings.seed)
            self.inputs[part] = inp
        buf = io.BytesIO()
        torch.save(self.inputs, buf)
        self.inputs_bytes = buf.getvalue()
        self.level = sandbox_level()
        self._slots = list(range(max(1, settings.jobs)))
        self._lock = threading.Lock()
        self.base = None
        self.all_paths: list[Path] = []

    # ------------------------------------------------------------------ one submission
    def _hide_list(self, extra: list[Path]) -> list[str]:
        keep = [Path(sys_prefix).resolve() for sys_prefix in (os.sys.prefix, os.sys.base_prefix)]
        keep += [Path(os.sys.executable).resolve().parent, Path(self.base).resolve()]
        cands = [PROJECT_ROOT / d for d in ("reference", "autograder", "source", "tests", "release", "tools", "notebook")]
        cands += [Path(self.s.out), Path("/autograder")] + [Path(h) for h in self.s.hide] + extra
        if self.s.anomaly_features and not str(self.s.anomaly_features).startswith("synthetic"):
            cands.append(Path(self.s.anomaly_features))
        out = []
        for c in cands:
            try:
                c = c.resolve()
            except OSError:
                continue
            if not c.exists() or any(k == c or c in k.parents for k in keep):
                continue  # never hide the interpreter, the venv or the job folder itself
            if str(c) not in out:
                out.append(str(c))
        return out

    def _prepare(self, job: Path, cells: list[str], ckpt_dir: Path, uid: int | None, parts: list[str], skip: list[int],
                 labels=None):
        for d in ("nb/checkpoints", "ckpt", "out", "tmp", ".mpl"):
            (job / d).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(WORKER, job / "worker.py")
        (job / "inputs.pt").write_bytes(self.inputs_bytes)
        notes = []
        src = ckpt_dir / "checkpoints"
        if src.is_dir():
            for f in sorted(src.iterdir())[:20]:
                if f.is_symlink() or not f.is_file():
                    continue
                if f.stat().st_size > MAX_CKPT_BYTES:
                    notes.append(f"checkpoints/{f.name} is larger than {MAX_CKPT_BYTES >> 20} MiB and was not used")
                    continue
                shutil.copyfile(f, job / "ckpt" / f.name)
                shutil.copyfile(f, job / "nb" / "checkpoints" / f.name)
        self._write_job(job, cells, parts, skip, labels)
        if uid is not None:
            for root, dirs, files in os.walk(job):
                for n in dirs + files:
                    os.lchown(os.path.join(root, n), uid, uid)
            os.chown(job, uid, uid)
        os.chmod(job, 0o700)
        return notes

    def _write_job(self, job: Path, cells, parts, skip, labels=None):
        (job / "job.json").write_text(json.dumps({
            "cells": cells, "labels": labels, "parts": parts, "skip_cells": skip, "cell_timeout": self.s.cell_timeout,
            "probe_timeout": self.s.probe_timeout, "train_probe_timeout": self.s.train_probe_timeout}))

    @staticmethod
    def _read_output(path: Path) -> dict:
        if path.is_symlink() or not path.is_file():
            return {"error_probe": "no output recorded"}
        if path.stat().st_size > MAX_OUTPUT_BYTES:
            return {"error_probe": "output too large (refused)"}
        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - a forged or truncated file earns nothing
            return {"error_probe": f"unreadable output ({type(e).__name__})"}
        if not isinstance(d, dict):
            return {"error_probe": "malformed output"}
        return {str(k): v for k, v in d.items()}

    @staticmethod
    def _progress(job: Path) -> list[str]:
        p = job / "out" / "progress.log"
        try:
            if p.is_symlink() or p.stat().st_size > 2**20:
                return []
            return p.read_text(errors="replace").splitlines()
        except OSError:
            return []

    def _run(self, nb: Path, ckpt_dir: Path, slot: int) -> tuple[dict, list[str], dict]:
        """Run the worker (relaunching past a cell or part that kills it); returns outputs, notes, meta."""
        labeled = labeled_code_cells(nb)
        cells = [src for _, src in labeled]
        labels = [label for label, _ in labeled]
        uid = UID_BASE + slot if self.level in ("namespaces", "setuid") else None
        job = Path(tempfile.mkdtemp(prefix=f"job{slot}_", dir=self.base))
        hide = self._hide_list([nb.parent, ckpt_dir, nb.parent.parent] + [Path(p).resolve().parent for p in self.all_paths])
        remaining, skip, outputs, notes = list(self.s.parts), [], {}, []
        meta = {"launches": 0, "worker_seconds": 0.0, "cell_errors": ""}
        try:
            notes += self._prepare(job, cells, ckpt_dir, uid, remaining, skip, labels)
            # at most max_launches runs, and no new run once twice the per-run timeout is spent
            while remaining and meta["launches"] < self.s.max_launches and meta["worker_seconds"] < 2 * self.s.timeout:
                self._write_job(job, cells, remaining, skip, labels)
                if uid is not None:
                    os.lchown(job / "job.json", uid, uid)
                prog_file = job / "out" / "progress.log"
                if prog_file.exists() or prog_file.is_symlink():
                    prog_file.unlink()
                res = run_worker(job, slot=slot, timeout=self.s.timeout, memory_mb=self.s.memory_mb, hide=hide)
                meta["launches"] += 1
                meta["worker_seconds"] += res.seconds
                if (job / "out" / "_cells.pt").exists() and not meta["cell_errors"]:
                    cells_out = self._read_output(job / "out" / "_cells.pt")
                    meta["cell_errors"] = str(cells_out.get("errors", ""))
                    for k in ("import_seconds", "cells_seconds"):
                        if isinstance(cells_out.get(k), float):
                            meta.setdefault("timings", {})[k] = round(cells_out[k], 2)
                if (job / "out" / "_timings.pt").exists():
                    meta.setdefault("timings", {}).update({k: round(v, 2) for k, v in self._read_output(
                        job / "out" / "_timings.pt").items() if isinstance(v, float)})
                for part in list(remaining):
                    f = job / "out" / f"{part}.pt"
                    if f.exists() or f.is_symlink():
                        outputs[part] = self._read_output(f)
                        f.unlink()
                        remaining.remove(part)
                if not remaining:
                    break
                why = "timed out" if res.timed_out else f"exited (code {res.returncode})"
                started = None
                for line in self._progress(job):
                    if line.endswith(" done"):
                        started = None
                    elif line.startswith(("cell ", "part ")):
                        started = line
                if started and started.startswith("cell "):
                    try:
                        i = int(started.split()[1])
                    except ValueError:
                        break
                    if i in skip:
                        break
                    skip.append(i)
                    label = labels[i] if i < len(labels) else f"code cell {i + 1}"
                    notes.append(f"the worker {why} while running cell {label} of the notebook; "
                                 "that cell was skipped and the notebook run again")
                elif started and started.startswith("part "):
                    p = started.split()[1]
                    if p in remaining:
                        outputs[p] = {"error_probe": f"the worker {why} while checking this part (an infinite loop, "
                                                     "a memory bomb or an exit in your code?)"}
                        remaining.remove(p)
                else:
                    notes.append(f"the worker {why} before running the notebook: {res.log_tail[-300:].strip()}")
                    break
            for part in remaining:
                outputs[part] = {"error_probe": "not checked: the notebook's code stopped every attempt to run it"}
        finally:
            if os.environ.get("LAB_AUTOGRADER_KEEP"):
                print(f"kept {job} (LAB_AUTOGRADER_KEEP)")
            else:
                shutil.rmtree(job, ignore_errors=True)
                try:
                    os.remove(str(job) + ".log")
                except OSError:
                    pass
        return outputs, notes, meta

    def grade_submission(self, path: Path, name: str) -> dict:
        t0 = time.monotonic()
        nb, ckpt_dir, _ = find_notebook(path)
        notes, meta, results = [], {}, {}
        outputs = {}
        if nb is None or not nb.is_file():
            notes.append(f"no notebook found in {Path(path).name}")
        else:
            try:
                code_cells(nb)
            except NotebookError as e:
                notes.append(str(e))
                nb = None
        if nb is not None:
            with self._lock:
                slot = self._slots.pop()
            try:
                outputs, more, meta = self._run(nb, ckpt_dir, slot)
                notes += more
            finally:
                with self._lock:
                    self._slots.append(slot)
        for part in self.s.parts:
            pts = self.points.get(part, P.DEFAULT_POINTS[part])
            out = outputs.get(part)
            if out is None:
                pr = P.PartResult(part, pts, [P.Check("notebook graded", 1.0, False, "a readable notebook",
                                                      notes[0] if notes else "not run", "")])
            else:
                try:
                    if part == "train_anomaly":
                        pr = P.grade_train_anomaly(self.inputs[part], out, pts, hidden=self.hidden.get(part))
                    else:
                        pr = P.GRADERS[part](self.inputs[part], out, pts)
                except Exception as e:  # noqa: BLE001 - outputs of unexpected types earn nothing
                    pr = P.PartResult(part, pts, [P.Check("outputs could be checked", 1.0, False, "tensors of the expected kind",
                                                          f"{type(e).__name__}: {str(e)[:200]}", "")])
                    if os.environ.get("LAB_AUTOGRADER_DEBUG"):
                        traceback.print_exc()
                if "error_probe" in out and all(not c.passed for c in pr.checks):
                    pr.note = (pr.note + " " if pr.note else "") + str(out["error_probe"])
            results[part] = pr
        # trusted re-evaluation of the checkpoints with the reference model (see parts.cross_check)
        comps = [p for p in ("scaled_dot_product", "multihead_attention", "encoder_block", "positional_encoding")
                 if p in results]
        components_ok = bool(comps) and all(results[p].score >= results[p].points for p in comps)
        for part, fname, thr in (("train_reverse", "reverse.ckpt", P.REVERSE_THRESHOLD),
                                 ("train_anomaly", "anomaly.ckpt", P.ANOMALY_THRESHOLD)):
            if part in results and nb is not None and components_ok:
                ck = ckpt_dir / "checkpoints" / fname
                if ck.is_file() and not ck.is_symlink():
                    try:
                        trusted = P.reference_accuracy(part, str(ck), self.inputs[part], self.hidden.get(part))
                    except Exception:  # noqa: BLE001
                        trusted = None
                    P.cross_check(results[part], trusted, components_ok, thr)
        return self._results_json(name, results, notes, meta, time.monotonic() - t0)

    # ------------------------------------------------------------------ reports
    def _results_json(self, name, results: dict, notes, meta, seconds) -> dict:
        tests = []
        for i, (part, pr) in enumerate(results.items(), 1):
            lines = []
            for c in pr.checks:
                mark = "PASS" if c.passed else ("PART" if c.partial else "FAIL")
                lines.append(f"[{mark}] {c.name}")
                if not c.passed:
                    lines.append(f"    expected: {c.expected}")
                    lines.append(f"    received: {c.received}")
                    if c.hint:
                        lines.append(f"    hint: {c.hint}")
            if pr.note:
                lines.append(f"note: {pr.note}")
            tests.append({"name": f"{P.TITLES[part]} (test_{part})", "number": str(i), "score": pr.score,
                          "max_score": float(pr.points), "status": "passed" if pr.score >= pr.points else "failed",
                          "output": "\n".join(lines), "visibility": "visible", "tags": [part]})
        total = round(sum(t["score"] for t in tests), 4)
        maximum = float(sum(t["max_score"] for t in tests))
        summary = [f"{name}: {total:g} / {maximum:g} points"] + [f"note: {n}" for n in notes]
        if meta.get("cell_errors"):
            summary.append("errors while running the notebook's cells (the autograder went on):\n" + meta["cell_errors"][:3000])
        return {"score": total, "execution_time": round(seconds, 2), "output": "\n".join(summary), "visibility": "visible",
                "stdout_visibility": "hidden", "tests": tests,
                "extra_data": {"submission": name, "max_score": maximum, "parts": {p: r.score for p, r in results.items()},
                               "sandbox": self.level, "points_from": self.points_origin, "seed": self.s.seed,
                               "launches": meta.get("launches", 0), "worker_seconds": round(meta.get("worker_seconds", 0), 2),
                               "timings": meta.get("timings", {})}}


def feedback_md(res: dict) -> str:
    ex = res["extra_data"]
    lines = [f"# Autograder feedback: {ex['submission']}", "",
             f"**Total: {res['score']:g} / {ex['max_score']:g}**", "",
             "Every part is checked by running your code on hidden inputs and comparing with the reference; "
             f"trained checkpoints must reach {P.REVERSE_THRESHOLD:.0%} token accuracy (reverse) and "
             f"{P.ANOMALY_THRESHOLD:.0%} accuracy on CIFAR-100 test sets (set anomaly).", "",
             "| part | score | max |", "|---|---:|---:|"]
    lines += [f"| {t['name']} | {t['score']:g} | {t['max_score']:g} |" for t in res["tests"]]
    lines.append("")
    for t in res["tests"]:
        lines += [f"## {t['name']}: {t['score']:g} / {t['max_score']:g}", "", "```", t["output"], "```", ""]
    other = res["output"].split("\n", 1)
    if len(other) > 1:
        lines += ["## Notes", "", "```", other[1], "```", ""]
    return "\n".join(lines)


def _atomic_write(path: Path, text: str):
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_grades_csv(out: Path, part_order=P.PART_ORDER) -> Path:
    rows = []
    for d in sorted(out.iterdir()):
        f = d / "results.json"
        if d.is_dir() and f.is_file():
            try:
                rows.append(json.loads(f.read_text()))
            except (OSError, json.JSONDecodeError):
                continue
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["submission", *part_order, "total", "max"])
    for r in rows:
        ex = r.get("extra_data", {})
        w.writerow([ex.get("submission", "?"), *[f"{ex.get('parts', {}).get(p, 0):g}" for p in part_order],
                    f"{r.get('score', 0):g}", f"{ex.get('max_score', 0):g}"])
    path = out / "grades.csv"
    _atomic_write(path, buf.getvalue())
    return path


def grade_all(submissions: list[Path], settings: Settings, log=print) -> list[dict]:
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    grader = Grader(settings)
    tmp_root = os.environ.get("LAB_AUTOGRADER_TMP") or None
    grader.base = tempfile.mkdtemp(prefix="lab_autograder_", dir=tmp_root)
    os.chmod(grader.base, 0o711)
    grader.all_paths = [Path(s) for s in submissions]
    names, todo, done = set(), [], []
    for s in submissions:
        base = safe_name(find_notebook(Path(s))[2])
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.add(name)
        if (out / name / "results.json").is_file():
            done.append(name)
            continue
        todo.append((Path(s), name))
    if done and not settings.quiet:
        log(f"{len(done)} already graded in {out} (skipped; delete their folders to grade again)")
    if not settings.quiet:
        log(f"grading {len(todo)} submission(s), {settings.jobs} at a time; sandbox: {grader.level}; "
            f"points from {grader.points_origin}")
    results = []

    def one(item):
        path, name = item
        try:
            res = grader.grade_submission(path, name)
        except Exception as e:  # noqa: BLE001 - one broken submission never stops the batch
            traceback.print_exc()
            res = grader._results_json(name, {p: P.PartResult(p, grader.points.get(p, 0), [P.Check(
                "graded", 1.0, False, "", f"internal error: {type(e).__name__}: {e}", "")]) for p in settings.parts},
                [f"internal autograder error: {e}"], {}, 0.0)
        d = out / name
        d.mkdir(exist_ok=True)
        _atomic_write(d / "feedback.md", feedback_md(res))
        _atomic_write(d / "results.json", json.dumps(res, indent=1))
        if not settings.quiet:
            log(f"  {name}: {res['score']:g} / {res['extra_data']['max_score']:g}  ({res['execution_time']:.0f} s)")
        return res

    try:
        with ThreadPoolExecutor(max_workers=max(1, settings.jobs)) as ex:
            results = list(ex.map(one, todo))
    finally:
        if not os.environ.get("LAB_AUTOGRADER_KEEP"):
            shutil.rmtree(grader.base, ignore_errors=True)
        write_grades_csv(out)
    return results
