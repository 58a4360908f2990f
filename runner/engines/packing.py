"""Engine folders packed, content-addressed, under the artifacts location.

``runner template import`` packs each engine folder into a reproducible ``.tar.gz`` (names
sorted, owners and times zeroed, modes kept so an executable entrypoint stays
executable) and stores it at ``<RUNNER_ARTIFACTS_URL>/engines/<sha256>.tar.gz``. The same
content always packs to the same bytes, so its digest is its identity: importing it again
is a no-op, and a worker unpacks each digest once per host, into a directory named by it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from runner.config import Settings
from runner.errors import EngineError
from runner.storage import Storages

__all__ = ["pack", "packed_uri", "upload", "unpacked", "engines_cache"]


def pack(folder: Path) -> tuple[bytes, str]:
    """``folder`` as reproducible ``.tar.gz`` bytes, and their sha256."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(p for p in folder.rglob("*") if "__pycache__" not in p.parts):
            if not (path.is_file() or path.is_dir()) or path.is_symlink():
                continue
            info = tar.gettarinfo(str(path), arcname=path.relative_to(folder).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            info.mode = 0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644
            if path.is_file():
                with path.open("rb") as stream:
                    tar.addfile(info, stream)
            else:
                tar.addfile(info)
    data = gzip.compress(raw.getvalue(), mtime=0)
    return data, hashlib.sha256(data).hexdigest()


def packed_uri(settings: Settings, digest: str) -> str:
    return f"{settings.artifacts_root}/engines/{digest}.tar.gz"


def upload(storages: Storages, uri: str, data: bytes) -> None:
    """Store a packed engine at ``uri`` unless it is there already (content-addressed)."""
    backend = storages.backend(uri)
    try:
        if backend.size(uri) == len(data):
            return
    except Exception:  # not there yet
        pass
    with backend.open_write(uri) as out:
        out.write(data)


def engines_cache() -> Path:
    """Where this host keeps unpacked engines, one directory per digest."""
    return Path(tempfile.gettempdir()) / f"runner-engines-{os.getuid()}"


def unpacked(storages: Storages, uri: str, digest: str) -> Path:
    """The engine packed at ``uri`` as a local directory, fetched and unpacked once per
    host (into a temp directory renamed into place, so a half-unpacked engine never runs).
    Raises :class:`EngineError` when the stored bytes do not match ``digest``."""
    target = engines_cache() / digest
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with storages.backend(uri).open_read(uri) as stream:
        data = stream.read()
    if hashlib.sha256(data).hexdigest() != digest:
        raise EngineError(f"packed engine {uri} does not match its digest {digest[:12]}…; re-import the template")
    work = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=target.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            tar.extractall(work, filter="data")
        os.rename(work, target)
    except OSError:
        if not target.is_dir():
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
