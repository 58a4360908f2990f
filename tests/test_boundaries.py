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
    assert any(module == "workers.boot" for _, module in imports_of(REPO / "tests" / "test_boundaries.py")) is False
    source = tmp_path / "lazy.py"
    source.write_text("def f():\n    from workers.boot import run_worker\n")
    assert imports_of(source) == [(2, "workers.boot")]
