"""The module ``celery -A workers.celery_app`` loads, for users who prefer the celery CLI."""

from workers.boot import create_app

app = create_app()
