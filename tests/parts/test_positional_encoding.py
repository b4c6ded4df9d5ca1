"""The ``positional_encoding`` part's bugs (its share of ``catalog.BUGS``) and its test (``part_cases``). What it
checks is ``parts/positional_encoding.py`` and ``worker/probes/positional_encoding.py``: a change there comes with one here."""

from part_cases import part_tests

from autograder_fixtures.catalog import PE, Variant

BUGS = [
    Variant("pe_sin_cos_swapped", "positional_encoding",
            [(PE, "pe[:, 0::2] = torch.sin(position * div_term)", "pe[:, 0::2] = torch.cos(position * div_term)"),
             (PE, "pe[:, 1::2] = torch.cos(position * div_term[: d_model // 2])", "pe[:, 1::2] = torch.sin(position * div_term[: d_model // 2])")],
            r"sin and cos are swapped"),
    Variant("pe_result_discarded", "positional_encoding",
            [(PE, "return x + self.pe[:, : x.size(1)].to(x.dtype)", "x + self.pe[:, : x.size(1)].to(x.dtype)\n        return x")],
            r"returns its input unchanged"),
    Variant("pe_wrong_base", "positional_encoding", [(PE, "-math.log(10000.0)", "-math.log(1000.0)")], r"10000\^\(2i/d\)"),
]

test_each_bug_is_diagnosed, test_each_correct_variant_scores_as_the_solution = part_tests("positional_encoding", BUGS)
