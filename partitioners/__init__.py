"""Built-in partitioners, registered like a user's own: lines, bytes, jsonl, replicas."""

from partitioners import bytes_ranges, jsonl, lines, replicas  # noqa: F401  (registers them)

__all__ = ["bytes_ranges", "jsonl", "lines", "replicas"]
