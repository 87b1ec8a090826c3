"""The layering of DESIGN.md §3, read from the imports of every module (no exception list).

    protocol ← domain ← station ← adapters (api, web, cli) ← app (the composition root)
    store sits below station; adapters never import it, nor build what a service builds.

Within one package, modules may not import each other in a circle (the console and its pages,
the CLI and its subcommands once did).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "parley"

# What each layer may import from Parley (besides itself, errors and the package root).
MAY = {
    "protocol": set(),
    "domain": {"protocol"},
    "store": {"protocol", "domain"},
    "transport": {"protocol"},
    "station": {"protocol", "domain", "store", "transport"},
    "api": {"protocol", "domain", "station", "transport"},  # the peer API serves transport
    "web": {"protocol", "domain", "station", "api"},
    "cli": {"protocol", "domain", "station", "app", "transport"},  # its httpx client: clients.py
    "app": {"protocol", "domain", "station", "store", "transport", "api", "web"},
}
COMMON = {"errors", "__init__", "__main__"}


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    return (SRC / rel).with_suffix(".py").exists() or (SRC / rel / "__init__.py").exists()


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:  # `from pkg import mod` imports mod, not (only) pkg
                sub = f"{node.module}.{a.name}"
                out.append(sub if _is_module(sub) else node.module)
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names]
    return [m for m in out if m.startswith("parley.")]


def modules() -> list[tuple[str, Path]]:
    return [
        (p.relative_to(SRC).parts[0].removesuffix(".py"), p)
        for p in sorted(SRC.rglob("*.py"))
        if len(p.relative_to(SRC).parts) > 1
    ]


def test_every_layer_imports_only_the_layers_below_it() -> None:
    bad, checked = [], 0
    for layer, path in modules():
        for mod in imports(path):
            target = mod.split(".")[1]
            checked += 1
            if target not in {layer, *MAY[layer], *COMMON} and (SRC / f"{target}").exists():
                bad.append(f"{path.relative_to(SRC)} imports {mod}")
    print(f"{checked} imports checked")
    assert not bad, "\n".join(bad)
    assert checked > 500


def test_adapters_do_not_build_domain_bodies() -> None:
    """Bodies are built by the station's services; an adapter calling a *_body builder is
    deciding what goes on the wire itself."""
    bad = []
    for layer, path in modules():
        if layer not in ("api", "web", "cli") or path.name == "demo.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr.endswith("_body")
            ):
                bad.append(f"{path.relative_to(SRC)}:{node.lineno} {node.func.attr}()")
    assert not bad, "\n".join(bad)


def test_no_import_circles_inside_a_package() -> None:
    graph: dict[str, set[str]] = {}
    for _, path in modules():
        name = "parley." + ".".join(path.relative_to(SRC).with_suffix("").parts)
        name = name.removesuffix(".__init__")
        graph[name] = {m for m in imports(path)}
    known = set(graph)
    edges = {a: {b for b in bs if b in known and b != a} for a, bs in graph.items()}

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in edges.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    circles = sorted(
        f"{a} ↔ {b}"
        for a in known
        for b in edges[a]
        if a < b and a in reach(b) and not b.endswith(a.rsplit(".", 1)[-1] + ".__init__")
        and not (b.startswith(a + ".") or a.startswith(b + "."))
    )  # fmt: skip
    print(f"{len(known)} modules, {sum(len(e) for e in edges.values())} edges")
    assert not circles, "\n".join(circles)
