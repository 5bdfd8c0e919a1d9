"""scripts/check_imports.py finds each kind of layer violation (the real tree: test_foundation)."""

from __future__ import annotations

from pathlib import Path

import check_imports  # scripts/ is on sys.path (tests/conftest.py)


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "relayna" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "relayna"


def test_each_rule_is_reported(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "errors.py": "",
            "transport/__init__.py": "",
            "transport/_store.py": "",
            "transport/_store_redispy.py": "import asyncio\n",  # an allowed adapter
            "contracts/_x.py": "from relayna.status import StatusStore\n",  # upward
            "pipeline/_y.py": "from relayna.contracts import dumps\nfrom relayna.errors import E\n",
            "topology/_z.py": "from relayna.transport import QueueSpec, open_broker\n",
            "status/_s.py": (
                "import trio\n"
                "def f():\n    from relayna.transport._store import Value\n"  # private, lazy
            ),
            "newpkg/_n.py": "from relayna.errors import E\nfrom relayna.transport import Store\n",
            "__init__.py": "def __getattr__(n):\n    from relayna.app import App\n"
            "    from relayna.consumer import RetryPolicy\n",  # root: only relayna.app
        },
    )
    found = "\n".join(check_imports.offenders(root))
    assert "contracts/_x.py:1: imports relayna.status: relayna.contracts may not import" in found
    assert (
        "pipeline/_y.py:1: imports relayna.contracts: the pipeline imports only relayna.errors"
        in found
    )
    assert "pipeline/_y.py:2" not in found
    assert "topology/_z.py:1" in found
    assert "not open_broker" in found
    assert "status/_s.py:1: imports trio" in found
    assert "status/_s.py:3: imports relayna.transport._store: another package's private" in found
    assert "newpkg/_n.py:2: imports relayna.transport: package relayna.newpkg has no layer" in found
    assert "__init__.py:2" not in found
    assert "__init__.py:3: imports relayna.consumer: the package root imports only" in found
    assert "_store_redispy" not in found
    assert len(check_imports.offenders(root)) == 7


def test_only_the_studio_bridge_imports_relayna_studio_and_only_lazily(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "devserver/__init__.py": "",
            "devserver/_studio.py": (
                "import relayna_studio\n"  # module level: refused even here
                "async def run():\n    from relayna_studio import open_studio\n"
            ),
            "cli/_cmd.py": "def f():\n    import relayna_studio._app\n",  # not the bridge
        },
    )
    found = check_imports.offenders(root)
    assert found == [
        "src/relayna/cli/_cmd.py:2: imports relayna_studio: only devserver/_studio.py may",
        "src/relayna/devserver/_studio.py:1: imports relayna_studio at module level: "
        "relayna must import without it",
    ]
