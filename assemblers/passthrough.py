"""``passthrough``: every piece's result files, flattened, to the destination."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from runner.engines.contract import stage_results
from runner.engines.staging import deliver_output
from runner.registry import assembler


@assembler("passthrough", writes="output")
def passthrough(results: Any, ctx: Any) -> dict[str, Any]:
    """Each result file of every piece (an executable app's file list; a Python app's
    value as ``<piece>.json``) under a unique flattened name: to a directory or prefix
    destination by name, to a file destination when there is exactly one, or kept as the
    job's artifacts under ``output/`` for ``bypass:``. Returns the files written."""
    work = Path(tempfile.mkdtemp(prefix=f"runner-{ctx.job_id}-passthrough-"))
    try:
        stage_results(list(results), work, ctx.storages)
        return deliver_output(work, ctx.destination, ctx.io, "the passthrough assembler")
    finally:
        shutil.rmtree(work, ignore_errors=True)
