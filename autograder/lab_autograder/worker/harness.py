"""What every probe runs under: the harness's own handles on torch and the OS (taken before any
student code can patch them), CPU-time limits, and ``step``, which runs one sub-step and records its
error instead of raising. Imports nothing from the grader."""

import os
import signal
import time
import traceback

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ["NBGRADER_EXECUTION"] = "autograde"

T_IMPORT = time.monotonic()
import torch  # noqa: E402

torch.set_num_threads(1)

# Keep our own handles on what the harness needs, before student code can patch them.
_SAVE, _LOAD, _CLONE = torch.save, torch.load, torch.Tensor.clone
_ALLCLOSE, _EQUAL = torch.allclose, torch.equal
_SETITIMER, _SIGNAL = signal.setitimer, signal.signal
_OPEN, _REPLACE, _TIME = open, os.replace, time.monotonic


class ProbeTimeout(BaseException):
    """Raised by SIGPROF or SIGALRM when a cell or a probe runs past its limit."""


def _alarm(signum, frame):
    raise ProbeTimeout("time limit reached")


#: a limit's wall-clock backstop, as a multiple of its CPU seconds: code that sleeps or blocks
WALL_FACTOR = 3.0


def _stop_timers():
    _SETITIMER(signal.ITIMER_PROF, 0)
    _SETITIMER(signal.ITIMER_REAL, 0)


class Limit:
    """``with Limit(s):`` raise ProbeTimeout after ``s`` seconds of this process's CPU time, or
    ``WALL_FACTOR * s`` seconds of wall-clock time. CPU time is what a loaded machine does not
    stretch: a correct solution gets the same verdict on a busy grading server as on an idle one."""

    def __init__(self, seconds):
        self.seconds = max(0.01, float(seconds))

    def __enter__(self):
        _SIGNAL(signal.SIGPROF, _alarm)
        _SIGNAL(signal.SIGALRM, _alarm)
        _SETITIMER(signal.ITIMER_PROF, self.seconds)
        _SETITIMER(signal.ITIMER_REAL, WALL_FACTOR * self.seconds)

    def __exit__(self, *exc):
        _stop_timers()
        return False


def short_error(exc: BaseException, limit=900) -> str:
    """``Type: message`` plus the innermost frame of student code (``<cell N>``)."""
    msg = f"{type(exc).__name__}: {exc}".strip()
    if isinstance(exc, ProbeTimeout):
        msg = "timed out (infinite loop or far too slow)"
    try:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith("<cell")]
        if frames:
            f = frames[-1]
            msg += f"  [at {f.filename[1:-1]}, line {f.lineno}: {(f.line or '').strip()[:120]}]"
    except Exception:  # noqa: BLE001
        pass
    return msg[:limit]


class Out(dict):
    """A probe's outputs (written to ``out/<part>.pt`` as a plain dict), and what its sub-steps
    share: the time limits, the work folder, and whether a student call timed out."""

    def __init__(self, limit=60.0, train_limit=150.0, work="."):
        super().__init__()
        self.limit, self.train_limit, self.work, self.timed_out = limit, train_limit, work, False


def step(out, name, fn, limit=None, isolated=False):
    """Run one sub-step under its own time limit; record ``error_<name>`` if it raises.

    After a student call timed out, the probe's further student calls are skipped (they would
    most likely hang too); calls on the oracle components (``isolated``) still run.
    """
    if out.timed_out and not isolated:
        out[f"error_{name}"] = "skipped: an earlier call of this part timed out"
        return
    try:
        with Limit(limit or out.limit):
            fn()
    except ProbeTimeout as e:
        _stop_timers()
        out[f"error_{name}"] = short_error(e)
        out.timed_out = True
    except BaseException as e:  # noqa: BLE001 - student code may raise anything, SystemExit included
        _stop_timers()
        out[f"error_{name}"] = short_error(e)


def need(ns, name):
    if name not in ns:
        raise NameError(f"'{name}' is not defined by the notebook (renamed, deleted, or its cell failed)")
    return ns[name]


def as_tensor(x, what):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    return _CLONE(
        x.detach().to("cpu"), memory_format=torch.contiguous_format
    )  # dense: the grader refuses views


def as_float(x, what):
    if isinstance(x, torch.Tensor):
        if x.numel() != 1:
            raise TypeError(f"{what} must be a scalar, got a tensor of shape {list(x.shape)}")
        return float(x.detach().cpu())
    if isinstance(x, (int, float)):
        return float(x)
    raise TypeError(f"{what} must be a number or a scalar tensor, got {type(x).__name__}")
