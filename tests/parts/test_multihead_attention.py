"""The ``multihead_attention`` part's bugs (its share of ``catalog.BUGS``) and its test (``part_cases``). What it
checks is ``parts/multihead_attention.py`` and ``worker/probes/multihead_attention.py``: a change there comes with one here."""

from part_cases import part_tests

from autograder_fixtures.catalog import MHA, Variant

BUGS = [
    # issue 19, item 9: separate q/k/v layers lose MHA's name points, and nothing in the parts built on it
    Variant("mha_separate_qkv_layers", "multihead_attention", [
        (MHA, "        self.qkv_proj = nn.Linear(input_dim, 3 * embed_dim)\n",
         "        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(input_dim, embed_dim) for _ in range(3))\n"),
        (MHA, "        nn.init.xavier_uniform_(self.qkv_proj.weight)\n        nn.init.zeros_(self.qkv_proj.bias)\n",
         "        for lin in (self.q_proj, self.k_proj, self.v_proj):\n            nn.init.xavier_uniform_(lin.weight)\n"
         "            nn.init.zeros_(lin.bias)\n"),
        (MHA, "qkv = self.qkv_proj(x).reshape(B, T, self.num_heads, 3 * self.head_dim)\n",
         "heads = lambda t: t.reshape(B, T, self.num_heads, self.head_dim).transpose(1, 2)\n"),
        (MHA, "q, k, v = qkv.transpose(1, 2).chunk(3, dim=-1)  # each (B, nh, T, hs)",
         "q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))"),
    ], r"parameter names|qkv_proj"),
    Variant("mha_heads_merged_wrong", "multihead_attention",
            [(MHA, "values = values.transpose(1, 2).reshape(B, T, self.embed_dim)", "values = values.reshape(B, T, self.embed_dim)")],
            r"merged without moving the head axis"),
    Variant("mha_no_output_projection", "multihead_attention",
            [(MHA, "o = self.o_proj(values)", "o = values")], r"o_proj is not applied"),
    Variant("mha_stacked_qkv_layout", "multihead_attention",
            [(MHA, "q, k, v = qkv.transpose(1, 2).chunk(3, dim=-1)",
              "q, k, v = (t.reshape(B, T, self.num_heads, self.head_dim).transpose(1, 2) "
              "for t in self.qkv_proj(x).chunk(3, dim=-1))")],
            r"split over the whole projection"),
    Variant("mha_mask_not_passed", "multihead_attention",
            [(MHA, "values, attention = scaled_dot_product(q, k, v, mask=mask)", "values, attention = scaled_dot_product(q, k, v)")],
            r"pass mask to scaled_dot_product"),
]

test_each_bug_is_diagnosed, test_each_correct_variant_scores_as_the_solution = part_tests("multihead_attention", BUGS)
