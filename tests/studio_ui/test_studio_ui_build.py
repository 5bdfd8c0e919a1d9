"""The Studio web UI from the Python suite: its component tests, its type
check, and the committed bundle (rebuilt with ``npm ci`` + Vite, compared
byte for byte, so ``pip install relayna-studio`` ships what the sources say).
"""

from __future__ import annotations

import re

import pytest

import studio_ui  # scripts/ is on sys.path (tests/conftest.py)

# npm ci, Vitest and a Vite build take minutes on a busy 2-core machine.
pytestmark = pytest.mark.timeout(900)


def test_component_tests_pass() -> None:
    studio_ui.install()
    # run_npm raises with the output when Vitest fails; this checks tests ran at all.
    out = studio_ui.run_npm("run", "test", timeout=900)
    assert re.search(r"Tests\s+\d+ passed", out), out[-3000:]


def test_committed_bundle_matches_the_sources() -> None:
    diff = studio_ui.check()
    assert not diff, (
        "the committed UI bundle is stale; run `python scripts/studio_ui.py build` and commit:\n"
        + "\n".join(diff)
    )


def test_initial_javascript_fits_the_budget() -> None:
    sizes = studio_ui.initial_js()
    assert sizes, "index.html loads no script"
    assert sum(sizes.values()) <= studio_ui.INITIAL_JS_BUDGET, sizes
    # Pages are lazy: the graph library is not in the first load.
    names = " ".join(sizes)
    assert "GraphView" not in names, names
