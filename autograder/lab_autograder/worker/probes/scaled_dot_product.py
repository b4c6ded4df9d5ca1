"""What the worker runs for the ``scaled_dot_product`` part: the plain, masked, rectangular and padded
cases, then 0/1 integer and float masks, a fully masked row, float16 and gradients."""

import torch

from ..harness import as_tensor, need, step

#: case -> (the inputs q, k, v come from, its mask and how it is cast; None: no mask)
CASES = {
    "plain": ("plain", None, None),
    "mask": ("mask", "mask_mask", None),
    "rect": ("rect", None, None),
    "pad": ("pad", "pad_mask", None),
    # what the hidden tests ask beyond the plain cases: 0/1 integer and float masks, a fully masked row
    "intmask": ("mask", "mask_mask", torch.long),
    "floatmask": ("mask", "mask_mask", torch.float32),
    "full": ("pad", "full_mask", None),
    "half": ("pad", "pad_mask", None),  # float16 inputs
}


def _run_case(sdp, inp, out, case):
    src, mask, cast = CASES[case]
    q, k, v = (inp[f"{src}_{n}"].clone() for n in "qkv")
    if case == "half":
        q, k, v = q.half(), k.half(), v.half()
    kwargs = (
        {} if mask is None else {"mask": inp[mask].clone() if cast is None else inp[mask].clone().to(cast)}
    )
    with torch.no_grad():
        res = sdp(q, k, v, **kwargs)
    if not isinstance(res, (tuple, list)) or len(res) != 2:
        raise TypeError(f"must return (values, attention), got {type(res).__name__}")
    out[f"{case}_values"] = as_tensor(res[0], "values")
    out[f"{case}_attention"] = as_tensor(res[1], "attention")


def probe(ns, inp, out):
    sdp = need(ns, "scaled_dot_product")
    for case in CASES:
        step(out, case, lambda case=case: _run_case(sdp, inp, out, case))

    def grad():  # gradients must reach q, k and v
        q, k, v = (inp[f"pad_{n}"].clone().requires_grad_(True) for n in "qkv")
        with torch.enable_grad():
            sdp(q, k, v, mask=inp["pad_mask"].clone())[0].sum().backward()
        for n, t in zip("qkv", (q, k, v)):
            if t.grad is not None:
                out[f"grad_{n}"] = as_tensor(t.grad, f"gradient of {n}")

    step(out, "grad", grad)
