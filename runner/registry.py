"""The registry of apps, partitioners, assemblers and the templates that link them.

Workers and clients build the same registry by importing the same modules (built-ins,
``RUNNER_INCLUDE`` modules and the ``runner.plugins`` entry-point group), so a task only
ever carries names (``wordcount@1.0.0``), never code.

A template is immutable once registered: registering a different definition under an
existing ``name@version`` raises, since two hosts running two meanings of one version
would produce results nobody can reproduce. Importing the same module twice is fine.

A reference is ``name`` (the newest version), ``name@1`` or ``name@1.2`` (the newest
version whose release starts so) or ``name@1.2.3`` (exactly that one); final releases win
over pre-releases, as with pip, unless only pre-releases match (:func:`pick_version`).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar

from packaging.version import InvalidVersion, Version
from pydantic import BaseModel

from runner.errors import TemplateError, TemplateNotFound

__all__ = [
    "Kind",
    "Function",
    "Template",
    "app",
    "partitioner",
    "assembler",
    "template",
    "get_function",
    "template_versions",
    "get_template",
    "templates",
    "load_plugins",
    "pick_version",
    "register",
    "add_template_loader",
    "NOT_FOUND_HINT",
]

Kind = Literal["partitioner", "app", "assembler"]
KINDS: tuple[Kind, ...] = ("partitioner", "app", "assembler")
F = TypeVar("F", bound=Callable[..., Any])
NOT_FOUND_HINT = (
    "start a worker with --include MODULE (it publishes the module's templates), "
    "or import it here with -I MODULE / RUNNER_INCLUDE"
)


@dataclass(frozen=True)
class Function:
    """One registered user function. ``engine`` leaves room for non-Python engines."""

    kind: Kind
    name: str
    fn: Callable[..., Any]
    params: type[BaseModel] | None = None
    engine: str = "python"
    needs_source: bool = False  # a partitioner that reads the job's source (refused without one)
    writes: str | None = None  # an assembler that writes the destination: its file name under a prefix
    combine: Callable[[Any, Any], Any] | None = None  # an assembler's associative fold (see ``assembler``)

    @property
    def origin(self) -> str:
        """Where the function is defined: its source file and qualified name, so a module
        run as a script (``__main__``) and imported by name is one definition, not two."""
        try:
            where = os.path.realpath(inspect.getsourcefile(self.fn) or "")
        except TypeError:
            where = getattr(self.fn, "__module__", "?")
        return f"{where}:{getattr(self.fn, '__qualname__', '?')}"


@dataclass(frozen=True)
class Template:
    """``name@version``: one partitioner, one app, one assembler and their defaults."""

    name: str
    version: str
    partitioner: str
    app: str
    assembler: str
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    task_timeout: float | None = None
    job_timeout: float | None = None
    max_retries: int | None = None
    queue: str | None = None
    test_pieces: int = 3
    batch_size: int | None = None
    inputs: tuple[str, ...] = ()
    description: str = ""
    min_success_ratio: float | None = None  # partial success by default (runner/partial.py)
    max_failed_pieces: int | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def function(self, kind: Kind) -> Function:
        return get_function(kind, getattr(self, kind))

    def params_model(self, kind: Kind) -> type[BaseModel] | None:
        """The pydantic model of the ``kind`` function's params (``None``: it takes none)."""
        return self.function(kind).params

    def describe(self) -> dict[str, Any]:
        """A JSON-able description, including the functions' origins, used for identity."""
        data = asdict(self)
        data["origins"] = {kind: self.function(kind).origin for kind in KINDS}
        return data


_functions: dict[Kind, dict[str, Function]] = {kind: {} for kind in KINDS}
_templates: dict[str, dict[str, Template]] = {}


def _register_function(kind: Kind, name: str | None, params: type[BaseModel] | None, fn: F, **traits: Any) -> F:
    if not callable(fn):
        raise TemplateError(f"@{kind} must decorate a function, got {fn!r}")
    if params is not None and not (isinstance(params, type) and issubclass(params, BaseModel)):
        raise TemplateError(f"{kind} {name or fn.__name__!r}: params must be a pydantic BaseModel class, got {params!r}")
    entry = Function(kind=kind, name=name or fn.__name__, fn=fn, params=params, **traits)
    existing = _functions[kind].get(entry.name)
    if existing is not None and existing.origin != entry.origin:
        raise TemplateError(
            f"{kind} {entry.name!r} is already registered by {existing.origin}; "
            f"{entry.origin} cannot reuse the name"
        )
    _functions[kind][entry.name] = entry
    return fn


def _decorator(kind: Kind) -> Callable[..., Any]:
    def decorate(name: str | Callable[..., Any] | None = None, *, params: type[BaseModel] | None = None,
                 **traits: Any) -> Any:
        allowed = {"partitioner": {"needs_source"}, "assembler": {"writes", "combine"}}.get(kind, set())
        if traits.get("combine") is not None and not callable(traits["combine"]):
            raise TemplateError(f"@assembler combine= must be a function (a, b) -> c, got {traits['combine']!r}")
        if set(traits) - allowed:
            raise TemplateError(f"@{kind} does not take {', '.join(sorted(set(traits) - allowed))}=; "
                                f"it takes params=" + "".join(f", {name}=" for name in sorted(allowed)))
        if callable(name):  # used bare: @app
            return _register_function(kind, None, params, name, **traits)
        return lambda fn: _register_function(kind, name, params, fn, **traits)

    decorate.__name__ = kind
    decorate.__doc__ = (
        f"Register a {kind}: ``@{kind}``, ``@{kind}('name')`` or ``@{kind}('name', params=Model)``.\n\n"
        f"A partitioner that reads the job's source says ``needs_source=True`` (a job without one is\n"
        f"refused at submit); an assembler that writes the destination says ``writes='result.json'``\n"
        f"(its file name under a prefix destination; a destination is refused for one that does not).\n\n"
        f"An assembler may declare ``combine=fn``: ``fn(a, b)`` folds two results (or partial folds)\n"
        f"into one, associatively (commutativity is not assumed: folds keep piece order). Each batch\n"
        f"then folds its pieces' results and the store keeps one partial per flushed run of pieces\n"
        f"instead of one result per piece; the assembler receives those partials, in piece order,\n"
        f"so it must give the same output for them as for the results (``sum``, ``merge_counts``).\n"
        f"``fn`` may return ``a`` modified (the fold owns it), never ``b``.\n\n"
        f"Raises TemplateError when the name is already taken by another function."
    )
    return decorate


def register(kind: Kind, name: str, fn: Callable[..., Any], *, params: type[BaseModel] | None = None,
             engine: str = "python", **traits: Any) -> Function:
    """Register ``fn`` as the ``kind`` called ``name`` without a decorator, e.g. a callable
    that runs an executable engine (``engine="command"``). Raises :class:`TemplateError`
    when the name is taken by another function."""
    _register_function(kind, name, params, fn, engine=engine, **traits)
    return _functions[kind][name]


app = _decorator("app")
partitioner = _decorator("partitioner")
assembler = _decorator("assembler")


def template(
    name: str,
    version: str,
    *,
    partitioner: str,
    app: str,
    assembler: str,
    params: dict[str, dict[str, Any]] | None = None,
    task_timeout: float | None = None,
    job_timeout: float | None = None,
    max_retries: int | None = None,
    queue: str | None = None,
    test_pieces: int = 3,
    batch_size: int | None = None,
    inputs: list[str] | tuple[str, ...] = (),
    description: str = "",
    min_success_ratio: float | None = None,
    max_failed_pieces: int | None = None,
) -> Template:
    """Register the template ``name@version`` and return it.

    ``params`` holds default params per section (``{"partitioner": {...}}``); a job's
    params override them field by field. ``inputs`` names the extra sources every job of
    the template must bind (``inputs={"model": "s3://…"}``), read as ``ctx.inputs[name]``.
    ``min_success_ratio`` or ``max_failed_pieces`` (one of them) lets its jobs complete
    without pieces that fail for good, unless a job says otherwise (``runner/partial.py``).
    Raises :class:`TemplateError` if a function is
    unknown, the version is not a valid version, or ``name@version`` already means
    something else.
    """
    _load_builtins()
    if not name or "@" in name:
        raise TemplateError(f"template name {name!r} must be non-empty and contain no '@'")
    try:
        Version(version)
    except InvalidVersion:
        raise TemplateError(f"template {name!r}: version {version!r} is not a valid version such as '1.0.0'") from None
    for kind, fn_name in (("partitioner", partitioner), ("app", app), ("assembler", assembler)):
        if fn_name not in _functions[kind]:  # type: ignore[index]
            known = ", ".join(sorted(_functions[kind])) or "none"  # type: ignore[index]
            raise TemplateNotFound(f"template {name}@{version}: unknown {kind} {fn_name!r} (registered: {known})")
    unknown = set(params or {}) - set(KINDS)
    if unknown:
        raise TemplateError(f"template {name}@{version}: params sections must be {', '.join(KINDS)}; got {sorted(unknown)}")
    if test_pieces < 1:
        raise TemplateError(f"template {name}@{version}: test_pieces must be >= 1, got {test_pieces}")
    if batch_size is not None and batch_size < 1:
        raise TemplateError(f"template {name}@{version}: batch_size must be >= 1, got {batch_size}")
    _check_tolerance(f"{name}@{version}", min_success_ratio, max_failed_pieces)
    new = Template(
        name=name, version=version, partitioner=partitioner, app=app, assembler=assembler,
        params={k: dict(v) for k, v in (params or {}).items()}, task_timeout=task_timeout,
        job_timeout=job_timeout, max_retries=max_retries, queue=queue, test_pieces=test_pieces,
        batch_size=batch_size, inputs=tuple(inputs), description=description,
        min_success_ratio=min_success_ratio, max_failed_pieces=max_failed_pieces,
    )
    existing = _templates.get(name, {}).get(version)
    if existing is not None and existing.describe() != new.describe():
        raise TemplateError(
            f"template {new.ref} is already registered with a different definition; "
            f"templates are immutable: register a new version instead"
        )
    _templates.setdefault(name, {})[version] = new
    return new


def _check_tolerance(ref: str, ratio: float | None, most: int | None) -> None:
    """A template's default tolerance of failed pieces: one of the two, each in range."""
    if ratio is not None and most is not None:
        raise TemplateError(f"template {ref}: give min_success_ratio or max_failed_pieces, not both")
    if ratio is not None and (isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio <= 1):
        raise TemplateError(f"template {ref}: min_success_ratio must be a number from 0 to 1, got {ratio!r}")
    if most is not None and (isinstance(most, bool) or not isinstance(most, int) or most < 0):
        raise TemplateError(f"template {ref}: max_failed_pieces must be a whole number >= 0, got {most!r}")


def get_function(kind: Kind, name: str) -> Function:
    """The registered ``kind`` called ``name``; raises :class:`TemplateNotFound`."""
    try:
        return _functions[kind][name]
    except KeyError:
        known = ", ".join(sorted(_functions[kind])) or "none"
        raise TemplateNotFound(f"unknown {kind} {name!r} (registered: {known})") from None


def pick_version(tag: str, versions: Iterable[str]) -> str | None:
    """The version that ``tag`` means among ``versions``, or ``None``.

    ``""``: the newest; ``"1"`` / ``"1.2"``: the newest whose release starts with those
    numbers; anything else (``"1.2.3"``, ``"2.0rc1"``): that exact version. Final releases
    are preferred over pre-releases when both match.
    """
    known = [v for v in versions if _valid(v)]
    if tag in known:
        return tag
    if tag and not _valid(tag):
        return None
    wanted = Version(tag) if tag else None
    if wanted is None or (len(wanted.release) <= 2 and str(wanted) == ".".join(map(str, wanted.release))):
        prefix = wanted.release if wanted else ()
        matches = [v for v in known if Version(v).release[: len(prefix)] == prefix]
    else:
        matches = [v for v in known if Version(v) == wanted]
    finals = [v for v in matches if not Version(v).is_prerelease]
    return max(finals or matches, key=Version, default=None)


def _valid(version: str) -> bool:
    try:
        Version(version)
    except InvalidVersion:
        return False
    return True


_loaders: list[Callable[..., bool]] = []


def add_template_loader(loader: Callable[..., bool]) -> None:
    """Let ``loader(ref, **where)`` register a template this process does not have yet
    (e.g. one imported to the store after the worker started); it returns whether it did."""
    if loader not in _loaders:
        _loaders.append(loader)


def get_template(ref: str, **where: Any) -> Template:
    """The template ``ref`` names (``name``, ``name@1``, ``name@1.2``, ``name@1.2.3``; see
    :func:`pick_version`) among those this process registered. Given ``where`` (a
    worker's ``store`` and ``storages``), an exact ref this process lacks is first offered
    to the template loaders (:func:`add_template_loader`).

    Raises :class:`TemplateNotFound` naming the known templates, with a hint about
    ``--include`` / ``RUNNER_INCLUDE`` since the usual cause is a module never imported.
    """
    name, _, tag = ref.partition("@")
    versions = _templates.get(name, {})
    version = pick_version(tag, versions)
    if version is None and where and any(loader(ref, **where) for loader in list(_loaders)):
        return get_template(ref)
    if version is None:
        known = ", ".join(t.ref for t in templates()) or "none"
        raise TemplateNotFound(f"unknown template {ref!r} (registered: {known}); {NOT_FOUND_HINT}")
    return versions[version]


def template_versions(name: str) -> dict[str, Template]:
    """The registered versions of template ``name`` (no sort: a lookup per job uses it)."""
    return dict(_templates.get(name, {}))


def templates() -> list[Template]:
    """Every registered template, by name then version."""
    return [
        _templates[name][version]
        for name in sorted(_templates)
        for version in sorted(_templates[name], key=Version)
    ]


def _load_builtins() -> None:
    """Register the built-in partitioners and assemblers (a template may name them before
    anything called :func:`load_plugins`, e.g. in a notebook)."""
    importlib.import_module("partitioners")
    importlib.import_module("assemblers")


def load_plugins(include: list[str] | tuple[str, ...] = ()) -> None:
    """Import the built-ins, the ``include`` modules and the ``runner.plugins`` entry points.

    With ``include`` modules, the current directory goes on ``sys.path`` (last, so it never
    shadows an installed package), as ``celery -A`` does: ``--include myjobs`` finds
    ``myjobs.py`` where the command runs.
    Raises :class:`TemplateError` naming a module that cannot be imported.
    """
    if include and not {"", os.getcwd()} & set(sys.path):
        sys.path.append(os.getcwd())
    for module in ("partitioners", "assemblers", *include):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise TemplateError(f"cannot import module {module!r} (from RUNNER_INCLUDE / --include): {exc}") from exc
    for entry_point in importlib.metadata.entry_points(group="runner.plugins"):
        try:
            entry_point.load()
        except Exception as exc:
            raise TemplateError(f"cannot load runner.plugins entry point {entry_point.name!r}: {exc}") from exc
