"""The ``train_reverse`` part's bugs (its share of ``catalog.BUGS``) and its test (``part_cases``). What it
checks is ``parts/train_reverse.py`` and ``worker/probes/train_reverse.py``: a change there comes with one here."""

from part_cases import part_tests

from autograder_fixtures.catalog import TR, Variant

BUGS = [
    Variant("train_reverse_no_clipping", "train_reverse",
            [(TR, "        gradient_clip_val=cfg.gradient_clip_val,\n", "")], r"gradient_clip_val"),
    Variant("train_reverse_last_epoch_checkpoint", "train_reverse",
            [(TR, 'save_weights_only=True,\n                                 mode="max", monitor="val_acc", enable_version_counter=False)',
              'save_weights_only=True,\n                                 enable_version_counter=False)')],
            r"\(the last one\)"),
    Variant("train_reverse_returns_last_model", "train_reverse",
            [(TR, "        model = ReversePredictor.load_from_checkpoint(checkpoint.best_model_path)\n", "")],
            r"model of epoch 3 of 3 \(the last one\)"),
]

test_each_bug_is_diagnosed, test_each_correct_variant_scores_as_the_solution = part_tests("train_reverse", BUGS)
