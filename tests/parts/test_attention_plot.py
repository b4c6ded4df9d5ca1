"""The ``attention_plot`` part's bugs (its share of ``catalog.BUGS``) and its test (``part_cases``). What it
checks is ``parts/attention_plot.py`` and ``worker/probes/attention_plot.py``: a change there comes with one here."""

from part_cases import part_tests

from autograder_fixtures.catalog import AP, Variant

BUGS = [
    Variant("plot_rows_columns_swapped", "attention_plot",
            [(AP, "fig.subplots(num_layers, num_heads, squeeze=False)", "fig.subplots(num_heads, num_layers, squeeze=False)"),
             (AP, "ax = axes[row, col]", "ax = axes[col, row]")],
            r"rows and columns are swapped"),
    Variant("plot_wrong_batch_element", "attention_plot",
            [(AP, "maps = [m[idx].detach()", "maps = [m[0].detach()")], r"batch element 0"),
    Variant("plot_first_head_only", "attention_plot",
            [(AP, "for col in range(num_heads):", "for col in range(1):")], r"2 x 3 grid"),
]

test_each_bug_is_diagnosed, test_each_correct_variant_scores_as_the_solution = part_tests("attention_plot", BUGS)
