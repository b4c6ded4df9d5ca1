"""transformer-lab reference solution: the Transformer tutorial's parts, importable and tested."""

from .anomaly import AnomalyConfig, AnomalyPredictor, anomaly_probabilities, equivariance_error, train_anomaly
from .anomaly_plots import find_mistakes, plot_anomaly_prediction, plot_anomaly_sets, plot_mistakes
from .attention import MultiheadAttention, scaled_dot_product
from .checkpoints import CheckpointError, read_checkpoint
from .cifar import IMAGENET_MEAN, IMAGENET_STD, load_cifar100
from .encoder import EncoderBlock, TransformerEncoder
from .features import build_resnet34, cached_features, extract_features, read_feature_file
from .plots import plot_attention_maps, plot_lr_schedule, plot_positional_encoding
from .positional import PositionalEncoding
from .predictor import TransformerPredictor
from .reverse import BatchIndexSampler, ReverseConfig, ReverseDataset, ReversePredictor, batched_loader, train_reverse
from .scheduler import CosineWarmupScheduler, warmup_cosine_factor
from .set_anomaly import (SetAnomalyDataset, SetBatchLoader, balanced_split, sample_set_indices, split_train_val,
                          synthetic_features)

__all__ = [
    "AnomalyConfig", "AnomalyPredictor", "BatchIndexSampler", "CheckpointError", "CosineWarmupScheduler", "EncoderBlock",
    "IMAGENET_MEAN", "IMAGENET_STD", "MultiheadAttention", "PositionalEncoding", "ReverseConfig",
    "ReverseDataset", "ReversePredictor", "SetAnomalyDataset", "SetBatchLoader", "TransformerEncoder",
    "TransformerPredictor", "anomaly_probabilities", "balanced_split", "batched_loader", "build_resnet34",
    "cached_features", "equivariance_error", "extract_features", "find_mistakes", "load_cifar100",
    "plot_anomaly_prediction", "plot_anomaly_sets", "plot_attention_maps", "plot_lr_schedule",
    "plot_mistakes", "plot_positional_encoding", "read_checkpoint", "read_feature_file", "sample_set_indices",
    "scaled_dot_product", "split_train_val", "synthetic_features", "train_anomaly", "train_reverse",
    "warmup_cosine_factor",
]
