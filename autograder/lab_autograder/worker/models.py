"""Loading the grader's weights into the student's modules, and what a probe says of a module."""

import torch


def _as_embedding_input(model, state):
    """The lab sheet allows an ``nn.Embedding`` input layer. The grader's weights hold the one-hot
    ``Linear`` (``W [D, V]``, ``b [D]``), the same map as the embedding ``E = W^T + b``:
    ``one_hot(x) @ W^T + b == E[x]``. So a model whose input layer is an embedding gets ``E``."""
    w, b = state.get("input_net.1.weight"), state.get("input_net.1.bias")
    if not isinstance(w, torch.Tensor) or not isinstance(b, torch.Tensor) or w.dim() != 2:
        return state
    mine = model.state_dict()
    for key in ("input_net.1.weight", "input_net.weight"):
        t = mine.get(key)
        if t is not None and tuple(t.shape) == (w.shape[1], w.shape[0]) and key[:-6] + "bias" not in mine:
            rest = {k: v for k, v in state.items() if k not in ("input_net.1.weight", "input_net.1.bias")}
            return {**rest, key: (w.t() + b).contiguous()}
    return state


def load_state(model, state, strict_ok_missing=("pe",)):
    """Load grader weights; tolerate only missing buffers such as a persistent ``pe``."""
    state = _as_embedding_input(model, state)
    res = model.load_state_dict(state, strict=False)
    missing = [k for k in res.missing_keys if k.split(".")[-1] not in strict_ok_missing]
    if missing or res.unexpected_keys:
        raise KeyError(
            f"parameter names differ from the tutorial's: missing {missing[:6]}, unexpected "
            f"{list(res.unexpected_keys)[:6]} (keep qkv_proj, o_proj, linear_net.0/3, norm1, norm2, ...)"
        )


def param_summary(model):
    return ", ".join(f"{k} {list(v.shape)}" for k, v in model.state_dict().items())[:600]


def load_named(model, state, out):
    """The grader's weights into ``model`` (then eval mode), recording its parameter names and
    whether the weights fit them (``names_loaded``)."""
    out["params"] = param_summary(model)
    out["names_loaded"] = 0.0
    load_state(model, state)
    out["names_loaded"] = 1.0
    model.eval()


def record_log(model) -> list:
    """``self.log`` outside a Trainer only warns: record the names logged instead."""
    names = []
    try:
        model.log = lambda name, *a, **k: names.append(str(name)[:40])
    except Exception:  # noqa: BLE001
        pass
    return names
