"""What the two ``train_*`` parts share: the instrumented training run and the checkpoint's checks."""

from __future__ import annotations

from .base import Check, NOT_CONFIGURED, errors_of

VAL_SCRIPT = [0.30, 0.90, 0.60]  # scripted val_acc per epoch of the instrumented run: best = epoch 1


def _training_run_ok(out, prefix):
    ran = (out.get(prefix + "epochs_run") or 0) > 0
    clip = (out.get(prefix + "clip_calls") or 0) > 0
    best = int(max(range(len(VAL_SCRIPT)), key=lambda i: VAL_SCRIPT[i]))
    saved = out.get(prefix + "saved_epoch")
    return ran, ran and clip, ran and isinstance(saved, float) and int(saved) == best, saved


def _training_checks(pr, out, fname, fn_name, trusted, threshold, acc_what):
    acc, why = trusted
    unset = why == NOT_CONFIGURED  # say so, and hint nothing at the student
    if unset:
        pr.note = NOT_CONFIGURED
    pr.checks.append(
        Check(
            f"checkpoints/{fname} was submitted and loads (torch.load weights_only=True, strict) into "
            "the assignment's model",
            0.5,
            acc is not None,
            "a Lightning checkpoint with state_dict and hyper_parameters",
            "loaded" if acc is not None else why,
            (
                ""
                if acc is not None or unset
                else f"submit the checkpoints/ folder with the notebook; {fn_name} saves <dir>/{fname}"
            ),
            trusted=True,
        )
    )
    if acc is None:
        pr.checks.append(
            Check(
                f"{acc_what} >= {threshold:.0%}",
                1.5,
                False,
                f">= {threshold:.0%}",
                why if unset else "not measured (no checkpoint the grader could evaluate)",
                "" if unset else "train until the validation accuracy is high; submit the best checkpoint",
                trusted=True,
            )
        )
    else:
        frac = 1.0 if acc >= threshold else (0.5 if acc >= threshold - 0.1 else 0.0)
        pr.checks.append(
            Check(
                f"{acc_what} >= {threshold:.0%}",
                1.5,
                acc >= threshold,
                f">= {threshold:.0%}",
                f"{acc:.2%} (the grader's own evaluation of your checkpoint's weights)",
                (
                    ""
                    if acc >= threshold
                    else "train longer / with the tutorial's recipe; half credit within 10 points of the "
                    "threshold"
                ),
                partial=frac,
                trusted=True,
            )
        )
    runs = {p: _training_run_ok(out, p) for p in ("", "iso_")}
    err_t = errors_of(out, "training") or errors_of(out, "iso_training")
    clip = any(r[1] for r in runs.values())
    ran = any(r[0] for r in runs.values())
    pr.checks.append(
        Check(
            f"{fn_name} uses gradient clipping (tiny instrumented run)",
            0.5,
            clip,
            "gradients clipped at every step (Trainer(gradient_clip_val=...))",
            (
                "clipped"
                if clip
                else (err_t or ("no clipping during training" if ran else "the training did not run"))
            ),
            "" if clip else "pass gradient_clip_val=cfg.gradient_clip_val to pl.Trainer",
        )
    )
    best = int(max(range(len(VAL_SCRIPT)), key=lambda i: VAL_SCRIPT[i]))
    ok = any(r[2] for r in runs.values())
    saved = runs[""][3] if runs[""][0] else runs["iso_"][3]
    if ok:
        got = f"epoch {best + 1}"
    elif not ran:
        got = err_t or "the training did not run"
    elif not (out.get("ckpt_written") or out.get("iso_ckpt_written")):
        got = f"no {fname} written in the checkpoint_dir passed to {fn_name}"
    elif not isinstance(saved, float) or saved < 0:
        got = "the saved weights match no epoch's weights"
    else:
        got = f"epoch {int(saved) + 1} of {len(VAL_SCRIPT)}" + (
            " (the last one)" if int(saved) == len(VAL_SCRIPT) - 1 else ""
        )
    pr.checks.append(
        Check(
            f"{fn_name} keeps the best-by-val_acc checkpoint as <checkpoint_dir>/{fname}",
            0.5,
            bool(ok),
            f"the weights of the epoch with the highest val_acc (epoch {best + 1} of {len(VAL_SCRIPT)} in "
            "the run)",
            got,
            (
                ""
                if ok
                else "ModelCheckpoint(dirpath=checkpoint_dir, filename=..., monitor='val_acc', mode='max'), "
                "and reload checkpoint.best_model_path"
            ),
        )
    )
