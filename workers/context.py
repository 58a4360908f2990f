"""The context (``ctx``) handed to user code: who is running, with which params, where.

One class for all three kinds of function, so a helper written for an app also works in
a partitioner or assembler. User code never needs to import Celery.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pydantic import BaseModel

from runner.storage import Destination, Source, Storages

__all__ = ["TaskContext"]


@dataclass
class TaskContext:
    """What a partitioner, app or assembler knows about the work in hand.

    ``params`` is the function's own validated param model (``None`` if it takes none);
    ``piece_index`` is set for apps; ``destination`` for assemblers.
    """

    job_id: str
    template: str
    kind: str
    params: BaseModel | None
    test: bool = False
    piece_index: int | None = None
    source: Source | None = None
    destination: Destination | None = None
    storages: Storages | None = None
    log: logging.LoggerAdapter = field(init=False)

    def __post_init__(self) -> None:
        self.log = logging.LoggerAdapter(
            logging.getLogger(f"runner.job.{self.kind}"), {"job_id": self.job_id, "template": self.template}
        )

    def with_piece(self, index: int) -> "TaskContext":
        """This context, for piece ``index`` (cheap: apps get one per piece)."""
        self.piece_index = index
        return self

    def read_range(self, piece: dict) -> bytes:
        """The bytes of a ``bytes``-partitioner piece (``{"uri", "start", "end"}``)."""
        from workers import runtime

        return (self.storages or runtime.storages()).read_range(piece)

    def __repr__(self) -> str:
        return f"TaskContext(job={self.job_id}, template={self.template}, kind={self.kind}, piece={self.piece_index})"
