"""The Lightning module shared by both tasks (tutorial section 6)."""

from __future__ import annotations

import inspect

import pytorch_lightning as pl
import torch
import torch.nn as nn
import torch.optim as optim

from ._checks import check_tensor
from .checkpoints import TASK_KEY, CheckpointError, read_checkpoint
from .encoder import TransformerEncoder
from .positional import PositionalEncoding
from .scheduler import CosineWarmupScheduler


class TransformerPredictor(pl.LightningModule):
    """Input net -> (positional encoding) -> Transformer encoder -> per-element output net.

    Constructor arguments, hyper-parameter names and submodule names are the tutorial's,
    so checkpoints trained with its code load with ``strict=True``.

    Args:
        input_dim: features of each input element
        model_dim: width inside the Transformer (divisible by ``num_heads``)
        num_classes: outputs per element
        num_heads: attention heads per block
        num_layers: encoder blocks
        lr: Adam learning rate
        warmup: warm-up steps of the cosine schedule (usually 50-500)
        max_iters: total training steps, for the cosine schedule
        dropout: dropout inside the model
        input_dropout: dropout on the input features
    """

    #: Name recorded in checkpoints; subclasses set their task.
    task_name = "transformer"

    def __init__(self, input_dim, model_dim, num_classes, num_heads, num_layers, lr, warmup, max_iters,
                 dropout=0.0, input_dropout=0.0):
        super().__init__()
        if num_heads < 1 or model_dim % num_heads != 0:
            raise ValueError(f"{type(self).__name__}: model_dim {model_dim} must be divisible by num_heads {num_heads}")
        self.save_hyperparameters()
        self._create_model()

    def _create_model(self):
        hp = self.hparams
        self.input_net = nn.Sequential(nn.Dropout(hp.input_dropout), nn.Linear(hp.input_dim, hp.model_dim))
        self.positional_encoding = PositionalEncoding(d_model=hp.model_dim)
        self.transformer = TransformerEncoder(
            num_layers=hp.num_layers,
            input_dim=hp.model_dim,
            dim_feedforward=2 * hp.model_dim,
            num_heads=hp.num_heads,
            dropout=hp.dropout,
        )
        self.output_net = nn.Sequential(
            nn.Linear(hp.model_dim, hp.model_dim),
            nn.LayerNorm(hp.model_dim),
            nn.ReLU(inplace=True),
            nn.Dropout(hp.dropout),
            nn.Linear(hp.model_dim, hp.num_classes),
        )

    def _embed(self, x, add_positional_encoding):
        check_tensor(type(self).__name__, "x", x, ndim=3, last_dim=self.hparams.input_dim,
                     expected=f"[Batch, SeqLen, {self.hparams.input_dim}]", floating=True)
        x = self.input_net(x)
        return self.positional_encoding(x) if add_positional_encoding else x

    def forward(self, x, mask=None, add_positional_encoding=True):
        """``x``: ``[Batch, SeqLen, input_dim]`` -> logits ``[Batch, SeqLen, num_classes]``.

        ``mask`` (optional) broadcasts to ``[Batch, Heads, SeqLen, SeqLen]``, 0 = masked;
        ``add_positional_encoding=False`` for sets, which have no order.
        """
        x = self._embed(x, add_positional_encoding)
        x = self.transformer(x, mask=mask)
        return self.output_net(x)

    @torch.no_grad()
    def get_attention_maps(self, x, mask=None, add_positional_encoding=True):
        """Attention weights of every layer for one batch: list of ``[Batch, Heads, SeqLen, SeqLen]``."""
        x = self._embed(x, add_positional_encoding)
        return self.transformer.get_attention_maps(x, mask=mask)

    def configure_optimizers(self):
        optimizer = optim.Adam(self.parameters(), lr=self.hparams.lr)
        # Stepped per batch in optimizer_step, not per epoch, so it is not returned to Lightning.
        self.lr_scheduler = CosineWarmupScheduler(optimizer, warmup=self.hparams.warmup,
                                                  max_iters=self.hparams.max_iters)
        return optimizer

    def optimizer_step(self, *args, **kwargs):
        super().optimizer_step(*args, **kwargs)
        self.lr_scheduler.step()

    def _calculate_loss(self, batch, mode="train"):
        """Return ``(loss, acc)`` for one batch and log them as ``{mode}_loss`` / ``{mode}_acc``; each task defines it."""
        raise NotImplementedError("TransformerPredictor is a template: use ReversePredictor or AnomalyPredictor")

    def training_step(self, batch, batch_idx):
        loss, _ = self._calculate_loss(batch, mode="train")
        return loss

    def validation_step(self, batch, batch_idx):
        self._calculate_loss(batch, mode="val")

    def test_step(self, batch, batch_idx):
        self._calculate_loss(batch, mode="test")

    # --- checkpoints -------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint):
        checkpoint[TASK_KEY] = self.task_name

    @classmethod
    def check_hparams(cls, hparams: dict) -> None:
        """Raise CheckpointError when ``hparams`` cannot belong to this task (subclasses refine)."""
        required = [p for p in inspect.signature(TransformerPredictor.__init__).parameters
                    if p not in ("self", "dropout", "input_dropout")]
        missing = [p for p in required if p not in hparams]
        if missing:
            raise CheckpointError(f"checkpoint hyper-parameters lack {missing}; it was not saved by a TransformerPredictor")

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, map_location=None, strict=True, **hparam_overrides):
        """Build the model from the checkpoint's hyper-parameters and load its weights (strict by default).

        Accepts checkpoints written by the tutorial's own code (Lightning 1.x) and by this package.
        The file is read with ``weights_only=True`` and checked to be of this task first, so a
        wrong, corrupt or unsafe file gives a :class:`CheckpointError` that says which.
        """
        ckpt = read_checkpoint(checkpoint_path)
        task = ckpt.get(TASK_KEY)
        if task is not None and cls.task_name != TransformerPredictor.task_name and task != cls.task_name:
            raise CheckpointError(
                f"checkpoint {str(checkpoint_path)!r} was saved by the {task!r} task; load it with the "
                f"{task.capitalize()}Predictor class, not {cls.__name__}"
            )
        hparams = {**dict(ckpt["hyper_parameters"]), **hparam_overrides}
        cls.check_hparams(hparams)
        try:
            model = cls(**hparams)
        except TypeError as e:
            raise CheckpointError(f"checkpoint {str(checkpoint_path)!r} has hyper-parameters {cls.__name__} "
                                  f"does not take: {e}") from None
        try:
            model.load_state_dict(ckpt["state_dict"], strict=strict)
        except RuntimeError as e:  # say which keys differ, not Lightning's stack
            raise CheckpointError(f"checkpoint {str(checkpoint_path)!r} does not fit {cls.__name__}: "
                                  f"{' '.join(str(e).split())[:600]}") from None
        model.on_load_checkpoint(ckpt)
        if map_location is not None and not callable(map_location) and not isinstance(map_location, dict):
            model = model.to(map_location)
        return model.eval()
