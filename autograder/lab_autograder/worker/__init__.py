"""The sandboxed worker: runs a submission's code cells, then probes each graded part.

The grader ships this package whole into every job (``IN/worker/``) and runs it once per *stage*
(``registry.STAGES``), each time in a fresh process and a fresh jail, as an unprivileged user:
``python -I IN/worker/__main__.py IN WORK OUT``. It imports nothing from the grader or the
reference package (neither exists inside the jail; a test checks its imports). It reads, from the
read-only ``IN`` folder:

* ``job.json``: the code cells, which cells to skip, which probes to run, time limits;
* ``inputs.pt``: the grader-chosen inputs, one dict of tensors per part;
* the stand-ins (some stages only; on a pipe, see ``load_oracles``): correct components *below* the parts the
  stage grades, so that a bug is charged to its own part. The plain probes run in a stage that
  has none, so no student code ever shares a process with a correct copy of the part it is
  graded on.

``WORK`` is the notebook's folder (``WORK/nb``, with ``checkpoints/`` copied by the grader) and
scratch space. For every probe it writes ``OUT/<part>.pt``: a flat dict of tensors, numbers and
strings (the grader treats it as untrusted data). It never decides whether anything is right.
``OUT/progress.log`` records which cell or part is running, so that the grader can skip a cell or
part that hung or killed the process, and start again.

Its files: ``harness.py`` (limits, ``step``, the handles taken before student code runs),
``models.py`` (the grader's weights into the student's modules), ``stand_ins.py``, ``cells.py``
(the notebook's namespace and cells), ``run.py`` (the run) and ``probes/<part>.py``, one per
graded part, each paired with ``lab_autograder/parts/<part>.py`` on the grader's side.
"""

from .cells import notebook_namespace, run_cells
from .harness import Out, step
from .run import main, run_probe
from .models import load_state
from .probes import ISO_PROBES, PROBES

__all__ = ["ISO_PROBES", "PROBES", "Out", "load_state", "main", "notebook_namespace", "run_cells"]
__all__ += ["run_probe", "step"]
