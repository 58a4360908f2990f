"""Runner: partition / app / assemble jobs on your own Celery and Redis fleet.

User code imports everything from here and never imports Celery.
"""

from __future__ import annotations

from runner.catalog import TemplateInfo
from runner.checks import SourceReport
from runner.client import Client, Job
from runner.config import Settings, get_settings
from runner.errors import (
    ClusterError,
    ConfigError,
    EngineError,
    IllegalTransition,
    InvalidParams,
    InvalidSchedule,
    JobCancelled,
    JobError,
    JobFailed,
    JobNotFinished,
    JobNotFound,
    JobTimedOut,
    RunnerError,
    ScheduleNotFound,
    SoftTimeLimitExceeded,
    SourceError,
    TemplateError,
    TemplateNotFound,
)
from runner.models import JobState, JobStatus
from runner.pieces import Generated, PieceRef
from runner.recurring import Schedule
from runner.schedules import CatchUp, ScheduleInfo
from runner.registry import Template, app, assembler, get_template, partitioner, template
from runner.local import local_cluster
from runner.simple import SimpleJob

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
    "JobNotFinished",
    "ClusterError",
    "EngineError",
    "JobError",
    "JobFailed",
    "JobTimedOut",
    "JobCancelled",
    "SoftTimeLimitExceeded",
]
