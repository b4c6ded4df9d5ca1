"""What the worker runs for the ``warmup_factor`` part: the factor function, the scheduler's method
and the learning rates it sets step by step."""

import torch
import torch.nn as nn

from ..harness import as_float, need, step


def probe(ns, inp, out):
    warmup, max_iters = int(inp["warmup"]), int(inp["max_iters"])
    steps = [int(s) for s in inp["steps"].tolist()]

    def fn():
        f = need(ns, "warmup_cosine_factor")
        out["factors"] = torch.tensor(
            [as_float(f(s, warmup, max_iters), "factor") for s in steps], dtype=torch.float64
        )

    step(out, "function", fn)

    def sched():
        cls = need(ns, "CosineWarmupScheduler")
        p = nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=float(inp["base_lr"]))
        s = cls(opt, warmup=warmup, max_iters=max_iters)
        out["method_factors"] = torch.tensor(
            [as_float(s.get_lr_factor(st), "factor") for st in steps], dtype=torch.float64
        )
        lrs = []
        for _ in range(int(inp["n_steps"])):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            s.step()
        out["lrs"] = torch.tensor(lrs, dtype=torch.float64)

    step(out, "scheduler", sched)
