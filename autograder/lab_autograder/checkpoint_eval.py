"""Trusted evaluation of a submitted checkpoint: its weights in the *reference* model, on data that
never leaves the grading process. No student code runs here; every accuracy point comes from here."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .parts.base import NOT_CONFIGURED, ref

#: bounds on a checkpoint's hyper-parameters before any model is built (~25 M parameters at most)
_HP_LIMITS = {"input_dim": 1024, "model_dim": 512, "num_classes": 1024, "num_heads": 64, "num_layers": 8}


def _embedding_as_linear(sd: dict, hp: dict) -> dict:
    """A reverse model with an ``nn.Embedding`` input layer (the lab sheet allows one) as the reference's
    one-hot ``Linear``: ``E[x] == one_hot(x) @ E + 0``, so weight ``E^T`` and a zero bias."""
    for key in ("input_net.1.weight", "input_net.weight"):
        e = sd.get(key)
        shape = (hp.get("input_dim"), hp.get("model_dim"))
        if isinstance(e, torch.Tensor) and tuple(e.shape) == shape and key[:-6] + "bias" not in sd:
            rest = {k: v for k, v in sd.items() if k != key}
            linear = {"input_net.1.weight": e.t().contiguous(), "input_net.1.bias": e.new_zeros(e.shape[1])}
            return {**rest, **linear}
    return sd


#: the hyper-parameters the reference predictors take
_HP_KEYS = (
    "input_dim",
    "model_dim",
    "num_classes",
    "num_heads",
    "num_layers",
    "lr",
    "warmup",
    "max_iters",
    "dropout",
    "input_dropout",
)


class Unmeasurable(ValueError):
    """The grader cannot evaluate this checkpoint; the message says why, in words for the student."""


def read_checkpoint(ckpt: bytes) -> tuple[dict, dict]:
    """``(hyper-parameters, state_dict)`` of a checkpoint snapshot: the container checked first (a
    legacy or compressed file could claim gigabytes before it is read), ``weights_only`` loading,
    hyper-parameters bounded and every tensor checked before any model is built."""
    import io

    from .untrusted import Malformed, check_tensor, check_zip

    try:
        check_zip(ckpt)
    except Malformed as e:
        raise Unmeasurable(f"not a checkpoint written by torch.save / Lightning ({e})") from None
    try:
        data = torch.load(io.BytesIO(ckpt), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise Unmeasurable(
            "refused by torch.load(weights_only=True) (only tensors and plain containers are allowed): "
            f"{type(e).__name__}"
        ) from None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), dict) for k in ("state_dict", "hyper_parameters")
    ):
        raise Unmeasurable("not a Lightning checkpoint (needs 'state_dict' and 'hyper_parameters')")
    hp, sd = dict(data["hyper_parameters"]), data["state_dict"]
    for k, lim in _HP_LIMITS.items():
        if not isinstance(hp.get(k), int) or isinstance(hp.get(k), bool) or not 0 < hp[k] <= lim:
            raise Unmeasurable(
                f"hyper-parameter {k} must be an int in [1, {lim}] (got {str(hp.get(k))[:40]})"
            )
    if hp["model_dim"] % hp["num_heads"]:
        raise Unmeasurable("model_dim is not a multiple of num_heads")
    try:
        for v in sd.values():
            if isinstance(v, torch.Tensor):
                check_tensor(v, 2**25)
    except Malformed as e:
        raise Unmeasurable(f"the state_dict holds {e}") from None
    return {k: hp[k] for k in _HP_KEYS if k in hp}, sd


def reference_model(part: str, hp: dict, sd: dict):
    """The reference predictor of ``part`` with the checkpoint's weights, loaded strictly."""
    name = "ReversePredictor" if part == "train_reverse" else "AnomalyPredictor"
    try:
        if part == "train_reverse":
            model = ref().ReversePredictor(**hp)
            sd = _embedding_as_linear(sd, hp)
        else:
            from transformer_lab.anomaly import AnomalyPredictor

            model = AnomalyPredictor(**hp)
        model.load_state_dict(sd, strict=True)
    except Exception as e:  # noqa: BLE001 - not the assignment's architecture
        raise Unmeasurable(
            "its parameters do not fit the assignment's model (strict load into the reference "
            f"{name} failed: {str(e).splitlines()[0][:200]}); keep the tutorial's module and parameter names"
        ) from None
    return model.eval()


@torch.no_grad()
def _reverse_accuracy(model, hp: dict, eval_x) -> float:
    if hp["num_classes"] != 10 or hp["input_dim"] != 10:
        raise Unmeasurable(
            f"a reverse model needs input_dim = num_classes = 10 (got {hp['input_dim']}, {hp['num_classes']})"
        )
    batches = [eval_x[i : i + 500] for i in range(0, len(eval_x), 500)]
    pred = torch.cat([model(F.one_hot(x, 10).float()).argmax(-1) for x in batches])
    return (pred == eval_x.flip(-1)).float().mean().item()


@torch.no_grad()
def _anomaly_accuracy(model, hp: dict, eval_x, target) -> float:
    if eval_x.shape[-1] != hp["input_dim"] or hp["num_classes"] != 1:
        raise Unmeasurable(
            f"an anomaly model for these features needs input_dim = {eval_x.shape[-1]} and num_classes = 1 "
            f"(got {hp['input_dim']}, {hp['num_classes']})"
        )
    batches = [eval_x[i : i + 250] for i in range(0, len(eval_x), 250)]
    pred = torch.cat([model(x, add_positional_encoding=False).squeeze(-1).argmax(-1) for x in batches])
    return (pred == target).float().mean().item()


def reference_accuracy(part: str, ckpt: bytes | None, eval_x, target) -> tuple[float | None, str]:
    """``(accuracy, why)`` of the checkpoint's weights in the *reference* model on the grader's data.

    ``ckpt`` is the grader's snapshot of the submitted file, taken before any student code ran.
    ``accuracy`` is ``None`` when there is nothing the grader can evaluate; ``why`` then says what,
    in words for the student. Every accuracy point comes from here.
    """
    fname = "reverse.ckpt" if part == "train_reverse" else "anomaly.ckpt"
    if ckpt is None:
        return None, f"no checkpoints/{fname} in the submission"
    if target is None:
        return None, NOT_CONFIGURED
    try:
        hp, sd = read_checkpoint(ckpt)
        model = reference_model(part, hp, sd)
        if part == "train_reverse":
            return _reverse_accuracy(model, hp, eval_x), ""
        return _anomaly_accuracy(model, hp, eval_x, target), ""
    except Unmeasurable as e:
        return None, str(e)
