"""``autograder``: grade transformer-lab submissions (Gradescope results.json, feedback.md, grades.csv).

    autograder grade SUBMISSION... --out OUT [--jobs N] [--timeout S] [--memory-mb M]
    autograder gradescope [--submission DIR] [--results FILE]     (what run_autograder calls)
    autograder table OUT                                          (print OUT/grades.csv as a table)
    autograder report OUT [--due T] [--late-policy P]             (rebuild the class outputs of OUT)
    autograder feedback OUT --nbgrader COURSE                     (feedback where nbgrader releases it)
    autograder merge OUT... --out MERGED                          (one gradebook from sharded runs)
    autograder fingerprint CKPT --name NAME                       (a published checkpoint, for the flags)
    autograder examples DIR [--checkpoints CKPT_DIR]...           (example submissions for a demo)

Every grading run ends by rebuilding OUT's class outputs from all its results: grades.csv,
lms_grades.csv, canvas_grades.csv, moodle_grades.csv, scores.png, provenance.csv (copy flags for
the instructor; scores unchanged) and each feedback file, with late work when a due date is known.

Exit status 3: a submission could not be graded through the grader's own fault (its sandbox failed
to start every time it was tried); no score was written for it and the next run grades it.

A SUBMISSION is a notebook, a folder holding one and its ``checkpoints/``, nbgrader's
``submitted/`` folder (every ``<student>/transformer_lab/`` in it) or one
``submitted/<student>/transformer_lab``: results are named after the student. Re-running on the
same OUT grades again only the students whose submission (or the grader) changed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

from .layout import ASSIGNMENT, expand, gradescope_entry
from .parts import PART_ORDER
from .registry import PARTS

#: exit status of a run that left a submission ungraded through the grader's own fault
GRADER_FAULT = 3


def _settings(args, out):
    from .grade import Settings

    s = Settings(
        out=Path(out),
        jobs=args.jobs,
        timeout=args.timeout,
        memory_mb=args.memory_mb,
        seed=args.seed,
        source=Path(args.source) if args.source else None,
        anomaly_features=args.anomaly_features,
        quiet=getattr(args, "quiet", False),
    )
    if args.timeout < 300:  # scale the inner limits down with a short outer one (tests, quick runs)
        s.cell_timeout = min(s.cell_timeout, max(5.0, args.timeout / 4))
        s.probe_timeout = min(s.probe_timeout, max(5.0, args.timeout / 4))
        s.train_probe_timeout = min(s.train_probe_timeout, max(10.0, args.timeout / 2))
    if args.parts:
        s.parts = [p for p in PART_ORDER if p in args.parts.split(",")]
    return s


#: grades.csv columns the printed table leaves out (times, sources: read them in the file)
_NOT_PRINTED = {"timestamp", "submitted_at", "submitted_at_from", "late_penalty"}


def print_table(out: Path, file=None) -> None:
    file = file or sys.stdout
    path = Path(out) / "grades.csv"
    rows = list(csv.reader(path.open()))
    if not rows:
        return
    keep = [i for i, h in enumerate(rows[0]) if h not in _NOT_PRINTED]
    rows = [[r[i] for i in keep if i < len(r)] for r in rows]
    head = rows[0]
    short = {name: part.column or name for name, part in PARTS.items()}
    head = [short.get(h, h) for h in head]
    widths = [max(len(str(r[i])) for r in [head] + rows[1:]) for i in range(len(head))]
    for r in [head] + rows[1:]:
        print(
            "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths))),
            file=file,
        )


def _add_late(p):
    p.add_argument(
        "--due", help="due date, ISO 8601 (e.g. 2026-12-01T23:59+01:00; default: nbgrader's gradebook)"
    )
    p.add_argument(
        "--late-policy",
        help="how lateness costs points: none (default), P%%/day or P%%/hour, zero-after=7d, grace=15m "
        "(comma-separated, e.g. '10%%/day, zero-after=7d'); applied to the total",
    )
    p.add_argument(
        "--course",
        help="the nbgrader course folder (its nbgrader_config.py gives the exchange and the gradebook; "
        "default: the folder holding submitted/)",
    )


def _late_rule(args, course):
    """The due date and policy the command states, or None to keep OUT's saved one."""
    from .late import parse_policy, parse_time
    from .report import LateRule

    due, due_from = None, ""
    if args.due:
        due, due_from = parse_time(args.due, "--due"), "--due"
    elif course is not None:
        due, due_from = course.due(args.assignment), "nbgrader's gradebook"
    if due is None and not args.late_policy:
        return None
    policy = parse_policy(args.late_policy) if args.late_policy else None  # None: as OUT has it
    return LateRule(due, policy, due_from if due else "")


def _course(args, paths):
    from .course import course_of, load_course

    root = Path(args.course) if args.course else course_of(paths)
    return load_course(root) if root else None


def _add_common(p):
    p.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default 1)")
    p.add_argument(
        "--timeout", type=float, default=300, help="wall-clock seconds per worker run (default 300)"
    )
    p.add_argument(
        "--memory-mb",
        type=int,
        default=6144,
        help="address-space limit of the worker (default 6144; torch needs ~4000)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=20240611,
        help="seed of the hidden inputs (default fixed: same inputs, same scores)",
    )
    p.add_argument(
        "--source",
        help="source notebook whose nbgrader metadata gives the points "
        "(default source/transformer_lab/transformer_lab.ipynb)",
    )
    p.add_argument(
        "--anomaly-features",
        default=os.environ.get("LAB_AUTOGRADER_FEATURES"),
        help="test features for the anomaly checkpoint (required when that part is graded; default "
        "$LAB_AUTOGRADER_FEATURES): a .pt {feats, labels} or .npz file, such as the instructor's CIFAR-100 "
        "features (threshold 90%%); 'synthetic', the notebook's quick-mode data that a student without "
        "CIFAR-100 trains on (80%%); or 'synthetic:SEED[:DIM[:NOISE]]', other synthetic data of the tests, "
        "unlike the notebook's (90%%)",
    )
    p.add_argument("--parts", help="comma-separated subset of parts (default all)")


def build_parser():
    ap = argparse.ArgumentParser(
        prog="autograder",
        description=__doc__.replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    _add_grade(sub)
    _add_class_commands(sub)
    return ap


def _add_grade(sub):
    """``grade`` (a folder of submissions) and ``gradescope`` (one, inside Gradescope's container)."""
    g = sub.add_parser("grade", help="grade submissions into OUT")
    g.add_argument("submissions", nargs="+", help="notebooks, or folders holding one (+ checkpoints/)")
    g.add_argument(
        "--out", required=True, help="output folder (results.json + feedback.md per submission, grades.csv)"
    )
    g.add_argument("--quiet", action="store_true", help="print only the final table (no progress lines)")
    g.add_argument(
        "--assignment",
        default=ASSIGNMENT,
        help=f"the assignment folder inside nbgrader's submitted/<student>/ (default {ASSIGNMENT})",
    )
    g.add_argument(
        "--submitted-at",
        help="CSV of student_id,submitted_at (the instructor's data, e.g. from the LMS): when each "
        "submission arrived; default: nbgrader's exchange (the student's timestamp.txt is never trusted)",
    )
    g.add_argument(
        "--shard",
        help="I/N: grade only the I-th of N shares of the students (stable by student id), for "
        "splitting a class over N machines; `autograder merge` joins the OUT folders",
    )
    _add_late(g)
    _add_common(g)
    gs = sub.add_parser(
        "gradescope", help="grade /autograder/submission into /autograder/results/results.json"
    )
    gs.add_argument("--submission", default="/autograder/submission")
    gs.add_argument("--results", default="/autograder/results/results.json")
    gs.add_argument(
        "--metadata",
        default="/autograder/submission_metadata.json",
        help="Gradescope's submission metadata (the student's id and the submission time)",
    )
    _add_common(gs)


def _add_class_commands(sub):
    """The commands that work on graded OUT folders, and the demo's example submissions."""
    t = sub.add_parser("table", help="print OUT/grades.csv")
    t.add_argument("out")
    r = sub.add_parser("report", help="rebuild OUT's class outputs (gradebooks, histograms, flags, feedback)")
    r.add_argument("out")
    r.add_argument("--assignment", default=ASSIGNMENT)
    _add_late(r)
    f = sub.add_parser(
        "feedback", help="put each student's feedback where `nbgrader release_feedback` takes it"
    )
    f.add_argument("out")
    f.add_argument("--nbgrader", required=True, help="the nbgrader course folder (holding submitted/)")
    f.add_argument("--assignment", default=ASSIGNMENT)
    m = sub.add_parser("merge", help="join OUT folders graded on several machines into one, then rebuild it")
    m.add_argument("outs", nargs="+")
    m.add_argument("--out", required=True)
    m.add_argument("--assignment", default=ASSIGNMENT)
    _add_late(m)
    fp = sub.add_parser("fingerprint", help="add a published checkpoint to the provenance flags")
    fp.add_argument("checkpoint")
    fp.add_argument("--name", required=True, help="where it was published (its URL)")
    e = sub.add_parser("examples", help="write example submissions (solution, two bugs, release) for a demo")
    e.add_argument("dest")
    e.add_argument(
        "--checkpoints",
        action="append",
        default=[],
        help="a folder with reverse.ckpt and/or anomaly.ckpt to submit with them (may be repeated)",
    )


def _needs_features(args) -> str:
    """The error when the anomaly part would be graded without test features: the instructor's
    setting, which must not reach a student's feedback as a lost point."""
    parts = args.parts.split(",") if args.parts else PART_ORDER
    if "train_anomaly" not in parts or args.anomaly_features:
        return ""
    return (
        "grading the anomaly part needs its test features: pass --anomaly-features FILE (your "
        "CIFAR-100 features, see docs/instructors.md), 'synthetic' (the notebook's quick-mode data) or "
        "'synthetic:SEED'; or leave the part out with --parts"
    )


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.cmd in ("grade", "gradescope") and _needs_features(args):
        print(f"autograder: error: {_needs_features(args)}", file=sys.stderr)
        return 2
    if args.cmd == "table":
        print_table(Path(args.out))
        return 0
    if args.cmd in ("report", "feedback", "merge", "fingerprint"):
        from . import class_commands

        try:
            return getattr(class_commands, args.cmd)(args)
        except (FileNotFoundError, ValueError) as e:
            print(f"autograder: error: {e}", file=sys.stderr)
            return 2
    if args.cmd == "examples":
        from .examples import write_examples

        for d in write_examples(Path(args.dest), [Path(c) for c in args.checkpoints]):
            print(d)
        return 0
    return _grade(args) if args.cmd == "grade" else _gradescope(args)


def _grade(args) -> int:
    """``autograder grade``: a class of submissions into OUT."""
    from .grade import grade_all

    missing = [s for s in args.submissions if not Path(s).exists()]
    if missing:
        print(f"autograder: error: no such submission: {', '.join(missing)}", file=sys.stderr)
        return 2
    from .course import stamp_arrivals
    from .shards import parse_shard, shard_of

    try:
        course = _course(args, args.submissions)
        settings = _settings(args, args.out)
        settings.late = _late_rule(args, course)
        entries = expand([Path(s) for s in args.submissions], args.assignment)
        if args.shard:
            entries = shard_of(entries, *parse_shard(args.shard))
        entries = stamp_arrivals(entries, args.assignment, course, args.submitted_at)
        run = grade_all(entries, settings)
    except (FileNotFoundError, ValueError) as e:  # the grader's own files or settings (PolicyError...)
        print(f"autograder: error: {e}", file=sys.stderr)
        return 2
    print()
    print_table(Path(args.out))
    return GRADER_FAULT if run.not_graded else 0


def _gradescope(args) -> int:
    """``autograder gradescope``: one submission, results.json where Gradescope reads it."""
    from .grade import grade_all
    import tempfile

    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lab_autograder_out_") as out:
        entry = gradescope_entry(Path(args.submission), Path(args.metadata))
        settings = _settings(args, out)
        settings.class_outputs = False  # one submission; Gradescope keeps the class's gradebook
        res = grade_all([entry], settings)
        if res.not_graded:  # no results.json: Gradescope reports the autograder's failure; staff rerun it
            reason = next(iter(res.not_graded.values()))
            print(f"autograder: NOT GRADED, a grader fault (not the student's): {reason}", file=sys.stderr)
            return GRADER_FAULT
        data = res[0] if res else {"score": 0, "output": "nothing graded", "tests": []}
        tmp = results.with_name(results.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, results)
    print(f"score {data['score']:g}; wrote {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
