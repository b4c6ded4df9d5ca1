"""Reading Lightning checkpoints safely, with errors that say what is wrong.

Checkpoints are read with ``torch.load(weights_only=True)``: tensors and plain containers
only, so a file whose pickle would run code is refused instead of executed.
"""

from __future__ import annotations

import os
import pickle
import zipfile

import torch

#: Key under which this package records which task wrote a checkpoint.
TASK_KEY = "transformer_lab_task"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, corrupt, unsafe or from another task."""


def read_checkpoint(path, map_location="cpu") -> dict:
    """Load a checkpoint dict without unpickling arbitrary objects."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist; train first (the notebook's training cell) "
                              "or fix the path")
    with open(path, "rb") as f:
        magic = f.read(2)
    # torch.save writes a zip archive (b"PK"); legacy files are raw pickles (protocol byte 0x80).
    if magic != b"PK" and magic[:1] != b"\x80":
        raise CheckpointError(f"checkpoint {path!r} is corrupt or not a PyTorch file (it starts with {magic!r})")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"checkpoint {path!r} holds objects other than tensors and plain containers and was not loaded "
            f"(unsafe or foreign pickle): {str(e).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path!r} is corrupt or not a PyTorch file: {str(e).splitlines()[0]}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "hyper_parameters" not in ckpt:
        keys = sorted(ckpt)[:6] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"checkpoint {path!r} is not a Lightning checkpoint of a TransformerPredictor "
            f"(needs 'state_dict' and 'hyper_parameters'; found {keys})"
        )
    return ckpt
