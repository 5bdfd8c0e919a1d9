"""Renamed and retired public names still work, with a DeprecationWarning that says what to use."""

from __future__ import annotations

import pytest

from relayna.transport import Script


def test_api_json_response_is_the_orjson_response() -> None:
    import relayna.api

    with pytest.warns(DeprecationWarning, match="ORJSONResponse"):
        old = relayna.api.JSONResponse
    assert old is relayna.api.ORJSONResponse


def test_the_conformance_suites_old_status_script_is_still_importable() -> None:
    import relayna.testing

    with pytest.warns(DeprecationWarning, match="WRITE_STATUS_SCRIPT"):
        script = relayna.testing.STATUS_WRITE_SCRIPT
    assert isinstance(script, Script)
    assert "LPUSH" in script.lua


def test_a_python_twin_is_accepted_and_ignored() -> None:
    with pytest.warns(DeprecationWarning, match="ignored"):
        script = Script(name="x", lua="return 1", python=lambda ops, keys, args: 1)
    assert script == Script(name="x", lua="return 1")
