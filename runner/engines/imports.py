"""``runner template import``: a ByteNite template and its engine folders, into the store.

An import packs each engine folder (content-addressed, :mod:`runner.engines.packing`),
records the template in the status store (``P:imports``, ref -> :class:`ImportRecord`
JSON, with the template's ByteNite ``dataSource``/``dataDestination``, which the
customer API gives each job whose client sends none) and publishes it like a worker publishes its own (:mod:`runner.catalog`), so every
client lists it and validates its params, and every worker on the store runs it without a
restart: a worker that meets a job of a template it lacks registers it from its record
(:func:`load_imported`, a :func:`runner.registry.add_template_loader` loader).

Immutable, like every template: the same content again is a no-op; different content
under an existing ``name@version`` is refused, naming it. An engine's function name
carries the first 12 hex digits of its packed digest (``img-gen@0.1#3f2a9c1b2e4d``), so
two contents never share a name and the published hash tells them apart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from runner.catalog import TemplateInfo, publish
from runner.config import Settings
from runner.engines.contract import CommandEngine, OpenParams
from runner.engines.manifest import EngineFolder, EngineKind, Manifest, read_engine, read_template
from runner.engines.packing import pack, packed_uri, upload
from runner.errors import EngineError, TemplateError, TemplateNotFound
from runner.registry import Template, get_function, pick_version, register, template
from runner.schemas import model_from_schema
from runner.storage import Storages
from runner.store import StatusStore

__all__ = ["ImportRecord", "EngineRecord", "ImportReport", "import_template", "load_imported", "register_record",
           "imported_record"]

KINDS: tuple[EngineKind, ...] = ("partitioner", "app", "assembler")
DEFAULT_VERSION = "1.0.0"


class EngineRecord(BaseModel):
    """One engine of an imported template: its function name, manifest and packed folder."""

    function: str
    manifest: dict[str, Any]
    digest: str
    uri: str
    schema_: dict[str, Any] | None = None


class ImportRecord(BaseModel):
    """An imported template as the store keeps it."""

    ref: str
    name: str
    version: str
    functions: dict[str, str]  # kind -> registered function name
    engines: dict[str, EngineRecord]  # kind -> the engine, for kinds that are folders
    params: dict[str, dict[str, Any]] = {}
    task_timeout: float | None = None
    job_timeout: float | None = None
    queue: str | None = None
    description: str = ""
    data_source: dict[str, Any] | None = None  # the template's ByteNite dataSource: each job's default
    data_destination: dict[str, Any] | None = None

    def encoded(self) -> str:
        # fields added later are left out while unset, so a record imported before them
        # still reads as the same content (an unchanged re-import stays a no-op)
        data = self.model_dump(mode="json")
        for later in ("data_source", "data_destination"):
            if data[later] is None:
                del data[later]
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


class ImportReport(BaseModel):
    """What an import did, for the command line."""

    ref: str
    created: bool
    functions: dict[str, str]
    queue: str | None
    warnings: list[str] = []
    ignored: list[str] = []
    kept: list[str] = []


def import_template(path: Path, store: StatusStore, storages: Storages, settings: Settings, *,
                    version: str | None = None, engine_dirs: list[Path] | tuple[Path, ...] = (),
                    queue: str | None = None) -> ImportReport:
    """Import the ByteNite template file ``path`` (see the module docstring).

    Raises :class:`EngineError` for an unreadable template or engine, a tag no folder
    matches or a folder of the wrong type, and :class:`TemplateError` when ``name@version``
    is already imported or published with different content.
    """
    spec = read_template(path)
    version = version or DEFAULT_VERSION
    search = [path.parent, path.parent.parent, *engine_dirs]
    functions: dict[str, str] = {}
    engines: dict[str, EngineRecord] = {}
    warnings: list[str] = []
    for kind in KINDS:
        tag = getattr(spec, kind)
        folder = None if _is_registered(kind, tag) else _find_engine(tag, kind, search)
        if folder is None:
            functions[kind] = tag
            continue
        data, digest = pack(folder.path)
        uri = packed_uri(settings, digest)
        upload(storages, uri, data)
        manifest = folder.manifest
        functions[kind] = f"{manifest.name}@{manifest.version}#{digest[:12]}"
        engines[kind] = EngineRecord(function=functions[kind], manifest=manifest.model_dump(mode="json"),
                                     digest=digest, uri=uri, schema_=folder.schema_)
        warnings += manifest.warnings()
    if queue is None and "app" in engines and Manifest.model_validate(engines["app"].manifest).needs_gpu:
        queue = "gpu"
    record = ImportRecord(
        ref=f"{spec.id}@{version}", name=spec.id, version=version, functions=functions, engines=engines,
        params={k: v for k, v in spec.defaults.items() if k in KINDS}, task_timeout=spec.task_timeout,
        job_timeout=spec.job_timeout, queue=queue, description=spec.description,
        data_source=spec.dataSource, data_destination=spec.dataDestination,
    )
    existing = store.fleet.imported_template(record.ref)
    if existing is not None and existing != record.encoded():
        raise _conflict(record, ImportRecord.model_validate_json(existing))
    registered = register_record(record)
    publish(store, [TemplateInfo.from_template(registered)])
    current = store.fleet.record_import(record.ref, record.encoded())
    if current != record.encoded():
        raise _conflict(record, ImportRecord.model_validate_json(current))
    return ImportReport(ref=record.ref, created=existing is None, functions=functions, queue=queue,
                        warnings=warnings, ignored=spec.ignored(), kept=spec.kept())


def _conflict(new: ImportRecord, old: ImportRecord) -> TemplateError:
    parts = [kind for kind in KINDS if new.functions.get(kind) != old.functions.get(kind)]
    parts += [field for field in ("params", "task_timeout", "job_timeout", "queue", "description", "data_source",
                                  "data_destination")
              if getattr(new, field) != getattr(old, field)]
    return TemplateError(
        f"template {new.ref} is already imported with different content (differs in: {', '.join(parts) or 'record'}); "
        f"templates are immutable: import the changed template with --version NEW")


def _is_registered(kind: EngineKind, tag: str) -> bool:
    if "@" in tag:
        return False
    try:
        get_function(kind, tag)
    except TemplateNotFound:
        return False
    return True


def _find_engine(tag: str, kind: EngineKind, search: list[Path]) -> EngineFolder:
    """The engine folder ``tag`` (``name``, ``name@1``, ``name@1.2``) names in ``search``."""
    name, _, wanted = tag.partition("@")
    found: dict[str, EngineFolder] = {}
    for directory in search:
        candidates = [directory, *sorted(p for p in directory.iterdir() if p.is_dir())] if directory.is_dir() else []
        for candidate in candidates:
            if not (candidate / "manifest.json").is_file():
                continue
            engine = read_engine(candidate)
            if engine.manifest.name == name:
                found.setdefault(engine.manifest.version, engine)
    version = pick_version(wanted, found)
    if version is None:
        where = ", ".join(str(d) for d in search)
        seen = ", ".join(sorted(found)) or "none"
        raise EngineError(f"{kind} {tag!r}: no engine folder with that name and version (versions found: {seen}) "
                          f"in {where}; pass --engines DIR, or name a registered {kind} or 'passthrough'")
    engine = found[version]
    if engine.kind != kind:
        raise EngineError(f"{kind} {tag!r}: the engine in {engine.path} is a {engine.kind}, not a {kind} "
                          f"(manifest 'type')")
    return engine


def register_record(record: ImportRecord) -> Template:
    """Register an imported template and its engines in this process (idempotent)."""
    for kind, engine in record.engines.items():
        if _is_registered(kind, engine.function):  # type: ignore[arg-type]
            continue
        manifest = Manifest.model_validate(engine.manifest)
        params: type[BaseModel] = OpenParams
        if kind == "app" and engine.schema_:
            params = model_from_schema(engine.schema_, f"{manifest.name}_params")
        traits = {"writes": "output"} if kind == "assembler" else {}
        register(kind, engine.function, CommandEngine(kind, engine.function, manifest, engine.digest, engine.uri),  # type: ignore[arg-type]
                 params=params, engine="command", **traits)
    return template(
        record.name, record.version, partitioner=record.functions["partitioner"], app=record.functions["app"],
        assembler=record.functions["assembler"], params=record.params, task_timeout=record.task_timeout,
        job_timeout=record.job_timeout, queue=record.queue, description=record.description,
    )


def imported_record(store: StatusStore, ref: str) -> ImportRecord | None:
    """The import record of ``ref`` (``None``: not an imported template)."""
    raw = store.imported_template(ref)
    return None if raw is None else ImportRecord.model_validate_json(raw)


def load_imported(ref: str, store: StatusStore, **_: Any) -> bool:
    """Register the imported template ``ref`` from the store, if there is one (a worker's
    template loader: jobs name exact refs)."""
    raw = store.fleet.imported_template(ref)
    if raw is None:
        return False
    register_record(ImportRecord.model_validate_json(raw))
    return True
