"""``autograder``: grade transformer-lab submissions (Gradescope results.json, feedback.md, grades.csv).

    autograder grade SUBMISSION... --out OUT [--jobs N] [--timeout S] [--memory-mb M]
    autograder gradescope [--submission DIR] [--results FILE]     (what run_autograder calls)
    autograder table OUT                                          (print OUT/grades.csv as a table)
    autograder report OUT                                         (class summary: PNG + LMS CSV)
    autograder examples DIR [--checkpoints CKPT_DIR]              (example submissions for a demo)

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
        help="test features for the anomaly checkpoint: .pt {feats, labels} or .npz, or 'synthetic[:SEED]' "
        "(default $LAB_AUTOGRADER_FEATURES)",
    )
    p.add_argument("--parts", help="comma-separated subset of parts (default all)")


def build_parser():
    ap = argparse.ArgumentParser(
        prog="autograder", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("grade", help="grade submissions into OUT")
    g.add_argument("submissions", nargs="+", help="notebooks, or folders holding one (+ checkpoints/)")
    g.add_argument(
        "--out", required=True, help="output folder (results.json + feedback.md per submission, grades.csv)"
    )
    g.add_argument("--quiet", action="store_true")
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
    e.add_argument("--checkpoints", help="folder with reverse.ckpt / anomaly.ckpt to submit with them")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
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

        for d in write_examples(Path(args.dest), Path(args.checkpoints) if args.checkpoints else None):
            print(d)
        return 0
    from .grade import grade_all

    if args.cmd == "grade":
        missing = [s for s in args.submissions if not Path(s).exists()]
        if missing:
            print(f"autograder: error: no such submission: {', '.join(missing)}", file=sys.stderr)
            return 2
        try:
            grade_all(expand([Path(s) for s in args.submissions], args.assignment), _settings(args, args.out))
        except FileNotFoundError as e:  # the grader's own files (given modules, features), not a submission's
            print(f"autograder: error: {e}", file=sys.stderr)
            return 2
        print()
        print_table(Path(args.out))
        return 0
    # gradescope: one submission, results.json where Gradescope reads it
    import tempfile

    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lab_autograder_out_") as out:
        entry = gradescope_entry(Path(args.submission), Path(args.metadata))
        res = grade_all([entry], _settings(args, out))
        data = res[0] if res else {"score": 0, "output": "nothing graded", "tests": []}
        tmp = results.with_name(results.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, results)
    print(f"score {data['score']:g}; wrote {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
