"""Studio web UI: bundle sizes, execution-graph layout and render time.

* Bundle: every asset of the committed bundle (raw and gzip bytes) and the
  JavaScript a first page load fetches, against the 250 KB gzip budget.
* Graph: a benchmark page (``studio/ui/bench``, built into a scratch
  directory, never shipped) renders synthetic task graphs of 50 / 500 / 2,000
  nodes with the real ``GraphView`` in headless Debian Chromium (Playwright,
  system browser). Times are ``performance.now()`` in the page: layout alone
  for relayna's layered layout and, as the reference measured in the same
  page, dagre and elkjs; then layout + render until the nodes are painted
  (budget: 500 nodes < 1 s). Each size runs ``--reps`` times in a fresh page;
  the table shows the median and the worst.

``python -m benchmarks ui [--reps 3] [--sizes 50,500,2000] [--no-engines]``
"""

from __future__ import annotations

import argparse
import functools
import http.server
import statistics
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import browser  # noqa: E402

import studio_ui  # noqa: E402


def _bundle_table() -> None:
    rows = studio_ui.bundle_sizes()
    initial = studio_ui.initial_js()
    print(f"{'asset':<52}{'bytes':>10}{'gzip':>10}")
    print("-" * 72)
    for name, raw, gz in rows:
        print(f"{name:<52}{raw:>10,}{gz:>10,}")
    total = sum(initial.values())
    print(
        f"\ninitial JS (index.html): {total:,} B gzip "
        f"({total / 1024:.1f} KB; budget {studio_ui.INITIAL_JS_BUDGET // 1024} KB)\n"
    )


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _graph_table(sizes: list[int], reps: int, engines: bool) -> int:
    from playwright.sync_api import sync_playwright

    studio_ui.install()
    with tempfile.TemporaryDirectory(prefix="relayna-ui-bench-") as tmp:
        out = Path(tmp) / "bench"
        studio_ui.run_npm("exec", "--", "vite", "build", "--config", "vite.bench.config.ts",
                          env={"RELAYNA_UI_OUT": str(out)})  # fmt: skip
        server, base = _serve(out)
        results: dict[int, list[dict[str, float]]] = {n: [] for n in sizes}
        try:
            with sync_playwright() as pw:
                chromium = browser.launch(pw)
                try:
                    for _ in range(reps):
                        for n in sizes:  # interleaved: each rep visits every size
                            page = chromium.new_page(viewport={"width": 1400, "height": 1000})
                            query = f"n={n}" + (
                                "&engines=dagre,elk" if engines and n <= 500 else ""
                            )
                            page.goto(f"{base}/graph.html?{query}")
                            page.wait_for_function("window.__bench !== undefined", timeout=120_000)
                            value = page.evaluate("window.__bench")
                            page.close()
                            if "error" in value:
                                print(f"n={n}: {value['error']}", file=sys.stderr)
                                return 1
                            results[n].append(value)
                finally:
                    chromium.close()
        finally:
            server.shutdown()

    def cell(runs: list[dict[str, float]], key: str) -> str:
        vals = [r[key] for r in runs if key in r]
        return f"{statistics.median(vals):>8.1f} /{max(vals):>7.1f}" if vals else f"{'—':>17}"

    print(f"graph layout and render in headless Chromium, ms (median / worst of {reps})")
    head = f"{'nodes':>6}{'relayna layout':>18}{'dagre layout':>18}{'elkjs layout':>18}{'layout+render':>18}"
    print(head)
    print("-" * len(head))
    for n in sizes:
        runs = results[n]
        print(
            f"{n:>6}{cell(runs, 'layout_relayna_ms'):>18}{cell(runs, 'layout_dagre_ms'):>18}"
            f"{cell(runs, 'layout_elk_ms'):>18}{cell(runs, 'render_ms'):>18}"
        )
    print("(dagre and elkjs are timed up to 500 nodes: beyond that they take seconds)")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks ui")
    parser.add_argument("--reps", type=int, default=3, help="runs per graph size")
    parser.add_argument("--sizes", default="50,500,2000", help="graph sizes (nodes)")
    parser.add_argument("--no-engines", action="store_true", help="skip dagre/elkjs")
    args = parser.parse_args(argv)
    _bundle_table()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    return _graph_table(sizes, args.reps, not args.no_engines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
