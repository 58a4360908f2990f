"""An org's ``max_running_jobs``, enforced fleet-wide (``runner orgs set ORG
--max-running-jobs N``).

A job passes its org's gate at the start of its partition task: if the org is under
its limit (and no job of it waits already), the job counts as running and goes on;
else it is held — its state stays ``queued``, its record says why (``waiting``), and
the task ends. Every worker's watchdog :func:`sweep` then starts held jobs, oldest first,
as the org's running jobs end (``end_job`` frees their slots): one Lua script moves a
job from waiting to running, so of all the sweepers exactly one starts it, and that one
sends the job's partition task again under its own id (``resend``, as the lease sweep
does), which now passes the gate. The counts and scripts are
``runner/store/org_quotas.py``'s.
"""

from __future__ import annotations

import logging

from celery import Celery, Task

from runner.dispatch import PARTITION, resend
from workers import runtime

__all__ = ["admit_to_run", "sweep"]

log = logging.getLogger("runner.org_gate")


def admit_to_run(task: Task, job_id: str, org: str) -> bool:
    """Whether the job may start now (it then counts against its org's
    ``max_running_jobs``); if not, it is held waiting and its partition task should end.
    One round trip (two the first time a job is held)."""
    store = runtime.store()
    admitted, note = store.org_quotas.admit_to_run(org, job_id, task.request.id)
    if note:  # held just now: say so once in the job's log
        store.journal.add_logs(job_id, [{"level": "INFO", "source": "runner", "msg": note}])
    return admitted


def sweep(celery: Celery) -> list[str]:
    """Start the held jobs whose org is under its ``max_running_jobs`` again; returns
    their ids. Two round trips when no job waits."""
    quotas, started = runtime.store().org_quotas, []
    for org in quotas.orgs_waiting():
        for job_id in quotas.promote(org):
            _start(celery, org, job_id)
            started.append(job_id)
    return started


def _start(celery: Celery, org: str, job_id: str) -> None:
    """Send the held job's partition task again, under the id it had when it was held."""
    store, settings = runtime.store(), runtime.settings()
    fields = store.jobs.fields(job_id, "template", "deadline", "waiting_task")
    resend(celery, PARTITION, fields["waiting_task"], [job_id, fields["template"]], settings.control_queue,
           float(fields["deadline"] or 0))
    store.journal.add_logs(job_id, [{"level": "INFO", "source": "runner",
                                     "msg": f"starting: org {org} is under its max_running_jobs again"}])
    log.info("started job %s of org %s: under its max_running_jobs again", job_id, org)
