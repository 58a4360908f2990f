"""Engine folders packed, content-addressed, under the artifacts location.

``runner template import`` packs each engine folder into a reproducible ``.tar.gz`` (names
sorted, owners and times zeroed, modes kept so an executable entrypoint stays
executable) and stores it at ``<RUNNER_ARTIFACTS_URL>/engines/<sha256>.tar.gz``. The same
content always packs to the same bytes, so its digest is its identity: importing it again
is a no-op, and a worker unpacks each digest once per user and installation, into a
directory named by it (:func:`engines_cache`).

Unpacking is confined on every Python the package supports: ``tarfile``'s ``filter="data"``
exists only from 3.11.4 (and 3.12), so each member is checked here first — no absolute
name, no ``..``, no link leaving the folder, no device or FIFO — and the filter is used
on top where it exists.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from runner.config import Settings
from runner.errors import EngineError
from runner.storage import Storages

__all__ = ["pack", "packed_uri", "upload", "unpacked", "engines_cache", "extract_checked"]


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
    """Where this user keeps unpacked engines, one directory per digest: under the user's
    cache directory (``$XDG_CACHE_HOME``, else ``~/.cache``), in a folder keyed by this
    installation (its Python environment). A cache in the shared temp directory let one
    install run engines another had unpacked, hiding that it could not unpack them itself."""
    install = hashlib.sha256(f"{sys.prefix}\0{Path(__file__).resolve().parent}".encode()).hexdigest()[:12]
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    if not os.access(base if base.exists() else base.parent, os.W_OK):  # a service user without a home
        return Path(tempfile.gettempdir()) / f"runner-engines-{os.getuid()}-{install}"
    return base / "runner" / f"engines-{install}"


def _checked_members(tar: tarfile.TarFile, work: Path) -> list[tarfile.TarInfo]:
    """Every member of ``tar``, refused (EngineError naming it) when unpacking it could
    write outside ``work`` or make anything but a file, a folder or an inner link."""
    root = work.resolve()
    members = tar.getmembers()
    for info in members:
        name = PurePosixPath(info.name)
        where = (root / info.name).resolve()
        if name.is_absolute() or ".." in name.parts or not where.is_relative_to(root):
            raise EngineError(f"packed engine member {info.name!r} would unpack outside its folder; re-pack it")
        if not (info.isfile() or info.isdir() or info.issym() or info.islnk()):
            raise EngineError(f"packed engine member {info.name!r} is a device or FIFO; only files and folders run")
        if info.issym() or info.islnk():
            target = (where.parent / info.linkname) if info.issym() else (root / info.linkname)
            if PurePosixPath(info.linkname).is_absolute() or not target.resolve().is_relative_to(root):
                raise EngineError(f"packed engine link {info.name!r} -> {info.linkname!r} points outside its folder")
        info.mode &= 0o755  # no setuid, setgid, sticky or world-writable bits
    return members


def extract_checked(data: bytes, work: Path) -> None:
    """Unpack the ``.tar.gz`` ``data`` into ``work``, every member checked first: an engine
    comes from whoever could write the artifacts location, and runs on every worker."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = _checked_members(tar, work)
        if hasattr(tarfile, "data_filter"):  # 3.11.4+: the standard checks on top of ours
            tar.extractall(work, members=members, filter="data")
        else:
            tar.extractall(work, members=members)  # noqa: S202 (checked above)


def unpacked(storages: Storages, uri: str, digest: str) -> Path:
    """The engine packed at ``uri`` as a local directory, fetched and unpacked once per
    user and installation (into a temp directory renamed into place, so a half-unpacked engine never runs).
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
        extract_checked(data, work)
        os.rename(work, target)
    except OSError:
        if not target.is_dir():
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
