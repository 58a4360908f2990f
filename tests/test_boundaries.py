"""The layout is the architecture: imports go one way.

``runner/`` is what a Python user, the CLI and the HTTP API call; ``workers/`` is the
Celery side. The worker side may use the control plane's models, store and registry but
never its client, CLI or process launcher; the control plane never imports the worker
side (it sends tasks by name and starts workers as processes). Built-in partitioners and
assemblers are plugins: the worker core names none of them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("runner", "workers", "partitioners", "assemblers")
CLIENT_SIDE = ("runner.client", "runner.cli", "runner.local", "runner.api", "runner.simple", "runner")

# (importer package, predicate on the imported module, why it is forbidden)
RULES = [
    ("runner", lambda m: _under(m, "workers"), "the control plane never imports the worker side"),
    ("workers", lambda m: m in CLIENT_SIDE or any(_under(m, c) for c in CLIENT_SIDE[:-1]),
     "the worker side never imports the client, CLI, API or launcher (nor `runner` itself, which re-exports them)"),
    ("workers", lambda m: _under(m, "partitioners") or _under(m, "assemblers"),
     "the worker core names no partitioner or assembler"),
    ("partitioners", lambda m: _under(m, "workers") or m in CLIENT_SIDE, "plugins use runner's registry only"),
    ("assemblers", lambda m: _under(m, "workers") or m in CLIENT_SIDE, "plugins use runner's registry only"),
]


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports (lazy imports inside functions included), with its
    line. ``from pkg import name`` counts as ``pkg.name`` when that is a module."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                is_module = (REPO / candidate.replace(".", "/")).with_suffix(".py").exists() or (
                    REPO / candidate.replace(".", "/") / "__init__.py").exists()
                found.append((node.lineno, candidate if is_module else node.module))
    return found


def edges() -> list[tuple[str, int, str]]:
    """(importer file, line, imported module) for every import in the four packages."""
    result = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            result += [(str(path.relative_to(REPO)), line, module) for line, module in imports_of(path)]
    return result


def violations(all_edges: list[tuple[str, int, str]]) -> list[str]:
    broken = []
    for source, line, module in all_edges:
        importer = source.split("/")[0]
        for package, forbidden, why in RULES:
            if importer == package and forbidden(module):
                broken.append(f"{source}:{line} imports {module}: {why}")
    return broken


def test_imports_go_one_way_from_workers_to_runner() -> None:
    assert violations(edges()) == []


@pytest.mark.parametrize("edge, rule", [
    (("workers/tasks.py", 1, "runner.client"), "never imports the client"),
    (("workers/tasks.py", 1, "runner"), "never imports the client"),
    (("runner/cli.py", 1, "workers.boot"), "never imports the worker side"),
    (("workers/tasks.py", 1, "partitioners.lines"), "names no partitioner"),
])
def test_the_rule_names_a_forbidden_edge(edge: tuple[str, int, str], rule: str) -> None:
    (message,) = violations([edge])
    assert message.startswith(f"{edge[0]}:1 imports {edge[2]}") and rule in message


def test_the_walker_sees_lazy_imports_inside_functions(tmp_path: Path) -> None:
    source = tmp_path / "lazy.py"
    source.write_text("def f():\n    from workers.boot import run_worker\n")
    assert imports_of(source) == [(2, "workers.boot")]


# -- transitive rules: what a module reaches through any chain of imports -----------------

SDK_EXEMPT = ("runner.cli", "runner.api", "runner.ui", "runner.local")  # the callers of the SDK, not the SDK
REACH_RULES = [
    ("workers", ("runner.client", "runner.cli", "runner.api"),
     "the worker side never reaches the client, CLI or API, through any chain of imports"),
    ("runner", ("runner.cli", "runner.api"), "the SDK and control plane never reach the CLI or the API"),
]


def graph() -> dict[str, set[str]]:
    """Module → the in-repo modules it imports (lazily or not)."""
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            found[_module_name(path)] = {m for _, m in imports_of(path) if m.split(".")[0] in PACKAGES}
    return found


def reaches(start: str, edges_of: dict[str, set[str]]) -> dict[str, str]:
    """Every module reachable from ``start``, each with the module that imported it."""
    parent: dict[str, str] = {}
    todo = [start]
    while todo:
        module = todo.pop()
        for target in edges_of.get(module, ()):
            if target not in parent and target != start:
                parent[target] = module
                todo.append(target)
    return parent


def chain(start: str, end: str, parent: dict[str, str]) -> str:
    path = [end]
    while path[-1] != start:
        path.append(parent[path[-1]])
    return " → ".join(reversed(path))


def reach_violations(edges_of: dict[str, set[str]]) -> list[str]:
    broken = []
    for module in sorted(edges_of):
        for package, forbidden, why in REACH_RULES:
            if not _under(module, package) or any(_under(module, e) for e in (*SDK_EXEMPT, *forbidden)) \
                    or module == "runner":
                continue
            parent = reaches(module, edges_of)
            hit = sorted(t for t in parent if any(_under(t, f) for f in forbidden))
            if hit:
                broken.append(f"{chain(module, hit[0], parent)}: {why}")
    return broken


def test_no_module_reaches_a_forbidden_side_through_any_chain() -> None:
    assert reach_violations(graph()) == []


def test_the_reach_rule_follows_a_chain_of_lazy_imports() -> None:
    fake = {"workers.tasks": {"runner.schedules.sweep"}, "runner.schedules.sweep": {"runner.schedules.handle"},
            "runner.schedules.handle": {"runner.client"}}
    (message,) = [m for m in reach_violations(fake) if m.startswith("workers.tasks")]
    assert message.startswith("workers.tasks → runner.schedules.sweep → runner.schedules.handle → runner.client")


# -- one door for admission -----------------------------------------------------------------

ADMISSION = "runner/admission.py"


def admission_calls(path: Path) -> list[tuple[int, str]]:
    """Calls that admit a job: a store's ``create`` or ``create_many`` (new job records) or
    ``send_partition`` / ``send_partitions``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        owner = ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""
        if name in ("send_partition", "send_partitions") or (
                name in ("create", "create_many") and owner.split(".")[-1] in ("store", "jobs")):
            found.append((node.lineno, f"{owner + '.' if owner else ''}{name}"))
    return found


def test_only_the_admission_module_creates_a_job_record_or_sends_a_partition_task() -> None:
    offenders = [f"{path.relative_to(REPO)}:{line} calls {call}"
                 for package in PACKAGES for path in sorted((REPO / package).rglob("*.py"))
                 if str(path.relative_to(REPO)) != ADMISSION for line, call in admission_calls(path)]
    assert offenders == []
    assert {call for _, call in admission_calls(REPO / ADMISSION)} >= {
        "services.store.create", "send_partition", "services.store.jobs.create_many", "send_partitions"}


def test_the_admission_rule_sees_a_second_door(tmp_path: Path) -> None:
    source = tmp_path / "door.py"
    source.write_text("def f(client):\n    client.store.create({}, 1)\n    send_partition(1, 2)\n"
                      "    client.store.jobs.create_many([])\n    send_partitions(1, 2, [])\n")
    assert admission_calls(source) == [(2, "client.store.create"), (3, "send_partition"),
                                       (4, "client.store.jobs.create_many"), (5, "send_partitions")]
