"""Named inputs (``ctx.inputs["model"]``): extra sources every task of a job may read,
fetched once per worker process and cached, so a 2 GB model is not downloaded per piece.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from runner.storage import Storages, scheme_of
from runner.storage.file import path_of

__all__ = ["InputCache", "Inputs"]


class InputCache:
    """Local copies of input URIs for one worker process (``file://`` needs no copy)."""

    def __init__(self, storages: Storages, directory: Path | None = None) -> None:
        self.storages = storages
        self.directory = directory or Path(tempfile.mkdtemp(prefix=f"runner-inputs-{os.getpid()}-"))
        self._lock = threading.Lock()

    def path(self, uri: str) -> Path:
        """A local file holding the input at ``uri``; downloaded on first use."""
        if scheme_of(uri) == "file":
            self.storages.check(uri)
            return path_of(uri).resolve()
        name = PurePosixPath(urlparse(uri).path).name or "input"
        target = self.directory / hashlib.sha256(uri.encode()).hexdigest()[:16] / name
        with self._lock:
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(target.name + ".part")
                with self.storages.backend(uri).open_read(uri) as src, partial.open("wb") as out:
                    shutil.copyfileobj(src, out, 1024 * 1024)
                partial.replace(target)
        return target


class Inputs(Mapping[str, Path]):
    """The job's named inputs as local paths, fetched when first read."""

    def __init__(self, uris: Mapping[str, str], cache: InputCache) -> None:
        self._uris = dict(uris)
        self._cache = cache

    def __getitem__(self, name: str) -> Path:
        if name not in self._uris:
            known = ", ".join(sorted(self._uris)) or "none"
            raise KeyError(f"no input {name!r} in this job (inputs: {known})")
        return self._cache.path(self._uris[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._uris)

    def __len__(self) -> int:
        return len(self._uris)

    def uri(self, name: str) -> str:
        """The URI bound to ``name`` (without fetching it)."""
        return self._uris[name]
