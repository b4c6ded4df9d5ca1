"""What the worker runs for the ``train_reverse`` part: ``train_reverse`` with a recorder in its Trainer, and
which epoch its checkpoint holds; then the same on correct components."""

from ._training import training_probes

probe, iso = training_probes("train_reverse")
