"""``scripts/studio_ui.py install`` skips ``npm ci`` only when node_modules
holds exactly the lockfile's packages — and must recognise that state, or
every build reinstalls (npm never installs other platforms' optional
bindings, so comparing the two lists as they are is always "stale")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import studio_ui  # scripts/ is on sys.path (tests/conftest.py)

LOCK: dict[str, Any] = {
    "packages": {
        "": {"name": "ui"},
        "node_modules/react": {"version": "19.0.0"},
        "node_modules/@rolldown/binding-linux-x64-gnu": {"version": "1.0.0", "optional": True},
        "node_modules/@rolldown/binding-darwin-arm64": {"version": "1.0.0", "optional": True},
    }
}


def _ui(tmp_path: Path, installed: dict[str, Any] | None) -> Path:
    (tmp_path / "package-lock.json").write_text(json.dumps(LOCK))
    if installed is not None:
        (tmp_path / "node_modules").mkdir()
        (tmp_path / "node_modules" / ".package-lock.json").write_text(
            json.dumps({"packages": installed})
        )
    return tmp_path


def test_an_install_without_other_platforms_optional_bindings_is_current(tmp_path: Path) -> None:
    installed = {
        "node_modules/react": {"version": "19.0.0"},
        "node_modules/@rolldown/binding-linux-x64-gnu": {"version": "1.0.0"},
    }
    assert studio_ui.installed_matches_lock(_ui(tmp_path, installed))


def test_no_node_modules_is_stale(tmp_path: Path) -> None:
    assert not studio_ui.installed_matches_lock(_ui(tmp_path, None))


def test_a_missing_required_package_is_stale(tmp_path: Path) -> None:
    installed = {"node_modules/@rolldown/binding-linux-x64-gnu": {"version": "1.0.0"}}
    assert not studio_ui.installed_matches_lock(_ui(tmp_path, installed))


def test_another_version_is_stale(tmp_path: Path) -> None:
    installed = {"node_modules/react": {"version": "18.3.1"}}
    assert not studio_ui.installed_matches_lock(_ui(tmp_path, installed))


def test_a_package_the_lock_does_not_name_is_stale(tmp_path: Path) -> None:
    installed = {
        "node_modules/react": {"version": "19.0.0"},
        "node_modules/left-pad": {"version": "1.3.0"},
    }
    assert not studio_ui.installed_matches_lock(_ui(tmp_path, installed))
