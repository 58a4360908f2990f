"""Executable engines: ByteNite-style folders run unchanged beside Python functions.

- :mod:`~runner.engines.manifest`: engine folders and template files as written in the wild.
- :mod:`~runner.engines.contract`: an engine as a registered function (``engine="command"``).
- :mod:`~runner.engines.process`: one run in its own process group; nothing survives it.
- :mod:`~runner.engines.guard`: stops a killed worker process's engines.
- :mod:`~runner.engines.staging`: chunks, results and outputs moved, streamed.
- :mod:`~runner.engines.packing`: engine folders packed, content-addressed.
- :mod:`~runner.engines.imports`: ``runner template import`` and loading imports in workers.
- :mod:`~runner.engines.scaffold`: ``runner engine new``.

Importing this package lets a worker find imported templates it has never seen
(:func:`runner.registry.add_template_loader`); the built-in ``passthrough`` partitioner and
assembler import it, so every worker does.
"""

from __future__ import annotations

from runner.engines.imports import ImportReport, import_template, load_imported
from runner.registry import add_template_loader

__all__ = ["import_template", "ImportReport", "load_imported"]

add_template_loader(load_imported)
