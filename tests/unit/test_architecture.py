"""The shape of the package, as README's Layout section states it: who may import whom, no import cycle,
nothing outside the application layer reaching the state table, the executor or an adapter, and code
short enough to read at once."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from rds_ha.app.steps import STEPS
from rds_ha.core import actions

PACKAGE = Path(__file__).resolve().parents[2] / "functions" / "rds_ha"
FUNCTION_LINES = 60
CLASS_LINES = 250


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ["rds_ha", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _imports(name: str) -> Iterator[tuple[str, int]]:
    """(imported module, line) of every import at module level, those under `if TYPE_CHECKING:` included
    (an import inside a function is a deliberate lazy import and breaks no cycle at load time)."""
    tree = ast.parse(MODULES[name].read_text())
    base = name if _is_package(name) else name.rpartition(".")[0]
    body = list(tree.body)
    while body:
        node = body.pop(0)
        if isinstance(node, ast.If):
            body += node.body + node.orelse
        elif isinstance(node, ast.Import):
            yield from ((a.name, node.lineno) for a in node.names if a.name.startswith("rds_ha"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = base.split(".")
                pkg = pkg[: len(pkg) - node.level + 1]
                source = ".".join(pkg + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if not source.startswith("rds_ha"):
                continue
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                yield (sub if sub in MODULES else source), node.lineno


def test_no_import_cycle_between_modules() -> None:
    graph = {m: {i for i, _ in _imports(m) if i in MODULES and i != m} for m in MODULES}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(path[path.index(n) :] + [n])
            elif n not in state:
                visit(n, [*path, n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


# Layers and what each may import (besides itself and the package's constants, `rds_ha`).
MAY_IMPORT = {
    "core": {"core"},
    "adapters": {"core", "adapters", "probe.model", "observability"},
    "probe": {"core", "probe", "observability"},
    "events": {"core", "observability"},
    "observability": set(),
    "app": {"core", "adapters", "probe", "events", "observability", "app"},
    "handlers": {"app.__init__", "core", "events", "observability", "handlers"},
    "cli": {"app.__init__", "core", "events", "observability", "cli", "local", "handlers", "probe.model"},
    # The local lab (moto, its fidelity layer, a sandbox account): it builds AWS resources with its own clients.
    "local": {"core", "adapters", "local", "probe.model"},
}
# cli/demo and cli/lab_demo run the local lab: its AWS clients build the lab's account (the demos use App);
# the lab demo's client is the drill's (probe.client).
CONSTRUCTS_THE_LAB = {"rds_ha.cli.demo": {"adapters"}, "rds_ha.cli.lab_demo": {"adapters", "probe.client"}}


def _layer(module: str) -> str:
    parts = module.split(".")[1:]
    return parts[0] if parts else ""


def _allowed(importer: str, imported: str) -> bool:
    if imported == "rds_ha":
        return True
    allowed = MAY_IMPORT[_layer(importer)] | CONSTRUCTS_THE_LAB.get(importer, set())
    rel = ".".join(imported.split(".")[1:])
    if rel == "app":  # the application package itself, not one of its modules
        return "app.__init__" in allowed or "app" in allowed
    return any(rel == a or rel.startswith(a + ".") for a in allowed if a != "app.__init__")


def test_each_layer_imports_only_what_the_layout_allows() -> None:
    wrong = [f"{m} imports {i} (line {line})" for m in MODULES for i, line in _imports(m) if i in MODULES and not _allowed(m, i)]
    assert not wrong, "\n".join(wrong)


def test_nothing_outside_the_application_layer_reaches_its_dependencies() -> None:
    """Handlers and the CLI use App's methods: none reads `.deps` (the table, the executor, the adapters)."""
    found = []
    for m, path in MODULES.items():
        if _layer(m) in ("app", "adapters", "local"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("deps", "executor", "snapshots", "leases", "table"):
                found.append(f"{m}:{node.lineno} .{node.attr}")
    assert not found, "\n".join(found)


def test_functions_and_classes_are_short_enough_to_read_at_once() -> None:
    long = []
    for m, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                limit = CLASS_LINES if isinstance(node, ast.ClassDef) else FUNCTION_LINES
                if lines > limit:
                    long.append(f"{m}:{node.lineno} {node.name}: {lines} lines (limit {limit})")
    assert not long, "\n".join(long)


def _action_types() -> list[type[actions.Action]]:
    return [t for t in vars(actions).values() if isinstance(t, type) and issubclass(t, actions.Action) and t is not actions.Action]


@pytest.mark.parametrize("action", [t for t in _action_types() if t is not actions.Wait], ids=lambda t: t.__name__)
def test_every_action_type_has_its_step(action: type[actions.Action]) -> None:
    assert action in STEPS, f"no step for {action.__name__} in rds_ha.app.steps.STEPS"
