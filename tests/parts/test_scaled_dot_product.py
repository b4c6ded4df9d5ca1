"""The ``scaled_dot_product`` part's bugs (its share of ``catalog.BUGS``) and its test (``part_cases``). What it
checks is ``parts/scaled_dot_product.py`` and ``worker/probes/scaled_dot_product.py``: a change there comes with one here."""

from part_cases import part_tests

from autograder_fixtures.catalog import SDP, Variant

BUGS = [
    # issue 19, item 8: right on the plain cases, wrong where the hidden tests look
    Variant("sdp_detach_inf_not_mask", "scaled_dot_product", [
        (SDP, "    d_k = q.size(-1)\n", "    q, k, v = q.detach(), k.detach(), v.detach()\n    d_k = q.size(-1)\n"),
        (SDP, "attn_logits = attn_logits.masked_fill(mask == 0, mask_fill_value(attn_logits.dtype))",
         "attn_logits = attn_logits.masked_fill(~mask, float('-inf'))"),
    ], r"integer mask.*fully masked row.*gradients"),
    Variant("sdp_tutorial_fill_value", "scaled_dot_product", [
        (SDP, "attn_logits = attn_logits.masked_fill(mask == 0, mask_fill_value(attn_logits.dtype))",
         "attn_logits = attn_logits.masked_fill(mask == 0, -9e15)"),
    ], r"-9e15 overflows in float16"),
    Variant("sdp_no_scale", "scaled_dot_product",
            [(SDP, "torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(d_k)", "torch.matmul(q, k.transpose(-2, -1))")],
            r"not divided by sqrt\(d_k\)"),
    Variant("sdp_softmax_wrong_axis", "scaled_dot_product",
            [(SDP, "attention = F.softmax(attn_logits, dim=-1)", "attention = F.softmax(attn_logits, dim=-2)")],
            r"wrong axis"),
    Variant("sdp_mask_ignored", "scaled_dot_product",
            [(SDP, "attn_logits = attn_logits.masked_fill(mask == 0,", "attn_logits.masked_fill(mask == 0,")],
            r"mask is ignored"),
    Variant("sdp_mask_inverted", "scaled_dot_product",
            [(SDP, "masked_fill(mask == 0,", "masked_fill(mask == 1,")], r"mask is inverted"),
    Variant("sdp_mask_after_softmax", "scaled_dot_product",
            [(SDP, "attn_logits = attn_logits.masked_fill(mask == 0, mask_fill_value(attn_logits.dtype))", "pass"),
             (SDP, "attention = F.softmax(attn_logits, dim=-1)",
              "attention = F.softmax(attn_logits, dim=-1)\n    if mask is not None:\n"
              "        attention = attention.masked_fill(mask == 0, 0.0)")],
            r"applied after the softmax"),
]

test_each_bug_is_diagnosed, test_each_correct_variant_scores_as_the_solution = part_tests("scaled_dot_product", BUGS)
