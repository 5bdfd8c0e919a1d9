"""The three Redis adapters turn a server's error reply into the same relayna error.

Each client library parses an error reply its own way (coredis and redis-py
strip the code and pick an exception class; the native client keeps the
text); the adapters then share one decision (``reply_error``). The replies
here go through each library's own parser, so a library that classifies a
reply differently (redis-py's NOPERM is a plain ResponseError, coredis'
"max number of clients" a ConnectionError) is caught.
"""

from __future__ import annotations

import pytest
from coredis.parser import Parser as CoredisParser
from hypothesis import given, settings
from hypothesis import strategies as st
from redis._parsers.base import BaseParser as RedisPyParser

from relayna.errors import (
    ScriptError,
    StoreAuthenticationError,
    StoreConnectionError,
    StoreError,
)
from relayna.transport._pubsub import RawMessage, RawSubscribed, push_event
from relayna.transport._store_coredis import map_coredis_error
from relayna.transport._store_redispy import map_redispy_error
from relayna.transport._store_resp import CallKind, NoScript, reply_error

URL = "redis://h:6379/0"
KINDS: tuple[CallKind, ...] = ("read", "write", "script")


def _mapped(reply: str, kind: CallKind) -> dict[str, StoreError]:
    return {
        "native": reply_error(reply, URL, kind),
        "coredis": map_coredis_error(CoredisParser().parse_error(reply), URL, kind),
        "redis-py": map_redispy_error(RedisPyParser.parse_error(reply), URL, kind),
    }


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("NOSCRIPT No matching script. Please use EVAL.", NoScript),
        ("WRONGPASS invalid username-password pair or user is disabled.", StoreAuthenticationError),
        ("NOAUTH Authentication required.", StoreAuthenticationError),
        ("NOPERM User u has no permissions to run the 'get' command", StoreAuthenticationError),
        ("ERR invalid password", StoreAuthenticationError),
        ("ERR Client sent AUTH, but no password is set", StoreAuthenticationError),
        (
            "ERR AUTH <password> called without any password configured for the default user. "
            "Are you sure your configuration is correct?",
            StoreAuthenticationError,
        ),
        ("ERR max number of clients reached", StoreConnectionError),
    ],
)
def test_refusals_map_alike_whatever_the_call(
    reply: str, expected: type[StoreError], kind: CallKind
) -> None:
    for adapter, error in _mapped(reply, kind).items():
        assert type(error) is expected, (adapter, error)
        assert error.url == URL


@pytest.mark.parametrize(
    "reply",
    [
        "WRONGTYPE Operation against a key holding the wrong kind of value",
        "ERR user_script:1: Script attempted to access nonexistent global variable 'x'",
        "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSCRIPT.",
        "LOADING Redis is loading the dataset in memory",
        "READONLY You can't write against a read only replica.",
        "OOM command not allowed when used memory > 'maxmemory'.",
        "ERR unknown command 'FOO', with args beginning with: ",
    ],
)
def test_other_replies_are_script_errors_of_a_script_and_store_errors_otherwise(
    reply: str,
) -> None:
    for kind in KINDS:
        expected = ScriptError if kind == "script" else StoreError
        for adapter, error in _mapped(reply, kind).items():
            assert type(error) is expected, (adapter, kind, error)
            assert reply.split(" ", 1)[1] in str(error), (adapter, error)


# No MOVED/ASK: their text is a slot and an address (cluster replies, unsupported).
_CODES = st.sampled_from(
    ["ERR", "WRONGTYPE", "NOSCRIPT", "NOAUTH", "WRONGPASS", "NOPERM", "BUSY", "LOADING",
     "READONLY", "OOM", "EXECABORT", "NOGROUP", "CROSSSLOT", "TRYAGAIN", "MISCONF", "XYZZY"]
)  # fmt: skip
# The first word of an ERR text starts lower case, as Redis writes them:
# coredis strips the ERR and cannot tell "ERR FOO x" from a reply coded FOO.
_TEXT = st.from_regex(r"[a-z][ -~]{0,40}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(code=_CODES, text=_TEXT, kind=st.sampled_from(KINDS))
def test_any_reply_maps_to_the_same_error_class_on_every_adapter(
    code: str, text: str, kind: CallKind
) -> None:
    mapped = _mapped(f"{code} {text}", kind)
    assert len({type(error) for error in mapped.values()}) == 1, mapped


@pytest.mark.parametrize("wrap", [bytes, bytearray])
def test_every_adapter_reads_pubsub_pushes_with_one_parser(wrap: type[bytes]) -> None:
    assert push_event([wrap(b"message"), wrap(b"ch"), wrap(b"\x00data")]) == RawMessage(
        channel="ch", data=b"\x00data"
    )
    assert push_event([wrap(b"MESSAGE"), wrap(b"ch"), wrap(b"")]) == RawMessage("ch", b"")
    assert push_event([wrap(b"subscribe"), wrap(b"ch"), 1]) == RawSubscribed(channel="ch")
    for other in (
        [wrap(b"pong"), wrap(b"")],
        [wrap(b"unsubscribe"), wrap(b"ch"), 0],
        [wrap(b"message"), wrap(b"ch")],
        [wrap(b"message"), 1, wrap(b"x")],
        b"PONG",
        None,
    ):
        assert push_event(other) is None, other
