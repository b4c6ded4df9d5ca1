"""What the two training parts share: the student's training function run with a recorder in its
Trainer (scripted ``val_acc``, a snapshot of the weights per epoch), and which epoch the checkpoint
it wrote holds."""

import os

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


def _instrumented_train(ns, inp, out, fn_name, cfg_name, fname, extra_args, prefix=""):
    import pytorch_lightning as pl

    fn = need(ns, fn_name)
    cfg_cls = need(ns, cfg_name)
    cfg = cfg_cls(**{k: (float(v) if isinstance(v, float) else int(v)) for k, v in inp["cfg"].items()})
    script = [float(v) for v in inp["val_script"].tolist()]
    rec = _Recorder(script).cb
    clip_calls = {"n": 0}
    orig_init = pl.Trainer.__init__
    orig_norm, orig_value = torch.nn.utils.clip_grad_norm_, torch.nn.utils.clip_grad_value_

    def init(self, *a, **kw):
        kw["callbacks"] = list(kw.get("callbacks") or []) + [rec]
        kw.update(
            logger=False,
            enable_progress_bar=False,
            accelerator="cpu",
            devices=1,
            num_sanity_val_steps=0,
            enable_model_summary=False,
        )
        kw["max_epochs"] = min(int(kw.get("max_epochs") or len(script)), len(script))
        kw["limit_train_batches"], kw["limit_val_batches"], kw["limit_test_batches"] = 16, 4, 4
        orig_init(self, *a, **kw)

    def norm(parameters, max_norm, *a, **k):
        clip_calls["n"] += 1
        return orig_norm(parameters, max_norm, *a, **k)

    def value(parameters, clip_value, *a, **k):
        clip_calls["n"] += 1
        return orig_value(parameters, clip_value, *a, **k)

    run_dir = os.path.join(out.work, prefix + "train_" + fn_name)
    os.makedirs(run_dir, exist_ok=True)
    pl.Trainer.__init__ = init
    torch.nn.utils.clip_grad_norm_, torch.nn.utils.clip_grad_value_ = norm, value
    cwd = os.getcwd()
    try:
        os.chdir(run_dir)
        fn(run_dir, *extra_args, cfg=cfg, progress=False, accelerator="cpu")  # what it returns is not graded
    finally:
        os.chdir(cwd)
        pl.Trainer.__init__ = orig_init
        torch.nn.utils.clip_grad_norm_, torch.nn.utils.clip_grad_value_ = orig_norm, orig_value
    out[prefix + "clip_calls"] = float(clip_calls["n"])
    out[prefix + "epochs_run"] = float(len(rec.snapshots))
    path = os.path.join(run_dir, fname)
    out[prefix + "ckpt_written"] = float(os.path.isfile(path))
    if os.path.isfile(path) and rec.snapshots:
        ckpt = _LOAD(path, map_location="cpu", weights_only=True)
        sd = ckpt.get("state_dict", {}) if isinstance(ckpt, dict) else {}

        def same(snap):
            return all(
                k in sd and sd[k].shape == v.shape and _ALLCLOSE(sd[k].float(), v.float())
                for k, v in snap.items()
            )

        matches = [i for i, s in enumerate(rec.snapshots) if same(s)]
        out[prefix + "saved_epoch"] = float(matches[-1]) if matches else -1.0


def _train_args(inp, fn_name):
    if fn_name == "train_reverse":
        return "ReverseConfig", "reverse.ckpt", ()
    names = ("train_feats", "train_labels", "val_feats", "val_labels", "test_feats", "test_labels")
    return "AnomalyConfig", "anomaly.ckpt", tuple(inp[k].clone() for k in names)


def _training(ns, inp, out, fn_name, prefix=""):
    cfg_name, fname, args = _train_args(inp, fn_name)
    step(
        out,
        prefix + "training",
        lambda: _instrumented_train(ns, inp, out, fn_name, cfg_name, fname, args, prefix),
        limit=out.train_limit,
        isolated=bool(prefix),
    )


def training_probes(fn_name):
    """The plain and the stand-in probe of the training part ``fn_name``."""

    def probe(ns, inp, out):
        _training(ns, inp, out, fn_name)

    def iso(ns, inp, out, oracles):
        with Swap(ns, oracles):  # the training function's behaviour, on correct components
            _training(ns, inp, out, fn_name, "iso_")

    return probe, iso
