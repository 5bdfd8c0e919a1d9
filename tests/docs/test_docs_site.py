"""The documentation site builds with ``mkdocs build --strict`` and its API reference
pages render real content (one documented heading per public name)."""

from __future__ import annotations

import importlib
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The first test pays for the module's site build (mkdocs + mkdocstrings over every
# reference page: about a minute on a quiet 2-core box, over two under load); the
# build has its own 300 s limit, so the test ceiling must sit above it, not at the
# suite's default of 120 s.
pytestmark = pytest.mark.timeout(330)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=dict(os.environ, NO_MKDOCS_2_WARNING="1"),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return out


def _reference_pages() -> list[tuple[str, str]]:
    pages = []
    for page in sorted((ROOT / "docs" / "reference").glob("*.md")):
        match = re.search(r"^::: (relayna[\w.]*)$", page.read_text(), flags=re.M)
        assert match is not None, f"{page.name} renders no module"
        pages.append((page.stem, match.group(1)))
    return pages


@pytest.mark.parametrize(("page", "module"), _reference_pages())
def test_reference_page_documents_every_public_name(site: Path, page: str, module: str) -> None:
    html = (site / "reference" / page / "index.html").read_text()
    imported = importlib.import_module(module)
    names = [
        n for n in getattr(imported, "__all__", []) if not inspect.ismodule(getattr(imported, n))
    ]
    assert names, module
    missing = [name for name in names if f'id="{module}.{name}"' not in html]
    assert missing == [], f"{module}: no rendered entry for {missing}"


def test_every_page_is_in_the_navigation(site: Path) -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = [p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")]
    assert [p for p in pages if p not in nav] == []
