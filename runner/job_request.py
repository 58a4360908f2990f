"""What a caller asks for when it makes a job: :class:`JobRequest`, the shape every face
(``Client.submit``'s keywords, a schedule's stored job, each HTTP API's body) maps onto
before :mod:`runner.admission` checks and admits it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from runner.errors import InvalidParams

__all__ = ["JobRequest", "OPTIONS"]

OPTIONS = ("task_timeout", "job_timeout", "max_retries", "test", "min_success_ratio", "max_failed_pieces")


@dataclass(frozen=True)
class JobRequest:
    """What a caller asks for, in ``Client.submit``'s terms; ``None`` is "not given".

    Values are as the caller sent them (any type): :func:`check` is what vets them, so a
    bad one becomes a field error rather than a ``TypeError`` here.
    """

    template: Any = None
    source: Any = None
    destination: Any = None
    params: Any = None
    inputs: Any = None
    name: Any = None
    task_timeout: Any = None
    job_timeout: Any = None
    max_retries: Any = None
    retention_hours: Any = None
    test: Any = None
    min_success_ratio: Any = None  # partial success (runner/partial.py): one of the two, or neither
    max_failed_pieces: Any = None
    priority: Any = None

    @classmethod
    def of(cls, template: Any, fields: dict[str, Any]) -> "JobRequest":
        """A request from submit's keywords (a schedule's stored job); an unknown key is a
        field error, not a ``TypeError``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = [(key, f"unknown job option; use {', '.join(sorted(known - {'template'}))}")
                   for key in fields if key not in known]
        if unknown:
            raise InvalidParams(unknown)
        return cls(template=template, **fields)

    def given(self) -> dict[str, Any]:
        """The fields the caller set (not ``None``), template excluded."""
        return {f.name: v for f in dataclasses.fields(self) if f.name != "template" and (v := getattr(self, f.name))
                is not None}
