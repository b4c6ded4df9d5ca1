"""One module per graded part (the registry's names): ``probe(ns, inputs, out)`` runs the student's
definitions on the grader's inputs and fills ``out``; a part re-checked on stand-ins also has
``iso(ns, inputs, out, oracles)``. A probe records what it saw; it never decides what is right
(``lab_autograder/parts/<part>.py`` does, outside the sandbox). A sub-step that raises records
``out["error_<step>"]`` and the probe goes on."""

from importlib import import_module

#: the graded parts, in the registry's order (a test checks both lists agree)
PART_NAMES = (
    "scaled_dot_product",
    "multihead_attention",
    "encoder_block",
    "positional_encoding",
    "warmup_factor",
    "reverse_loss",
    "train_reverse",
    "attention_plot",
    "anomaly_loss",
    "train_anomaly",
    "prediction_view",
)
_MODULES = {name: import_module(f".{name}", __name__) for name in PART_NAMES}
PROBES = {name: m.probe for name, m in _MODULES.items()}
#: the same parts run on correct stand-ins for their dependencies (stages after the first)
ISO_PROBES = {name: m.iso for name, m in _MODULES.items() if hasattr(m, "iso")}
