"""ByteNite engine folders and template files, read as they are written in the wild.

An engine is ``NAME/manifest.json`` plus ``NAME/app/<entrypoint>`` (and optionally
``NAME/app/schema.json``, the JSON Schema of its params). Manifests were written by hand
and by several versions of ByteNite's tools, so every spelling seen is accepted
(``platform_config``/``platformConfig``, ``device_requirements``/``deviceRequirements``,
``name``/``Name``); what Runner does not use (the container image) is reported in
``warnings``, never silently dropped.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from runner.errors import EngineError

__all__ = ["Manifest", "EngineFolder", "ByteNiteTemplate", "read_engine", "read_template", "EngineKind"]

EngineKind = Literal["partitioner", "app", "assembler"]
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_VERSION = re.compile(r"^\d+\.\d+$")
_TEMPLATE_ID = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


class Manifest(BaseModel):
    """``manifest.json``: what the engine is and how it runs."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: str = Field(validation_alias=AliasChoices("name", "Name"))
    version: str = Field(validation_alias=AliasChoices("version", "Version"))
    type: EngineKind = Field("app", validation_alias=AliasChoices("type", "Type"))
    entrypoint: str = Field("main.py", validation_alias=AliasChoices("entrypoint", "entryPoint", "Entrypoint"))
    platform: str = ""
    platform_config: dict[str, Any] = Field(
        default_factory=dict, validation_alias=AliasChoices("platform_config", "platformConfig"))
    device_requirements: dict[str, Any] = Field(
        default_factory=dict, validation_alias=AliasChoices("device_requirements", "deviceRequirements"))

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"name {value!r} must be letters, digits, '-' or '_', at most 64 characters")
        return value

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> str:
        text = str(value)
        if not _VERSION.match(text):
            raise ValueError(f"version {text!r} must be major.minor, such as '0.1'")
        return text

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, value: Any) -> str:
        return "app" if value in (None, "") else str(value).lower()

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint(cls, value: str) -> str:
        if not value or Path(value).is_absolute() or ".." in Path(value).parts:
            raise ValueError(f"entrypoint {value!r} must be a file name inside app/, such as 'main.py'")
        return value

    @property
    def secrets(self) -> list[str]:
        """Secret ids (``platform_config.secrets``) the process receives from the worker."""
        return [str(s) for s in self.platform_config.get("secrets", []) or []]

    @property
    def needs_gpu(self) -> bool:
        return bool(self.device_requirements.get("gpu"))

    def warnings(self) -> list[str]:
        """What the manifest asks for that Runner does not do."""
        found = []
        container = self.platform_config.get("container")
        if container:
            found.append(f"engine {self.name}: container {container!r} is not used; "
                         f"the entrypoint runs with the worker's own Python / system")
        return found


class EngineFolder(BaseModel):
    """An engine folder on disk, read and checked."""

    path: Path
    manifest: Manifest
    schema_: dict[str, Any] | None = None

    @property
    def kind(self) -> EngineKind:
        return self.manifest.type


def read_engine(folder: Path) -> EngineFolder:
    """The engine in ``folder``; raises :class:`EngineError` naming the file and the problem."""
    manifest_path = folder / "manifest.json"
    try:
        raw = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise EngineError(f"{folder} is not an engine folder: it has no manifest.json") from None
    except json.JSONDecodeError as exc:
        raise EngineError(f"{manifest_path}: not valid JSON ({exc})") from None
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'manifest'}: {e['msg']}" for e in exc.errors())
        raise EngineError(f"{manifest_path}: {problems}") from None
    entry = folder / "app" / manifest.entrypoint
    if not entry.is_file():
        raise EngineError(f"{folder}: entrypoint app/{manifest.entrypoint} does not exist")
    schema = None
    schema_path = folder / "app" / "schema.json"
    if schema_path.is_file():
        try:
            schema = json.loads(schema_path.read_text())
        except json.JSONDecodeError as exc:
            raise EngineError(f"{schema_path}: not valid JSON ({exc})") from None
        if not isinstance(schema, dict):
            raise EngineError(f"{schema_path}: a JSON Schema must be an object")
    return EngineFolder(path=folder, manifest=manifest, schema_=schema)


def _descriptor(value: Any) -> dict[str, Any] | None:
    """A template's ``dataSource``/``dataDestination``: ``{dataSourceDescriptor, params}``."""
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("dataSourceDescriptor"), str) \
            or not value["dataSourceDescriptor"].strip() or not isinstance(value.get("params", {}), dict):
        raise ValueError("must be {\"dataSourceDescriptor\": \"bucket\", \"params\": {...}}")
    return {"dataSourceDescriptor": value["dataSourceDescriptor"].strip(), "params": dict(value.get("params") or {})}


class ByteNiteTemplate(BaseModel):
    """A ByteNite ``template.json``: which engines, default params (``params``, or
    ``default_params`` as some templates name them), timeouts, and the data source and
    destination its jobs get when their client gives none."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str = Field(validation_alias=AliasChoices("id", "name", "Id"))
    partitioner: str = "passthrough"
    app: str
    assembler: str = "passthrough"
    description: str = ""
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    default_params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    dataSource: Annotated[dict[str, Any] | None, BeforeValidator(_descriptor)] = None
    dataDestination: Annotated[dict[str, Any] | None, BeforeValidator(_descriptor)] = None

    @property
    def defaults(self) -> dict[str, dict[str, Any]]:
        """Default params by kind: ``default_params`` with ``params`` over it, section by section."""
        kinds = {*self.default_params, *self.params}
        return {kind: {**self.default_params.get(kind, {}), **self.params.get(kind, {})} for kind in kinds}

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _TEMPLATE_ID.match(value):
            raise ValueError(f"id {value!r} must be letters, digits, '.', '-' or '_', at most 100 characters "
                             f"(it becomes the template's name)")
        return value

    @property
    def task_timeout(self) -> float | None:
        value = self.config.get("taskTimeout", self.config.get("task_timeout"))
        return float(value) if value else None

    @property
    def job_timeout(self) -> float | None:
        value = self.config.get("jobTimeout", self.config.get("job_timeout"))
        return float(value) if value else None

    def ignored(self) -> list[str]:
        """Fields a ByteNite template carries that a Runner job gives per submit instead."""
        return [f"config.{key}" for key in ("isTestJob",) if key in self.config]

    def kept(self) -> list[str]:
        """The data fields kept as each job's defaults (a client's own win)."""
        return [key for key in ("dataSource", "dataDestination") if getattr(self, key) is not None]


def read_template(path: Path) -> ByteNiteTemplate:
    """The template file at ``path``; raises :class:`EngineError` naming it and the problem."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise EngineError(f"template file {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise EngineError(f"{path}: not valid JSON ({exc})") from None
    try:
        return ByteNiteTemplate.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'template'}: {e['msg']}" for e in exc.errors())
        raise EngineError(f"{path}: {problems}") from None
