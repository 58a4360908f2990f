"""``file://`` sources and destinations on a filesystem every worker can reach, confined
to ``RUNNER_FILE_ROOTS``: a job may not read ``/etc/shadow`` or write over a worker's code.

Paths are resolved (``..`` collapsed, symlinks followed) before the check, so neither a
``..`` nor a symlink pointing out of a root escapes it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from runner.errors import SourceError
from runner.storage.base import AtomicWriter

__all__ = ["FileStorage", "path_of", "outside_roots"]


def path_of(uri: str) -> Path:
    """The local path of a ``file://`` URI (``file:///abs/path``)."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise SourceError(f"{uri!r} is not a file:// URI")
    if parsed.netloc not in ("", "localhost"):
        raise SourceError(f"{uri!r}: file URIs name a local absolute path, e.g. file:///data/in.txt")
    raw = unquote(parsed.path)
    if not raw.startswith("/"):
        raise SourceError(f"{uri!r} names no absolute path; use file:///absolute/path")
    return Path(raw)


@lru_cache(maxsize=1)
def _umask() -> int:
    """This process's umask, read without changing it where Linux says it (``os.umask``
    sets it too: another thread could create a file in between)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def outside_roots(uri: str, path: Path, roots: Sequence[Path], process: str | None) -> str:
    """Why ``process`` refuses ``uri``, and the setting that would allow it, where."""
    allowed = ",".join(str(root) for root in roots)
    folder = path if path.is_dir() else path.parent
    if process and process.startswith("worker"):
        return (f"{uri} is outside the allowed file roots of {process} ({allowed}); set "
                f"RUNNER_FILE_ROOTS={allowed},{folder} in that worker's environment and restart it "
                f"(or put the file under the data dir, {roots[-1]})")
    return (f"{uri} is outside the allowed file roots ({allowed}); add its directory to RUNNER_FILE_ROOTS "
            f"to allow it (the workers need it too)")


class _FileWriter(AtomicWriter):
    """Writes to a temp file beside the target and renames it over the target on commit.
    The file gets the mode any new file gets (0666 less the umask), not ``mkstemp``'s
    0600: a destination is for the user's other tools and colleagues to read."""

    def __init__(self, uri: str, target: Path) -> None:
        super().__init__(uri)
        self.target = target
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        os.fchmod(fd, 0o666 & ~_umask())
        self.tmp = Path(tmp)
        self.file: BinaryIO = os.fdopen(fd, "wb")

    def _write(self, data: bytes) -> None:
        self.file.write(data)

    def _commit(self) -> None:
        self.file.close()
        os.replace(self.tmp, self.target)

    def _abort(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)


class FileStorage:
    """Local files under ``roots`` (every path is allowed when ``roots`` is empty).
    ``process`` names who refuses a path outside them — a worker, or the command that
    checks a job before queueing it — because the fix is a setting *of that process*."""

    def __init__(self, roots: Sequence[Path | str] = (), process: str | None = None) -> None:
        self.roots = [Path(root).resolve() for root in roots]
        self.process = process

    def _confined(self, uri: str) -> Path:
        path = path_of(uri).resolve()
        if self.roots and not any(path.is_relative_to(root) for root in self.roots):
            raise SourceError(outside_roots(uri, path, self.roots, self.process))
        return path

    def check(self, uri: str) -> None:
        self._confined(uri)

    def _existing(self, uri: str) -> Path:
        path = self._confined(uri)
        if not path.exists():
            raise SourceError(f"source {uri} does not exist")
        if not os.access(path, os.R_OK):
            raise SourceError(f"source {uri} is not readable (permission denied)")
        return path

    def open_read(self, uri: str) -> BinaryIO:
        path = self._existing(uri)
        if path.is_dir():
            raise SourceError(f"source {uri} is a directory; use a partitioner that lists objects (objects)")
        return path.open("rb")

    def read_range(self, uri: str, start: int, end: int) -> bytes:
        with self.open_read(uri) as stream:
            stream.seek(start)
            return stream.read(max(0, end - start))

    def size(self, uri: str) -> int:
        return self._existing(uri).stat().st_size

    def list(self, uri: str) -> list[str]:
        path = self._existing(uri)
        if path.is_file():
            return [path.as_uri()]
        found = (p.resolve() for p in path.rglob("*") if p.is_file())
        return sorted(p.as_uri() for p in found if not self.roots or any(p.is_relative_to(r) for r in self.roots))

    def delete(self, uri: str) -> None:
        path = self._confined(uri)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise SourceError(f"cannot delete {uri}: {exc.strerror or exc}") from None

    def open_write(self, uri: str) -> BinaryIO:
        path = self._confined(uri)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return _FileWriter(uri, path)  # type: ignore[return-value]
        except OSError as exc:
            raise SourceError(f"cannot write destination {uri}: {exc.strerror or exc}") from None
