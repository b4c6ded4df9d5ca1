"""The ``reverse_loss`` part's bugs (its share of ``catalog.BUGS``) and its test (``part_cases``). What it
checks is ``parts/reverse_loss.py`` and ``worker/probes/reverse_loss.py``: a change there comes with one here."""

from part_cases import part_tests

from autograder_fixtures.catalog import RL, Variant

BUGS = [
    Variant("reverse_loss_without_positional_encoding", "reverse_loss",
            [(RL, "preds = self.forward(inp_data, add_positional_encoding=True)", "preds = self.forward(inp_data, add_positional_encoding=False)")],
            r"without positional encoding"),
    Variant("reverse_loss_wrong_axis", "reverse_loss",
            [(RL, "loss = F.cross_entropy(preds.view(-1, preds.size(-1)), labels.view(-1))", "loss = F.cross_entropy(preds, labels)")],
            r"over all B\*T tokens", also=("train_reverse",)),
    Variant("reverse_accuracy_wrong_axis", "reverse_loss",
            [(RL, "acc = (preds.argmax(dim=-1) == labels).float().mean()", "acc = (preds.argmax(dim=1) == labels).float().mean()")],
            r"argmax over the class axis", also=("train_reverse",)),
    Variant("reverse_loss_not_logged", "reverse_loss",
            [(RL, 'self.log(f"{mode}_loss", loss)\n        self.log(f"{mode}_acc", acc)', "pass")], r"self\.log",
            also=("train_reverse",)),  # its checkpoint callback monitors val_acc
]

test_each_bug_is_diagnosed, test_each_correct_variant_scores_as_the_solution = part_tests("reverse_loss", BUGS)
