"""The worker side of Runner: the Celery tasks of a job's pipeline (partition, plan
batches, run a batch, assemble), the task context user code sees, leases, the watchdog,
and worker boot. Started as processes (``python -m workers``) by ``runner worker``,
``runner demo`` and the tests; ``runner/`` never imports it."""
