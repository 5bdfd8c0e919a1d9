#!/usr/bin/env python3
"""Render Mermaid text to SVG with the real Mermaid (pinned under tests/e2e/mermaid)
in headless Chromium, for the docs' rendered examples.

Usage: python scripts/render_mermaid.py INPUT.mmd OUTPUT.svg
(run ``npm ci`` in tests/e2e/mermaid first; the Mermaid test does it itself).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
MERMAID_JS = (
    ROOT / "tests" / "e2e" / "mermaid" / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
)


def render(text: str) -> str:
    """The SVG Mermaid draws for ``text`` (raises when Mermaid rejects it)."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu"], headless=True
        )
        try:
            page = browser.new_page()
            page.set_content("<html><body></body></html>")
            page.add_script_tag(path=str(MERMAID_JS))
            svg: str = page.evaluate(
                """async (text) => {
                    mermaid.initialize({startOnLoad: false, htmlLabels: false,
                                        flowchart: {htmlLabels: false}});
                    const {svg} = await mermaid.render('graph', text);
                    return svg;
                }""",
                text,
            )
        finally:
            browser.close()
    return svg


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    source, target = map(Path, argv)
    target.write_text(render(source.read_text()))
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
