"""Splitting a class over several machines: ``--shard I/N`` grades one stable share of the students
(by a hash of the id, so a late addition moves nobody else), ``autograder merge`` joins the OUT
folders. Each machine needs only the submissions and the grader; no scheduler, no shared disk."""

from __future__ import annotations

import zlib

from .layout import Entry


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/3"`` -> ``(2, 3)``; shares are numbered from 1."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: write I/N, e.g. 1/3 (the first of three machines)") from None
    if not 1 <= i <= n:
        raise ValueError(f"--shard {text!r}: I must be between 1 and N")
    return i, n


def shard_index(student_id: str, n: int) -> int:
    """The share (1..n) a student is graded in."""
    return zlib.crc32(student_id.encode("utf-8", "surrogateescape")) % n + 1


def shard_of(entries: list[Entry], i: int, n: int) -> list[Entry]:
    return [e for e in entries if shard_index(e.student_id, n) == i]
