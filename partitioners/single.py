"""``single``: exactly one piece, for jobs that need no partitioning (``SimpleJob``)."""

from __future__ import annotations

from collections.abc import Iterator

from runner.registry import partitioner


@partitioner("single")
def single(source, ctx) -> Iterator[int]:
    """One piece, ``0``; the app reads the job's source itself if it has one."""
    yield 0
