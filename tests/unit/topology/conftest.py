"""Fixtures for topology tests."""

from __future__ import annotations

import pytest

from ._support import RecordingBroker


@pytest.fixture
def recording_broker() -> RecordingBroker:
    return RecordingBroker()
