"""``job.io``: read and write files by path, whether the path is local (a temp path, any
file) or one of the job's artifact paths (``job.artifact_path(name)``), which upload and
download through ``runner api`` — so the same two calls serve scratch files and
persisted results, as on the platform the guides describe.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

from runner.artifacts import check_name
from runner.attach.http import AttachApi

__all__ = ["JobIO"]


class JobIO:
    """Files of one attached job: local paths, or artifact paths under ``prefix``."""

    def __init__(self, api: AttachApi, prefix: str) -> None:
        self.api = api
        self.prefix = prefix.rstrip("/") + "/"

    def is_artifact(self, path: str | Path) -> bool:
        return str(path).startswith(self.prefix)

    def artifact_name(self, path: str | Path) -> str:
        """The artifact name an artifact path stands for (checked: no ``..``)."""
        return check_name(str(path)[len(self.prefix):])

    def write_file(self, path: str | Path, data: bytes | str) -> str:
        """Write ``data`` to ``path``: a local file, or an artifact (uploaded at once)."""
        content = data.encode() if isinstance(data, str) else bytes(data)
        if self.is_artifact(path):
            self.api.put_artifact(self.artifact_name(path), content)
        else:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_bytes(content)
        return str(path)

    def read_file(self, path: str | Path) -> bytes:
        """The bytes at ``path``: a local file, or an artifact (downloaded)."""
        if not self.is_artifact(path):
            return Path(path).read_bytes()
        buffer = io.BytesIO()
        self.api.get_artifact(self.artifact_name(path), buffer)
        return buffer.getvalue()

    def upload(self, local: str | Path, name: str) -> str:
        """Upload the local file as artifact ``name``, streamed; returns its artifact path."""
        with open(local, "rb") as stream:
            self.api.put_artifact(check_name(name), stream)
        return self.prefix + name

    def download(self, path: str | Path, local: str | Path) -> Path:
        """Download an artifact path into the local file ``local``, streamed."""
        target = Path(local)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out:
            self._fetch(self.artifact_name(path), out)
        return target

    def _fetch(self, name: str, out: BinaryIO) -> int:
        return self.api.get_artifact(name, out)
