"""Correct stand-ins for the student's components, generated from the reference package's source.

A stand-in charges a bug to its own part: an encoder block whose own code is right but sits on a
broken ``MultiheadAttention`` is re-checked on a correct one. There is one copy of the maths: each
stand-in is the source text of the reference definition itself (``inspect.getsource``), never a
copy kept by hand.

The grader writes into a job's read-only ``in/oracles.py`` only the stand-ins a stage needs
(``registry.STAGES``); the worker executes that text in a namespace of its own, with ``math``,
``torch``, ``nn``, ``F`` and ``ORACLES``, and swaps the registered names into the student's
namespace while it re-checks a part. A stage that grades part X never holds the stand-in for X,
so student code cannot borrow a correct implementation of the part it is graded on.
"""

from __future__ import annotations

import importlib
import inspect

from .registry import STAGES

#: component -> (reference definitions ``module:name`` it needs, in order; the names it stands in for)
STAND_INS = {
    "scaled_dot_product": (
        (
            "_checks:_fmt",
            "_checks:check_tensor",
            "_checks:check_mask",
            "attention:mask_fill_value",
            "attention:scaled_dot_product",
        ),
        ("scaled_dot_product",),
    ),
    "multihead_attention": (("attention:MultiheadAttention",), ("MultiheadAttention",)),
    "encoder_block": (
        ("encoder:EncoderBlock", "encoder:TransformerEncoder"),
        ("EncoderBlock", "TransformerEncoder"),
    ),
    "positional_encoding": (
        ("positional:sinusoidal_table", "positional:PositionalEncoding"),
        ("sinusoidal_table", "PositionalEncoding"),
    ),
}


assert set(STAND_INS) == {p for _, parts in STAGES for p in parts}, "a stand-in per part a stage names"


def _definition(ref: str) -> str:
    module, name = ref.split(":")
    return inspect.getsource(getattr(importlib.import_module(f"transformer_lab.{module}"), name))


def oracle_source(components) -> str:
    """The text of ``in/oracles.py`` for a stage that stands in for ``components``."""
    parts, seen, names = ["from __future__ import annotations\n"], set(), []
    for component in components:
        refs, registered = STAND_INS[component]
        for ref in refs:
            if ref not in seen:
                seen.add(ref)
                parts.append(_definition(ref))
        names += registered
    parts += [f"ORACLES[{n!r}] = {n}\n" for n in names]
    return "\n\n".join(parts)
