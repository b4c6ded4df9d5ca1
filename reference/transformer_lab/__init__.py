"""transformer-lab reference solution: the Transformer tutorial's parts, importable and tested."""

from .attention import MultiheadAttention, scaled_dot_product
from .checkpoints import CheckpointError, read_checkpoint
from .encoder import EncoderBlock, TransformerEncoder
from .positional import PositionalEncoding
from .predictor import TransformerPredictor
from .reverse import ReverseConfig, ReverseDataset, ReversePredictor, batched_loader, train_reverse
from .scheduler import CosineWarmupScheduler, warmup_cosine_factor

__all__ = [
    "CheckpointError",
    "CosineWarmupScheduler",
    "EncoderBlock",
    "MultiheadAttention",
    "PositionalEncoding",
    "ReverseConfig",
    "ReverseDataset",
    "ReversePredictor",
    "TransformerEncoder",
    "TransformerPredictor",
    "batched_loader",
    "read_checkpoint",
    "scaled_dot_product",
    "train_reverse",
    "warmup_cosine_factor",
]
