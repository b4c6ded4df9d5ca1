"""What the worker runs for the ``scaled_dot_product`` part: the plain, masked, rectangular and padded
cases, then 0/1 integer and float masks, a fully masked row, float16 and gradients."""

import torch

from ..harness import as_tensor, need, step


def probe(ns, inp, out):
    sdp = need(ns, "scaled_dot_product")
    for case in ("plain", "mask", "rect", "pad"):

        def run(case=case):
            with torch.no_grad():
                q, k, v = (inp[f"{case}_{n}"].clone() for n in "qkv")
                mask = inp.get(f"{case}_mask")
                res = sdp(q, k, v, mask=mask.clone()) if mask is not None else sdp(q, k, v)
                if not isinstance(res, (tuple, list)) or len(res) != 2:
                    raise TypeError(f"must return (values, attention), got {type(res).__name__}")
                out[f"{case}_values"] = as_tensor(res[0], "values")
                out[f"{case}_attention"] = as_tensor(res[1], "attention")

        step(out, case, run)
    _sdp_beyond_the_basics(sdp, inp, out)


def _sdp_beyond_the_basics(sdp, inp, out):
    """What the hidden tests ask beyond the plain cases: 0/1 integer and float masks, a fully masked
    row, float16 inputs, and gradients that reach q, k and v."""
    for case, cast in (("intmask", torch.long), ("floatmask", torch.float32), ("full", None)):

        def masked(case=case, cast=cast):
            src = "pad" if case == "full" else "mask"
            q, k, v = (inp[f"{src}_{n}"].clone() for n in "qkv")
            mask = inp["full_mask"].clone() if case == "full" else inp["mask_mask"].clone().to(cast)
            with torch.no_grad():
                res = sdp(q, k, v, mask=mask)
            out[f"{case}_values"] = as_tensor(res[0], "values")
            out[f"{case}_attention"] = as_tensor(res[1], "attention")

        step(out, case, masked)

    def half():
        q, k, v = (inp[f"pad_{n}"].clone().half() for n in "qkv")
        with torch.no_grad():
            res = sdp(q, k, v, mask=inp["pad_mask"].clone())
        out["half_values"] = as_tensor(res[0], "values")
        out["half_attention"] = as_tensor(res[1], "attention")

    step(out, "half", half)

    def grad():
        q, k, v = (inp[f"pad_{n}"].clone().requires_grad_(True) for n in "qkv")
        with torch.enable_grad():
            sdp(q, k, v, mask=inp["pad_mask"].clone())[0].sum().backward()
        for n, t in zip("qkv", (q, k, v)):
            if t.grad is not None:
                out[f"grad_{n}"] = as_tensor(t.grad, f"gradient of {n}")

    step(out, "grad", grad)
