"""A channel the server closes becomes one typed error, the same on both AMQP adapters."""

from __future__ import annotations

import aiormq.exceptions as ae
import pytest

from relayna.errors import (
    AccessRefused,
    ChannelClosed,
    ConsumerTimedOut,
    NotFound,
    PreconditionFailed,
)
from relayna.transport._broker_aiormq import map_error
from relayna.transport.amqp._util import channel_error

# RabbitMQ 3.10's text when a delivery outlives consumer_timeout (seen on the test node)
TIMED_OUT = (
    "PRECONDITION_FAILED - delivery acknowledgement on channel 3 timed out. Timeout value "
    "used: 2000 ms. This timeout value can be configured, see consumers doc guide to learn more"
)
INEQUIVALENT = "PRECONDITION_FAILED - inequivalent arg 'x-max-priority' for queue 'q'"


@pytest.mark.parametrize(
    ("code", "text", "kind"),
    [
        (406, TIMED_OUT, ConsumerTimedOut),
        (406, INEQUIVALENT, PreconditionFailed),
        (404, "NOT_FOUND - no queue 'q'", NotFound),
        (403, "ACCESS_REFUSED - no access", AccessRefused),
        (405, "RESOURCE_LOCKED - exclusive", ChannelClosed),
    ],
)
def test_native_client_maps_channel_close(code: int, text: str, kind: type[Exception]) -> None:
    error = channel_error(code, text, "amqp://u:***@h/")
    assert type(error) is kind
    assert error.reply_code == code
    assert error.reply_text == text


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ae.ChannelPreconditionFailed(TIMED_OUT), ConsumerTimedOut),
        (ae.ChannelPreconditionFailed(INEQUIVALENT), PreconditionFailed),
        (ae.ChannelNotFoundEntity("NOT_FOUND - no queue 'q'"), NotFound),
    ],
)
def test_aiormq_adapter_maps_alike(exc: Exception, kind: type[Exception]) -> None:
    error = map_error(exc, "amqp://u:***@h/")
    assert type(error) is kind
    assert isinstance(error, ChannelClosed)
    assert error.reply_text == exc.args[0]
