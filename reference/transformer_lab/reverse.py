"""Sequence reversal: data, model and training (tutorial's first experiment)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
import torch.utils.data as data
from pytorch_lightning.callbacks import ModelCheckpoint

from ._checks import check_tensor
from .predictor import TransformerPredictor
from .runtime import cpu_threads, uses_cpu


class ReverseDataset(data.Dataset):
    """``size`` random sequences of ``seq_len`` tokens in ``[0, num_categories)``; label = the reversed input.

    ``dataset[i]`` gives one ``(input [seq_len], label [seq_len])`` pair as in the tutorial;
    ``dataset[list_or_tensor_of_indices]`` gives a whole batch ``([B, seq_len], [B, seq_len])``
    in one tensor index, which :func:`batched_loader` uses instead of 128 calls and a collate.
    ``generator`` makes the data reproducible without touching the global RNG.
    """

    def __init__(self, num_categories, seq_len, size, generator: torch.Generator | None = None):
        super().__init__()
        self.num_categories = num_categories
        self.seq_len = seq_len
        self.size = size
        self.data = torch.randint(num_categories, size=(size, seq_len), generator=generator)

    def __len__(self):
        return self.size

    def __getitem__(self, idx):
        inp_data = self.data[idx]
        return inp_data, inp_data.flip(-1)


class BatchIndexSampler(data.Sampler):
    """Yields one index tensor per batch: ``dataset[indices]`` then fetches a batch in one tensor index.

    Shuffles every epoch with ``generator`` when ``shuffle``; ``drop_last`` drops a short last batch.
    Index tensors, not lists: turning a list of 128 Python ints into an index costs more than the
    lookup itself.
    """

    def __init__(self, size, batch_size, shuffle=False, drop_last=False, generator=None):
        if batch_size < 1:
            raise ValueError(f"BatchIndexSampler: batch_size must be >= 1, got {batch_size}")
        self.size, self.batch_size = size, batch_size
        self.shuffle, self.drop_last, self.generator = shuffle, drop_last, generator

    def __len__(self):
        full, rest = divmod(self.size, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self):
        order = torch.randperm(self.size, generator=self.generator) if self.shuffle else torch.arange(self.size)
        return iter(order.split(self.batch_size)[:len(self)])


def batched_loader(dataset, batch_size, shuffle=False, drop_last=False, generator=None) -> data.DataLoader:
    """A DataLoader that fetches each batch with one ``dataset[indices]`` call.

    ``batch_size=None`` turns off auto-collation, and :class:`BatchIndexSampler` hands the dataset
    a tensor of a batch's indices, so the dataset must accept one (ReverseDataset does).
    """
    sampler = BatchIndexSampler(len(dataset), batch_size, shuffle=shuffle, drop_last=drop_last, generator=generator)
    return data.DataLoader(dataset, batch_size=None, sampler=sampler)


class ReversePredictor(TransformerPredictor):
    """Predicts, for every position, the token at the mirrored position.

    ``forward`` takes token ids ``[Batch, SeqLen]`` (int64) or their one-hot encoding
    ``[Batch, SeqLen, num_classes]`` (float, the tutorial's input); ids are one-hot encoded first.
    """

    task_name = "reverse"

    @classmethod
    def check_hparams(cls, hparams):
        super().check_hparams(hparams)
        if hparams["num_classes"] < 2 or hparams["input_dim"] != hparams["num_classes"]:
            from .checkpoints import CheckpointError

            raise CheckpointError(
                f"checkpoint hyper-parameters (input_dim={hparams['input_dim']}, num_classes={hparams['num_classes']}) "
                "are not a reverse-task model, whose inputs and outputs are the same categories; "
                "is it an anomaly checkpoint? Load it with AnomalyPredictor"
            )

    def _embed(self, x, add_positional_encoding):
        if isinstance(x, torch.Tensor) and not x.is_floating_point():
            check_tensor("ReversePredictor", "x", x, ndim=2, expected="[Batch, SeqLen] of token ids")
            lo, hi = (int(v) for v in torch.aminmax(x)) if x.numel() else (0, 0)
            if lo < 0 or hi >= self.hparams.num_classes:
                raise ValueError(f"ReversePredictor: token ids must lie in [0, {self.hparams.num_classes}), "
                                 f"got min {lo}, max {hi}")
            # The tutorial's representation. For 10 categories one-hot times the input layer is
            # also faster on a CPU than an embedding lookup, whose backward is a slow scatter.
            x = F.one_hot(x, num_classes=self.hparams.num_classes).to(self.input_net[1].weight.dtype)
        return super()._embed(x, add_positional_encoding)

    def _calculate_loss(self, batch, mode="train"):
        """Token-level cross-entropy and accuracy of one batch, logged as ``{mode}_loss`` / ``{mode}_acc``.

        Args:
            batch: ``(inp_data, labels)``, both ``[Batch, SeqLen]`` token ids (labels = reversed inputs)
            mode: ``"train"``, ``"val"`` or ``"test"`` (the prefix of the logged names)

        Returns:
            ``(loss, acc)``: scalar tensors; the loss averages over all ``Batch * SeqLen`` tokens.
        """
        inp_data, labels = batch
        preds = self.forward(inp_data, add_positional_encoding=True)  # (B, T, C)
        loss = F.cross_entropy(preds.view(-1, preds.size(-1)), labels.view(-1))  # over all B*T tokens
        acc = (preds.argmax(dim=-1) == labels).float().mean()
        self.log(f"{mode}_loss", loss)
        self.log(f"{mode}_acc", acc)
        return loss, acc


@dataclass
class ReverseConfig:
    """The tutorial's recipe for the reverse task (defaults) and the data sizes."""

    num_categories: int = 10
    seq_len: int = 16
    train_size: int = 50000
    val_size: int = 1000
    test_size: int = 10000
    batch_size: int = 128
    model_dim: int = 32
    num_heads: int = 1
    num_layers: int = 1
    dropout: float = 0.0
    lr: float = 5e-4
    warmup: int = 50
    max_epochs: int = 10
    gradient_clip_val: float = 5.0
    seed: int = 42
    #: Intra-op CPU threads while training on a CPU (None: torch's default). One thread is within
    #: 10% of all cores on an idle machine and many times faster on a shared one (see cpu_threads).
    cpu_threads: int | None = 1


def reverse_loaders(cfg: ReverseConfig):
    """Train/val/test loaders; the data comes from generators seeded by ``cfg.seed``."""
    gens = [torch.Generator().manual_seed(cfg.seed + i) for i in range(4)]
    splits = [ReverseDataset(cfg.num_categories, cfg.seq_len, n, generator=g)
              for n, g in zip((cfg.train_size, cfg.val_size, cfg.test_size), gens)]
    train = batched_loader(splits[0], cfg.batch_size, shuffle=True, drop_last=True, generator=gens[3])
    return train, batched_loader(splits[1], cfg.batch_size), batched_loader(splits[2], cfg.batch_size)


def train_reverse(checkpoint_dir, cfg: ReverseConfig | None = None, progress=True, accelerator="auto", callbacks=()):
    """Train with the tutorial's recipe, keep the best-by-``val_acc`` checkpoint, test it.

    Returns ``(model, result)`` where ``model`` is the best checkpoint reloaded and ``result``
    holds ``val_acc``, ``test_acc`` and ``checkpoint`` (its path). ``callbacks`` are added to the
    Trainer's.
    """
    cfg = cfg or ReverseConfig()
    pl.seed_everything(cfg.seed, verbose=False)
    train_loader, val_loader, test_loader = reverse_loaders(cfg)
    os.makedirs(checkpoint_dir, exist_ok=True)
    checkpoint = ModelCheckpoint(dirpath=checkpoint_dir, filename="reverse", save_weights_only=True,
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
    model = ReversePredictor(
        input_dim=cfg.num_categories, model_dim=cfg.model_dim, num_classes=cfg.num_categories,
        num_heads=cfg.num_heads, num_layers=cfg.num_layers, dropout=cfg.dropout, lr=cfg.lr,
        warmup=cfg.warmup, max_iters=cfg.max_epochs * len(train_loader),
    )
    with cpu_threads(cfg.cpu_threads if uses_cpu(accelerator) else None):
        trainer.fit(model, train_loader, val_loader)
        model = ReversePredictor.load_from_checkpoint(checkpoint.best_model_path)
        val_result = trainer.test(model, dataloaders=val_loader, verbose=False)
        test_result = trainer.test(model, dataloaders=test_loader, verbose=False)
    result = {"val_acc": val_result[0]["test_acc"], "test_acc": test_result[0]["test_acc"],
              "checkpoint": checkpoint.best_model_path, "config": asdict(cfg)}
    return model, result
