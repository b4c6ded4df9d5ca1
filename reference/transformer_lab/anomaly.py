"""Set anomaly detection: the predictor, the tutorial's recipe, training and the equivariance check."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import ModelCheckpoint

from ._checks import check_tensor
from .checkpoints import CheckpointError
from .predictor import TransformerPredictor
from .set_anomaly import SetAnomalyDataset, SetBatchLoader


class AnomalyPredictor(TransformerPredictor):
    """One logit per set element; softmax over the set picks the anomaly.

    No positional encoding: a set has no order, and without it the model is permutation-
    equivariant (permuting the inputs permutes the logits the same way). ``forward`` and
    ``get_attention_maps`` therefore default to ``add_positional_encoding=False`` here (the
    tutorial passed False at every call; its inherited default was the sequence task's True).
    Inputs ``[Batch, SetSize, input_dim]`` -> logits ``[Batch, SetSize, 1]``.
    """

    task_name = "anomaly"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.hparams.num_classes != 1:
            raise ValueError(f"AnomalyPredictor: num_classes must be 1 (one logit per set element), "
                             f"got {self.hparams.num_classes}")

    @classmethod
    def check_hparams(cls, hparams):
        super().check_hparams(hparams)
        if hparams["num_classes"] != 1:
            raise CheckpointError(
                f"checkpoint hyper-parameters (input_dim={hparams['input_dim']}, num_classes={hparams['num_classes']}) "
                "are not a set-anomaly model, which has one logit per set element (num_classes=1); "
                "is it a reverse checkpoint? Load it with ReversePredictor"
            )

    def forward(self, x, mask=None, add_positional_encoding=False):
        """``x``: ``[Batch, SetSize, input_dim]`` -> logits ``[Batch, SetSize, 1]``."""
        return super().forward(x, mask=mask, add_positional_encoding=add_positional_encoding)

    @torch.no_grad()
    def get_attention_maps(self, x, mask=None, add_positional_encoding=False):
        """Attention of every layer: list of ``[Batch, Heads, SetSize, SetSize]``."""
        return super().get_attention_maps(x, mask=mask, add_positional_encoding=add_positional_encoding)

    def _calculate_loss(self, batch, mode="train"):
        """Cross-entropy over the set dimension and accuracy, logged as ``{mode}_loss`` / ``{mode}_acc``.

        Args:
            batch: ``(img_sets [Batch, SetSize, D], indices [Batch, SetSize], labels [Batch])``;
                ``labels`` is the position of the anomaly in each set
            mode: ``"train"``, ``"val"`` or ``"test"`` (the prefix of the logged names)

        Returns:
            ``(loss, acc)``: scalar tensors; acc is the fraction of sets whose anomaly gets the top logit.
        """
        img_sets, _, labels = batch
        preds = self.forward(img_sets, add_positional_encoding=False)  # no positional encoding: a set
        preds = preds.squeeze(dim=-1)  # (B, SetSize): one logit per element
        loss = F.cross_entropy(preds, labels)  # softmax over the set dimension
        acc = (preds.argmax(dim=-1) == labels).float().mean()
        self.log(f"{mode}_loss", loss)
        self.log(f"{mode}_acc", acc)
        return loss, acc


@dataclass
class AnomalyConfig:
    """The tutorial's recipe for set anomaly detection (defaults)."""

    set_size: int = 10
    batch_size: int = 64
    model_dim: int = 256
    num_heads: int = 4
    num_layers: int = 4
    dropout: float = 0.1
    input_dropout: float = 0.1
    lr: float = 5e-4
    warmup: int = 100
    max_epochs: int = 100
    gradient_clip_val: float = 2.0
    seed: int = 42


def quick_anomaly_config() -> AnomalyConfig:
    """The CPU quick mode's recipe (a smaller model, 15 epochs), trained on the synthetic features of
    ``quick_mode_features()``: the notebook's quick mode."""
    return AnomalyConfig(model_dim=64, num_layers=2, num_heads=4, max_epochs=15, warmup=20, lr=1e-3)


def anomaly_loaders(train_feats, train_labels, val_feats, val_labels, test_feats, test_labels,
                    cfg: AnomalyConfig, device=None):
    """``(train, train_fixed, val, test)`` :class:`SetBatchLoader` s on ``device``.

    ``train`` draws fresh sets each epoch; the others are fixed sets seeded by ``cfg.seed``
    (``train_fixed`` measures the training accuracy on sets that do not change between calls).
    """
    def ds(f, l, train):
        return SetAnomalyDataset(f, l, set_size=cfg.set_size, train=train, seed=cfg.seed)

    bs, dev = cfg.batch_size, device
    train = SetBatchLoader(ds(train_feats, train_labels, True), bs, device=dev, seed=cfg.seed)
    return (train,
            SetBatchLoader(ds(train_feats, train_labels, False), bs, device=dev),
            SetBatchLoader(ds(val_feats, val_labels, False), bs, device=dev),
            SetBatchLoader(ds(test_feats, test_labels, False), bs, device=dev))


def train_anomaly(checkpoint_dir, train_feats, train_labels, val_feats, val_labels, test_feats, test_labels,
                  cfg: AnomalyConfig | None = None, progress=True, accelerator="auto", callbacks=()):
    """Train with the tutorial's recipe, keep the best-by-``val_acc`` checkpoint, test it.

    Features are ``[N, D]`` float tensors, labels ``[N]`` class indices (balanced per class).
    Returns ``(model, result)``: the best checkpoint reloaded, and ``train_acc``, ``val_acc``,
    ``test_acc``, ``checkpoint`` (path of ``anomaly.ckpt``), ``fit_seconds``, ``steps``, ``config``.
    ``callbacks`` are added to the Trainer's.
    """
    cfg = cfg or AnomalyConfig()
    for name, t in (("train_feats", train_feats), ("val_feats", val_feats), ("test_feats", test_feats)):
        check_tensor("train_anomaly", name, t, ndim=2, last_dim=train_feats.shape[-1],
                     expected=f"[NumImages, {train_feats.shape[-1]}]", floating=True)
    pl.seed_everything(cfg.seed, verbose=False)
    os.makedirs(checkpoint_dir, exist_ok=True)
    checkpoint = ModelCheckpoint(dirpath=checkpoint_dir, filename="anomaly", save_weights_only=True,
                                 mode="max", monitor="val_acc", enable_version_counter=False)
    trainer = pl.Trainer(
        default_root_dir=checkpoint_dir,
        callbacks=[checkpoint, *callbacks],
        accelerator=accelerator,
        devices=1,
        max_epochs=cfg.max_epochs,
        gradient_clip_val=cfg.gradient_clip_val,
        logger=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
    )
    device = trainer.strategy.root_device  # sample and gather the sets where the model runs
    train_loader, train_fixed, val_loader, test_loader = anomaly_loaders(
        train_feats, train_labels, val_feats, val_labels, test_feats, test_labels, cfg, device=device)
    model = AnomalyPredictor(
        input_dim=train_feats.shape[-1], model_dim=cfg.model_dim, num_classes=1, num_heads=cfg.num_heads,
        num_layers=cfg.num_layers, dropout=cfg.dropout, input_dropout=cfg.input_dropout, lr=cfg.lr,
        warmup=cfg.warmup, max_iters=cfg.max_epochs * len(train_loader),
    )
    t0 = time.perf_counter()
    trainer.fit(model, train_loader, val_loader)
    fit_seconds = time.perf_counter() - t0
    model = AnomalyPredictor.load_from_checkpoint(checkpoint.best_model_path)
    accs = {name: trainer.test(model, dataloaders=loader, verbose=False)[0]["test_acc"]
            for name, loader in (("train_acc", train_fixed), ("val_acc", val_loader), ("test_acc", test_loader))}
    result = {**accs, "checkpoint": checkpoint.best_model_path, "fit_seconds": fit_seconds,
              "steps": int(trainer.global_step), "config": asdict(cfg)}
    return model, result


@torch.no_grad()
def anomaly_probabilities(model: AnomalyPredictor, sets: torch.Tensor) -> torch.Tensor:
    """Softmax over the set of the model's logits: ``[Batch, SetSize, D]`` -> ``[Batch, SetSize]`` (eval mode)."""
    was_training = model.training
    model.eval()
    try:
        logits = model(sets.to(model.device), add_positional_encoding=False).squeeze(-1)
    finally:
        model.train(was_training)
    return F.softmax(logits.float(), dim=-1)


def equivariance_error(model: AnomalyPredictor, sets: torch.Tensor, perm=None) -> float:
    """``max |P(x)[:, perm] - P(x[:, perm])|`` over the softmax probabilities (0 for an equivariant model).

    ``perm`` is a permutation of the set positions (default: a fixed random one, seed 0).
    """
    check_tensor("equivariance_error", "sets", sets, ndim=3, expected="[Batch, SetSize, D]", floating=True)
    n = sets.shape[1]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0)) if perm is None else torch.as_tensor(perm)
    if sorted(perm.tolist()) != list(range(n)):
        raise ValueError(f"equivariance_error: 'perm' must be a permutation of 0..{n - 1}, got {perm.tolist()}")
    perm = perm.to(sets.device)
    probs = anomaly_probabilities(model, sets)
    perm_probs = anomaly_probabilities(model, sets[:, perm])
    return (probs[:, perm.to(probs.device)] - perm_probs).abs().max().item()
