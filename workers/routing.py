"""Tasks reach only workers that have their job's template.

Workers on one broker may import different modules (``--include``), yet every worker
consumes the control queue and a template's app queue may be served by several of them.
So each worker also consumes, for every queue it serves and every template it
registered, the *template queue* ``<queue>:<name>@<version>`` (:func:`runner.dispatch.template_queue`),
which only workers with that template consume. A task that lands on a worker without
its job's template is passed on there — same name, id, arguments, expiry and time
limit — before it takes a lease or touches the job; a worker that has the template runs
it as it would have. The job never fails for a batch that landed on the wrong worker.

Only when no live worker publishes the template does the task run (and fail the job
with the hint to start a worker with ``--include MODULE``): waiting would hide a missing
module until the job's deadline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from celery import Task

from runner.dispatch import template_queue
from runner.errors import TemplateNotFound
from runner.registry import templates
from workers import leases, runtime

__all__ = ["routed", "template_queues", "local_templates"]

log = logging.getLogger("runner.routing")


def local_templates() -> list[str]:
    """The refs (``name@version``) of every template this worker registered."""
    return [tmpl.ref for tmpl in templates()]


def template_queues(queues: list[str]) -> list[str]:
    """The template queues a worker consuming ``queues`` also consumes."""
    return [template_queue(queue, ref) for queue in queues for ref in local_templates()]


def _missing_template(job_id: str, lease: str) -> str | None:
    """The job's template ref when this worker cannot run it, else None (it can, or the
    job is gone: the task itself finds nothing to do). Reading the job's spec takes the
    task's ``lease`` in the same round trip (``leases.held`` then takes it no more)."""
    try:
        runtime.job_facts(job_id, lease=lease)  # the spec is cached per process: the task reads it from here
    except TemplateNotFound:
        return runtime.store().fields(job_id, "template")["template"]
    return None


def routed(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a bound task function so a task whose job's template this worker lacks is
    passed on to the template queue (see above) instead of failing its job."""

    @wraps(fn)
    def run(task: Task, *args: Any) -> Any:
        runtime.forget_first_live()
        try:
            lease = leases.member(task.name, task.request.id, args)
            ref = _missing_template(args[0], lease)  # with the job's state and deadline (runtime.FIRST_LIVE)
            if ref is None or not _pass_on(task, ref, list(args)):
                return fn(task, *args)
            return None
        finally:
            runtime.forget_first_live()

    return run


def _pass_on(task: Task, ref: str, args: list[Any]) -> bool:
    """Send the task to the queue of workers with ``ref``; False when none is live or the
    task came from such a queue already (then it runs, and fails with the hint)."""
    came_from = (task.request.delivery_info or {}).get("routing_key") or runtime.settings().default_queue
    having = [w for w in runtime.store().live_workers().values() if ref in w.templates and w.serves(came_from)]
    if ":" in came_from or not having:
        return False
    hard = (task.request.timelimit or (None, None))[0]
    task.app.send_task(task.name, args=args, queue=template_queue(came_from, ref), task_id=task.request.id,
                       expires=task.request.expires, time_limit=hard, ignore_result=True)
    log.info("%s %s of job %s passed on to %s: this worker lacks template %s (%s has it)", task.name,
             task.request.id, args[0], template_queue(came_from, ref), ref, having[0].hostname)
    return True
