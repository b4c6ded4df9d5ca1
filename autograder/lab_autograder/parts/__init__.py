"""The graded parts: the inputs the grader chooses, and the checks of what the worker returns.

Everything here runs in the grading process and never touches student code: the worker's
outputs arrive as plain tensors/numbers/strings, and every expected value is computed here
with the reference package (``transformer_lab``). Each part is a list of weighted checks; a
part's score is ``points * (weight passed / total weight)``. A failed check says what was
expected, what was received and a hint, but never prints a hidden input.

One module per part (``parts/<part>.py``: ``inputs_<part>(seed)``, its checks and diagnosis,
``grade_<part>(inputs, outputs, points)``); ``base.py`` holds what they are made of. The trusted
evaluation of checkpoints is ``checkpoint_eval.py``.
"""

from __future__ import annotations

from ..registry import ANOMALY_THRESHOLD, ANOMALY_THRESHOLD_QUICK, REVERSE_THRESHOLD  # noqa: F401
from .scaled_dot_product import grade_scaled_dot_product, inputs_scaled_dot_product
from .multihead_attention import grade_multihead_attention, inputs_multihead_attention
from .encoder_block import grade_encoder_block, inputs_encoder_block
from .positional_encoding import grade_positional_encoding, inputs_positional_encoding
from .warmup_factor import grade_warmup_factor, inputs_warmup_factor
from .reverse_loss import grade_reverse_loss, inputs_reverse_loss
from .train_reverse import grade_train_reverse, inputs_train_reverse
from .attention_plot import grade_attention_plot, inputs_attention_plot
from .anomaly_loss import grade_anomaly_loss, inputs_anomaly_loss
from .train_anomaly import grade_train_anomaly, inputs_train_anomaly
from .prediction_view import grade_prediction_view, inputs_prediction_view
# the package's vocabulary for the grader and the tests (re-exported)
from .base import (  # noqa: F401
    DEFAULT_POINTS,
    DEPENDS,
    NOT_CONFIGURED,
    PART_ORDER,
    TITLES,
    Check,
    PartResult,
    ref,
)
from .scaled_dot_product import _attention_variant  # noqa: F401
from .train_anomaly import anomaly_eval_sets  # noqa: F401
from .train_reverse import reverse_eval_data  # noqa: F401
from .warmup_factor import _factor  # noqa: F401

#: per part, in the registry's order: the hidden inputs it chooses, and how it grades the outputs
INPUTS = {
    "scaled_dot_product": inputs_scaled_dot_product,
    "multihead_attention": inputs_multihead_attention,
    "encoder_block": inputs_encoder_block,
    "positional_encoding": inputs_positional_encoding,
    "warmup_factor": inputs_warmup_factor,
    "reverse_loss": inputs_reverse_loss,
    "train_reverse": inputs_train_reverse,
    "attention_plot": inputs_attention_plot,
    "anomaly_loss": inputs_anomaly_loss,
    "train_anomaly": inputs_train_anomaly,
    "prediction_view": inputs_prediction_view,
}
GRADERS = {
    "scaled_dot_product": grade_scaled_dot_product,
    "multihead_attention": grade_multihead_attention,
    "encoder_block": grade_encoder_block,
    "positional_encoding": grade_positional_encoding,
    "warmup_factor": grade_warmup_factor,
    "reverse_loss": grade_reverse_loss,
    "train_reverse": grade_train_reverse,
    "attention_plot": grade_attention_plot,
    "anomaly_loss": grade_anomaly_loss,
    "train_anomaly": grade_train_anomaly,
    "prediction_view": grade_prediction_view,
}
assert list(INPUTS) == PART_ORDER, "parts/ and the registry name the same parts, in the same order"
