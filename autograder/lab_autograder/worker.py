"""The sandboxed worker: runs a submission's code cells, then probes each graded part.

The grader runs it once per *stage* (``grade.STAGES``), each time in a fresh process and a fresh
jail, as an unprivileged user: ``python -I worker.py IN WORK OUT``. It imports nothing from the
grader or the reference package (neither exists inside the jail). It reads, from the read-only
``IN`` folder:

* ``job.json``: the code cells, which cells to skip, which probes to run, time limits;
* ``inputs.pt``: the grader-chosen inputs, one dict of tensors per part;
* the stand-ins (some stages only; on a pipe, see ``load_oracles``): correct components *below* the parts the
  stage grades, so that a bug is charged to its own part. The plain probes run in a stage that
  has none, so no student code ever shares a process with a correct copy of the part it is
  graded on.

``WORK`` is the notebook's folder (``WORK/nb``, with ``checkpoints/`` copied by the grader) and
scratch space. For every probe it writes ``OUT/<part>.pt``: a flat dict of tensors, numbers and
strings (the grader treats it as untrusted data). It never decides whether anything is right.
``OUT/progress.log`` records which cell or part is running, so that the grader can skip a cell or
part that hung or killed the process, and start again.
"""

import json
import math
import os
import signal
import sys
import time
import traceback

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ["NBGRADER_EXECUTION"] = "autograde"

T_IMPORT = time.monotonic()
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(1)

# Keep our own handles on what the harness needs, before student code can patch them.
_SAVE, _LOAD, _CLONE = torch.save, torch.load, torch.Tensor.clone
_ALLCLOSE, _EQUAL = torch.allclose, torch.equal
_SETITIMER, _SIGNAL = signal.setitimer, signal.signal
_OPEN, _REPLACE, _TIME = open, os.replace, time.monotonic


class ProbeTimeout(BaseException):
    """Raised by SIGPROF or SIGALRM when a cell or a probe runs past its limit."""


def _alarm(signum, frame):
    raise ProbeTimeout("time limit reached")


#: a limit's wall-clock backstop, as a multiple of its CPU seconds: code that sleeps or blocks
WALL_FACTOR = 3.0


def _stop_timers():
    _SETITIMER(signal.ITIMER_PROF, 0)
    _SETITIMER(signal.ITIMER_REAL, 0)


class Limit:
    """``with Limit(s):`` raise ProbeTimeout after ``s`` seconds of this process's CPU time, or
    ``WALL_FACTOR * s`` seconds of wall-clock time. CPU time is what a loaded machine does not
    stretch: a correct solution gets the same verdict on a busy grading server as on an idle one."""

    def __init__(self, seconds):
        self.seconds = max(0.01, float(seconds))

    def __enter__(self):
        _SIGNAL(signal.SIGPROF, _alarm)
        _SIGNAL(signal.SIGALRM, _alarm)
        _SETITIMER(signal.ITIMER_PROF, self.seconds)
        _SETITIMER(signal.ITIMER_REAL, WALL_FACTOR * self.seconds)

    def __exit__(self, *exc):
        _stop_timers()
        return False


def short_error(exc: BaseException, limit=900) -> str:
    """``Type: message`` plus the innermost frame of student code (``<cell N>``)."""
    msg = f"{type(exc).__name__}: {exc}".strip()
    if isinstance(exc, ProbeTimeout):
        msg = "timed out (infinite loop or far too slow)"
    try:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith("<cell")]
        if frames:
            f = frames[-1]
            msg += f"  [at {f.filename[1:-1]}, line {f.lineno}: {(f.line or '').strip()[:120]}]"
    except Exception:  # noqa: BLE001
        pass
    return msg[:limit]


# --------------------------------------------------------------------------------------------
# Oracle components: only in the stages that need them (see the grader's oracles.py)
# --------------------------------------------------------------------------------------------
def load_oracles():
    """The stand-ins of this stage (``{}`` when it has none). Their source comes on a pipe from the
    launcher (``LAB_ORACLE_FD``), read once and closed before any student code runs: the file
    itself is root's alone, so nothing the notebook runs can read the source."""
    oracles, fd = {}, os.environ.pop("LAB_ORACLE_FD", None)
    if fd is not None:
        with os.fdopen(int(fd), "rb") as f:
            code = compile(f.read(), "<oracles>", "exec")
        exec(code, {"math": math, "torch": torch, "nn": nn, "F": F, "ORACLES": oracles})  # noqa: S102
    return oracles


class Swap:
    """``with Swap(ns, oracles):`` temporarily replace the student's definitions by the stand-ins."""

    _MISSING = object()

    def __init__(self, ns, oracles):
        self.ns, self.oracles, self.saved = ns, dict(oracles), {}

    def __enter__(self):
        for n, v in self.oracles.items():
            self.saved[n] = self.ns.get(n, self._MISSING)
            self.ns[n] = v
        return self

    def __exit__(self, *exc):
        for n, v in self.saved.items():
            if v is self._MISSING:
                self.ns.pop(n, None)
            else:
                self.ns[n] = v
        return False


# --------------------------------------------------------------------------------------------
# Helpers the probes share
# --------------------------------------------------------------------------------------------
def need(ns, name):
    if name not in ns:
        raise NameError(f"'{name}' is not defined by the notebook (renamed, deleted, or its cell failed)")
    return ns[name]


def as_tensor(x, what):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    return _CLONE(
        x.detach().to("cpu"), memory_format=torch.contiguous_format
    )  # dense: the grader refuses views


def as_float(x, what):
    if isinstance(x, torch.Tensor):
        if x.numel() != 1:
            raise TypeError(f"{what} must be a scalar, got a tensor of shape {list(x.shape)}")
        return float(x.detach().cpu())
    if isinstance(x, (int, float)):
        return float(x)
    raise TypeError(f"{what} must be a number or a scalar tensor, got {type(x).__name__}")


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


def no_log(model):
    """``self.log`` outside a Trainer only warns; make it silent and harmless."""
    try:
        model.log = lambda *a, **k: None
    except Exception:  # noqa: BLE001
        pass


# --------------------------------------------------------------------------------------------
# Probes: each takes (ns, inputs, out) and fills ``out`` (tensors / numbers / strings).
# A sub-step that raises records ``out["error_<step>"]`` and the probe goes on.
# --------------------------------------------------------------------------------------------
class Out(dict):
    """A probe's outputs (written to ``out/<part>.pt`` as a plain dict), and what its sub-steps
    share: the time limits, the work folder, and whether a student call timed out."""

    def __init__(self, limit=60.0, train_limit=150.0, work="."):
        super().__init__()
        self.limit, self.train_limit, self.work, self.timed_out = limit, train_limit, work, False


def step(out, name, fn, limit=None, isolated=False):
    """Run one sub-step under its own time limit; record ``error_<name>`` if it raises.

    After a student call timed out, the probe's further student calls are skipped (they would
    most likely hang too); calls on the oracle components (``isolated``) still run.
    """
    if out.timed_out and not isolated:
        out[f"error_{name}"] = "skipped: an earlier call of this part timed out"
        return
    try:
        with Limit(limit or out.limit):
            fn()
    except ProbeTimeout as e:
        _stop_timers()
        out[f"error_{name}"] = short_error(e)
        out.timed_out = True
    except BaseException as e:  # noqa: BLE001 - student code may raise anything, SystemExit included
        _stop_timers()
        out[f"error_{name}"] = short_error(e)


def probe_scaled_dot_product(ns, inp, out):
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


def _mha_outputs(ns, inp, out, prefix):
    cls = need(ns, "MultiheadAttention")
    d_in, d_emb, h = (int(inp[k]) for k in ("input_dim", "embed_dim", "num_heads"))
    m = cls(d_in, d_emb, h)
    out[f"{prefix}params"] = param_summary(m)
    load_state(m, inp["state"])
    m.eval()
    with torch.no_grad():
        x = inp["x"].clone()
        out[f"{prefix}out"] = as_tensor(m(x), "output")
        res = m(x, mask=inp["mask"].clone(), return_attention=True)
        if not isinstance(res, (tuple, list)) or len(res) != 2:
            raise TypeError("forward(..., return_attention=True) must return (output, attention)")
        out[f"{prefix}mask_out"], out[f"{prefix}mask_attention"] = (
            as_tensor(res[0], "output"),
            as_tensor(res[1], "attention"),
        )
        res = m(x, return_attention=True)
        out[f"{prefix}ret_out"] = as_tensor(res[0], "output")
        out[f"{prefix}perm_out"] = as_tensor(m(x[:, inp["perm"]]), "output")


def probe_multihead_attention(ns, inp, out):
    step(out, "student", lambda: _mha_outputs(ns, inp, out, ""))


def iso_multihead_attention(ns, inp, out, oracles):
    with Swap(ns, oracles):
        step(out, "isolated", lambda: _mha_outputs(ns, inp, out, "iso_"), isolated=True)


def _block_outputs(ns, inp, out, prefix):
    cls = need(ns, "EncoderBlock")
    blk = cls(
        input_dim=int(inp["input_dim"]),
        num_heads=int(inp["num_heads"]),
        dim_feedforward=int(inp["dim_feedforward"]),
        dropout=0.0,
    )
    out[f"{prefix}params"] = param_summary(blk)
    load_state(blk, inp["state"])
    blk.eval()
    with torch.no_grad():
        out[f"{prefix}out"] = as_tensor(blk(inp["x"].clone()), "output")
        out[f"{prefix}mask_out"] = as_tensor(blk(inp["x"].clone(), mask=inp["mask"].clone()), "output")
        out[f"{prefix}mask_out2"] = as_tensor(blk(inp["x2"].clone(), mask=inp["mask"].clone()), "output")
    # Dropout active in train mode (a block built with dropout 0.5 must not be deterministic).
    blk2 = cls(
        input_dim=int(inp["input_dim"]),
        num_heads=int(inp["num_heads"]),
        dim_feedforward=int(inp["dim_feedforward"]),
        dropout=0.5,
    )
    blk2.train()
    with torch.no_grad():
        a, b = blk2(inp["x"].clone()), blk2(inp["x"].clone())
    out[f"{prefix}dropout_differs"] = float(not _EQUAL(a, b))


def probe_encoder_block(ns, inp, out):
    step(out, "student", lambda: _block_outputs(ns, inp, out, ""))


def iso_encoder_block(ns, inp, out, oracles):
    with Swap(ns, oracles):
        step(out, "isolated", lambda: _block_outputs(ns, inp, out, "iso_"), isolated=True)


def probe_positional_encoding(ns, inp, out):
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


def probe_warmup_factor(ns, inp, out):
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


def _predictor_loss(ns, inp, out, cls_name, prefix):
    cls = need(ns, cls_name)
    hp = {
        k: (
            int(v)
            if k
            in ("input_dim", "model_dim", "num_classes", "num_heads", "num_layers", "warmup", "max_iters")
            else float(v)
        )
        for k, v in inp["hparams"].items()
    }
    model = cls(**hp)
    load_state(model, inp["state"])
    model.eval()
    no_log(model)
    batch = tuple(t.clone() for t in inp["batch"])
    with torch.no_grad():
        res = model._calculate_loss(batch, mode="val")
    if not isinstance(res, (tuple, list)) or len(res) != 2:
        raise TypeError(f"_calculate_loss must return (loss, acc), got {type(res).__name__}")
    out[f"{prefix}loss"] = as_float(res[0], "loss")
    out[f"{prefix}acc"] = as_float(res[1], "acc")


def probe_reverse_loss(ns, inp, out):
    step(out, "student", lambda: _predictor_loss(ns, inp, out, "ReversePredictor", ""))


def iso_reverse_loss(ns, inp, out, oracles):
    with Swap(ns, oracles):
        step(
            out, "isolated", lambda: _predictor_loss(ns, inp, out, "ReversePredictor", "iso_"), isolated=True
        )


def probe_anomaly_loss(ns, inp, out):
    step(out, "student", lambda: _predictor_loss(ns, inp, out, "AnomalyPredictor", ""))


def iso_anomaly_loss(ns, inp, out, oracles):
    with Swap(ns, oracles):
        step(
            out, "isolated", lambda: _predictor_loss(ns, inp, out, "AnomalyPredictor", "iso_"), isolated=True
        )


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


def probe_train_reverse(ns, inp, out):
    _training(ns, inp, out, "train_reverse")


def iso_train_reverse(ns, inp, out, oracles):
    with Swap(ns, oracles):  # the training function's behaviour, on correct components
        _training(ns, inp, out, "train_reverse", "iso_")


def probe_train_anomaly(ns, inp, out):
    _training(ns, inp, out, "train_anomaly")


def iso_train_anomaly(ns, inp, out, oracles):
    with Swap(ns, oracles):
        _training(ns, inp, out, "train_anomaly", "iso_")


def _figure_content(fig, out, prefix):
    from matplotlib.figure import Figure

    out[f"{prefix}is_figure"] = float(isinstance(fig, Figure))
    if not isinstance(fig, Figure):
        raise TypeError(f"must return a matplotlib Figure, got {type(fig).__name__}")
    fig.canvas.draw() if hasattr(fig.canvas, "draw") else None
    axes = []
    for ax in fig.axes:
        if ax.images:
            b = ax.get_position()
            arr = ax.images[0].get_array()
            axes.append((round(-b.y0, 3), round(b.x0, 3), arr, ax))
    axes.sort(key=lambda t: (t[0], t[1]))
    out[f"{prefix}n_image_axes"] = float(len(axes))
    rows = sorted({t[0] for t in axes})
    cols = sorted({t[1] for t in axes})
    out[f"{prefix}grid"] = torch.tensor([len(rows), len(cols)], dtype=torch.float64)
    imgs = []
    for _, _, arr, _ in axes:
        a = torch.as_tensor(__import__("numpy").asarray(arr, dtype="float64"))
        imgs.append(a)
    for i, a in enumerate(imgs[:64]):
        out[f"{prefix}image_{i}"] = a
    texts = []
    for _, _, _, ax in axes[:64]:
        texts.append("|".join(t.get_text() for t in ax.get_xticklabels()))
    out[f"{prefix}xticks"] = "\n".join(texts)[:20000]
    all_text = []
    for ax in fig.axes:
        all_text += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()] + [t.get_text() for t in ax.texts]
        all_text += [t.get_text() for t in ax.get_xticklabels()]
        # bar heights (probabilities drawn as bars)
        heights = [float(p.get_height()) for p in ax.patches if hasattr(p, "get_height")]
        if heights:
            out.setdefault(f"{prefix}bars", "")
            out[f"{prefix}bars"] += ",".join(f"{h:.6g}" for h in heights[:200]) + ";"
    all_text += [t.get_text() for t in fig.texts]
    if getattr(fig, "_suptitle", None) is not None:
        all_text.append(fig._suptitle.get_text())
    out[f"{prefix}text"] = "\n".join(t for t in all_text if t)[:20000]


def probe_attention_plot(ns, inp, out):
    fn = need(ns, "plot_attention_maps")
    maps = [m.clone() for m in inp["maps"]]

    def main():
        fig = fn(inp["tokens"].clone(), maps, idx=int(inp["idx"]), path=None)
        _figure_content(fig, out, "")

    step(out, "figure", main)

    def saved():
        p = os.path.join(out.work, "attention_plot.png")
        fn(inp["tokens"].clone(), maps, idx=0, path=p)
        out["path_written"] = float(os.path.isfile(p) and os.path.getsize(p) > 0)
        if os.path.isfile(p):
            os.remove(p)

    step(out, "path", saved)


def probe_prediction_view(ns, inp, out):
    fn = need(ns, "plot_anomaly_prediction")
    maps = [m.clone() for m in inp["maps"]]
    args = (inp["indices"].clone(), inp["probs"].clone(), maps)

    def main():
        fig = fn(*args, idx=int(inp["idx"]), images=inp["images"].clone().numpy())
        _figure_content(fig, out, "")

    step(out, "figure", main)

    def saved():
        p = os.path.join(out.work, "prediction_view.png")
        fn(*args, idx=0, path=p)
        out["path_written"] = float(os.path.isfile(p) and os.path.getsize(p) > 0)
        if os.path.isfile(p):
            os.remove(p)

    step(out, "path", saved)


PROBES = {
    "scaled_dot_product": probe_scaled_dot_product,
    "multihead_attention": probe_multihead_attention,
    "encoder_block": probe_encoder_block,
    "positional_encoding": probe_positional_encoding,
    "warmup_factor": probe_warmup_factor,
    "reverse_loss": probe_reverse_loss,
    "train_reverse": probe_train_reverse,
    "attention_plot": probe_attention_plot,
    "anomaly_loss": probe_anomaly_loss,
    "train_anomaly": probe_train_anomaly,
    "prediction_view": probe_prediction_view,
}
#: the same parts run on correct stand-ins for their dependencies (stages after the first)
ISO_PROBES = {
    "multihead_attention": iso_multihead_attention,
    "encoder_block": iso_encoder_block,
    "reverse_loss": iso_reverse_loss,
    "train_reverse": iso_train_reverse,
    "anomaly_loss": iso_anomaly_loss,
    "train_anomaly": iso_train_anomaly,
}


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------
def _progress(paths, line):
    with _OPEN(os.path.join(paths["out"], "progress.log"), "a") as f:
        f.write(line + "\n")
        f.flush()


def _write(paths, name, out):
    path = os.path.join(paths["out"], name + ".pt")
    _SAVE(dict(out), path + ".tmp")  # a plain dict: the grader loads it with weights_only=True
    _REPLACE(path + ".tmp", path)


class _Shell:
    """``get_ipython()`` for notebook code, whose magics the grader turned into calls of it (IPython's
    own transformer). Shell escapes do nothing; ``%%writefile`` writes its file (relative to the
    notebook's folder); ``time``, ``timeit``, ``capture``, ``prun`` run their code once; every
    other magic does nothing."""

    RUN = {"time", "timeit", "capture", "prun", "debug"}

    def __init__(self, ns):
        self.ns = ns

    def run_line_magic(self, name, line, *args, **kwargs):
        if name in self.RUN and line.strip():
            exec(compile(line, "<magic>", "exec"), self.ns)  # noqa: S102 - the student's own code

    def run_cell_magic(self, name, line, body, *args, **kwargs):
        if name == "writefile":
            words = line.split()
            files = [w for w in words if not w.startswith("-")]
            if files:
                with _OPEN(files[-1], "a" if {"-a", "--append"} & set(words) else "w") as f:
                    f.write(body)
        elif name in self.RUN:
            exec(compile(body, "<magic>", "exec"), self.ns)  # noqa: S102

    def getoutput(self, *args, **kwargs):
        return []

    def __getattr__(self, name):  # system, magic, run_line_magic's relatives: nothing runs
        return lambda *a, **k: None


def notebook_namespace() -> dict:
    """The namespace the notebook's cells run in, with the shell their magics call."""
    ns = {
        "__name__": "__main__",
        "__builtins__": __builtins__,
        "get_ipython": None,
        "display": lambda *a, **k: None,
    }
    shell = _Shell(ns)
    ns["get_ipython"] = lambda: shell
    try:  # `from IPython import get_ipython` in the notebook must find the same shell
        import IPython
        import IPython.core.getipython

        IPython.get_ipython = IPython.core.getipython.get_ipython = ns["get_ipython"]
    except ImportError:
        pass
    return ns


def run_cells(job, ns, paths):
    """Run the notebook's code cells in ``ns``; a cell's error is recorded and the next cell runs."""
    import linecache

    t_start = _TIME()
    skip = set(job.get("skip_cells", []))
    cell_limit = float(job.get("cell_timeout", 60))
    errors = []
    labels = job.get("labels") or [f"#{i + 1}" for i in range(len(job["cells"]))]
    for i, src in enumerate(job["cells"]):
        if i in skip:
            continue
        _progress(paths, f"cell {i}")
        before = {k: id(v) for k, v in ns.items()}
        name = f"<cell {labels[i] if i < len(labels) else i}>"
        linecache.cache[name] = (len(src), None, src.splitlines(True), name)  # source lines in tracebacks
        try:
            code = compile(src, name, "exec")
            with Limit(cell_limit):
                exec(code, ns)  # noqa: S102 - this is the sandboxed worker's job
        except BaseException as e:  # noqa: BLE001 - SystemExit, KeyboardInterrupt, timeouts: keep going
            _stop_timers()
            errors.append(f"{name[1:-1]}: {short_error(e)}")
            if isinstance(e, MemoryError):  # free what the failed cell hoarded (data, not definitions)
                for k in [k for k, v in ns.items() if before.get(k) != id(v)]:
                    if not (callable(ns[k]) or isinstance(ns[k], type(os))):
                        del ns[k]
                import gc

                gc.collect()
        _progress(paths, f"cell {i} done")
    try:
        import matplotlib.pyplot as plt

        plt.close("all")
    except BaseException:  # noqa: BLE001
        pass
    return {
        "errors": "\n".join(errors)[-8000:],
        "n_cells": float(len(job["cells"])),
        "import_seconds": t_start - T_IMPORT,
        "cells_seconds": _TIME() - t_start,
    }


def run_probe(ns, inputs, part, variant, oracles, hung, depends, out):
    """One part's probe, filling ``out``. Its plain run is skipped when a part it builds on
    (``depends``, from the grader) hung in this process: it would hang too; the grader re-checks
    it on stand-ins."""
    blocked = [d for d in depends.get(part, []) if d in hung]
    try:
        if variant == "iso":
            ISO_PROBES[part](ns, inputs.get(part, {}), out, {k: v for k, v in oracles.items()})
        elif blocked:
            out["error_student"] = out["error_training"] = (
                f"not run with your code: {blocked[0]} timed out earlier (checked on correct components "
                "instead)"
            )
        else:
            PROBES[part](ns, inputs.get(part, {}), out)
    except BaseException as e:  # noqa: BLE001
        _stop_timers()
        out["error_probe"] = short_error(e)
    if out.timed_out and variant == "student":
        hung.add(part)
    return out


def main():
    paths = dict(zip(("in", "work", "out"), (os.path.abspath(p) for p in sys.argv[1:4])))
    with _OPEN(os.path.join(paths["in"], "job.json")) as f:
        job = json.load(f)
    inputs = _LOAD(os.path.join(paths["in"], "inputs.pt"), weights_only=True)
    oracles = load_oracles()
    os.chdir(os.path.join(paths["work"], "nb"))  # the notebook's own folder (checkpoints/ beside it)
    _progress(paths, "ready")  # no student code has run before this line: a failure earlier is the grader's
    sys.path.insert(0, os.getcwd())
    ns = notebook_namespace()
    _write(paths, "_cells", run_cells(job, ns, paths))
    limits = {
        "limit": float(job.get("probe_timeout", 45)),
        "train_limit": float(job.get("train_probe_timeout", 150)),
    }
    timings, hung = {}, set(job.get("hung", []))  # parts that hung in an earlier launch
    for part, variant in job["probes"]:
        _progress(paths, f"part {part}")
        t0 = _TIME()
        out = run_probe(
            ns,
            inputs,
            part,
            variant,
            oracles,
            hung,
            job.get("depends", {}),
            Out(work=paths["work"], **limits),
        )
        out["seconds"] = timings[part] = _TIME() - t0
        try:
            _write(paths, part, out)
        except BaseException as e:  # noqa: BLE001 - e.g. an object that cannot be saved
            _write(paths, part, {"error_probe": f"could not record the outputs: {short_error(e)}"})
        _progress(paths, f"part {part} done")
    _write(paths, "_timings", {k: float(v) for k, v in timings.items()})
    _progress(paths, "finished")
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown (atexit hooks the notebook may have registered)


if __name__ == "__main__":
    main()
