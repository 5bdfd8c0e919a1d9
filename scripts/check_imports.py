#!/usr/bin/env python3
"""Fail when src/relayna imports asyncio or trio outside backend-specific adapters.

Library code uses anyio only (ARCHITECTURE.md, rule 7). The adapters that are
asyncio-only by nature (aiormq, redis-py) are the exceptions.

relayna-studio (studio/src/relayna_studio) follows the same rule, and uses
relayna only through its public packages (no ``relayna._x`` or
``relayna.pkg._x`` imports): it is a separate distribution.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "src" / "relayna"
STUDIO = Path(__file__).resolve().parent.parent / "studio" / "src" / "relayna_studio"
ALLOWED = {
    "transport/aiormq_broker.py",
    "transport/redispy_store.py",
}
FORBIDDEN = {"asyncio", "trio"}


def offenders() -> list[str]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in ALLOWED:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in FORBIDDEN:
                    found.append(f"src/relayna/{rel}:{node.lineno}: imports {name}")
    for path in sorted(STUDIO.rglob("*.py")):
        rel = path.relative_to(STUDIO).as_posix()
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                parts = name.split(".")
                where = f"studio/src/relayna_studio/{rel}:{node.lineno}"
                if parts[0] in FORBIDDEN:
                    found.append(f"{where}: imports {name}")
                elif parts[0] == "relayna" and any(p.startswith("_") for p in parts[1:]):
                    found.append(f"{where}: imports relayna's private module {name}")
    return found


def main() -> int:
    bad = offenders()
    for line in bad:
        print(line)
    if bad:
        print(f"{len(bad)} forbidden import(s): use anyio (see ARCHITECTURE.md rule 7)")
        return 1
    print("imports ok: no asyncio/trio outside backend-specific adapters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
