"""What comes back from the worker is data written by student code: bound it before any use.

* :func:`load_output`: an ``out/*.pt`` file (bytes already read with a size cap) becomes a flat
  dict of dense tensors, floats and short strings. The zip container is checked first (stored
  entries only, sizes adding up: no decompression bomb), and its pickle's opcodes
  (``pickle_scan.py``: bounded size, no hash-collision keys), then ``torch.load(weights_only=True)``
  (no code runs), then every tensor: strided, on the CPU, a plain dtype, contiguous (an expanded,
  stride-0 or overlapping view of a small storage is refused before any arithmetic could
  materialise it) and within an element budget per tensor and per file.
* :func:`clean_text`: a string that will be shown to a student: capped, control characters
  dropped, grader paths redacted, and the characters that make Markdown/HTML structure (code
  fences, ``<tag>``, ``**bold**``) defused, so ``feedback.md`` keeps exactly the grader's layout.
"""

from __future__ import annotations

import io
import math
import re
import zipfile

import torch

from .pickle_scan import PickleRefused, scan

MAX_OUTPUT_BYTES = 16 * 2**20
MAX_TENSOR_NUMEL = 2**20
MAX_TOTAL_NUMEL = 4 * 2**20
MAX_KEYS = 512
MAX_STRING = 4000
LONG_STRINGS = {"text": 20000, "noimg_text": 20000, "xticks": 20000, "noimg_xticks": 20000, "errors": 8000}
DTYPES = {
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.bool,
}
_KEY = re.compile(r"^[A-Za-z0-9_]{1,80}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


class Malformed(ValueError):
    """The file is not what a worker writes; the message is safe to show."""


def check_zip(data: bytes) -> None:
    """A ``torch.save`` file: its zip entries stored, their sizes within the file (else
    :class:`Malformed`)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        raise Malformed("not a torch.save file") from None
    total = 0
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
            raise Malformed("compressed entries (torch.save never writes them)")
        total += info.file_size
    if len(infos) > 4 * MAX_KEYS + 16 or total > len(data):
        raise Malformed("inconsistent sizes")
    pickles = [i for i in infos if i.filename.endswith("/data.pkl")]
    if len(pickles) != 1:
        raise Malformed("not a torch.save file (no data.pkl)")
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        pkl = z.read(pickles[0])
    try:  # before torch.load builds anything: bounded work whatever the pickle holds
        scan(pkl)
    except PickleRefused as e:
        raise Malformed(str(e)) from None


def check_tensor(t: torch.Tensor, budget: int) -> torch.Tensor:
    if t.layout != torch.strided or t.device.type != "cpu" or t.is_quantized or t.dtype not in DTYPES:
        raise Malformed(f"a tensor of an unexpected kind ({t.layout}, {t.dtype}, {t.device.type})")
    if t.numel() > min(MAX_TENSOR_NUMEL, budget):
        raise Malformed(f"a tensor of {t.numel()} elements (at most {MAX_TENSOR_NUMEL})")
    if not t.is_contiguous():
        raise Malformed("a strided view (expanded or overlapping); the worker writes dense tensors only")
    if t.untyped_storage().nbytes() < (t.storage_offset() + t.numel()) * t.element_size():
        raise Malformed("a tensor larger than its storage")
    return t.detach()


def load_output(data: bytes) -> dict:
    """A worker's output file as a flat ``{key: tensor | float | str}``; raises :class:`Malformed`."""
    if len(data) > MAX_OUTPUT_BYTES:
        raise Malformed(f"larger than {MAX_OUTPUT_BYTES >> 20} MiB")
    check_zip(data)
    try:
        d = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a forged or truncated file earns nothing
        raise Malformed(f"unreadable ({type(e).__name__})") from None
    if not isinstance(d, dict) or len(d) > MAX_KEYS:
        raise Malformed("not a flat dict of results")
    out, budget = {}, MAX_TOTAL_NUMEL
    for k, v in d.items():
        if not isinstance(k, str) or not _KEY.match(k):
            continue
        if isinstance(v, (bool, int, float)):
            try:
                out[k] = float(v) if math.isfinite(float(v)) else float("nan")
            except OverflowError:  # an int of a thousand digits
                out[k] = float("nan")
        elif isinstance(v, str):
            out[k] = v[: LONG_STRINGS.get(k, MAX_STRING)]
        elif isinstance(v, torch.Tensor):
            out[k] = check_tensor(v, budget)
            budget -= v.numel()
    return out


def clean_text(s, cap: int = MAX_STRING, redact: tuple[str, ...] = ()) -> str:
    """``s`` made safe to show a student (see the module docstring)."""
    s = str(s)
    if len(s) > cap:
        s = s[:cap] + f" ... ({len(s) - cap} characters cut)"
    s = _CONTROL.sub("", s.replace("\r\n", "\n").replace("\r", "\n"))
    for p in redact:
        if p and len(p) > 1:
            s = s.replace(p, "<grader path>")
    s = re.sub(r"`{3,}|~{3,}", lambda m: "'" * len(m.group()), s)
    return s.replace("<", "\u2039").replace(">", "\u203a").replace("**", "\u2217\u2217")
