"""The package's training speed-ups change neither the maths nor what the Trainer sees."""

from __future__ import annotations

import pytest
import torch

from transformer_lab import ReverseConfig, ReversePredictor, train_reverse
from transformer_lab.speed import TrainingSpeedups


@pytest.mark.slow
def test_speedups_train_the_same_weights_and_keep_the_best_checkpoint(tmp_path):
    cfg = ReverseConfig(train_size=2048, val_size=256, test_size=256, max_epochs=3, lr=2e-3, warmup=10)
    runs = {}
    for name, callbacks in (("plain", ()), ("fast", [TrainingSpeedups()])):
        model, result = train_reverse(tmp_path / name, cfg, progress=False, accelerator="cpu", callbacks=callbacks)
        runs[name] = (model.state_dict(), result)
        assert "log" not in model.__dict__  # the class's own self.log after fit
    (plain, r_plain), (fast, r_fast) = runs["plain"], runs["fast"]
    for k in plain:  # fused vs foreach Adam: the same update up to float rounding
        if not k.endswith("qkv_proj.bias"):  # its key third has a zero gradient: Adam amplifies rounding there
            torch.testing.assert_close(fast[k], plain[k], rtol=1e-4, atol=1e-5, msg=k)
    x = torch.randint(10, (64, 16), generator=torch.Generator().manual_seed(0))
    models = {}
    for name, (state, _) in runs.items():
        models[name] = ReversePredictor(input_dim=10, model_dim=32, num_classes=10, num_heads=1, num_layers=1,
                                        lr=cfg.lr, warmup=cfg.warmup, max_iters=1).eval()
        models[name].load_state_dict(state)
    with torch.no_grad():  # and the key bias does not change the outputs (softmax ignores a shift)
        torch.testing.assert_close(models["fast"](x), models["plain"](x), rtol=1e-4, atol=1e-4)
    assert r_fast["val_acc"] == pytest.approx(r_plain["val_acc"], abs=0.01)
    assert r_fast["test_acc"] == pytest.approx(r_plain["test_acc"], abs=0.01)


def test_speedups_log_training_metrics_at_the_loggers_cadence():
    import types

    logged = []
    module = types.SimpleNamespace(log=lambda name, value, *a, **k: logged.append(name))
    trainer = types.SimpleNamespace(global_step=0, log_every_n_steps=50)
    cb = TrainingSpeedups()
    cb.on_fit_start(trainer, module)
    for step in range(100):
        trainer.global_step = step
        module.log("train_loss", 1.0)
        module.log("val_acc", 1.0)
    assert logged.count("train_loss") == 2 and logged.count("val_acc") == 100
