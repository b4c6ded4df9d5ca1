"""Speed plumbing for the package's own training commands, kept out of the model answers.

The notebook trains the students' modules with the tutorial's plain code (``self.log`` every
step, ``optim.Adam``); the ``transformer-lab train`` commands add :class:`TrainingSpeedups` to
the same Trainer. It changes neither the recipe nor the maths (figures: benchmarks/README.md):

* training metrics reach ``self.log`` only on the steps the Trainer's logger cadence records
  (``log_every_n_steps``): a ``self.log`` call costs about as much as the reverse model's forward;
* Adam takes its fused single-kernel update where the parameters' device has one;
* on CPU tensors, Adam's per-step CUDA-graph capture probe is skipped: on a CUDA build without a
  GPU it loads NVML on every call, and CPU tensors are never captured.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch


class TrainingSpeedups(pl.Callback):
    def on_fit_start(self, trainer, pl_module):
        log = pl_module.log

        def log_at_cadence(name, value, *args, **kwargs):
            if name.startswith("train_") and trainer.global_step % max(trainer.log_every_n_steps, 1):
                return None
            return log(name, value, *args, **kwargs)
        pl_module.log = log_at_cadence

    def on_fit_end(self, trainer, pl_module):
        pl_module.__dict__.pop("log", None)  # the class's own log again

    def on_train_start(self, trainer, pl_module):
        for optimizer in trainer.optimizers:
            if not isinstance(optimizer, torch.optim.Adam):
                continue
            params = [p for group in optimizer.param_groups for p in group["params"]]
            if not optimizer.state and all(p.device.type == "cpu" for p in params):
                for group in optimizer.param_groups:  # read by Adam.step on every call
                    group["fused"], group["foreach"] = True, False
            if all(p.device.type == "cpu" for p in params):
                optimizer._accelerator_graph_capture_health_check = lambda: None
