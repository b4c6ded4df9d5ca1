"""Autograder of the transformer-lab assignment: sandboxed, behavioural, Gradescope-compatible.

``autograder grade SUBMISSION... --out OUT`` (see ``lab_autograder.cli``). Student code runs
only in a sandboxed worker process (the ``worker`` package); this package compares its plain-tensor
outputs with the reference package ``transformer_lab``.
"""

__all__ = ["grade", "parts", "sandbox", "notebook"]
