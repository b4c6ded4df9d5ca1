"""The commands that work on a grading folder after grading: ``report``, ``feedback`` (into nbgrader's
``feedback/`` folder, for ``nbgrader release_feedback``), ``merge`` (sharded runs) and
``fingerprint`` (a published checkpoint, for the provenance flags)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .feedback import atomic_write
from .safe_files import Refused, open_dir, read_at
from .submission import snapshot

#: nbgrader's per-submission files that ``release_feedback`` needs beside the feedback page
_NBGRADER_FILES = ("timestamp.txt", "submission_secret.txt")


def _print_summary(rep: dict) -> None:
    print("\n".join(rep["summary"]))
    names = [
        Path(rep[k]).name for k in ("grades_csv", "lms_csv", "canvas_csv", "moodle_csv", "provenance_csv")
    ]
    print(
        f"wrote {', '.join(names)}{' and scores.png' if 'png' in rep else ''} "
        f"in {Path(rep['grades_csv']).parent}"
    )


def report(args) -> int:
    from .cli import _course, _late_rule
    from .report import write_report

    course = _course(args, []) if args.course else None
    _print_summary(write_report(Path(args.out), _late_rule(args, course)))
    return 0


def _results(out: Path):
    for d in sorted(Path(out).iterdir()):
        if (d / "results.json").is_file():
            yield d, json.loads((d / "results.json").read_text())


def feedback(args) -> int:
    """Each graded student's ``feedback.html`` as ``COURSE/feedback/<student>/<assignment>/<notebook>.html``
    with the submission's ``timestamp.txt`` and ``submission_secret.txt``: what ``nbgrader
    release_feedback`` copies to the exchange, and ``nbgrader fetch_feedback`` gives the student.
    A submission that changed since it was graded is left out: grade it again first."""
    course, released, stale = Path(args.nbgrader), 0, []
    for d, res in _results(Path(args.out)):
        ex = res.get("extra_data", {})
        student = str(ex.get("student_id", ""))
        submitted = course / "submitted" / student / args.assignment
        if not student or "/" in student or not submitted.is_dir():
            continue
        sub = snapshot(submitted, d.name)
        if sub.content_sha256() != ex.get("content_sha256") or not sub.notebook_name:
            stale.append(student)
            continue
        dest = course / "feedback" / student / args.assignment
        dest.mkdir(parents=True, exist_ok=True)
        fd = open_dir(submitted)
        try:
            for name in _NBGRADER_FILES:
                try:
                    atomic_write(dest / name, read_at(fd, name, 4096).decode("utf-8", "replace"))
                except (Refused, OSError):
                    pass  # without them nbgrader skips this student, and says so
        finally:
            os.close(fd)
        shutil.copyfile(d / "feedback.html", dest / f"{Path(sub.notebook_name).stem}.html")
        released += 1
    print(
        f"feedback of {released} student(s) in {course / 'feedback'}; "
        f"now: nbgrader release_feedback {args.assignment}"
    )
    if stale:
        print(f"not copied, changed since graded (grade again first): {', '.join(sorted(stale))}")
    return 0


def merge(args) -> int:
    """Every student folder of the OUT folders in one, the newest grading of a student kept, then
    the class outputs rebuilt over all of them."""
    from .report import LATE_FILE, rebuild

    dest = Path(args.out)
    dest.mkdir(parents=True, exist_ok=True)
    chosen: dict[str, Path] = {}
    for out in map(Path, args.outs):
        for d in sorted(p for p in out.iterdir() if p.is_dir()):
            if not ((d / "results.json").is_file() or (d / "grader_fault.json").is_file()):
                continue
            old = chosen.get(d.name)
            if old is None or _graded_at(d) > _graded_at(old):
                if old is not None:
                    print(f"{d.name}: graded in {old.parent} and {d.parent}; the newer ({d.parent}) kept")
                chosen[d.name] = d
        if (out / LATE_FILE).is_file() and not (dest / LATE_FILE).is_file():
            shutil.copyfile(out / LATE_FILE, dest / LATE_FILE)
    for name, src in chosen.items():
        shutil.rmtree(dest / name, ignore_errors=True)
        shutil.copytree(src, dest / name)
    print(f"merged {len(chosen)} student(s) from {len(args.outs)} folder(s) into {dest}")
    from .cli import _course, _late_rule

    _print_summary(rebuild(dest, _late_rule(args, _course(args, []) if args.course else None)))
    return 0


def _graded_at(d: Path) -> float:
    f = d / "results.json" if (d / "results.json").is_file() else d / "grader_fault.json"
    return f.stat().st_mtime


def fingerprint(args) -> int:
    from .provenance import PUBLISHED, fingerprint_entry

    entry = fingerprint_entry(Path(args.checkpoint), args.name)
    known = json.loads(PUBLISHED.read_text()) if PUBLISHED.is_file() else []
    known = [e for e in known if e.get("weights_sha256") != entry["weights_sha256"]] + [entry]
    atomic_write(PUBLISHED, json.dumps(known, indent=1) + "\n")
    print(f"{args.name}: weights {entry['weights_sha256'][:16]}, added to {PUBLISHED}")
    return 0
