"""The graded parts, defined once: everything else reads them from here.

``tools/build_notebook.py`` (the solution regions, the nbgrader points of each test cell, the
notebook's points table and the thresholds of its public checks), the grader (titles, points
fallback, the parts a part builds on, the stand-in stage that re-checks it, the accuracy it
demands) and ``source/PARTS.md`` (checked by a test) all derive from ``PARTS``; the stand-in stages that
re-check a part on correct copies of what it builds on are ``STAGES``. Part names are these keys
everywhere (the worker's ``probes/<part>.py``, ``parts/<part>.py``, the stand-ins). Renaming a part,
changing its points or a threshold is one edit here, then ``make release``.

Plain data only (no torch): the notebook builder imports it, and it holds no expected value.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Part:
    title: str
    points: int
    #: the reference definitions (``module:qualname``) whose bodies are the student's solution regions
    targets: tuple[str, ...]
    #: the parts whose code this part's code calls (a bug there can fail this part)
    depends: tuple[str, ...] = ()
    #: the stage (``STAGES``) that re-checks this part on correct stand-ins of ``depends``
    iso_stage: str | None = None
    #: its column header in the grades table the CLI prints
    column: str = ""


_ATTENTION = ("scaled_dot_product", "multihead_attention", "encoder_block")

#: The worker runs in up to four stages, each a fresh process in a fresh jail, with correct stand-ins
#: (``oracles.py``) for the parts named. A part's plain probe runs in the first, which holds no
#: stand-in at all; a later stage re-runs a part that lost points on stand-ins for the parts below
#: it (its ``iso_stage``), never for the part itself. A stage runs only when a part it would
#: re-check is not at full marks.
STAGES = (
    ("student", ()),
    ("iso_sdp", ("scaled_dot_product",)),
    ("iso_mha", ("scaled_dot_product", "multihead_attention")),
    ("iso_all", _ATTENTION + ("positional_encoding",)),
)

PARTS: dict[str, Part] = {
    "scaled_dot_product": Part(
        "Scaled dot-product attention", 3, ("attention:scaled_dot_product",), column="sdp"
    ),
    "multihead_attention": Part(
        "Multi-head attention",
        3,
        ("attention:MultiheadAttention.forward",),
        ("scaled_dot_product",),
        "iso_sdp",
        column="mha",
    ),
    "encoder_block": Part(
        "Encoder block (post-LN)",
        3,
        ("encoder:EncoderBlock.forward",),
        ("scaled_dot_product", "multihead_attention"),
        "iso_mha",
        column="block",
    ),
    "positional_encoding": Part(
        "Positional encoding",
        2,
        ("positional:sinusoidal_table", "positional:PositionalEncoding.forward"),
        column="pe",
    ),
    "warmup_factor": Part(
        "Cosine warm-up learning-rate factor", 2, ("scheduler:warmup_cosine_factor",), column="warmup"
    ),
    "reverse_loss": Part(
        "Reverse task: loss and accuracy",
        2,
        ("reverse:ReversePredictor._calculate_loss",),
        _ATTENTION + ("positional_encoding",),
        "iso_all",
        column="rev_loss",
    ),
    "train_reverse": Part(
        "Reverse task: training and checkpoint",
        3,
        ("reverse:train_reverse",),
        _ATTENTION + ("positional_encoding",),
        "iso_all",
        column="rev_train",
    ),
    "attention_plot": Part("Attention-map plot", 1, ("plots:plot_attention_maps",), column="attn_plot"),
    "anomaly_loss": Part(
        "Set anomaly: loss and accuracy",
        2,
        ("anomaly:AnomalyPredictor._calculate_loss",),
        _ATTENTION,
        "iso_all",
        column="an_loss",
    ),
    "train_anomaly": Part(
        "Set anomaly: training and checkpoint",
        3,
        ("anomaly:train_anomaly",),
        _ATTENTION,
        "iso_all",
        column="an_train",
    ),
    "prediction_view": Part(
        "Set anomaly: prediction view", 1, ("anomaly_plots:plot_anomaly_prediction",), column="pred_view"
    ),
}

#: Token accuracy a reverse checkpoint must reach, in the notebook's public check and in grading.
REVERSE_THRESHOLD = 0.99
#: What the anomaly checkpoint must reach depends on the data it is measured on (one policy, see
#: autograder/README.md): CIFAR-100 features (or any instructor file, and the tests' parametrised
#: synthetic specs) 90%, the tutorial's full recipe reaching ~94%; the notebook's quick-mode
#: synthetic data, on which the reference trained as the notebook tells a CPU student scores
#: 86.1-90.3% (4 training x 3 grader seeds), 80%.
ANOMALY_THRESHOLD = 0.90
ANOMALY_THRESHOLD_QUICK = 0.80

#: Given code the notebook imports, shipped beside it in ``source/`` and ``release/`` (generated from
#: ``notebook/<name>`` by ``tools/build_notebook.py``). The grader copies the assignment's own copy
#: (beside the points notebook) into every job: a student's copy is never read.
GIVEN_FILES = ("lab_data.py",)
