"""The layout's rules, read from the source: imports only go down (no circle, not even one hidden in a
function-level import), the core imports no edge and no web or CLI framework, a route or the UI reaches no
further than it should, and pyproject.toml declares what is imported."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EDGES = ("gateway", "fastapi", "starlette", "gradio", "typer", "click", "uvicorn")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module `path` imports, at any depth (function-level imports included); TYPE_CHECKING ones too."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def graph() -> dict[str, set[str]]:
    files = [p for package in ("promptops", "gateway") for p in (ROOT / package).rglob("*.py")
             if "backend" not in p.parts]  # the vllm backend runs inside Triton, not imported by promptops
    modules = {module_name(p): p for p in files}
    return {name: {m for m in imports(path) if m in modules and m != name} for name, path in modules.items()}


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle between modules (a package's __init__ importing its own modules does not count)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node], _ = 1, stack.append(node)
        for target in sorted(edges[node]):
            if node.startswith(target + "."):
                continue  # a module importing its own package's facade: the facade's job, not a circle
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        state[node], _ = 2, stack.pop()
        return None

    return next((found for node in sorted(edges) if node not in state and (found := visit(node))), None)


def test_imports_only_go_down():
    assert cycle(graph()) is None, " -> ".join(cycle(graph()) or [])


@pytest.mark.parametrize("path", sorted(p for p in (ROOT / "promptops").rglob("*.py")
                                        if "cli" not in p.relative_to(ROOT / "promptops").parts),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_the_core_imports_no_edge_and_no_framework(path):
    edges = {m for m in imports(path) if m.split(".")[0] in EDGES}
    assert not edges, f"{path.relative_to(ROOT)} imports {sorted(edges)}"


def test_a_route_module_imports_no_other_route_module():
    # A request enters one route file on its way down: what two routes share lives below them (gateway/serving.py).
    routes = {name: targets for name, targets in graph().items() if name.startswith("gateway.routes.")}
    sideways = {name: sorted(t for t in targets if t.startswith("gateway.routes.")) for name, targets in routes.items()}
    assert not any(sideways.values()), sideways


def test_the_ui_reaches_the_store_only_through_its_facade():
    ui = {name: targets for name, targets in graph().items() if name.startswith("gateway.ui")}
    past = {name: sorted(t for t in targets if t.startswith("promptops.store.")) for name, targets in ui.items()}
    assert not any(past.values()), past


# Imported, and installed by a declared dependency rather than declared itself (the dependency that brings it).
PROVIDED_BY = {"click": "typer", "grpcio": "tritonclient", "orjson": "gradio", "pydantic": "pydantic-settings",
               "starlette": "fastapi"}
# Declared, and never imported by name: SQLAlchemy loads it for `postgresql+psycopg://` URLs (promptops/state).
DRIVERS = {"psycopg"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> set[str]:
    """The distributions pyproject.toml declares for promptops and its `serve` and `otel` extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    requirements = project["dependencies"] + extras["serve"] + extras["otel"]
    return {normalise(re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]) for requirement in requirements}


def imported() -> set[str]:
    """The distributions that promptops/ and gateway/ import (the Triton backend runs in .venv-serve: not counted)."""
    files = [p for package in ("promptops", "gateway") for p in (ROOT / package).rglob("*.py")
             if "backend" not in p.parts]
    tops = {module.split(".")[0] for path in files for module in imports(path)}
    distributions = packages_distributions()
    # A namespace package many distributions share: what the code uses is what the `otel` extra declares.
    distributions["opentelemetry"] = ["opentelemetry-api", "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http"]
    return {normalise(d) for top in tops - set(sys.stdlib_module_names) - {"promptops", "gateway", "__future__"}
            for d in distributions.get(top, [top])}


def test_every_import_is_declared_and_every_declaration_imported():
    provided = {normalise(name) for name in PROVIDED_BY}
    assert (imported() - provided) | DRIVERS == declared()
