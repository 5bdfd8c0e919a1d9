"""``tracing_enabled``: follows the globally installed tracer provider, whether
it was set in code (at any time) or named by ``OTEL_PYTHON_TRACER_PROVIDER``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.util._once import Once

from relayna.observability import _tracing, tracing_enabled


def _reset() -> None:  # as tests/conftest.py's span_exporter fixture does
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None


@pytest.fixture
def no_provider() -> Iterator[None]:
    _reset()
    try:
        yield
    finally:
        _reset()


def test_off_until_a_provider_is_set_then_off_again_after_a_reset(no_provider: None) -> None:
    assert not tracing_enabled()
    trace.set_tracer_provider(TracerProvider())
    assert tracing_enabled()
    _reset()
    assert not tracing_enabled()


def test_a_provider_named_in_the_environment_is_loaded(
    no_provider: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_TRACER_PROVIDER", "sdk_tracer_provider")
    monkeypatch.setattr(_tracing, "_PROVIDER_FROM_ENV", True)  # as at a start with it set
    assert tracing_enabled()
    assert isinstance(trace._TRACER_PROVIDER, TracerProvider)
