"""The encoder stack and output network as one hand-written autograd function, for CPU training.

At the reverse task's size (2048 tokens of 32 features) the encoder's small operations cost more in
dispatch, autograd bookkeeping and layout copies than in arithmetic. :class:`FusedTransformer`
computes the same maths, forward and backward, with one autograd node instead of 51 and 99 ATen
calls instead of 143 (encoder block and output network of the reverse model, counted with
torch.profiler): q, k and v are strided views for the batched products instead of a chunk whose
backward is a ``cat``; the bias, residual and ReLU are applied in place; each weight gradient is
one matrix product; the three layer norms, softmax and ReLUs call the backward kernels directly.

The modules in ``attention.py`` and ``encoder.py`` stay the specification: ``TransformerPredictor``
takes this path only while training on a CPU without dropout or a mask (:func:`fused_training_applies`),
and ``tests/test_fused.py`` checks outputs and every gradient against autograd on the modules.
The notebook never takes it: students train their own modules.
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

from .attention import SDPA_MIN_CPU_SEQ_LEN
from .encoder import EncoderBlock, TransformerEncoder

#: Set to False to train through the modules (used by tests and benchmarks to compare).
ENABLED = True

# Parameters per encoder block and of the output network, in the order FusedTransformer takes them.
_BLOCK_PARAMS = 12
_OUTPUT_PARAMS = 6
# The backward kernels autograd itself calls for layer norm, softmax and ReLU (resolved overloads:
# calling the overload packet would look the overload up on every call).
_layer_norm_backward = torch.ops.aten.native_layer_norm_backward.default
_softmax_backward = torch.ops.aten._softmax_backward_data.default
_relu_backward = torch.ops.aten.threshold_backward.default


def fused_training_applies(model, x, mask) -> bool:
    """Whether ``model.forward`` may run the encoder and output network through :class:`FusedTransformer`.

    Only for a training step (grad enabled, train mode) on a CPU, without a mask or active dropout, at
    sequence lengths where the explicit attention is the CPU's faster path, and only when the model is
    built from this package's own modules (a swapped-in module keeps its own forward).
    """
    return (
        ENABLED
        and model.training
        and torch.is_grad_enabled()
        and mask is None
        and x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and x.size(1) < SDPA_MIN_CPU_SEQ_LEN
        and model.hparams.dropout == 0
        and type(model.transformer) is TransformerEncoder
        and all(type(layer) is EncoderBlock for layer in model.transformer.layers)
    )


def fused_transformer_forward(model, x):
    """``model.output_net(model.transformer(x))`` through :class:`FusedTransformer`.

    ``x``: the embedded input ``[Batch, SeqLen, model_dim]``; returns logits ``[Batch, SeqLen, num_classes]``.
    """
    params, eps = [], []
    for layer in model.transformer.layers:
        attn, mlp = layer.self_attn, layer.linear_net
        params += [attn.qkv_proj.weight, attn.qkv_proj.bias, attn.o_proj.weight, attn.o_proj.bias,
                   layer.norm1.weight, layer.norm1.bias, mlp[0].weight, mlp[0].bias, mlp[3].weight, mlp[3].bias,
                   layer.norm2.weight, layer.norm2.bias]
        eps += [layer.norm1.eps, layer.norm2.eps]
    out = model.output_net  # Linear, LayerNorm, ReLU, Dropout, Linear
    params += [out[0].weight, out[0].bias, out[1].weight, out[1].bias, out[4].weight, out[4].bias]
    eps.append(out[1].eps)
    return FusedTransformer.apply(x, model.hparams.num_heads, tuple(eps), *params)


class FusedTransformer(torch.autograd.Function):
    """Post-LN encoder blocks (no mask, no dropout) followed by Linear-LayerNorm-ReLU-Linear.

    ``forward(x [Batch, SeqLen, D], num_heads, eps, *params) -> logits [Batch, SeqLen, C]`` with
    ``params``: for each block qkv_proj, o_proj, norm1, linear_net[0], linear_net[3], norm2
    (weight and bias of each), then output_net[0], [1] and [4]. The q/k/v layout is the tutorial's:
    ``qkv_proj``'s output is ``[Batch, SeqLen, Heads, 3 * head_dim]`` with each head's q, k, v in turn.
    """

    @staticmethod
    def forward(ctx, x, num_heads, eps, *params):
        B, T, D = x.shape
        N, H, hd = B * T, num_heads, D // num_heads
        scale = 1.0 / math.sqrt(hd)
        h = x.reshape(N, D)
        saved = []
        for i in range((len(params) - _OUTPUT_PARAMS) // _BLOCK_PARAMS):
            w_qkv, b_qkv, w_o, b_o, g1, beta1, w1, b1, w2, b2, g2, beta2 = params[i * _BLOCK_PARAMS:(i + 1) * _BLOCK_PARAMS]
            qkv = torch.addmm(b_qkv, h, w_qkv.t())
            # [B*H, T, hd] each; views into qkv when H = 1 (bmm takes the row stride), copies otherwise
            q, k, v = qkv.view(B, T, H, 3, hd).permute(3, 0, 2, 1, 4).reshape(3, B * H, T, hd)
            attn = torch.softmax(torch.bmm(q, k.transpose(1, 2)).mul_(scale), dim=-1)  # [B*H, T, T]
            values = torch.bmm(attn, v).view(B, H, T, hd).transpose(1, 2).reshape(N, D)
            pre1 = torch.addmm(b_o, values, w_o.t()).add_(h)  # x + MHA(x)
            h1, mean1, rstd1 = torch.native_layer_norm(pre1, (D,), g1, beta1, eps[2 * i])
            hidden = torch.addmm(b1, h1, w1.t()).relu_()
            pre2 = torch.addmm(b2, hidden, w2.t()).add_(h1)  # h1 + MLP(h1)
            h2, mean2, rstd2 = torch.native_layer_norm(pre2, (D,), g2, beta2, eps[2 * i + 1])
            saved += [h, q, k, v, attn, values, pre1, mean1, rstd1, h1, hidden, pre2, mean2, rstd2]
            h = h2
        w3, b3, g3, beta3, w4, b4 = params[-_OUTPUT_PARAMS:]
        pre3 = torch.addmm(b3, h, w3.t())
        y3, mean3, rstd3 = torch.native_layer_norm(pre3, (D,), g3, beta3, eps[-1])
        y3.relu_()  # the layer norm's backward needs its input and statistics, not its output
        logits = torch.addmm(b4, y3, w4.t())
        ctx.num_heads, ctx.num_params = num_heads, len(params)
        ctx.save_for_backward(*params, *saved, h, pre3, mean3, rstd3, y3)
        return logits.view(B, T, -1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_logits):
        params, saved = ctx.saved_tensors[:ctx.num_params], ctx.saved_tensors[ctx.num_params:]
        B, T, C = grad_logits.shape
        D = params[-_OUTPUT_PARAMS].size(1)
        N, H, hd = B * T, ctx.num_heads, D // ctx.num_heads
        scale = 1.0 / math.sqrt(hd)
        grads = [None] * len(params)
        layer_norm_backward = _layer_norm_backward
        all3 = [True, True, True]

        # Output network.
        h, pre3, mean3, rstd3, y3 = saved[-5:]
        w3, _, g3, beta3, w4, _ = params[-_OUTPUT_PARAMS:]
        g = grad_logits.reshape(N, C)
        grads[-2], grads[-1] = g.t() @ y3, g.sum(0)
        dy3 = _relu_backward(g @ w4, y3, 0)
        dpre3, grads[-4], grads[-3] = layer_norm_backward(dy3, pre3, (D,), mean3, rstd3, g3, beta3, all3)
        grads[-6], grads[-5] = dpre3.t() @ h, dpre3.sum(0)
        dh = dpre3 @ w3

        # Encoder blocks, last first.
        for i in reversed(range((len(params) - _OUTPUT_PARAMS) // _BLOCK_PARAMS)):
            p0 = i * _BLOCK_PARAMS
            w_qkv, _, w_o, _, g1, beta1, w1, _, w2, _, g2, beta2 = params[p0:p0 + _BLOCK_PARAMS]
            h, q, k, v, attn, values, pre1, mean1, rstd1, h1, hidden, pre2, mean2, rstd2 = saved[14 * i:14 * (i + 1)]
            dpre2, grads[p0 + 10], grads[p0 + 11] = layer_norm_backward(dh, pre2, (D,), mean2, rstd2, g2, beta2, all3)
            grads[p0 + 8], grads[p0 + 9] = dpre2.t() @ hidden, dpre2.sum(0)
            dhidden = _relu_backward(dpre2 @ w2, hidden, 0)
            grads[p0 + 6], grads[p0 + 7] = dhidden.t() @ h1, dhidden.sum(0)
            dh1 = torch.addmm(dpre2, dhidden, w1)  # residual + MLP branch
            dpre1, grads[p0 + 4], grads[p0 + 5] = layer_norm_backward(dh1, pre1, (D,), mean1, rstd1, g1, beta1, all3)
            grads[p0 + 2], grads[p0 + 3] = dpre1.t() @ values, dpre1.sum(0)
            dvalues = (dpre1 @ w_o).view(B, T, H, hd).transpose(1, 2).reshape(B * H, T, hd)
            dscores = _softmax_backward(torch.bmm(dvalues, v.transpose(1, 2)), attn, -1, attn.dtype)
            dscores.mul_(scale)
            dqkv = torch.stack([torch.bmm(dscores, k), torch.bmm(dscores.transpose(1, 2), q),
                                torch.bmm(attn.transpose(1, 2), dvalues)], dim=2)  # [B*H, T, 3, hd]
            dqkv = dqkv.view(B, H, T, 3 * hd).transpose(1, 2).reshape(N, 3 * D)  # qkv_proj's layout (a view if H = 1)
            grads[p0], grads[p0 + 1] = dqkv.t() @ h, dqkv.sum(0)
            dh = torch.addmm(dpre1, dqkv, w_qkv)  # residual + attention branch
        return (dh.view(B, T, D), None, None, *grads)
