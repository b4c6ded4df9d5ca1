"""The ``warmup_factor`` part's bugs (its share of ``catalog.BUGS``) and its test (``part_cases``). What it
checks is ``parts/warmup_factor.py`` and ``worker/probes/warmup_factor.py``: a change there comes with one here."""

from part_cases import part_tests

from autograder_fixtures.catalog import WU, Variant

BUGS = [
    Variant("warmup_off_by_one", "warmup_factor",
            [(WU, "factor *= step / warmup", "factor *= (step + 1) / warmup")], r"off by one"),
    Variant("warmup_missing", "warmup_factor",
            [(WU, "    if step <= warmup:\n        factor *= step / warmup\n", "")], r"warm-up .* is missing"),
    Variant("warmup_linear_decay", "warmup_factor",
            [(WU, "factor = 0.5 * (1 + math.cos(math.pi * step / max_iters))", "factor = 1 - step / max_iters")], r"0\.5 \* \(1 \+ cos"),
]

test_each_bug_is_diagnosed, test_each_correct_variant_scores_as_the_solution = part_tests("warmup_factor", BUGS)
