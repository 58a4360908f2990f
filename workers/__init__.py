"""The worker side of Runner: Celery tasks, the canvas they build, the task context,
worker boot, and the embedded cluster used by ``runner demo`` and the tests."""
