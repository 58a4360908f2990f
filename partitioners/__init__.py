"""Built-in partitioners, registered like a user's own: lines, bytes, jsonl, objects,
passthrough, replicas, single."""

from partitioners import bytes_ranges, jsonl, lines, objects, passthrough, replicas, single  # noqa: F401  (registers them)

__all__ = ["bytes_ranges", "jsonl", "lines", "objects", "passthrough", "replicas", "single"]
