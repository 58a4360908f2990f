"""An executable engine as a Runner function: the ByteNite folder contract, run unchanged.

:class:`CommandEngine` is an ordinary callable registered as a partitioner, app or
assembler (``Function.engine == "command"``), so the worker core calls it like any Python
function and knows nothing of processes. Each call is one run of the engine's entrypoint
(:func:`runner.engines.process.run_process`) with the environment of the contract:

============  ====================================================================
partitioner   ``SOURCE_DIR`` (the source's files), ``CHUNKS_DIR`` (empty),
              ``PARTITIONER_PARAMS``; each file written to ``CHUNKS_DIR`` is a piece
app           ``TASK_DIR/data.bin`` (the piece), ``TASK_RESULTS_DIR`` (empty),
              ``APP_PARAMS``, ``SHARED_CACHE_DIR``, ``USER_CACHE_DIR``, ``CHUNK_NUMBER``
assembler     ``TASK_RESULTS_DIR`` (every piece's files, flattened), ``OUTPUT_DIR``
              (empty), ``ASSEMBLER_PARAMS``; ``OUTPUT_DIR`` goes to the destination
============  ====================================================================

The environment is the worker's own minus every ``RUNNER_*`` setting (reading
``os.environ`` here is the contract itself: the process gets the worker's environment).
A non-zero exit raises :class:`EngineError` with ``exit status N`` and stderr's tail; the
worker treats it like any exception (retries, then fails the job naming the piece).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from runner.config import Settings
from runner.engines.manifest import EngineKind, Manifest
from runner.engines.packing import unpacked
from runner.engines.process import STDERR_TAIL, run_process
from runner.engines.staging import chunk_order, deliver_output, fetch, fill_source_dir, flat_names, write_piece
from runner.errors import EngineError
from runner.pieces import PieceRef
from runner.storage import Storages
from runner.store import StatusStore

__all__ = ["CommandEngine", "OpenParams", "engine_env"]

SCRATCH = "scratch"  # the job's scratch space, under its artifacts


class OpenParams(BaseModel):
    """Params of an engine without ``schema.json``: any JSON object."""

    model_config = ConfigDict(extra="allow")


def engine_env(manifest: Manifest, extra: dict[str, str]) -> dict[str, str]:
    """The process environment: the worker's, minus ``RUNNER_*``, plus the manifest's
    secrets (checked present) and the contract's variables."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RUNNER_")}
    for secret in manifest.secrets:
        names = [f"{secret}_ACCESS_KEY", f"{secret}_SECRET_KEY", secret]
        if not any(name in os.environ for name in names):
            raise EngineError(f"engine {manifest.name}: secret {secret!r} is not set on this worker; "
                              f"set {secret} (or {secret}_ACCESS_KEY and {secret}_SECRET_KEY) in the worker's environment")
    env.update(extra)
    return env


def _params_json(params: BaseModel | None) -> str:
    return json.dumps(params.model_dump(mode="json", by_alias=True) if params is not None else {})


class CommandEngine:
    """One imported engine (its manifest and packed folder) as a partitioner, app or
    assembler callable."""

    def __init__(self, kind: EngineKind, name: str, manifest: Manifest, digest: str, uri: str) -> None:
        self.kind, self.name, self.manifest, self.digest, self.uri = kind, name, manifest, digest, uri
        self.__qualname__ = self.__name__ = f"CommandEngine[{name}]"

    def __call__(self, data: Any, ctx: Any) -> Any:
        return {"partitioner": self.partition, "app": self.process, "assembler": self.assemble}[self.kind](data, ctx)

    # -- the three runs -------------------------------------------------------------------

    def partition(self, source: Any, ctx: Any) -> Iterator[PieceRef]:
        """Run the partitioner, then upload each chunk it wrote and yield a reference."""
        storages: Storages = ctx.storages
        work = _workdir(ctx.job_id, "partition")
        try:
            source_dir, chunks = _dirs(work, "source", "chunks")
            fill_source_dir(source, storages, source_dir)
            self._run(ctx, work, SOURCE_DIR=str(source_dir), CHUNKS_DIR=str(chunks),
                      PARTITIONER_PARAMS=_params_json(ctx.params))
            for index, path in enumerate(chunk_order(chunks)):
                uri = ctx.io.upload(f"{SCRATCH}/chunks/{index}-{path.name}", path)
                yield PieceRef(uri, as_="location")
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def process(self, piece: Any, ctx: Any) -> list[dict[str, Any]]:
        """Run the app on one piece; upload its result files and return their list."""
        settings: Settings = ctx.storages.settings
        index = ctx.piece_index
        work = _workdir(ctx.job_id, f"piece{index}")
        try:
            task, results = _dirs(work, "task", "results")
            write_piece(piece, task / "data.bin", ctx.storages)
            self._run(ctx, work, TASK_DIR=str(task), TASK_RESULTS_DIR=str(results), APP_PARAMS=_params_json(ctx.params),
                      SHARED_CACHE_DIR=str(_shared_cache(settings)), USER_CACHE_DIR=str(_user_cache(settings, ctx.job_id)),
                      CHUNK_NUMBER=str(index))
            files = []
            for path in sorted(p for p in results.rglob("*") if p.is_file()):
                name = path.relative_to(results).as_posix()
                uri = ctx.io.upload(f"{SCRATCH}/results/{index}/{name}", path)
                files.append({"name": name, "uri": uri, "bytes": path.stat().st_size})
            return files
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def assemble(self, results: Any, ctx: Any) -> dict[str, Any]:
        """Fetch every piece's files (flattened names), run the assembler, deliver OUTPUT_DIR."""
        work = _workdir(ctx.job_id, "assemble")
        try:
            inputs, output = _dirs(work, "results", "output")
            stage_results(list(results), inputs, ctx.storages)
            self._run(ctx, work, TASK_RESULTS_DIR=str(inputs), OUTPUT_DIR=str(output),
                      ASSEMBLER_PARAMS=_params_json(ctx.params))
            return deliver_output(output, ctx.destination, ctx.io, f"assembler {self.manifest.name}")
        finally:
            shutil.rmtree(work, ignore_errors=True)

    # -- running the entrypoint -----------------------------------------------------------

    def _run(self, ctx: Any, work: Path, **variables: str) -> None:
        folder = unpacked(ctx.storages, self.uri, self.digest)
        entry = folder / "app" / self.manifest.entrypoint
        argv = [sys.executable, str(entry)] if entry.suffix == ".py" else [str(entry)]
        env = engine_env(self.manifest, variables)
        sink = _LogSink(ctx, ctx.storages.settings.log_max_lines)
        finished = run_process(argv, entry.parent, env, sink, scratch=work)
        sink.close()
        if finished.returncode != 0:
            where = f"piece {ctx.piece_index}" if ctx.piece_index is not None and self.kind == "app" else self.kind
            tail = "\n".join(finished.stderr_tail[-STDERR_TAIL:])
            raise EngineError(f"{self.kind} {self.manifest.name} ({where}) exited with exit status "
                              f"{finished.returncode}" + (f"; stderr:\n{tail}" if tail else "; no stderr"))


def stage_results(results: list[Any], directory: Path, storages: Storages) -> None:
    """Every piece's results into ``directory`` under flattened, unique names."""
    for pairs in flat_names(results):
        for name, item in pairs:
            if isinstance(item, dict) and "uri" in item:
                fetch(storages, item["uri"], directory / name)
            else:
                write_piece(item, directory / name, storages)


# A level a Python logger (or most others) wrote at a line's start: ``INFO:name:msg``
# (logging.basicConfig), ``[ERROR] msg``, ``2024-01-01 12:00:00,123 - DEBUG - msg``.
_LEVEL = re.compile(r"^(?:\S+\s+){0,3}?[\[(]?(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)[\])]?(?=[:\s|]|$)")
_LEVELS = {"WARN": logging.WARNING, "FATAL": logging.CRITICAL}


def line_level(stream: str, line: str) -> int:
    """The level of one line of engine output: the one its logger wrote when it says
    one, else INFO for stdout and WARNING for stderr (where Python's logging writes
    every level by default, so an engine's INFO lines must not all read as warnings)."""
    found = _LEVEL.match(line)
    if found:
        return _LEVELS.get(found[1]) or logging.getLevelName(found[1])
    return logging.INFO if stream == "stdout" else logging.WARNING


class _LogSink:
    """Engine output as the job's log lines (at the level each line states, else stdout
    INFO and stderr WARNING), at most ``cap`` lines per run; the rest are counted and
    reported once."""

    def __init__(self, ctx: Any, cap: int) -> None:
        self.ctx, self.cap, self.seen = ctx, cap, 0

    def __call__(self, stream: str, line: str) -> None:
        self.seen += 1
        if self.seen <= self.cap:
            self.ctx.log.log(line_level(stream, line), line)

    def close(self) -> None:
        if self.seen > self.cap:
            self.ctx.log.warning(f"{self.seen - self.cap} more output lines were dropped (RUNNER_LOG_MAX_LINES)")


def _workdir(job_id: str, what: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"runner-{job_id}-{what}-"))


def _dirs(work: Path, *names: str) -> list[Path]:
    made = []
    for name in names:
        (work / name).mkdir()
        made.append(work / name)
    return made


def _shared_cache(settings: Settings) -> Path:
    path = settings.shared_cache_dir or Path(tempfile.gettempdir()) / f"runner-shared-cache-{os.getuid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _user_cache(settings: Settings, job_id: str) -> Path:
    root = settings.user_cache_dir or Path(tempfile.gettempdir()) / f"runner-user-cache-{os.getuid()}"
    path = root / _org_of(settings.status_store_url, settings.key_prefix, job_id)
    path.mkdir(parents=True, exist_ok=True)
    return path


@lru_cache(maxsize=4)
def _store(store_url: str, prefix: str) -> StatusStore:
    return StatusStore(store_url, prefix, patient=True)


@lru_cache(maxsize=256)
def _org_of(store_url: str, prefix: str, job_id: str) -> str:
    """The org that owns the job (its user cache is per org), read once per process."""
    org = _store(store_url, prefix).fields(job_id, "org")["org"] or "default"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(org))
