"""What the two training parts share: the student's training function run with a recorder in its
Trainer (scripted ``val_acc``, a snapshot of the weights per epoch), and which epoch the checkpoint
it wrote holds."""

import os
from contextlib import contextmanager

import torch

from ..harness import _ALLCLOSE, _CLONE, _LOAD, need, step
from ..stand_ins import Swap


class _Recorder:
    """Injected into the student's Trainer: scripts ``val_acc`` and snapshots the weights per epoch."""

    def __init__(self, script):
        import pytorch_lightning as pl

        class Rec(pl.Callback):
            def __init__(s):
                s.epoch, s.snapshots = 0, []

            def on_validation_end(s, trainer, pl_module):
                if trainer.sanity_checking:
                    return
                v = script[min(s.epoch, len(script) - 1)]
                trainer.callback_metrics["val_acc"] = torch.tensor(v)
                s.snapshots.append({k: _CLONE(t.detach().cpu()) for k, t in pl_module.state_dict().items()})
                s.epoch += 1

        self.cb = Rec()


@contextmanager
def _instrumented(rec, clip_calls, epochs):
    """Every ``pl.Trainer`` built meanwhile gets the recorder, a CPU, no logger, at most ``epochs``
    short epochs; every call of the gradient-clipping functions is counted."""
    import pytorch_lightning as pl

    orig_init = pl.Trainer.__init__
    orig_norm, orig_value = torch.nn.utils.clip_grad_norm_, torch.nn.utils.clip_grad_value_

    def init(self, *a, **kw):
        kw["callbacks"] = list(kw.get("callbacks") or []) + [rec]
        kw.update(logger=False, enable_progress_bar=False, accelerator="cpu", devices=1)
        kw.update(num_sanity_val_steps=0, enable_model_summary=False)
        kw["max_epochs"] = min(int(kw.get("max_epochs") or epochs), epochs)
        kw["limit_train_batches"], kw["limit_val_batches"], kw["limit_test_batches"] = 16, 4, 4
        orig_init(self, *a, **kw)

    def counted(clip):
        def call(parameters, limit, *a, **k):
            clip_calls["n"] += 1
            return clip(parameters, limit, *a, **k)

        return call

    pl.Trainer.__init__ = init
    torch.nn.utils.clip_grad_norm_, torch.nn.utils.clip_grad_value_ = counted(orig_norm), counted(orig_value)
    try:
        yield
    finally:
        pl.Trainer.__init__ = orig_init
        torch.nn.utils.clip_grad_norm_, torch.nn.utils.clip_grad_value_ = orig_norm, orig_value


def _epoch_of(state, snapshots) -> float:
    """The last epoch whose weights ``state`` holds (-1: none)."""

    def same(snap):
        return all(
            k in state and state[k].shape == v.shape and _ALLCLOSE(state[k].float(), v.float())
            for k, v in snap.items()
        )

    matches = [i for i, s in enumerate(snapshots) if same(s)]
    return float(matches[-1]) if matches else -1.0


def _instrumented_train(ns, inp, out, fn_name, cfg_name, fname, extra_args, run_name):
    fn = need(ns, fn_name)
    cfg_cls = need(ns, cfg_name)
    cfg = cfg_cls(**{k: (float(v) if isinstance(v, float) else int(v)) for k, v in inp["cfg"].items()})
    script = [float(v) for v in inp["val_script"].tolist()]
    rec, clip_calls = _Recorder(script).cb, {"n": 0}
    run_dir = os.path.join(out.work, run_name)  # each run its own folder: no checkpoint seen twice
    os.makedirs(run_dir, exist_ok=True)
    cwd = os.getcwd()
    try:
        os.chdir(run_dir)
        with _instrumented(rec, clip_calls, len(script)):
            res = fn(run_dir, *extra_args, cfg=cfg, progress=False, accelerator="cpu")
    finally:
        os.chdir(cwd)
    out["clip_calls"] = float(clip_calls["n"])
    out["epochs_run"] = float(len(rec.snapshots))
    path = os.path.join(run_dir, fname)
    out["ckpt_written"] = float(os.path.isfile(path))
    if os.path.isfile(path) and rec.snapshots:
        ckpt = _LOAD(path, map_location="cpu", weights_only=True)
        out["saved_epoch"] = _epoch_of(
            ckpt.get("state_dict", {}) if isinstance(ckpt, dict) else {}, rec.snapshots
        )
    model = res[0] if isinstance(res, (tuple, list)) and res else res  # (model, result), as the tutorial's
    out["returned_epoch"] = (
        _epoch_of(model.state_dict(), rec.snapshots) if isinstance(model, torch.nn.Module) else -2.0
    )


def _train_args(inp, fn_name):
    if fn_name == "train_reverse":
        return "ReverseConfig", "reverse.ckpt", ()
    names = ("train_feats", "train_labels", "val_feats", "val_labels", "test_feats", "test_labels")
    return "AnomalyConfig", "anomaly.ckpt", tuple(inp[k].clone() for k in names)


def _training(ns, inp, out, fn_name, isolated=False):
    cfg_name, fname, args = _train_args(inp, fn_name)
    run_name = ("isolated_" if isolated else "") + "train_" + fn_name
    step(
        out,
        "training",
        lambda: _instrumented_train(ns, inp, out, fn_name, cfg_name, fname, args, run_name),
        limit=out.train_limit,
        isolated=isolated,
    )


def training_probes(fn_name):
    """The plain and the stand-in probe of the training part ``fn_name``."""

    def probe(ns, inp, out):
        _training(ns, inp, out, fn_name)

    def iso(ns, inp, out, oracles):
        with Swap(ns, oracles):  # the training function's behaviour, on correct components
            _training(ns, inp, out, fn_name, isolated=True)

    return probe, iso
