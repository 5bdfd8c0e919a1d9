#!/usr/bin/env python3
"""Check the import rules of src/relayna (ARCHITECTURE.md): layers, and no asyncio/trio.

Rules, each reported with file and line:

1. **Backends**: library code imports neither ``asyncio`` nor ``trio`` (rule 7);
   the adapters that are asyncio-only by nature (aiormq, redis-py) are the
   exceptions.
2. **Layers**: a package imports only from packages *below* it in
   :data:`LAYERS` (and from the foundation: ``relayna.errors`` and the
   private root modules ``relayna._x``). Packages on the same row may not
   import each other unless the row says so.
3. **The pipeline stands alone**: ``relayna.pipeline`` imports nothing of
   relayna but ``relayna.errors``.
4. **Topology opens nothing**: ``relayna.topology`` takes from
   ``relayna.transport`` only the declaration vocabulary
   (:data:`TOPOLOGY_MAY_USE`), never an opener or an adapter.
5. **Facades**: a package never imports another package's private modules
   (``relayna.transport._store`` from ``relayna.status``): public names come
   from the package's ``__init__``.
6. **The root stays light**: ``relayna/__init__.py`` imports only
   ``relayna.app`` (:data:`ROOT_MAY_USE`, lazily, for ``relayna.App``), so
   ``import relayna`` loads no runtime.

7. **relayna does not need Studio**: ``relayna_studio`` (a separate
   distribution that depends on relayna) is imported only by
   :data:`STUDIO_BRIDGE`, and only inside a function, after checking that it
   is installed (``relayna dev`` starts Studio when it is there).

Function-level imports count the same as module-level ones (but for rule 7).

relayna-studio (``studio/src/relayna_studio``) follows rule 1 too, and uses
relayna only through its public packages (no ``relayna._x`` or
``relayna.pkg._x`` imports): it is a separate distribution.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "src" / "relayna"
STUDIO = Path(__file__).resolve().parent.parent / "studio" / "src" / "relayna_studio"

BACKEND_ADAPTERS = {
    "transport/_broker_aiormq.py",
    "transport/_store_redispy.py",
    "transport/resp/_io_asyncio.py",  # the native RESP client's byte stream per backend
    "transport/resp/_io_trio.py",
}
FORBIDDEN_BACKENDS = {"asyncio", "trio"}

#: Lowest first. A package may import the packages of earlier rows.
LAYERS: list[tuple[str, ...]] = [
    ("contracts",),
    ("pipeline",),
    ("transport",),
    ("topology",),
    ("observability",),
    ("rabbitmq",),
    ("consumer",),
    ("status",),
    ("dlq",),
    ("workflow",),
    ("api",),
    ("mcp",),
    ("devserver",),
    ("app",),  # relayna.App: topology + consumer + runtime + the dev task page
    ("cli",),
    ("testing",),
]
STUDIO_BRIDGE = "devserver/_studio.py"
FOUNDATION = {"errors"}  # plus every private root module (relayna._groups, ...)
PIPELINE_MAY_USE = {"errors"}
ROOT_MAY_USE = {"app"}  # relayna.App, loaded on first use
TOPOLOGY_MAY_USE = {
    "BindingSpec",
    "Broker",
    "ExchangeSpec",
    "ExchangeType",
    "FieldTable",
    "FieldValue",
    "QueueInfo",
    "QueueSpec",
    "StreamOffset",
}

_RANK = {name: rank for rank, row in enumerate(LAYERS) for name in row}


def _package(path: Path, root: Path) -> str:
    rel = path.relative_to(root).parts
    return rel[0] if len(rel) > 1 else rel[0].removesuffix(".py")


def _imports(tree: ast.AST) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, imported names) for every import in ``tree``."""
    found: list[tuple[int, str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module, [a.name for a in node.names]))
    return found


def _studio_imports(tree: ast.AST) -> list[tuple[int, bool]]:
    """(line, inside a function) of every ``relayna_studio`` import in ``tree``."""
    found: list[tuple[int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0:
                names = [child.module or ""]
            else:
                names = []
            if any(n.split(".")[0] == "relayna_studio" for n in names):
                found.append((child.lineno, in_function))
            nested = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            visit(child, in_function or nested)

    visit(tree, False)
    return found


def _layer_problem(pkg: str, target: str, names: list[str], module: str) -> str | None:
    if target == pkg:
        return None
    if pkg == "__init__":
        return None if target in ROOT_MAY_USE else "the package root imports only relayna.app"
    if pkg == "pipeline":
        return None if target in PIPELINE_MAY_USE else "the pipeline imports only relayna.errors"
    if target in FOUNDATION or target.startswith("_"):
        return None
    if pkg == "topology" and target == "transport":
        extra = sorted(set(names) - TOPOLOGY_MAY_USE) if module == "relayna.transport" else [module]
        if extra:
            return f"topology takes only declaration specs from transport, not {', '.join(extra)}"
        return None
    mine, theirs = _RANK.get(pkg), _RANK.get(target)
    if mine is None:
        return f"package relayna.{pkg} has no layer in scripts/check_imports.py LAYERS"
    if theirs is None:
        return f"relayna.{target} has no layer in scripts/check_imports.py LAYERS"
    if theirs >= mine:
        return f"relayna.{pkg} may not import relayna.{target} (a layer above or beside it)"
    return None


def offenders(root: Path | None = None) -> list[str]:
    """Every violation under ``root`` (default :data:`ROOT`), one line each."""
    root = ROOT if root is None else root
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        pkg = _package(path, root)
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, in_function in _studio_imports(tree):
            if rel != STUDIO_BRIDGE:
                found.append(
                    f"src/relayna/{rel}:{line}: imports relayna_studio: only {STUDIO_BRIDGE} may"
                )
            elif not in_function:
                found.append(
                    f"src/relayna/{rel}:{line}: imports relayna_studio at module level: "
                    "relayna must import without it"
                )
        for line, module, names in _imports(tree):
            where = f"src/relayna/{rel}:{line}"
            top = module.split(".")[0]
            if top in FORBIDDEN_BACKENDS and rel not in BACKEND_ADAPTERS:
                found.append(f"{where}: imports {module}: use anyio (ARCHITECTURE.md rule 7)")
                continue
            parts = module.split(".")
            if top != "relayna" or len(parts) < 2:
                continue
            target = parts[1]
            problem = _layer_problem(pkg, target, names, module)
            if problem:
                found.append(f"{where}: imports {module}: {problem}")
            elif target != pkg and any(p.startswith("_") for p in parts[2:]):
                found.append(
                    f"{where}: imports {module}: another package's private module; "
                    f"import from relayna.{target}"
                )
    return found


def studio_offenders(root: Path | None = None) -> list[str]:
    """Rule 1 and the public-packages rule for relayna-studio."""
    root = STUDIO if root is None else root
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for line, module, _ in _imports(ast.parse(path.read_text(), filename=str(path))):
            parts = module.split(".")
            where = f"studio/src/relayna_studio/{rel}:{line}"
            if parts[0] in FORBIDDEN_BACKENDS:
                found.append(f"{where}: imports {module}")
            elif parts[0] == "relayna" and any(p.startswith("_") for p in parts[1:]):
                found.append(f"{where}: imports relayna's private module {module}")
    return found


def main() -> int:
    bad = offenders() + studio_offenders()
    for line in bad:
        print(line)
    if bad:
        print(f"{len(bad)} import rule violation(s) (see scripts/check_imports.py)")
        return 1
    print("imports ok: layers, standalone pipeline, topology specs only, facades, no asyncio/trio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
