"""Run one benchmark: ``python -m benchmarks NAME [args]``; ``python -m benchmarks list``."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def available() -> list[str]:
    here = Path(__file__).resolve().parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def main(argv: list[str]) -> int:
    names = available()
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        print("benchmarks:", ", ".join(names))
        return 0 if argv else 2
    if argv[0] == "list":
        print("\n".join(names))
        return 0
    if argv[0] == "all":
        rc = 0
        for name in names:
            print(f"\n=== {name} ===", flush=True)
            rc |= int(importlib.import_module(f"benchmarks.{name}").main([]) or 0)
        return rc
    name = argv[0]
    if name not in names:
        print(f"unknown benchmark {name!r}; available: {', '.join(names)}", file=sys.stderr)
        return 2
    return int(importlib.import_module(f"benchmarks.{name}").main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
