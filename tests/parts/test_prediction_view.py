"""The ``prediction_view`` part's bugs (its share of ``catalog.BUGS``) and its test (``part_cases``). What it
checks is ``parts/prediction_view.py`` and ``worker/probes/prediction_view.py``: a change there comes with one here."""

from part_cases import part_tests

from autograder_fixtures.catalog import PV, Variant

BUGS = [
    Variant("prediction_view_no_probabilities", "prediction_view",
            [(PV, 'f"{i}: {100 * p[i]:.1f}%"', 'f"{i}"')], r"probability"),
    Variant("prediction_view_wrong_batch_element", "prediction_view",
            [(PV, "maps = [m[idx].detach()", "maps = [m[0].detach()")], r"maps of set 0"),
]

test_each_bug_is_diagnosed, test_each_correct_variant_scores_as_the_solution = part_tests("prediction_view", BUGS)
