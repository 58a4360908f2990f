"""The module ``celery -A workers.main`` loads, for users who prefer the celery CLI."""

from workers.boot import create_app

app = create_app()
