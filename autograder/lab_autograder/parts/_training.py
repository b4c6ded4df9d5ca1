"""What the two ``train_*`` parts share: the instrumented training run and the checkpoint's checks."""

from __future__ import annotations

from .base import NOT_CONFIGURED, both_runs, errors_of

VAL_SCRIPT = [0.30, 0.90, 0.60]  # scripted val_acc per epoch of the instrumented run: best = epoch 1


def _training_run_ok(run):
    """One instrumented run's verdicts: ``(it trained, it clipped, it kept the best epoch, saved epoch)``."""
    ran = (run.get("epochs_run") or 0) > 0
    clip = (run.get("clip_calls") or 0) > 0
    best = int(max(range(len(VAL_SCRIPT)), key=lambda i: VAL_SCRIPT[i]))
    saved = run.get("saved_epoch")
    return ran, ran and clip, ran and isinstance(saved, float) and int(saved) == best, saved


def _checkpoint_checks(pr, fname, fn_name, trusted, threshold, acc_what):
    """The submitted checkpoint loads, and its accuracy: the grader's own measurement (``trusted``:
    ``(accuracy or None, why not)``), never a number the worker reported."""
    acc, why = trusted
    unset = why == NOT_CONFIGURED  # say so, and hint nothing at the student
    if unset:
        pr.note = NOT_CONFIGURED
    pr.check(
        f"checkpoints/{fname} was submitted and loads (torch.load weights_only=True, strict) into "
        "the assignment's model",
        weight=0.5,
        ok=acc is not None,
        expected="a Lightning checkpoint with state_dict and hyper_parameters",
        got="loaded" if acc is not None else why,
        hint=lambda: (
            ""
            if unset
            else f"submit the checkpoints/ folder with the notebook; {fn_name} saves <dir>/{fname}"
        ),
        trusted=True,
    )
    measured = acc is not None
    pr.check(
        f"{acc_what} >= {threshold:.0%}",
        weight=1.5,
        ok=measured and acc >= threshold,
        expected=f">= {threshold:.0%}",
        got=(
            f"{acc:.2%} (the grader's own evaluation of your checkpoint's weights)"
            if measured
            else why if unset else "not measured (no checkpoint the grader could evaluate)"
        ),
        hint=lambda: (
            "train longer / with the tutorial's recipe; half credit within 10 points of the threshold"
            if measured
            else "" if unset else "train until the validation accuracy is high; submit the best checkpoint"
        ),
        partial=(1.0 if acc >= threshold else 0.5 if acc >= threshold - 0.1 else 0.0) if measured else None,
        trusted=True,
    )


def _saved_epoch_said(outs, runs, fname, fn_name, ran, err_t) -> str:
    """What the instrumented run's checkpoint holds, when it is not the best epoch's weights."""
    saved = runs["student"][3] if runs["student"][0] else runs["iso"][3]
    if not ran:
        return err_t or "the training did not run"
    if not any(run.get("ckpt_written") for run in outs.values()):
        return f"no {fname} written in the checkpoint_dir passed to {fn_name}"
    if not isinstance(saved, float) or saved < 0:
        return "the saved weights match no epoch's weights"
    last = " (the last one)" if int(saved) == len(VAL_SCRIPT) - 1 else ""
    return f"epoch {int(saved) + 1} of {len(VAL_SCRIPT)}" + last


def _returned_said(outs, runs, ran, err_t) -> str:
    """What the model the training function returned holds, when it is not the best epoch's."""
    returned = next((outs[p].get("returned_epoch") for p in outs if runs[p][0]), None)
    if not ran or returned is None:
        return err_t or "the training did not run"
    if returned == -2.0:
        return "no model: it must return (model, result)"
    if returned < 0:
        return "the returned model's weights match no epoch's weights"
    last = " (the last one)" if int(returned) == len(VAL_SCRIPT) - 1 else ""
    return f"the model of epoch {int(returned) + 1} of {len(VAL_SCRIPT)}" + last


def _training_checks(pr, out, iso, fname, fn_name, trusted, threshold, acc_what):
    """The checkpoint's checks, then the training function's behaviour in a tiny instrumented run
    (``out``: on the student's components; ``iso``: on correct ones): gradient clipping, and the best
    epoch kept."""
    _checkpoint_checks(pr, fname, fn_name, trusted, threshold, acc_what)
    outs = both_runs(out, iso)
    runs = {p: _training_run_ok(run) for p, run in outs.items()}
    err_t = errors_of(out, "training") or errors_of(outs["iso"], "training")
    clip = any(r[1] for r in runs.values())
    ran = any(r[0] for r in runs.values())
    pr.check(
        f"{fn_name} uses gradient clipping (tiny instrumented run)",
        weight=0.5,
        ok=clip,
        expected="gradients clipped at every step (Trainer(gradient_clip_val=...))",
        got=(
            "clipped"
            if clip
            else (err_t or ("no clipping during training" if ran else "the training did not run"))
        ),
        hint="" if clip else "pass gradient_clip_val=cfg.gradient_clip_val to pl.Trainer",
    )
    best = int(max(range(len(VAL_SCRIPT)), key=lambda i: VAL_SCRIPT[i]))
    ok = any(r[2] for r in runs.values())
    pr.check(
        f"{fn_name} keeps the best-by-val_acc checkpoint as <checkpoint_dir>/{fname}",
        weight=0.25,  # with the returned model's check, the 0.5 that keeping the best epoch is worth
        ok=ok,
        expected="the weights of the epoch with the highest val_acc "
        f"(epoch {best + 1} of {len(VAL_SCRIPT)} in the run)",
        got=f"epoch {best + 1}" if ok else _saved_epoch_said(outs, runs, fname, fn_name, ran, err_t),
        hint=lambda: "ModelCheckpoint(dirpath=checkpoint_dir, filename=..., monitor='val_acc', mode='max'), "
        "and reload checkpoint.best_model_path",
    )
    returned = any(runs[p][0] and run.get("returned_epoch") == best for p, run in outs.items())
    pr.check(
        f"{fn_name} returns (model, result), the model being the best epoch's, reloaded from its checkpoint",
        weight=0.25,
        ok=returned,
        expected=f"the weights of epoch {best + 1}, as in <checkpoint_dir>/{fname}",
        got=f"the model of epoch {best + 1}" if returned else _returned_said(outs, runs, ran, err_t),
        hint=lambda: "return the model reloaded from checkpoint.best_model_path (load_from_checkpoint), "
        "not the one the Trainer left after its last epoch",
    )
