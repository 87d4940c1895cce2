"""The layers of docs/architecture.md, checked on the source: arrows point down, no circles.

Every import counts, including those under `TYPE_CHECKING` and those deferred into a function
body: a circle a type checker or a lazy import hides is still a circle a reader has to untie.
The layer table below is the one the architecture page draws; moving a module between layers
means changing both.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

# Lowest first. A module belongs to the layer of its longest matching prefix. A module may
# import from its own layer or any lower one.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("gatewise.errors", "gatewise.types", "gatewise.config.schema",
              "gatewise.config.secrets", "gatewise.config.litellm_env",
              "gatewise.config.schema_ops")),
    ("transport", ("gatewise.transport",)),
    ("providers", ("gatewise.providers", "gatewise.testing")),
    ("config", ("gatewise.config",)),
    ("storage", ("gatewise.storage",)),
    ("observability", ("gatewise.observability",)),
    ("pipeline", ("gatewise.pipeline",)),
    # Metrics sit below the pipeline; what watches calls (telemetry, incidents) sits above it.
    ("features", ("gatewise.resilience", "gatewise.routing", "gatewise.accounting",
                  "gatewise.security", "gatewise.cache", "gatewise.embedding",
                  "gatewise.observability.telemetry",
                  "gatewise.observability.incidents", "gatewise.observability.tracing",
                  "gatewise.observability.health", "gatewise.maintenance")),
    ("compound features", ("gatewise.orchestration", "gatewise.guardrails", "gatewise.tools",
                           "gatewise.prompts", "gatewise.memory", "gatewise.rag",
                           "gatewise.quality", "gatewise.titles")),
    ("composition", ("gatewise.gateway",)),
    ("surfaces", ("gatewise.server", "gatewise.cli", "gatewise")),
]


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in (SRC / "gatewise").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imported(module: str, path: Path) -> Iterator[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != module:
                yield name


EDGES = {module: set(_imported(module, path)) for module, path in MODULES.items()}


def _layer(module: str) -> int:
    best, rank = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    assert rank >= 0, f"{module} is in no layer: add it to LAYERS and docs/architecture.md"
    return rank


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        _layer(module)


def test_imports_point_down_the_layers() -> None:
    upward = [
        f"{module} ({LAYERS[_layer(module)][0]}) imports {target} ({LAYERS[_layer(target)][0]})"
        for module, targets in sorted(EDGES.items())
        for target in sorted(targets)
        if _layer(target) > _layer(module) and not module.startswith(target + ".")
    ]
    assert upward == []


def test_no_import_circle_between_files() -> None:
    # A package's __init__ importing its own submodules (re-exports) is not a circle of ideas;
    # a submodule importing its package's __init__ back would be.
    edges = {m: {t for t in ts if not (t.startswith(m + ".") and MODULES[m].name == "__init__.py")}
             for m, ts in EDGES.items()}
    assert _cycles(edges) == []


def _unit(module: str) -> str:
    """The LAYERS entry a module belongs to: a package, or a module placed on its own."""
    return max((prefix for _, prefixes in LAYERS for prefix in prefixes
                if module == prefix or module.startswith(prefix + ".")), key=len)


def test_no_circle_between_packages() -> None:
    package = _unit

    edges: dict[str, set[str]] = {}
    for module, targets in EDGES.items():
        for target in targets:
            if package(module) != package(target):
                edges.setdefault(package(module), set()).add(package(target))
    assert _cycles(edges) == []


def test_the_checker_sees_circles_and_upward_arrows() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    assert _layer("gatewise.gateway") > _layer("gatewise.pipeline.core") > _layer("gatewise.errors")
    assert _layer("gatewise.config.loader") > _layer("gatewise.providers.base") \
        > _layer("gatewise.config.schema")
