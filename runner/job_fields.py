"""A new job's record fields, from a request :mod:`runner.admission` checked: the
template's defaults, then the settings', for what the request leaves out; the tolerance
of failed pieces; the timing a queued job gets (deadline); how long its keys live.
Apart from admission only to keep that module to its checks and its writes."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from runner.config import Settings
from runner.models import JobState, RunOptions
from runner.partial import Tolerance

if TYPE_CHECKING:
    from runner.admission import Checked
    from runner.catalog import TemplateInfo

__all__ = ["defaults", "tolerance", "record", "timing", "lifetime"]


def defaults(settings: Settings, tmpl: TemplateInfo) -> dict[str, Any]:
    """A job's options when the caller gives none: the template's, else the settings'."""
    return {"task_timeout": tmpl.task_timeout or settings.task_timeout,
            "job_timeout": tmpl.job_timeout or settings.job_timeout,
            "max_retries": tmpl.max_retries if tmpl.max_retries is not None else settings.max_retries}


def tolerance(options: RunOptions, tmpl: TemplateInfo) -> dict[str, Any]:
    """The record's tolerance of failed pieces: the request's, else the template's. Giving
    either form replaces the template's whole tolerance (so the two never meet)."""
    given = Tolerance(options.min_success_ratio, options.max_failed_pieces)
    return (given or Tolerance(tmpl.min_success_ratio, tmpl.max_failed_pieces)).fields()


def record(settings: Settings, org: str, checked: Checked, job_id: str) -> dict[str, Any]:
    """The queued job's record as admission writes it."""
    tmpl, values, options = checked.template, checked.values, checked.options
    fallback = defaults(settings, tmpl)
    return {
        "id": job_id, "org": org, "template": tmpl.ref, "state": JobState.QUEUED.value, "name": values["name"],
        "params": checked.params if values["raw_params"] else {}, "source": values["source"],
        "destination": values["destination"], "inputs": values["inputs"], "test": options.test,
        "task_timeout": options.task_timeout or fallback["task_timeout"],
        "job_timeout": options.job_timeout or fallback["job_timeout"],
        "max_retries": options.max_retries if options.max_retries is not None else fallback["max_retries"],
        "retention_hours": values["retention_hours"] or settings.retention_hours,
        "queue": tmpl.queue or settings.default_queue, "created_at": time.time(), "pieces_done": 0,
        "pieces_failed": 0, "priority": values["priority"], **tolerance(options, tmpl),
    }


def timing(base: dict[str, Any], checked: Checked) -> dict[str, Any]:
    """The fields a job gets when it is queued: validated params, its options (the
    request's over ``base``) and its deadline."""
    options, now = checked.options, time.time()
    job_timeout = float(options.job_timeout or base["job_timeout"])
    return {
        "params": checked.params, "test": options.test,
        "task_timeout": float(options.task_timeout or base["task_timeout"]), "job_timeout": job_timeout,
        "max_retries": int(options.max_retries if options.max_retries is not None else base["max_retries"]),
        "queued_at": now, "deadline": now + job_timeout,
        **Tolerance(options.min_success_ratio, options.max_failed_pieces).fields(),
    }


def lifetime(record: dict[str, Any]) -> float:
    """Seconds a queued job's keys live if nothing ends it: its deadline plus retention."""
    return float(record["job_timeout"]) + float(record["retention_hours"]) * 3600
