"""The ``train_anomaly`` part's bugs (its share of ``catalog.BUGS``) and its test (``part_cases``). What it
checks is ``parts/train_anomaly.py`` and ``worker/probes/train_anomaly.py``: a change there comes with one here."""

from part_cases import part_tests

from autograder_fixtures.catalog import TA, Variant

BUGS = [
    Variant("train_anomaly_no_clipping", "train_anomaly",
            [(TA, "        gradient_clip_val=cfg.gradient_clip_val,\n", "")], r"gradient_clip_val"),
]

test_each_bug_is_diagnosed, test_each_correct_variant_scores_as_the_solution = part_tests("train_anomaly", BUGS)
