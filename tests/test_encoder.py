"""EncoderBlock and TransformerEncoder: shapes, post-LN residual structure, equivariance, attention maps."""

import torch

import tutorial6
from transformer_lab import EncoderBlock, TransformerEncoder


def _pair(num_layers=2, dim=16, heads=4):
    torch.manual_seed(0)
    ours = TransformerEncoder(num_layers=num_layers, input_dim=dim, num_heads=heads, dim_feedforward=2 * dim, dropout=0.0)
    tut = tutorial6.TransformerEncoder(num_layers=num_layers, input_dim=dim, num_heads=heads, dim_feedforward=2 * dim)
    tut.load_state_dict(ours.state_dict(), strict=True)
    return ours.eval(), tut.eval()


def test_block_shape_and_post_layernorm():
    torch.manual_seed(0)
    block = EncoderBlock(input_dim=16, num_heads=4, dim_feedforward=32).eval()
    x = torch.randn(3, 5, 16)
    y = block(x)
    assert y.shape == x.shape
    # Post-LN: the output of norm2 has zero mean and unit variance per element (default affine init).
    torch.testing.assert_close(y.mean(-1), torch.zeros(3, 5), atol=1e-5, rtol=0)
    # The residual is there: the same formula written out by hand.
    h = block.norm1(x + block.self_attn(x))
    torch.testing.assert_close(y, block.norm2(h + block.linear_net(h)))


def test_encoder_matches_tutorial_without_mask():
    ours, tut = _pair()
    x = torch.randn(2, 7, 16)
    torch.testing.assert_close(ours(x), tut(x), atol=1e-5, rtol=1e-5)
    for a, b in zip(ours.get_attention_maps(x), tut.get_attention_maps(x)):
        torch.testing.assert_close(a, b)


def test_attention_maps_use_the_mask_in_every_layer():
    ours, _ = _pair(num_layers=3)
    x = torch.randn(2, 6, 16)
    mask = torch.ones(2, 1, 6, 6)
    mask[..., 4:] = 0
    maps = ours.get_attention_maps(x, mask=mask)
    assert len(maps) == 3 and all(m.shape == (2, 4, 6, 6) for m in maps)
    for m in maps:  # the tutorial's version leaks attention to padding after layer 1
        assert m[..., 4:].abs().max() == 0
    # and each map is what that layer sees in the masked forward pass
    h = x
    for layer, m in zip(ours.layers, maps):
        _, expected = layer.self_attn(h, mask=mask, return_attention=True)
        torch.testing.assert_close(m, expected)
        h = layer(h, mask=mask)


def test_encoder_is_permutation_equivariant_without_positional_encoding():
    ours, _ = _pair()
    x = torch.randn(4, 9, 16)
    perm = torch.randperm(9)
    torch.testing.assert_close(ours(x)[:, perm], ours(x[:, perm]), atol=1e-5, rtol=1e-5)


def test_dropout_active_only_in_training():
    torch.manual_seed(0)
    enc = TransformerEncoder(num_layers=1, input_dim=8, num_heads=2, dim_feedforward=16, dropout=0.5)
    x = torch.randn(2, 4, 8)
    enc.train()
    assert not torch.allclose(enc(x), enc(x))
    enc.eval()
    torch.testing.assert_close(enc(x), enc(x))
