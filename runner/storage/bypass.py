"""``bypass:``: no source (for partitioners that generate pieces) or no destination."""

from __future__ import annotations

import io
from typing import BinaryIO

from runner.errors import SourceError

__all__ = ["BypassStorage"]


class BypassStorage:
    def check(self, uri: str) -> None:
        return None

    def open_read(self, uri: str) -> BinaryIO:
        raise SourceError("source bypass: has no data; pick a partitioner that generates pieces (e.g. replicas)")

    def read_range(self, uri: str, start: int, end: int) -> bytes:
        return self.open_read(uri).read()

    def size(self, uri: str) -> int:
        return 0

    def list(self, uri: str) -> list[str]:
        return []

    def open_write(self, uri: str) -> BinaryIO:
        return io.BytesIO()  # written and forgotten: the assembler's return value is the result
