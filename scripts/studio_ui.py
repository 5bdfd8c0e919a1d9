"""Build and check the Studio web UI (``studio/ui``) from Python.

The built bundle is committed inside the ``relayna_studio`` package
(``studio/src/relayna_studio/ui_dist``) so that installing Studio needs no
node. This script is how the test suite, the benchmarks and people rebuild it:

    python scripts/studio_ui.py install   # npm ci, when node_modules is stale
    python scripts/studio_ui.py build     # rebuild the committed bundle
    python scripts/studio_ui.py check     # rebuild elsewhere, compare with the committed one
    python scripts/studio_ui.py test      # the component tests (Vitest)

Needs node >= 20 and npm on PATH (the npm registry is reached by ``npm ci``).
"""

from __future__ import annotations

import argparse
import filecmp
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UI = ROOT / "studio" / "ui"
DIST = ROOT / "studio" / "src" / "relayna_studio" / "ui_dist"
#: Budget for the JavaScript a first page load fetches (gzip bytes).
INITIAL_JS_BUDGET = 250 * 1024


class UIError(RuntimeError):
    pass


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise UIError("npm is not installed (node >= 20 and npm are needed for studio/ui)")
    return npm


def run_npm(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    """Run ``npm ARGS`` in studio/ui; its output, or UIError with the output."""
    proc = subprocess.run(
        [_npm(), *args],
        cwd=UI,
        env={**os.environ, "CI": "true", "NO_COLOR": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise UIError(f"npm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-6000:]}")
    return proc.stdout


def installed_matches_lock(ui: Path = UI) -> bool:
    """Whether ``ui/node_modules`` holds exactly the lockfile's packages."""
    installed = ui / "node_modules" / ".package-lock.json"
    if not installed.exists():
        return False
    lock = json.loads((ui / "package-lock.json").read_text())
    have = json.loads(installed.read_text())
    want = {k: v for k, v in lock.get("packages", {}).items() if k}
    got = {k: v.get("version") for k, v in have.get("packages", {}).items() if k}
    # npm leaves out the optional packages of other platforms (rolldown's
    # bindings for darwin, android...): a missing optional entry is not stale.
    missing = [k for k, v in want.items() if k not in got and not v.get("optional")]
    wrong = [k for k, version in got.items() if want.get(k, {}).get("version") != version]
    return not missing and not wrong


def install() -> None:
    """``npm ci`` unless node_modules already holds exactly the lockfile's packages."""
    if not installed_matches_lock():
        run_npm("ci", "--no-audit", "--no-fund", "--loglevel=error")


def build(out: Path | None = None) -> Path:
    """Type-check and build the bundle into ``out`` (default: the committed place)."""
    install()
    env = {"RELAYNA_UI_OUT": str(out)} if out is not None else None
    run_npm("run", "build", env=env)
    return out or DIST


def tree(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def differences(a: Path, b: Path) -> list[str]:
    """Files that exist in only one tree or differ in content."""
    ta, tb = set(tree(a)), set(tree(b))
    out = [f"only in {a}: {f}" for f in sorted(ta - tb)]
    out += [f"only in {b}: {f}" for f in sorted(tb - ta)]
    out += [
        f"differs: {f}" for f in sorted(ta & tb) if not filecmp.cmp(a / f, b / f, shallow=False)
    ]
    return out


def check() -> list[str]:
    """Rebuild in a scratch directory; the differences from the committed bundle."""
    with tempfile.TemporaryDirectory(prefix="relayna-ui-") as tmp:
        return differences(DIST, build(Path(tmp) / "dist"))


def initial_js(dist: Path = DIST) -> dict[str, int]:
    """gzip size of each script ``index.html`` loads before any lazy page."""
    html = (dist / "index.html").read_text()
    sizes = {}
    for part in html.split('src="')[1:] + html.split('href="')[1:]:
        ref = part.split('"', 1)[0]
        if ref.endswith(".js"):
            sizes[ref] = len(gzip.compress((dist / ref.lstrip("/")).read_bytes(), 9))
    return sizes


def bundle_sizes(dist: Path = DIST) -> list[tuple[str, int, int]]:
    """(file, raw bytes, gzip bytes) for every asset, largest first."""
    rows = []
    for name in tree(dist):
        data = (dist / name).read_bytes()
        rows.append((name, len(data), len(gzip.compress(data, 9))))
    return sorted(rows, key=lambda r: -r[2])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["install", "build", "check", "test"], help="what to do")
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            install()
        elif args.command == "build":
            print(f"built {build()}")
        elif args.command == "check":
            diff = check()
            print("\n".join(diff) or "the committed bundle is up to date")
            return 1 if diff else 0
        else:
            install()
            print(run_npm("run", "test"))
    except UIError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
