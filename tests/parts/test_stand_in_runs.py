"""The two runs of a part re-checked on stand-ins, as the grader keeps them (``{"student", "iso"}``):
a bug below a part is charged once, and the stand-ins' run cannot be forged from the student's."""

import pytest
from part_cases import NOT_BUILT, SEED, namespace, probe

from autograder_fixtures import catalog
from lab_autograder import parts as P
from lab_autograder.grade import grade_outputs, stand_in_run
from lab_autograder.oracles import oracle_source
from lab_autograder.registry import PARTS, STAGES
from lab_autograder.worker.stand_ins import oracles_from


#: the parts whose numbers an attention bug changes (a training run still trains, clips and keeps its best epoch)
BUILT_ON_ATTENTION = [n for n, p in PARTS.items() if "scaled_dot_product" in p.depends and not n.startswith("train_")]


@NOT_BUILT
@pytest.mark.parametrize("part", BUILT_ON_ATTENTION)
def test_a_bug_below_is_charged_once_and_a_forged_stand_in_run_earns_nothing(part):
    """A bug in ``scaled_dot_product`` costs the parts built on it in the student's own run; their
    run on stand-ins (kept apart, as the grader keeps it) gives their points back, and the same
    outputs forged inside the student's run (nested, or with the old ``iso_`` prefix) give nothing."""
    bug = next(v for v in catalog.BUGS if v.id == "sdp_no_scale")
    ns = namespace(bug.apply(catalog.load_source()))
    inp, points = P.INPUTS[part](SEED), float(P.DEFAULT_POINTS[part])

    def score(runs):
        return grade_outputs(part, inp, runs, points, {}, None).score

    student = probe(ns, part)
    iso = stand_in_run(probe(ns, part, "iso", oracles_from(oracle_source(dict(STAGES)[PARTS[part].iso_stage]))))
    assert score({"student": student}) < points
    assert score({"student": student, "iso": iso}) == points
    forged = {**student, "iso": iso, **{f"iso_{k}": v for k, v in iso.items()}}
    assert score({"student": forged}) == score({"student": student})
