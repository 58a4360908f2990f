"""Built-in assemblers, registered like a user's own: concat, json_list, sum, merge_counts,
passthrough, single."""

from assemblers import concat, counts, json_list, passthrough, single, total  # noqa: F401  (registers them)

__all__ = ["concat", "counts", "json_list", "passthrough", "single", "total"]
