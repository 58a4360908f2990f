"""Runnable example templates (``runner worker --include examples.wordcount``)."""
