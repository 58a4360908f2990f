"""Runner: partition / app / assemble jobs on your own Celery and Redis fleet.

User code imports everything from here and never imports Celery.

Every name is loaded on first use (PEP 562 ``__getattr__``): ``import runner`` — which
every ``runner`` command and every worker does first — costs nothing, instead of the
~2 s of CPU that pulling in Celery, redis-py's asyncio client and pydantic took, so
``runner --version`` answers at once. ``from runner import Client`` works as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> the module that owns it
_OWNERS = {
    "TemplateInfo": "runner.catalog",
    "SourceReport": "runner.checks",
    "Client": "runner.client",
    "Job": "runner.client",
    "Settings": "runner.config",
    "get_settings": "runner.config",
    **{name: "runner.errors" for name in (
        "ClusterError", "ConfigError", "EngineError", "IllegalTransition", "InvalidParams", "InvalidSchedule",
        "JobCancelled", "JobError", "JobFailed", "JobNotFinished", "JobNotFound", "JobTimedOut", "QuotaExceeded",
        "RunnerError", "ScheduleNotFound", "SoftTimeLimitExceeded", "SourceError", "TemplateError",
        "TemplateNotFound")},
    "JobState": "runner.models",
    "JobStatus": "runner.models",
    "Generated": "runner.pieces",
    "PieceRef": "runner.pieces",
    "Schedule": "runner.schedules.handle",
    "CatchUp": "runner.schedules",
    "ScheduleInfo": "runner.schedules",
    **{name: "runner.registry" for name in ("Template", "app", "assembler", "get_template", "partitioner", "template")},
    "local_cluster": "runner.local",
    "SimpleJob": "runner.simple",
}

if TYPE_CHECKING:  # what type checkers and IDEs see
    from runner.catalog import TemplateInfo
    from runner.checks import SourceReport
    from runner.client import Client, Job
    from runner.config import Settings, get_settings
    from runner.errors import (
        ClusterError, ConfigError, EngineError, IllegalTransition, InvalidParams, InvalidSchedule, JobCancelled,
        JobError, JobFailed, JobNotFinished, JobNotFound, JobTimedOut, QuotaExceeded, RunnerError, ScheduleNotFound,
        SoftTimeLimitExceeded, SourceError, TemplateError, TemplateNotFound,
    )
    from runner.local import local_cluster
    from runner.models import JobState, JobStatus
    from runner.pieces import Generated, PieceRef
    from runner.schedules.handle import Schedule
    from runner.registry import Template, app, assembler, get_template, partitioner, template
    from runner.schedules import CatchUp, ScheduleInfo
    from runner.simple import SimpleJob


def __getattr__(name: str) -> Any:
    """Load ``name`` from its owner on first use, then keep it here (later lookups are
    plain attribute reads). Unknown names raise AttributeError, so ``from runner import
    storage`` still finds the submodule."""
    owner = _OWNERS.get(name)
    if owner is None:
        raise AttributeError(f"module 'runner' has no attribute {name!r}")
    value = getattr(importlib.import_module(owner), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    # defining work
    "app",
    "partitioner",
    "assembler",
    "template",
    "Template",
    "TemplateInfo",
    "get_template",
    # running it
    "Client",
    "Job",
    "JobState",
    "JobStatus",
    "local_cluster",
    "SimpleJob",
    "PieceRef",
    "Generated",
    "SourceReport",
    # recurring jobs
    "Schedule",
    "ScheduleInfo",
    "CatchUp",
    # configuration
    "Settings",
    "get_settings",
    # errors
    "RunnerError",
    "ConfigError",
    "TemplateError",
    "TemplateNotFound",
    "InvalidParams",
    "InvalidSchedule",
    "ScheduleNotFound",
    "SourceError",
    "JobNotFound",
    "IllegalTransition",
    "QuotaExceeded",
    "JobNotFinished",
    "ClusterError",
    "EngineError",
    "JobError",
    "JobFailed",
    "JobTimedOut",
    "JobCancelled",
    "SoftTimeLimitExceeded",
]
