"""The package's CPU training paths compute exactly what the modules compute.

``fused.FusedTransformer`` (hand-written forward and backward of the encoder stack and output
network) against autograd through the modules; ``flat_params`` (one flat parameter and gradient
buffer for Adam and clipping) against Adam on the separate parameters; and the batch sampler.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from transformer_lab import BatchIndexSampler, ReversePredictor, TransformerPredictor, fused
from transformer_lab.flat_params import flatten_parameters, zero_flat_grad
from transformer_lab.predictor import make_adam


def make_model(num_layers=1, num_heads=1, model_dim=32, num_classes=10, input_dim=10, dropout=0.0,
               dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    model = TransformerPredictor(input_dim=input_dim, model_dim=model_dim, num_classes=num_classes,
                                 num_heads=num_heads, num_layers=num_layers, lr=1e-3, warmup=5, max_iters=50,
                                 dropout=dropout).to(dtype)
    with torch.no_grad():  # non-trivial norms, so their gradients are tested too
        for name, p in model.named_parameters():
            if "norm" in name or "output_net.1" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model.train()


def grads_of(model, x, out_grad, forward):
    model.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    out = forward(model, x)
    out.backward(out_grad)
    return out.detach(), x.grad, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def modules_forward(model, x):
    return model.output_net(model.transformer(x))


@pytest.mark.parametrize("layers,heads,dim,classes,seq,dtype,tol", [
    (1, 1, 32, 10, 16, torch.float32, 2e-5),  # the reverse task
    (2, 4, 32, 7, 5, torch.float64, 1e-12),
    (3, 2, 16, 1, 9, torch.float64, 1e-12),  # one logit per element, as the anomaly task
])
def test_fused_forward_and_every_gradient_match_autograd_on_the_modules(layers, heads, dim, classes, seq, dtype, tol):
    model = make_model(layers, heads, dim, classes, dtype=dtype)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, seq, dim, generator=g, dtype=dtype)
    out_grad = torch.randn(6, seq, classes, generator=g, dtype=dtype)
    out_f, dx_f, grads_f = grads_of(model, x, out_grad, fused.fused_transformer_forward)
    out_m, dx_m, grads_m = grads_of(model, x, out_grad, modules_forward)
    assert out_f.shape == (6, seq, classes)
    torch.testing.assert_close(out_f, out_m, atol=tol, rtol=tol)
    torch.testing.assert_close(dx_f, dx_m, atol=tol, rtol=tol)
    assert grads_f.keys() == grads_m.keys() and len(grads_m) == 12 * layers + 6
    for name in grads_m:
        torch.testing.assert_close(grads_f[name], grads_m[name], atol=tol, rtol=tol, msg=name)


def test_fused_function_passes_gradcheck():
    model = make_model(2, 2, 8, 3, input_dim=8, dtype=torch.float64)
    x = torch.randn(2, 4, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fused.fused_transformer_forward.__get__(model), (x,), eps=1e-6, atol=1e-5)


def test_training_forward_takes_the_fused_path_only_where_it_applies():
    model = make_model()
    x = torch.randn(4, 16, 10)

    def path(m, *args, **kwargs):
        out = m(*args, **kwargs)
        return type(out.grad_fn).__name__ if out.grad_fn is not None else None

    assert path(model, x) == "FusedTransformerBackward"
    assert path(model, x, mask=torch.ones(16, 16)) != "FusedTransformerBackward"
    with torch.no_grad():
        assert path(model, x) is None
    assert path(model.eval(), x) != "FusedTransformerBackward"
    model.train()
    assert path(make_model(dropout=0.1), x) != "FusedTransformerBackward"
    swapped = make_model()
    swapped.transformer.layers[0] = type("MyBlock", (type(swapped.transformer.layers[0]),), {})(32, 1, 64)
    assert path(swapped, x) != "FusedTransformerBackward"  # a user's own block keeps its own forward
    fused.ENABLED = False
    try:
        assert path(model, x) != "FusedTransformerBackward"
    finally:
        fused.ENABLED = True


def test_reverse_loss_is_the_same_through_both_paths():
    torch.manual_seed(0)
    model = ReversePredictor(input_dim=10, model_dim=32, num_classes=10, num_heads=1, num_layers=1, lr=5e-4,
                             warmup=50, max_iters=100).train()
    tokens = torch.randint(10, (8, 16), generator=torch.Generator().manual_seed(2))
    model.log_metrics = lambda *a, **k: None
    losses = []
    for enabled in (True, False):
        fused.ENABLED = enabled
        try:
            model.zero_grad()
            loss, acc = model._calculate_loss((tokens, tokens.flip(-1)))
            loss.backward()
            losses.append((loss.item(), acc.item(), model.input_net[1].weight.grad.clone()))
        finally:
            fused.ENABLED = True
    assert losses[0][:2] == pytest.approx(losses[1][:2], abs=1e-6)
    torch.testing.assert_close(losses[0][2], losses[1][2], atol=1e-6, rtol=1e-5)


# --- flat parameters ------------------------------------------------------------------------

def adam_steps(model, flat: bool, steps=6):
    tokens = torch.randint(10, (8, 16), generator=torch.Generator().manual_seed(3))
    labels = tokens.flip(-1)
    one_hot = nn.functional.one_hot(tokens, 10).float()
    if flat:
        buffer = flatten_parameters(model)
        params, zero = [buffer], lambda: zero_flat_grad(buffer)
    else:
        params = list(model.parameters())
        zero = lambda: [setattr(p, "grad", None) for p in params]  # noqa: E731
    optimizer = make_adam(params, lr=1e-2)
    for _ in range(steps):
        zero()
        logits = model(one_hot)
        nn.functional.cross_entropy(logits.transpose(1, 2), labels).backward()
        torch.nn.utils.clip_grad_norm_(params, 0.5)  # small, so clipping is active
        optimizer.step()
    return model


def key_bias_mask(name, value, heads=2, head_dim=16):
    """True on the key biases: their true gradient is 0 (softmax ignores a shift shared by a query's
    logits), so Adam, which divides by the gradient's size, turns rounding noise into full steps there."""
    mask = torch.zeros_like(value, dtype=torch.bool)
    if name.endswith("qkv_proj.bias"):
        mask.view(heads, 3, head_dim)[:, 1] = True
    return mask


def test_flat_parameters_train_exactly_like_separate_ones():
    flat, plain = adam_steps(make_model(2, 2), True), adam_steps(make_model(2, 2), False)
    moved = 0
    for (name, a), (_, b) in zip(flat.state_dict().items(), plain.state_dict().items()):
        keep = ~key_bias_mask(name, a)
        torch.testing.assert_close(a[keep], b[keep], atol=1e-6, rtol=1e-6, msg=name)
        moved += not torch.equal(a, make_model(2, 2).state_dict()[name])
    assert moved > 20  # the steps did change the weights


def test_flat_parameters_keep_names_and_checkpoints():
    model = make_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    buffer = flatten_parameters(model)
    assert buffer.numel() == sum(p.numel() for p in model.parameters())
    assert [n for n, _ in model.named_parameters()] == list(before)  # no new parameter registered
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name])
    fresh = make_model(seed=1)
    fresh.load_state_dict(model.state_dict(), strict=True)
    assert all(torch.equal(a, b) for a, b in zip(fresh.parameters(), model.parameters()))


def test_zero_flat_grad_reattaches_gradients_dropped_by_zero_grad():
    model = make_model()
    buffer = flatten_parameters(model)
    model.zero_grad(set_to_none=True)  # what a stray optimizer.zero_grad() or model.zero_grad() does
    zero_flat_grad(buffer)
    model(torch.randn(2, 16, 10)).sum().backward()
    assert buffer.grad.abs().sum() > 0
    first = next(model.parameters())
    assert torch.equal(buffer.grad[:first.numel()], first.grad.reshape(-1))


def test_flat_buffer_detects_a_model_moved_after_flattening():
    model = make_model()
    buffer = flatten_parameters(model)
    model.double()
    with pytest.raises(RuntimeError, match="moved with .to"):
        zero_flat_grad(buffer)


def test_flatten_rejects_mixed_dtypes():
    model = make_model()
    model.output_net.double()
    with pytest.raises(ValueError, match="share one device and dtype"):
        flatten_parameters(model)


# --- batches --------------------------------------------------------------------------------

@pytest.mark.parametrize("drop_last,expected", [(False, [4, 4, 2]), (True, [4, 4])])
def test_batch_index_sampler_sizes(drop_last, expected):
    sampler = BatchIndexSampler(10, 4, drop_last=drop_last)
    batches = list(sampler)
    assert len(sampler) == len(expected) and [len(b) for b in batches] == expected
    assert torch.equal(torch.cat(batches), torch.arange(sum(expected)))


def test_batch_index_sampler_shuffles_each_epoch_reproducibly():
    sampler = BatchIndexSampler(100, 32, shuffle=True, generator=torch.Generator().manual_seed(0))
    first, second = torch.cat(list(sampler)), torch.cat(list(sampler))
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(100))
    assert not torch.equal(first, second)
    again = BatchIndexSampler(100, 32, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.cat(list(again)), first)
    with pytest.raises(ValueError, match="batch_size"):
        BatchIndexSampler(10, 0)
