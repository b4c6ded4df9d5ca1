"""The ``positional_encoding`` part (Positional encoding): the inputs the grader chooses, the checks of what
the worker returns, and the diagnosis of a failure."""

from __future__ import annotations

import math

import torch

from .base import PartResult, _gen, close, describe, errors_of, ref


def inputs_positional_encoding(seed):
    """The table's size, and two seeded inputs for ``PositionalEncoding.forward`` (full and short)."""
    g = _gen(seed)
    return {
        "d_model": 48,
        "max_len": 96,
        "x": torch.randn(3, 20, 48, generator=g),
        "x_short": torch.randn(2, 7, 48, generator=g),
    }


def _pe_diagnose(got, d, n):
    exp = ref().positional.sinusoidal_table(n, d)
    if not isinstance(got, torch.Tensor) or got.reshape(-1).numel() != exp.numel():
        return f"the table must be [max_len, d_model] = [{n}, {d}] (the buffer [1, {n}, {d}])"
    got = got.reshape(n, d)
    swapped = exp.clone()
    position = torch.arange(n, dtype=torch.float).unsqueeze(1)
    div = torch.exp(torch.arange(0, d, 2).float() * (-math.log(10000.0) / d))
    swapped[:, 0::2], swapped[:, 1::2] = torch.cos(position * div), torch.sin(position * div)
    if close(got, swapped, 1e-4, 1e-5):
        return "sin and cos are swapped: even dimensions (0, 2, ...) get sin, odd ones cos"
    if close(got[:, 0::2], exp[:, 0::2], 1e-4, 1e-5):
        return "the odd (cos) dimensions are wrong"
    if close(got[:, 1::2], exp[:, 1::2], 1e-4, 1e-5):
        return "the even (sin) dimensions are wrong"
    return "PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(pos / 10000^(2i/d))"


def _forward_diagnose(inp, out):
    if close(out.get("out"), inp["x"]):
        return (
            "forward returns its input unchanged: the sum x + pe[:, :T] is computed but not returned/assigned"
        )
    if out.get("input_unchanged") == 0.0:
        return "forward modifies its input in place (x += ...); return x + self.pe[:, : x.size(1)] instead"
    return "return x + self.pe[:, : x.size(1)] (slice to the sequence length)"


def _forward_check(pr, inp, out, base):
    """``forward`` adds the module's own buffer (``base``), for any length, leaving its input alone."""
    e1, e2 = inp["x"] + base[: inp["x"].shape[1]], inp["x_short"] + base[: inp["x_short"].shape[1]]
    pr.check(
        "forward(x) returns x + pe[:, :T] for any T <= max_len, without changing x",
        weight=0.75,
        ok=close(out.get("out"), e1, 1e-4, 1e-5)
        and close(out.get("out_short"), e2, 1e-4, 1e-5)
        and out.get("input_unchanged") == 1.0,
        expected="x + pe[:, :T]",
        got=errors_of(out, "module") or describe(out.get("out"), e1),
        hint=lambda: _forward_diagnose(inp, out),
    )


def grade_positional_encoding(inp, out, points):
    """The table (diagnosed against swapped sin/cos, wrong exponents), the module's buffer, its
    forward pass, and that the buffer is not persistent. The buffer and forward are judged against
    the student's own table, so a wrong table costs once."""
    pr = PartResult("positional_encoding", points)
    d, n = inp["d_model"], inp["max_len"]
    exp = ref().positional.sinusoidal_table(n, d)
    pr.check(
        f"sinusoidal_table({n}, {d}) equals sin/cos(pos / 10000^(2i/d)) (even dims sin, odd dims cos)",
        weight=0.75,
        ok=close(out.get("table"), exp, 1e-4, 1e-5),
        expected=f"[{n}, {d}] table",
        got=errors_of(out, "table") or describe(out.get("table"), exp),
        hint=lambda: _pe_diagnose(out.get("table"), d, n),
    )
    own = out.get("table")
    own = own if isinstance(own, torch.Tensor) and own.shape == exp.shape else exp
    shaped = isinstance(out.get("pe"), torch.Tensor) and tuple(out["pe"].shape) == (1, n, d)
    pr.check(
        "PositionalEncoding.pe is the table sinusoidal_table returns, shape [1, max_len, d_model]",
        weight=0.25,
        ok=close(out.get("pe"), own.unsqueeze(0), 1e-4, 1e-5),
        expected=f"[1, {n}, {d}]",
        got=errors_of(out, "module") or describe(out.get("pe"), own.unsqueeze(0)),
        hint=lambda: "register sinusoidal_table(max_len, d_model) as the buffer 'pe'"
        + ("" if shaped else " with unsqueeze(0)"),
    )
    _forward_check(pr, inp, out, out["pe"][0] if shaped else own)
    in_state = out.get("pe_in_state_dict")
    pr.check(
        "pe is a non-persistent buffer (not in the state_dict, so tutorial checkpoints load strictly)",
        weight=0.25,
        ok=in_state == 0.0,
        expected="not in state_dict",
        got="in state_dict" if in_state == 1.0 else (errors_of(out, "module") or "not run"),
        hint="register_buffer('pe', pe, persistent=False)",
    )
    return pr
