"""Moving files between a job's storage and an engine's directories, streamed.

Chunks and result files never pass through Redis or a Celery message: they live in the
job's scratch space under ``<RUNNER_ARTIFACTS_URL>/<job id>/scratch/`` and are copied to
and from local directories in 1 MiB blocks, so memory stays bounded whatever their size.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from runner.errors import EngineError
from runner.storage import Destination, Source, Storages

__all__ = [
    "fetch", "fill_source_dir", "chunk_order", "write_piece", "files_of", "flat_names", "is_file_list",
    "deliver_output",
]

BLOCK = 1024 * 1024
DUMMY = "dummy"  # the one empty file a partitioner sees for a ``bypass:`` source
_DATA = re.compile(r"^data_(\d+)\.bin$")


def fetch(storages: Storages, uri: str, path: Path, start: int | None = None, end: int | None = None) -> None:
    """Copy the object at ``uri`` (bytes ``start``..``end`` when given) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if start is not None and end is not None:
        path.write_bytes(storages.read_range({"uri": uri, "start": start, "end": end}))
        return
    with storages.backend(uri).open_read(uri) as stream, path.open("wb") as out:
        shutil.copyfileobj(stream, out, BLOCK)


def fill_source_dir(source: Source, storages: Storages, directory: Path) -> list[str]:
    """The job's source as files in ``directory`` (the partitioner's ``SOURCE_DIR``): one
    object under its own name, each object of a directory or prefix under its path
    relative to it, ``bypass:`` as one empty dummy file. Returns the names written."""
    if source.is_bypass:
        (directory / DUMMY).touch()
        return [DUMMY]
    uris = source.list()
    base = source.uri.rstrip("/") + "/"
    names = []
    for uri in uris:
        name = uri[len(base):] if uri.startswith(base) else PurePosixPath(urlparse(uri).path).name or "source"
        fetch(storages, uri, directory / name)
        names.append(name)
    return names


def chunk_order(directory: Path) -> list[Path]:
    """The chunk files a partitioner wrote, in piece order: ``data_{i}.bin`` by ``i``,
    then every other file by name."""
    files = [p for p in directory.rglob("*") if p.is_file()]
    numbered = sorted((int(m.group(1)), p) for p in files if p.parent == directory and (m := _DATA.match(p.name)))
    others = sorted((p for p in files if p not in {p for _, p in numbered}), key=lambda p: p.relative_to(directory).as_posix())
    return [p for _, p in numbered] + others


def is_location(piece: Any) -> bool:
    return type(piece) is dict and "uri" in piece and set(piece) <= {"uri", "start", "end"}


def write_piece(piece: Any, path: Path, storages: Storages) -> None:
    """An app's piece as ``data.bin``: a piece by reference as the bytes it refers to
    (streamed), bytes as they are, ``str`` as UTF-8, anything else as JSON."""
    if is_location(piece):
        fetch(storages, piece["uri"], path, piece.get("start"), piece.get("end"))
    elif isinstance(piece, (bytes, bytearray)):
        path.write_bytes(piece)
    elif isinstance(piece, str):
        path.write_text(piece, encoding="utf-8")
    else:
        path.write_text(json.dumps(piece), encoding="utf-8")


def files_of(directory: Path) -> list[tuple[str, Path]]:
    """Every file under ``directory`` as (relative posix name, path), by name."""
    found = [(p.relative_to(directory).as_posix(), p) for p in directory.rglob("*") if p.is_file()]
    return sorted(found)


def is_file_list(result: Any) -> bool:
    """Whether an app's result is an executable app's file list ``[{name, uri, bytes}]``."""
    return isinstance(result, list) and all(isinstance(f, dict) and {"name", "uri"} <= set(f) for f in result)


def flat_names(results: list[Any]) -> list[list[tuple[str, Any]]]:
    """Each piece's results as (unique top-level name, file or value) pairs: a name only
    one piece wrote is kept, one several wrote becomes ``<piece index>_<name>``. A Python
    app's result (not a file list) becomes ``<piece index>.json`` (``.bin``, ``.txt`` for
    bytes and text)."""
    counts = Counter(_flat(f["name"]) for files in results if is_file_list(files) for f in files)
    named: list[list[tuple[str, Any]]] = []
    for index, files in enumerate(results):
        if not is_file_list(files):
            suffix = ".bin" if isinstance(files, bytes) else ".txt" if isinstance(files, str) else ".json"
            named.append([(f"{index}{suffix}", files)])
            continue
        named.append([(_flat(f["name"]) if counts[_flat(f["name"])] == 1 else f"{index}_{_flat(f['name'])}", f)
                      for f in files])
    return named


def _flat(name: str) -> str:
    return name.replace("/", "_")


def deliver_output(directory: Path, destination: Destination | None, io: Any, what: str) -> dict[str, Any]:
    """Write every file of ``directory`` (the assembler's ``OUTPUT_DIR``) to the job's
    destination: under a directory or prefix by name, to a single-file destination when
    there is exactly one file, or for ``bypass:`` as the job's artifacts under ``output/``.
    Returns the summary the job records: the files and where they went."""
    files = files_of(directory)
    written = []
    if destination is None or destination.is_bypass:
        for name, path in files:
            written.append({"name": name, "uri": io.upload(f"output/{name}", path), "bytes": path.stat().st_size})
        return {"files": written, "destination": "bypass:"}
    if not destination.is_prefix and len(files) != 1:
        raise EngineError(
            f"{what} wrote {len(files)} files to OUTPUT_DIR ({', '.join(n for n, _ in files[:5]) or 'none'}) but the "
            f"destination {destination.uri} is one file; give a directory or prefix ending in '/'")
    for name, path in files:
        target = destination.object(name)
        with path.open("rb") as stream, target.open() as out:
            shutil.copyfileobj(stream, out, BLOCK)
        written.append({"name": name, "uri": target.uri, "bytes": path.stat().st_size})
    return {"files": written, "destination": destination.uri}
