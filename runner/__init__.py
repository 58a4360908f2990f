"""Runner: partition / app / assemble jobs on your own Celery and Redis fleet.

User code imports everything from here and never imports Celery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from celery.exceptions import SoftTimeLimitExceeded

from runner.client import Client, Job
from runner.config import Settings, get_settings
from runner.errors import (
    ClusterError,
    ConfigError,
    IllegalTransition,
    InvalidParams,
    JobCancelled,
    JobError,
    JobFailed,
    JobNotFound,
    JobTimedOut,
    RunnerError,
    SourceError,
    TemplateError,
    TemplateNotFound,
)
from runner.models import JobState, JobStatus
from runner.registry import Template, app, assembler, get_template, partitioner, template
from runner.simple import SimpleJob

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

__all__ = [
    # defining work
    "app",
    "partitioner",
    "assembler",
    "template",
    "Template",
    "get_template",
    # running it
    "Client",
    "Job",
    "JobState",
    "JobStatus",
    "local_cluster",
    "SimpleJob",
    # configuration
    "Settings",
    "get_settings",
    # errors
    "RunnerError",
    "ConfigError",
    "TemplateError",
    "TemplateNotFound",
    "InvalidParams",
    "SourceError",
    "JobNotFound",
    "IllegalTransition",
    "ClusterError",
    "JobError",
    "JobFailed",
    "JobTimedOut",
    "JobCancelled",
    "SoftTimeLimitExceeded",
]


def local_cluster(
    workers: int = 2,
    include: list[str] | tuple[str, ...] = (),
    redis_url: str | None = None,
    file_roots: list[str] | None = None,
) -> "AbstractContextManager[Client]":
    """Start a private Redis and ``workers`` real worker processes; yields a Client.

    ``with runner.local_cluster(workers=2, include=["myjobs"]) as client: ...`` — the
    production code path on one machine. Raises ClusterError if something cannot start.
    """
    from workers.cluster import local_cluster as start  # the worker side, loaded only when asked

    return start(workers=workers, include=include, redis_url=redis_url, file_roots=file_roots)


