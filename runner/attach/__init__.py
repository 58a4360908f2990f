"""Jobs your own process runs (Brevetti's Job API): ``from runner.attach import Job, JobSettings``.

It talks only to ``runner api`` over HTTP (``RUNNER_API_URL``, or ``host=``): no Redis,
no Celery. See :mod:`runner.attach.job`.
"""

from runner.attach.http import AttachError
from runner.attach.job import Job
from runner.attach.settings import JobSettings

__all__ = ["Job", "JobSettings", "AttachError"]
