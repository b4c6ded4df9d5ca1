"""The notebook's side: the namespace its cells run in (with the shell their magics call), and
running them one by one under a CPU-time limit, an error recorded and the next cell run."""

import os

from .harness import T_IMPORT, Limit, _OPEN, _TIME, _stop_timers, short_error


class _Nothing:
    """Any other attribute of the shell, however deep (pyplot's first figure calls
    ``get_ipython().events.register(...)``): callable, doing nothing."""

    def __call__(self, *args, **kwargs):
        return None

    def __getattr__(self, name):
        return self


class _Shell:
    """``get_ipython()`` for notebook code, whose magics the grader turned into calls of it (IPython's
    own transformer). Shell escapes do nothing; ``%%writefile`` writes its file (relative to the
    notebook's folder); ``time``, ``timeit``, ``capture``, ``prun`` run their code once; every
    other magic does nothing."""

    RUN = {"time", "timeit", "capture", "prun", "debug"}

    def __init__(self, ns):
        self.ns = ns

    def run_line_magic(self, name, line, *args, **kwargs):
        if name in self.RUN and line.strip():
            exec(compile(line, "<magic>", "exec"), self.ns)  # noqa: S102 - the student's own code

    def run_cell_magic(self, name, line, body, *args, **kwargs):
        if name == "writefile":
            words = line.split()
            files = [w for w in words if not w.startswith("-")]
            if files:
                with _OPEN(files[-1], "a" if {"-a", "--append"} & set(words) else "w") as f:
                    f.write(body)
        elif name in self.RUN:
            exec(compile(body, "<magic>", "exec"), self.ns)  # noqa: S102

    def getoutput(self, *args, **kwargs):
        return []

    def __getattr__(self, name):  # system, magic, events, ...: nothing runs
        return _Nothing()


def notebook_namespace() -> dict:
    """The namespace the notebook's cells run in, with the shell their magics call."""
    ns = {
        "__name__": "__main__",
        "__builtins__": __builtins__,
        "get_ipython": None,
        "display": lambda *a, **k: None,
    }
    shell = _Shell(ns)
    ns["get_ipython"] = lambda: shell
    try:  # `from IPython import get_ipython` in the notebook must find the same shell
        import IPython
        import IPython.core.getipython

        IPython.get_ipython = IPython.core.getipython.get_ipython = ns["get_ipython"]
    except ImportError:
        pass
    return ns


def run_cells(job, ns, paths):
    """Run the notebook's code cells in ``ns``; a cell's error is recorded and the next cell runs."""
    import linecache

    t_start = _TIME()
    skip = set(job.get("skip_cells", []))
    cell_limit = float(job.get("cell_timeout", 60))
    errors = []
    labels = job.get("labels") or [f"#{i + 1}" for i in range(len(job["cells"]))]
    for i, src in enumerate(job["cells"]):
        if i in skip:
            continue
        progress(paths, f"cell {i}")
        before = {k: id(v) for k, v in ns.items()}
        name = f"<cell {labels[i] if i < len(labels) else i}>"
        linecache.cache[name] = (len(src), None, src.splitlines(True), name)  # source lines in tracebacks
        try:
            code = compile(src, name, "exec")
            with Limit(cell_limit):
                exec(code, ns)  # noqa: S102 - this is the sandboxed worker's job
        except BaseException as e:  # noqa: BLE001 - SystemExit, KeyboardInterrupt, timeouts: keep going
            _stop_timers()
            errors.append(f"{name[1:-1]}: {short_error(e)}")
            if isinstance(e, MemoryError):  # free what the failed cell hoarded (data, not definitions)
                for k in [k for k, v in ns.items() if before.get(k) != id(v)]:
                    if not (callable(ns[k]) or isinstance(ns[k], type(os))):
                        del ns[k]
                import gc

                gc.collect()
        progress(paths, f"cell {i} done")
    try:
        import matplotlib.pyplot as plt

        plt.close("all")
    except BaseException:  # noqa: BLE001
        pass
    return {
        "errors": "\n".join(errors)[-8000:],
        "n_cells": float(len(job["cells"])),
        "import_seconds": t_start - T_IMPORT,
        "cells_seconds": _TIME() - t_start,
    }


def progress(paths, line):
    """One line of ``OUT/progress.log``: the grader reads it to know which cell or part was running."""
    with _OPEN(os.path.join(paths["out"], "progress.log"), "a") as f:
        f.write(line + "\n")
        f.flush()
