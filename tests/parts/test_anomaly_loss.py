"""The ``anomaly_loss`` part's bugs (its share of ``catalog.BUGS``) and its test (``part_cases``). What it
checks is ``parts/anomaly_loss.py`` and ``worker/probes/anomaly_loss.py``: a change there comes with one here."""

from part_cases import part_tests

from autograder_fixtures.catalog import AL, Variant

BUGS = [
    Variant("anomaly_positional_encoding_added", "anomaly_loss",
            [(AL, "preds = self.forward(img_sets, add_positional_encoding=False)", "preds = self.forward(img_sets, add_positional_encoding=True)")],
            r"positional encoding is added to the set"),
    Variant("anomaly_binary_cross_entropy", "anomaly_loss",
            [(AL, "loss = F.cross_entropy(preds, labels)", "loss = F.binary_cross_entropy_with_logits(preds, F.one_hot(labels, preds.size(-1)).float())")],
            r"binary cross-entropy"),
    Variant("anomaly_softmax_over_the_batch", "anomaly_loss",
            [(AL, "loss = F.cross_entropy(preds, labels)", "loss = F.nll_loss(F.log_softmax(preds, dim=0), labels)")],
            r"over the batch axis"),
]

test_each_bug_is_diagnosed, test_each_correct_variant_scores_as_the_solution = part_tests("anomaly_loss", BUGS)
