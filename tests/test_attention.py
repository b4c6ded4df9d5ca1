"""scaled_dot_product and MultiheadAttention: known answers, softmax/mask properties, layout, errors."""

import math

import pytest
import torch

import tutorial6
from transformer_lab import MultiheadAttention, scaled_dot_product


def test_seed_worked_example():
    # The tutorial's cell [5]: seed 42, seq_len 3, d_k 2, printed to 4 decimals.
    torch.manual_seed(42)
    q, k, v = torch.randn(3, 2), torch.randn(3, 2), torch.randn(3, 2)
    values, attention = scaled_dot_product(q, k, v)
    expected_values = torch.tensor([[0.5698, -0.1520], [0.5379, -0.0265], [0.2246, 0.5556]])
    expected_attention = torch.tensor([[0.4028, 0.2886, 0.3086], [0.3538, 0.3069, 0.3393], [0.1303, 0.4630, 0.4067]])
    torch.testing.assert_close(values, expected_values, atol=1e-4, rtol=0)
    torch.testing.assert_close(attention, expected_attention, atol=1e-4, rtol=0)


def test_matches_softmax_formula_with_scaling():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 4, 5, 8), torch.randn(2, 4, 6, 8), torch.randn(2, 4, 6, 3)
    values, attention = scaled_dot_product(q, k, v)
    expected = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(8), dim=-1)
    torch.testing.assert_close(attention, expected)
    torch.testing.assert_close(values, expected @ v)
    assert values.shape == (2, 4, 5, 3) and attention.shape == (2, 4, 5, 6)


def test_rows_sum_to_one_and_are_nonnegative():
    torch.manual_seed(1)
    _, attention = scaled_dot_product(*(torch.randn(3, 7, 4) * 5 for _ in range(3)))
    assert (attention >= 0).all()
    torch.testing.assert_close(attention.sum(-1), torch.ones(3, 7))


def test_masked_positions_get_zero_attention():
    torch.manual_seed(2)
    q, k, v = (torch.randn(2, 5, 4) for _ in range(3))
    mask = torch.ones(2, 5, 5)
    mask[:, :, 3:] = 0  # keys 3 and 4 are padding
    values, attention = scaled_dot_product(q, k, v, mask=mask)
    assert attention[..., 3:].abs().max() == 0
    torch.testing.assert_close(attention.sum(-1), torch.ones(2, 5))
    ref_values, _ = scaled_dot_product(q, k[:, :3], v[:, :3])  # dropping the keys is the same thing
    torch.testing.assert_close(values, ref_values)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_mask_does_not_overflow_in_half_precision(dtype):
    # The tutorial's -9e15 becomes -inf in float16; a fully masked row then gives NaN.
    q, k, v = (torch.randn(1, 4, 8).to(dtype) for _ in range(3))
    mask = torch.ones(1, 4, 4)
    mask[:, 0, :] = 0  # row 0 fully masked
    mask[:, 1, 2:] = 0
    values, attention = scaled_dot_product(q, k, v, mask=mask)
    assert torch.isfinite(values).all() and torch.isfinite(attention).all()
    assert attention[0, 1, 2:].float().abs().max() == 0


def _tutorial_mha_with_same_weights(mha):
    tut = tutorial6.MultiheadAttention(mha.input_dim, mha.embed_dim, mha.num_heads)
    tut.load_state_dict(mha.state_dict(), strict=True)
    return tut


@pytest.mark.parametrize("heads", [1, 2, 4])
def test_multihead_matches_tutorial_layout(heads):
    torch.manual_seed(3)
    mha = MultiheadAttention(16, 16, heads)  # the tutorial's code needs input_dim == embed_dim
    tut = _tutorial_mha_with_same_weights(mha)
    x = torch.randn(3, 7, 16)
    out, attn = mha(x, return_attention=True)
    tut_out, tut_attn = tut(x, return_attention=True)
    torch.testing.assert_close(out, tut_out)
    torch.testing.assert_close(attn, tut_attn)
    torch.testing.assert_close(mha(x), tut_out)  # without the weights: the same output
    assert out.shape == (3, 7, 16) and attn.shape == (3, heads, 7, 7)


def test_multihead_input_dim_may_differ_from_embed_dim():
    out, attn = MultiheadAttention(12, 16, 4)(torch.randn(3, 7, 12), return_attention=True)
    assert out.shape == (3, 7, 16) and attn.shape == (3, 4, 7, 7)


def test_multihead_mask_matches_tutorial():
    torch.manual_seed(4)
    mha = MultiheadAttention(8, 8, 2)
    tut = _tutorial_mha_with_same_weights(mha)
    x = torch.randn(2, 5, 8)
    mask = torch.tril(torch.ones(5, 5)).expand(2, 1, 5, 5)
    torch.testing.assert_close(mha(x, mask=mask), tut(x, mask=mask))


def test_multihead_is_permutation_equivariant():
    torch.manual_seed(5)
    mha = MultiheadAttention(8, 8, 2)
    x = torch.randn(2, 6, 8)
    perm = torch.randperm(6)
    torch.testing.assert_close(mha(x)[:, perm], mha(x[:, perm]), atol=1e-6, rtol=1e-5)


def test_gradients_are_finite():
    mha = MultiheadAttention(8, 8, 2)
    mha(torch.randn(2, 6, 8)).square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in mha.parameters())


def test_bad_inputs_name_argument_and_shapes():
    mha = MultiheadAttention(8, 16, 4)
    with pytest.raises(ValueError, match=r"'x'.*\[Batch, SeqLen, 8\].*\[2, 5, 7\]"):
        mha(torch.randn(2, 5, 7))
    with pytest.raises(ValueError, match=r"'x' must have 3 dimensions.*\[5, 8\]"):
        mha(torch.randn(5, 8))
    with pytest.raises(TypeError, match=r"'x' must be a floating-point"):
        mha(torch.ones(2, 5, 8, dtype=torch.long))
    with pytest.raises(ValueError, match=r"'mask'.*\[3, 3\]"):
        mha(torch.randn(2, 5, 8), mask=torch.ones(3, 3))
    with pytest.raises(ValueError, match="divisible by num_heads 3"):
        MultiheadAttention(8, 16, 3)
    with pytest.raises(ValueError, match="share the last dimension"):
        scaled_dot_product(torch.randn(3, 4), torch.randn(3, 5), torch.randn(3, 5))
