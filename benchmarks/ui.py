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

* Live updates: ``tests/e2e/_studio_stack.py`` runs the demo service and a
  Studio serving the UI (asyncio, memory transports); the page follows a
  20-step task. For each status event the page records (Performance API:
  ``performance.timeOrigin + performance.now()``) when its timeline row
  appears; latency = that instant - the event's ``timestamp``, set by the
  worker's ``publish_status`` (same machine, same clock). The path is worker
  -> broker -> status hub -> store -> the service's SSE -> Studio's relay ->
  the browser's fetch stream -> React. (The graph's root node changes colour
  in the same render as the row; the demo service has no graph route yet.)

``python -m benchmarks ui [--reps 3] [--sizes 50,500,2000] [--no-engines] [--live-tasks 3]``
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


_OBSERVE = """() => {
  window.__rows = [];
  const since = Date.now();
  const seen = new Set();
  const record = () => {
    const now = performance.timeOrigin + performance.now();
    for (const li of document.querySelectorAll("[data-testid=timeline] li")) {
      const t = li.querySelector("time");
      const key = li.textContent;
      if (!t || seen.has(key)) continue;
      seen.add(key);
      const at = Date.parse(t.getAttribute("datetime"));
      if (at >= since) window.__rows.push(now - at);
    }
  };
  new MutationObserver(record).observe(document.body, { childList: true, subtree: true });
  record();
}"""


def _live_table(tasks: int) -> int:
    import json
    import signal
    import subprocess
    import urllib.request

    from playwright.sync_api import sync_playwright
    from services import free_port

    service_port, studio_port = free_port(), free_port()
    argv = [sys.executable, str(ROOT / "tests" / "e2e" / "_studio_stack.py"),
            "--service-port", str(service_port), "--studio-port", str(studio_port),
            "--step-seconds", "0.25"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    latencies: list[float] = []
    try:
        assert proc.stdout is not None
        line = ""
        while '"ready": true' not in line:
            line = proc.stdout.readline()
            if not line:
                print("the Studio stack exited before it was ready", file=sys.stderr)
                return 1
        ready = json.loads(line)
        studio, service = ready["studio"], ready["service"]

        def post(url: str, body: dict[str, object]) -> dict[str, object]:
            request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                             headers={"content-type": "application/json"})  # fmt: skip
            with urllib.request.urlopen(request, timeout=10) as answer:
                return dict(json.loads(answer.read()))

        post(f"{studio}/studio/services", {"service_id": "demo", "name": "demo",
             "base_url": service, "environment": "dev", "auth_mode": "internal_network"})  # fmt: skip
        with sync_playwright() as pw:
            chromium = browser.launch(pw)
            try:
                for _ in range(tasks):
                    page = chromium.new_page()
                    task = post(f"{service}/tasks", {"payload": {"mode": "ok", "steps": 20}})
                    page.goto(f"{studio}/tasks/demo/{task['task_id']}")
                    page.wait_for_selector("[data-testid=timeline] li")
                    page.evaluate(_OBSERVE)
                    page.wait_for_selector("[data-testid=timeline] li[data-status=completed]",
                                           timeout=60_000)  # fmt: skip
                    latencies += page.evaluate("window.__rows")
                    page.close()
            finally:
                chromium.close()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    if not latencies:
        print("live updates: no event arrived after the page was open", file=sys.stderr)
        return 1
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    print(
        f"\nlive update latency, publish_status -> timeline row in Chromium ({len(latencies)} events)"
    )
    print(f"{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
    print(f"{pct(0.50):>10.1f}{pct(0.95):>10.1f}{latencies[-1]:>10.1f}")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks ui")
    parser.add_argument("--reps", type=int, default=3, help="runs per graph size")
    parser.add_argument("--sizes", default="50,500,2000", help="graph sizes (nodes)")
    parser.add_argument("--no-engines", action="store_true", help="skip dagre/elkjs")
    parser.add_argument("--live-tasks", type=int, default=3, help="tasks followed live (0: skip)")
    args = parser.parse_args(argv)
    _bundle_table()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rc = _graph_table(sizes, args.reps, not args.no_engines)
    if args.live_tasks:
        rc |= _live_table(args.live_tasks)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
