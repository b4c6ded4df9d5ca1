"""``autograder``: grade transformer-lab submissions (Gradescope results.json, feedback.md, grades.csv).

    autograder grade SUBMISSION... --out OUT [--jobs N] [--timeout S] [--memory-mb M]
    autograder gradescope [--submission DIR] [--results FILE]     (what run_autograder calls)
    autograder table OUT                                          (print OUT/grades.csv as a table)
    autograder report OUT                                         (class summary: PNG + LMS CSV)
    autograder examples DIR [--checkpoints CKPT_DIR]...           (example submissions for a demo)

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


def print_table(out: Path, file=None) -> None:
    file = file or sys.stdout
    path = Path(out) / "grades.csv"
    rows = list(csv.reader(path.open()))
    if not rows:
        return
    head = rows[0]
    short = {name: part.column or name for name, part in PARTS.items()}
    head = [short.get(h, h) for h in head]
    widths = [max(len(str(r[i])) for r in [head] + rows[1:]) for i in range(len(head))]
    for r in [head] + rows[1:]:
        print(
            "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths))),
            file=file,
        )


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
    t = sub.add_parser("table", help="print OUT/grades.csv")
    t.add_argument("out")
    r = sub.add_parser("report", help="class summary of OUT: scores.png (histograms) and lms_grades.csv")
    r.add_argument("out")
    e = sub.add_parser("examples", help="write example submissions (solution, two bugs, release) for a demo")
    e.add_argument("dest")
    e.add_argument(
        "--checkpoints",
        action="append",
        default=[],
        help="a folder with reverse.ckpt and/or anomaly.ckpt to submit with them (may be repeated)",
    )
    return ap


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
    if args.cmd == "report":
        from .report import write_report

        try:
            rep = write_report(Path(args.out))
        except FileNotFoundError as e:
            print(f"autograder: error: {e}", file=sys.stderr)
            return 2
        print("\n".join(rep["summary"]))
        print(f"wrote {rep['png']} and {rep['lms_csv']}")
        return 0
    if args.cmd == "examples":
        from .examples import write_examples

        for d in write_examples(Path(args.dest), [Path(c) for c in args.checkpoints]):
            print(d)
        return 0
    from .grade import grade_all

    if args.cmd == "grade":
        missing = [s for s in args.submissions if not Path(s).exists()]
        if missing:
            print(f"autograder: error: no such submission: {', '.join(missing)}", file=sys.stderr)
            return 2
        try:
            run = grade_all(
                expand([Path(s) for s in args.submissions], args.assignment), _settings(args, args.out)
            )
        except FileNotFoundError as e:  # the grader's own files (given modules, features), not a submission's
            print(f"autograder: error: {e}", file=sys.stderr)
            return 2
        print()
        print_table(Path(args.out))
        return GRADER_FAULT if run.not_graded else 0
    # gradescope: one submission, results.json where Gradescope reads it
    import tempfile

    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lab_autograder_out_") as out:
        entry = gradescope_entry(Path(args.submission), Path(args.metadata))
        res = grade_all([entry], _settings(args, out))
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
