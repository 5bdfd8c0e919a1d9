"""Errors raised inside relayna's context managers come out unwrapped."""

from __future__ import annotations

import anyio
import pytest

from relayna.errors import ConnectionLost, sole_exception, unwrap_groups
from relayna.transport import open_broker, open_store

pytestmark = pytest.mark.anyio


class Boom(Exception):
    pass


@pytest.mark.parametrize("opener", [open_broker, open_store])
async def test_user_error_in_body_is_not_wrapped(opener: object) -> None:
    with anyio.fail_after(10), pytest.raises(Boom):
        async with opener("memory://"):  # type: ignore[operator]
            raise Boom


async def test_sole_exception_ignores_cancellation_leaves() -> None:
    err = ValueError("x")
    group = BaseExceptionGroup("g", [err, ExceptionGroup("inner", [KeyError("k")])])
    assert sole_exception(group) is None
    assert sole_exception(ExceptionGroup("g", [ExceptionGroup("h", [err])])) is err


async def test_one_error_raised_by_two_tasks_is_one_error() -> None:
    lost = ConnectionLost("connection lost")  # every channel of a connection gets this one
    group = ExceptionGroup("g", [lost, ExceptionGroup("h", [lost])])
    assert sole_exception(group) is lost
    assert sole_exception(ExceptionGroup("g", [lost, ConnectionLost("another")])) is None


async def test_unwrap_groups_reraises_the_one_error() -> None:
    with pytest.raises(ValueError, match="only"), unwrap_groups():
        raise ExceptionGroup("g", [ValueError("only")])
    with pytest.raises(ExceptionGroup), unwrap_groups():
        raise ExceptionGroup("g", [ValueError("a"), KeyError("b")])
