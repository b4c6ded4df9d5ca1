"""Every part's test runs the notebook's code in this process, as the worker would run it."""

import pytest
import torch


@pytest.fixture(autouse=True)
def in_a_scratch_folder(tmp_path, monkeypatch):
    """The notebook's code sees what it sees in the worker, and writes only into ``tmp_path``."""
    import IPython
    import IPython.core.getipython

    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the worker; and the probes' tiny models are fastest so
    monkeypatch.chdir(tmp_path)  # what the notebook's code and the training probes write stays there
    monkeypatch.syspath_prepend(str(tmp_path))  # as in the worker: modules the notebook writes import
    monkeypatch.setattr(IPython, "get_ipython", IPython.get_ipython)  # the worker's shell, undone after
    monkeypatch.setattr(IPython.core.getipython, "get_ipython", IPython.core.getipython.get_ipython)
    yield
    torch.set_num_threads(threads)
