"""Executable engines: ByteNite-style folders run unchanged beside Python functions.

- :mod:`~runner.engines.manifest`: engine folders and template files as written in the wild.
- :mod:`~runner.engines.contract`: an engine as a registered function (``engine="command"``).
- :mod:`~runner.engines.process`: one run in its own process group; nothing survives it.
- :mod:`~runner.engines.guard`: stops a killed worker process's engines.
- :mod:`~runner.engines.staging`: chunks, results and outputs moved, streamed.
- :mod:`~runner.engines.packing`: engine folders packed, content-addressed.
- :mod:`~runner.engines.imports`: ``runner template import`` and loading imports in workers.
- :mod:`~runner.engines.scaffold`: ``runner engine new``.

A worker finds imported templates it has never seen through :func:`load_imported`, a
template loader (:func:`runner.registry.add_template_loader`) that the worker's boot
installs (``workers/boot.py``); importing this package has no side effect.
"""

from __future__ import annotations

from runner.engines.imports import ImportReport, import_template, load_imported

__all__ = ["import_template", "ImportReport", "load_imported"]
