"""What the worker runs for the ``positional_encoding`` part: the sinusoid table, and the module's
buffer and forward pass."""

import torch

from ..harness import _EQUAL, as_tensor, need, step


def probe(ns, inp, out):
    def table():
        fn = need(ns, "sinusoidal_table")
        out["table"] = as_tensor(fn(int(inp["max_len"]), int(inp["d_model"])), "sinusoidal_table(...)")

    step(out, "table", table)

    def module():
        cls = need(ns, "PositionalEncoding")
        pe = cls(d_model=int(inp["d_model"]), max_len=int(inp["max_len"]))
        buf = getattr(pe, "pe", None)
        out["pe"] = as_tensor(buf, "PositionalEncoding.pe")
        out["pe_in_state_dict"] = float(any(k.split(".")[-1] == "pe" for k in pe.state_dict()))
        with torch.no_grad():
            x = inp["x"].clone()
            y = pe(x)
            out["out"] = as_tensor(y, "forward(x)")
            out["input_unchanged"] = float(_EQUAL(x, inp["x"]))
            out["out_short"] = as_tensor(pe(inp["x_short"].clone()), "forward(x)")

    step(out, "module", module)
