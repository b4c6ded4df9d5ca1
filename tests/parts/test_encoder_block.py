"""The ``encoder_block`` part's bugs (its share of ``catalog.BUGS``) and its test (``part_cases``). What it
checks is ``parts/encoder_block.py`` and ``worker/probes/encoder_block.py``: a change there comes with one here."""

from part_cases import part_tests

from autograder_fixtures.catalog import BLK, Variant

BUGS = [
    Variant("block_no_attention_residual", "encoder_block",
            [(BLK, "x = self.norm1(x + self.dropout(self.self_attn(x, mask=mask)))",
              "x = self.norm1(self.dropout(self.self_attn(x, mask=mask)))")],
            r"residual connection around the attention is missing"),
    Variant("block_no_mlp_residual", "encoder_block",
            [(BLK, "x = self.norm2(x + self.dropout(self.linear_net(x)))", "x = self.norm2(self.dropout(self.linear_net(x)))")],
            r"residual connection around the MLP is missing"),
    Variant("block_pre_ln", "encoder_block",
            [(BLK, "x = self.norm1(x + self.dropout(self.self_attn(x, mask=mask)))",
              "x = x + self.dropout(self.self_attn(self.norm1(x), mask=mask))"),
             (BLK, "x = self.norm2(x + self.dropout(self.linear_net(x)))", "x = x + self.dropout(self.linear_net(self.norm2(x)))")],
            r"pre-LN"),
    Variant("block_mask_not_passed", "encoder_block",
            [(BLK, "self.self_attn(x, mask=mask)", "self.self_attn(x)")], r"pass mask=mask to self.self_attn"),
    # from the notebook's own bug list, before its hidden tests became the grader's (issue 21, item 3)
    Variant("block_mlp_skipped", "encoder_block",
            [(BLK, "x = self.norm2(x + self.dropout(self.linear_net(x)))", "x = self.norm2(x)")], r"linear_net\) is not applied"),
]

test_each_bug_is_diagnosed, test_each_correct_variant_scores_as_the_solution = part_tests("encoder_block", BUGS)
