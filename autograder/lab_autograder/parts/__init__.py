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

from importlib import import_module

from ..registry import ANOMALY_THRESHOLD, ANOMALY_THRESHOLD_QUICK, PARTS, REVERSE_THRESHOLD  # noqa: F401

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

_MODULES = {name: import_module(f".{name}", __name__) for name in PARTS}
#: per part, in the registry's order: the hidden inputs it chooses, and how it grades the outputs
INPUTS = {name: getattr(m, f"inputs_{name}") for name, m in _MODULES.items()}
GRADERS = {name: getattr(m, f"grade_{name}") for name, m in _MODULES.items()}
