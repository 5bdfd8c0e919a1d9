"""The sans-IO RESP2 codec and the Redis URL parser of the native Redis client.

Pure tests: no sockets, no event loop. The parser is fed bytes the way a
socket would deliver them (whole, or cut anywhere) and must hand out the same
replies either way; garbage and over-limit input must end the connection with
a :class:`RespProtocolError`.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relayna.errors import ConfigurationError, StoreConnectionLost, StoreError
from relayna.transport._store_options import StoreOptions, take_store_options
from relayna.transport.resp._protocol import (
    NEED_DATA,
    ErrorReply,
    ReplyParser,
    RespProtocolError,
    encode_command,
)
from relayna.transport.resp._url import parse_resp_url

# --------------------------------------------------------------------------- helpers


def _drain(parser: ReplyParser) -> list[Any]:
    out: list[Any] = []
    while (reply := parser.next_reply()) is not NEED_DATA:
        out.append(reply)
    return out


def _parse_chunks(chunks: list[bytes]) -> list[Any]:
    parser = ReplyParser()
    out: list[Any] = []
    for chunk in chunks:
        parser.feed(chunk)
        out.extend(_drain(parser))
    assert parser.buffered == 0
    return out


def _parse_one(data: bytes) -> Any:
    replies = _parse_chunks([data])
    assert len(replies) == 1
    return replies[0]


def _parse_error(*chunks: bytes) -> RespProtocolError:
    """Feed ``chunks``; the bytes before the last chunk are fine, the last one is not."""
    parser = ReplyParser()
    for chunk in chunks[:-1]:
        parser.feed(chunk)
        _drain(parser)
    parser.feed(chunks[-1])
    with pytest.raises(RespProtocolError) as info:
        _drain(parser)
    return info.value


# --------------------------------------------------------------------------- encode_command


def test_encode_bytes_and_ascii_str() -> None:
    assert encode_command([b"SET", "key", b"value"]) == (
        b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n"
    )


def test_encode_accepts_a_tuple() -> None:
    assert encode_command((b"PING",)) == b"*1\r\n$4\r\nPING\r\n"


def test_encode_non_ascii_str_as_utf8_with_byte_length() -> None:
    # "é" is 2 bytes and "€" is 3 bytes in UTF-8: the length is in bytes, not characters.
    assert encode_command(["GET", "clé€"]) == (
        b"*2\r\n$3\r\nGET\r\n$7\r\ncl\xc3\xa9\xe2\x82\xac\r\n"
    )


def test_encode_ints_including_negative_and_zero() -> None:
    assert encode_command(["INCRBY", "k", 42]) == (b"*3\r\n$6\r\nINCRBY\r\n$1\r\nk\r\n$2\r\n42\r\n")
    assert encode_command([-17, 0]) == b"*2\r\n$3\r\n-17\r\n$1\r\n0\r\n"


def test_encode_floats_round_trip_exactly() -> None:
    assert encode_command([1.5]) == b"*1\r\n$3\r\n1.5\r\n"
    assert encode_command([-0.25]) == b"*1\r\n$5\r\n-0.25\r\n"
    # repr() keeps every digit: the server sees exactly the float that was passed.
    assert encode_command([0.1]) == b"*1\r\n$3\r\n0.1\r\n"
    assert float(encode_command([1e20]).split(b"\r\n")[2]) == 1e20


def test_encode_empty_bytes_argument() -> None:
    assert encode_command([b"SET", b"k", b""]) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"


def test_encode_binary_argument_with_crlf_inside() -> None:
    assert encode_command([b"a\r\nb"]) == b"*1\r\n$4\r\na\r\nb\r\n"


def test_encode_no_arguments() -> None:
    assert encode_command([]) == b"*0\r\n"


@pytest.mark.parametrize("value", [True, False, None, {"a": 1}, [b"x"], object()])
def test_encode_rejects_unsupported_types(value: object) -> None:
    # bool is an int subclass, but b"1"/b"0" for True/False is almost never what was meant.
    with pytest.raises(TypeError, match="unsupported Redis command argument type"):
        encode_command([b"SET", b"k", value])


# --------------------------------------------------------------------------- reply types


def test_simple_string() -> None:
    assert _parse_one(b"+OK\r\n") == b"OK"


def test_empty_simple_string() -> None:
    assert _parse_one(b"+\r\n") == b""


def test_error_reply_is_a_value_with_code() -> None:
    reply = _parse_one(b"-ERR unknown command 'FOO'\r\n")
    assert isinstance(reply, ErrorReply)
    assert reply.code == "ERR"
    assert reply.message == "ERR unknown command 'FOO'"
    assert reply == ErrorReply("ERR unknown command 'FOO'")


def test_error_reply_code_is_the_first_word() -> None:
    assert _parse_one(b"-NOSCRIPT No matching script.\r\n").code == "NOSCRIPT"
    assert _parse_one(b"-WRONGTYPE Operation against a key\r\n").code == "WRONGTYPE"
    assert _parse_one(b"-BUSYGROUP\r\n").code == "BUSYGROUP"


def test_error_reply_does_not_hide_the_replies_after_it() -> None:
    assert _parse_chunks([b"+OK\r\n-ERR boom\r\n:1\r\n"]) == [b"OK", ErrorReply("ERR boom"), 1]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b":0\r\n", 0),
        (b":1000\r\n", 1000),
        (b":-1\r\n", -1),
        (b":-9223372036854775808\r\n", -(2**63)),
        (b":9223372036854775807\r\n", 2**63 - 1),
    ],
)
def test_integer(data: bytes, expected: int) -> None:
    reply = _parse_one(data)
    assert reply == expected
    assert type(reply) is int


def test_bulk_string() -> None:
    assert _parse_one(b"$5\r\nhello\r\n") == b"hello"


def test_bulk_string_is_bytes() -> None:
    assert type(_parse_one(b"$2\r\nhi\r\n")) is bytes


def test_nil_bulk_is_none() -> None:
    assert _parse_one(b"$-1\r\n") is None


def test_empty_bulk() -> None:
    assert _parse_one(b"$0\r\n\r\n") == b""


def test_bulk_containing_crlf_is_read_by_length() -> None:
    assert _parse_one(b"$8\r\nab\r\ncd\r\n\r\n") == b"ab\r\ncd\r\n"


def test_bulk_with_binary_bytes() -> None:
    payload = bytes(range(256))
    assert _parse_one(b"$256\r\n" + payload + b"\r\n") == payload


def test_array() -> None:
    assert _parse_one(b"*3\r\n$3\r\nfoo\r\n:7\r\n+bar\r\n") == [b"foo", 7, b"bar"]


def test_nil_array_is_none() -> None:
    assert _parse_one(b"*-1\r\n") is None


def test_empty_array() -> None:
    assert _parse_one(b"*0\r\n") == []


def test_nested_arrays_with_nils_and_errors() -> None:
    data = b"*4\r\n*2\r\n$1\r\na\r\n*0\r\n$-1\r\n*1\r\n*1\r\n:-5\r\n-ERR inner\r\n"
    assert _parse_one(data) == [[b"a", []], None, [[-5]], ErrorReply("ERR inner")]


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        # bulk strings, then something else in the same array: both paths agree
        (b"*4\r\n$1\r\na\r\n$-1\r\n$0\r\n\r\n$1\r\nb\r\n", [b"a", None, b"", b"b"]),
        (b"*3\r\n$1\r\na\r\n:7\r\n$1\r\nb\r\n", [b"a", 7, b"b"]),
        (b"*3\r\n$1\r\na\r\n*1\r\n$1\r\nc\r\n$1\r\nb\r\n", [b"a", [b"c"], b"b"]),
        (b"*2\r\n$2\r\n\r\n\r\n-ERR x\r\n", [b"\r\n", ErrorReply("ERR x")]),
        # a header too long for the fast path (leading zeros) is still read
        (b"*1\r\n$00000000000001\r\nz\r\n", [b"z"]),
        # HMGET of missing fields: nils between bulk strings, and nils only
        (b"*5\r\n$-1\r\n$1\r\na\r\n$-1\r\n$-1\r\n$0\r\n\r\n", [None, b"a", None, None, b""]),
        (b"*2\r\n$-1\r\n$-1\r\n", [None, None]),
        # other spellings of a negative length take the general path, as before
        (b"*2\r\n$-01\r\n$-0\r\n\r\n", [None, b""]),
    ],
)
def test_arrays_mixing_bulk_strings_with_other_elements(wire: bytes, expected: list[Any]) -> None:
    assert _parse_one(wire) == expected
    assert _parse_chunks([wire[i : i + 1] for i in range(len(wire))]) == [expected]


@pytest.mark.parametrize(
    "bad_element",
    [
        b"$1\r\nabX\r\n",
        b"$+1\r\na\r\n",
        b"$ 1\r\na\r\n",
        b"$999999999\r\n",
        b"$1_0\r\n",
        b"$-2\r\n",
        b"$-1 \r\n",
    ],
)
def test_a_bad_bulk_string_inside_an_array_is_refused(bad_element: bytes) -> None:
    _parse_error(b"*2\r\n$1\r\na\r\n" + bad_element)


def test_thirty_two_nested_arrays_are_accepted() -> None:
    data = b"*1\r\n" * 31 + b"*0\r\n"
    reply = _parse_one(data)
    for _ in range(31):
        assert isinstance(reply, list)
        assert len(reply) == 1
        reply = reply[0]
    assert reply == []


def test_several_replies_in_one_feed_come_out_in_order() -> None:
    data = b"+OK\r\n:1\r\n$3\r\nabc\r\n$-1\r\n*2\r\n:1\r\n:2\r\n-ERR x\r\n*-1\r\n$0\r\n\r\n"
    assert _parse_chunks([data]) == [
        b"OK",
        1,
        b"abc",
        None,
        [1, 2],
        ErrorReply("ERR x"),
        None,
        b"",
    ]


def test_next_reply_on_an_empty_parser_needs_data() -> None:
    assert ReplyParser().next_reply() is NEED_DATA


@pytest.mark.parametrize(
    "partial",
    [
        b"+",
        b"+O",
        b"+OK",
        b"+OK\r",
        b":12",
        b"$5",
        b"$5\r",
        b"$5\r\nhel",
        b"$5\r\nhello",
        b"$5\r\nhello\r",
        b"*2\r\n:1\r\n",
        b"*2\r\n:1\r\n$3\r\nab",
    ],
)
def test_partial_reply_needs_data_then_completes(partial: bytes) -> None:
    full = {
        b"+": b"+OK\r\n",
        b":": b":123\r\n",
        b"$": b"$5\r\nhello\r\n",
        b"*": b"*2\r\n:1\r\n$3\r\nabc\r\n",
    }[partial[:1]]
    assert full.startswith(partial)
    parser = ReplyParser()
    parser.feed(partial)
    assert parser.next_reply() is NEED_DATA
    assert parser.next_reply() is NEED_DATA  # asking again changes nothing
    parser.feed(full[len(partial) :])
    replies = _drain(parser)
    assert replies == _parse_chunks([full])
    assert parser.buffered == 0


def test_replies_after_a_partial_one_are_kept() -> None:
    parser = ReplyParser()
    parser.feed(b"+one\r\n+tw")
    assert parser.next_reply() == b"one"
    assert parser.next_reply() is NEED_DATA
    parser.feed(b"o\r\n:3\r\n")
    assert _drain(parser) == [b"two", 3]


def test_declared_large_bulk_waits_for_its_body_and_completes() -> None:
    size = 10 * 1024 * 1024
    body = bytes(range(256)) * (size // 256)
    data = b"$%d\r\n" % size + body + b"\r\n"
    parser = ReplyParser()
    chunk = 64 * 1024
    replies: list[Any] = []
    for start in range(0, len(data), chunk):
        parser.feed(data[start : start + chunk])
        replies.extend(_drain(parser))
        if start + chunk < len(data):
            assert replies == []
    assert len(replies) == 1
    assert replies[0] == body
    assert parser.buffered == 0


def test_bulk_at_the_length_limit_is_awaited_not_refused() -> None:
    parser = ReplyParser()
    parser.feed(b"$536870912\r\n")  # exactly 512 MiB: allowed, body not here yet
    assert parser.next_reply() is NEED_DATA
    parser.feed(b"x" * 1024)
    assert parser.next_reply() is NEED_DATA


def test_header_of_exactly_64_kib_without_crlf_still_waits() -> None:
    parser = ReplyParser()
    parser.feed(b"+" + b"a" * (64 * 1024 - 1))
    assert parser.next_reply() is NEED_DATA


# --------------------------------------------------------------------------- property: chunking

_NO_CRLF_BYTES = st.binary(max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
_NO_CRLF_TEXT = st.text(max_size=20).map(lambda s: s.replace("\r", "").replace("\n", ""))

# Each strategy yields (wire bytes, the reply the parser must return).
_leaf = st.one_of(
    _NO_CRLF_BYTES.map(lambda b: (b"+" + b + b"\r\n", b)),
    _NO_CRLF_TEXT.map(lambda s: (b"-" + s.encode() + b"\r\n", ErrorReply(s))),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(lambda n: (b":%d\r\n" % n, n)),
    st.binary(max_size=40).map(lambda b: (b"$%d\r\n" % len(b) + b + b"\r\n", b)),
    st.sampled_from([b"\r\n", b"\r\n\r\n", b"a\r\nb", b"\n\r", b"\r"]).map(
        lambda b: (b"$%d\r\n" % len(b) + b + b"\r\n", b)
    ),
    st.just((b"$-1\r\n", None)),
    st.just((b"*-1\r\n", None)),
)


def _array(items: list[tuple[bytes, Any]]) -> tuple[bytes, Any]:
    return b"*%d\r\n" % len(items) + b"".join(w for w, _ in items), [v for _, v in items]


_reply = st.recursive(_leaf, lambda inner: st.lists(inner, max_size=5).map(_array), max_leaves=25)


@st.composite
def _stream_and_cuts(draw: st.DrawFn) -> tuple[bytes, list[Any], list[bytes]]:
    replies = draw(st.lists(_reply, min_size=1, max_size=6))
    wire = b"".join(w for w, _ in replies)
    expected = [v for _, v in replies]
    cuts = sorted(draw(st.sets(st.integers(min_value=1, max_value=max(1, len(wire) - 1)))))
    bounds = [0, *cuts, len(wire)]
    chunks = [wire[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    return wire, expected, chunks


@settings(max_examples=200, deadline=None)
@given(_stream_and_cuts())
def test_any_chunking_yields_the_same_replies(case: tuple[bytes, list[Any], list[bytes]]) -> None:
    wire, expected, chunks = case
    assert b"".join(chunks) == wire
    whole = _parse_chunks([wire])
    assert whole == expected
    assert _parse_chunks(chunks) == expected
    assert _parse_chunks([wire[i : i + 1] for i in range(len(wire))]) == expected


# --------------------------------------------------------------------------- bad input


def test_protocol_error_ends_the_connection_like_a_lost_connection() -> None:
    assert issubclass(RespProtocolError, StoreConnectionLost)
    assert issubclass(RespProtocolError, StoreError)


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param([b"!oops\r\n"], id="unknown-type-byte"),
        pytest.param([b"%1\r\n+a\r\n+b\r\n"], id="resp3-map-type-byte"),
        pytest.param([b"\r\n"], id="empty-line"),
        pytest.param([b"+OK\r\n?\r\n"], id="unknown-type-after-a-good-reply"),
        pytest.param([b"*1\r\n!x\r\n"], id="unknown-type-inside-array"),
        pytest.param([b"+" + b"a" * (64 * 1024 + 10)], id="header-over-64KiB-no-crlf"),
        pytest.param(
            [b"$" + b"1" * 100, b"1" * (64 * 1024)],
            id="bulk-header-over-64KiB-no-crlf-in-two-feeds",
        ),
        pytest.param([b"$536870913\r\n"], id="bulk-length-over-512MiB"),
        pytest.param([b"*536870913\r\n"], id="array-length-over-512MiB"),
        pytest.param([b"*1\r\n" * 32 + b"*0\r\n"], id="nesting-33-deep"),
        pytest.param([b"*1\r\n" * 40], id="nesting-40-deep-incomplete"),
        pytest.param([b"$3\r\nabcXY"], id="bulk-not-crlf-terminated"),
        pytest.param([b"$3\r\nabc\r", b"X"], id="bulk-bad-terminator-split"),
        pytest.param([b"$3\r\nabcd\r\n"], id="bulk-longer-than-declared"),
        pytest.param([b":abc\r\n"], id="integer-not-a-number"),
        pytest.param([b":\r\n"], id="integer-empty"),
        pytest.param([b":1.5\r\n"], id="integer-float"),
        pytest.param([b"$abc\r\n"], id="bulk-length-not-a-number"),
        pytest.param([b"$\r\n"], id="bulk-length-empty"),
        pytest.param([b"*x\r\n"], id="array-length-not-a-number"),
        pytest.param([b"*1.0\r\n"], id="array-length-float"),
    ],
)
def test_garbage_raises_protocol_error(chunks: list[bytes]) -> None:
    err = _parse_error(*chunks)
    assert isinstance(err, StoreConnectionLost)
    assert isinstance(err, StoreError)


def test_protocol_error_messages_name_the_problem() -> None:
    assert "unknown RESP type byte" in str(_parse_error(b"!x\r\n"))
    assert "64 KiB" in str(_parse_error(b"+" + b"a" * (64 * 1024 + 1)))
    assert "limit" in str(_parse_error(b"$536870913\r\n"))
    assert "deeper than 32" in str(_parse_error(b"*1\r\n" * 33))
    assert "CRLF" in str(_parse_error(b"$1\r\naXY"))
    assert "bad integer" in str(_parse_error(b":x\r\n"))
    assert "bad length" in str(_parse_error(b"$x\r\n"))


def test_good_replies_before_garbage_are_still_delivered() -> None:
    parser = ReplyParser()
    parser.feed(b"+OK\r\n:2\r\n!bad\r\n")
    assert parser.next_reply() == b"OK"
    assert parser.next_reply() == 2
    with pytest.raises(RespProtocolError):
        parser.next_reply()


# --------------------------------------------------------------------------- parse_resp_url

PASSWORD = "s3cret"


def test_url_defaults() -> None:
    p = parse_resp_url("redis://localhost")
    assert p.host == "localhost"
    assert p.port == 6379
    assert p.path is None
    assert p.username is None
    assert p.password is None
    assert p.db == 0
    assert p.tls is False
    assert p.verify is True
    assert p.cafile is None
    assert p.connect_timeout == 5
    assert p.stream_timeout == 30  # a half-open link fails a command, never hangs it
    assert p.pubsub_keepalive == 15


def test_url_host_port_and_db_from_path() -> None:
    p = parse_resp_url("redis://10.0.0.7:6380/3")
    assert (p.host, p.port, p.db) == ("10.0.0.7", 6380, 3)


def test_url_ipv6_host() -> None:
    p = parse_resp_url("redis://[::1]:7000/0")
    assert (p.host, p.port) == ("::1", 7000)


def test_url_user_and_password_are_percent_decoded_and_redacted() -> None:
    p = parse_resp_url("redis://us%40er:p%40ss%3Aw%2Frd@host/1")
    assert p.username == "us@er"
    assert p.password == "p@ss:w/rd"
    assert "p%40ss" not in p.url
    assert "***" in p.url


def test_url_password_only() -> None:
    p = parse_resp_url(f"redis://:{PASSWORD}@host:6379/0")
    assert p.username is None
    assert p.password == PASSWORD
    assert PASSWORD not in p.url
    assert PASSWORD not in repr(p.url)


def test_url_rediss_enables_tls_with_verification() -> None:
    p = parse_resp_url("rediss://host:6380")
    assert p.tls is True
    assert p.verify is True


def test_url_ssl_cert_reqs_none_disables_verification() -> None:
    p = parse_resp_url("rediss://host?ssl_cert_reqs=none&ssl_ca_certs=/etc/ca.pem")
    assert p.tls is True
    assert p.verify is False
    assert p.cafile == "/etc/ca.pem"


def test_url_ssl_cert_reqs_required_is_accepted() -> None:
    assert parse_resp_url("rediss://host?ssl_cert_reqs=required").verify is True


def test_url_options() -> None:
    p = parse_resp_url("redis://host?connect_timeout=1.5&stream_timeout=3&pubsub_keepalive=0.5")
    assert p.connect_timeout == 1.5
    assert p.stream_timeout == 3
    assert p.pubsub_keepalive == 0.5


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon", ""])
def test_url_pubsub_keepalive_must_be_positive_seconds(value: str) -> None:
    with pytest.raises(ConfigurationError, match="pubsub_keepalive"):
        parse_resp_url(f"redis://host?pubsub_keepalive={value}")
    with pytest.raises(ConfigurationError, match="pubsub_keepalive"):
        take_store_options(f"redis://:pw@host/0?pubsub_keepalive={value}")


def test_library_adapters_get_the_url_without_relayna_options() -> None:
    options = take_store_options(
        "rediss://:pw@host:6380/2?ssl_cert_reqs=none&pubsub_keepalive=2.5&stream_timeout=4"
        "&connect_timeout=0.5"
    )
    assert options == StoreOptions(
        "rediss://:pw@host:6380/2?ssl_cert_reqs=none",
        connect_timeout=0.5,
        stream_timeout=4.0,
        pubsub_keepalive=2.5,
    )
    # absent: the defaults, and the URL untouched
    assert take_store_options("unix:///tmp/r.sock?db=1") == StoreOptions(
        "unix:///tmp/r.sock?db=1", connect_timeout=5.0, stream_timeout=30.0, pubsub_keepalive=15.0
    )
    assert take_store_options("redis://h/0?stream_timeout=2").url == "redis://h/0"


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon", ""])
def test_url_stream_timeout_must_be_positive_seconds(value: str) -> None:
    with pytest.raises(ConfigurationError, match="stream_timeout"):
        parse_resp_url(f"redis://host?stream_timeout={value}")
    with pytest.raises(ConfigurationError, match="stream_timeout"):
        take_store_options(f"redis://:pw@host/0?stream_timeout={value}")


def test_url_db_query_option_for_tcp() -> None:
    assert parse_resp_url("redis://host/?db=4").db == 4


def test_url_unix_socket_with_db() -> None:
    p = parse_resp_url("unix:///var/run/redis.sock?db=2")
    assert p.path == "/var/run/redis.sock"
    assert p.db == 2
    assert p.tls is False


def test_url_unix_socket_with_password() -> None:
    p = parse_resp_url(f"unix://:{PASSWORD}@/tmp/redis.sock")
    assert p.path == "/tmp/redis.sock"
    assert p.password == PASSWORD
    assert p.db == 0
    assert PASSWORD not in p.url


def test_url_unknown_option_lists_the_accepted_ones_without_the_password() -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_resp_url(f"redis://user:{PASSWORD}@host/0?socket_timeout=3")
    message = str(info.value)
    assert "socket_timeout" in message
    for option in (
        "connect_timeout",
        "stream_timeout",
        "db",
        "ssl_cert_reqs",
        "ssl_ca_certs",
    ):
        assert option in message
    assert PASSWORD not in message


#: URLs ``parse_resp_url`` rejects, by test id (most with a password that must not leak).
REJECTED_URLS = {
    "unknown-scheme": f"http://:{PASSWORD}@host/0",
    "unknown-scheme-variant": f"rediss+cluster://:{PASSWORD}@host/0",
    "non-numeric-port": f"redis://:{PASSWORD}@host:notaport/0",
    "port-out-of-range": f"redis://:{PASSWORD}@host:99999/0",
    "non-numeric-db": f"redis://:{PASSWORD}@host/zero",
    "negative-db": f"redis://:{PASSWORD}@host/-1",
    "negative-db-query": f"redis://:{PASSWORD}@host/?db=-2",
    "connect-timeout-0": f"redis://:{PASSWORD}@host?connect_timeout=0",
    "connect-timeout-neg": f"redis://:{PASSWORD}@host?connect_timeout=-1",
    "connect-timeout-nan": f"redis://:{PASSWORD}@host?connect_timeout=nan",
    "connect-timeout-inf": f"redis://:{PASSWORD}@host?connect_timeout=inf",
    "connect-timeout-text": f"redis://:{PASSWORD}@host?connect_timeout=soon",
    "stream-timeout-0": f"redis://:{PASSWORD}@host?stream_timeout=0",
    "max-connections-not-an-option": f"redis://:{PASSWORD}@host?max_connections=8",
    "unix-without-path": "unix://",
    "unix-without-path-with-password": f"unix://:{PASSWORD}@",
    "unix-bad-db": f"unix://:{PASSWORD}@/tmp/r.sock?db=x",
    "ssl-cert-reqs-maybe": f"rediss://:{PASSWORD}@host?ssl_cert_reqs=maybe",
    "redis-without-host": "redis://",
    "redis-without-host-with-password": f"redis://:{PASSWORD}@/0",
    "option-without-value": f"redis://:{PASSWORD}@host?connect_timeout",
    "unknown-option": f"redis://:{PASSWORD}@host?timeout=1",
}


@pytest.mark.parametrize("url", REJECTED_URLS.values(), ids=REJECTED_URLS.keys())
def test_url_rejected_without_leaking_the_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_resp_url(url)
    assert PASSWORD not in str(info.value)


@pytest.mark.parametrize("url", ["", "not a url", "localhost:6379"])
def test_url_garbage_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_resp_url(url)


# -- regressions found in review ---------------------------------------------------


class _CountingParser(ReplyParser):
    calls = 0

    def _value(self, pos: int) -> tuple[object, int]:
        type(self).calls += 1
        return super()._value(pos)


def test_a_large_array_fed_in_chunks_is_parsed_once() -> None:
    """Elements already received are kept while the rest is awaited: the work
    is linear in the reply, not elements x chunks."""
    count = 20_000
    data = b"*%d\r\n" % count + b"".join(b"$8\r\n%08d\r\n" % i for i in range(count))
    parser = _CountingParser()
    _CountingParser.calls = 0
    replies = []
    for start in range(0, len(data), 4096):
        parser.feed(data[start : start + 4096])
        reply = parser.next_reply()
        if reply is not NEED_DATA:
            replies.append(reply)
    assert replies == [[b"%08d" % i for i in range(count)]]
    chunks = len(data) // 4096 + 1
    assert _CountingParser.calls <= count + 1 + chunks


@pytest.mark.parametrize(
    "data", [b":1_0\r\n", b": 5\r\n", b"$ 3\r\nabc\r\n", b"$-5\r\n", b"*-2\r\n"]
)
def test_lenient_numbers_are_refused(data: bytes) -> None:
    with pytest.raises(RespProtocolError):
        _parse_one(data)


def test_the_header_limit_does_not_depend_on_segmentation() -> None:
    long_line = b"+" + b"a" * 70_000 + b"\r\n"
    with pytest.raises(RespProtocolError, match="64 KiB"):
        _parse_one(long_line)


def test_bad_number_message_is_short() -> None:
    with pytest.raises(RespProtocolError) as info:
        _parse_one(b":" + b"9x" * 30_000 + b"\r\n")
    assert len(str(info.value)) < 200


@pytest.mark.parametrize(
    "url",
    [
        "redis://h:0/0",
        "redis://h/1?db=3",
        "redis://h/0?ssl_cert_reqs=none",
        "unix:///tmp/r.sock?ssl_ca_certs=/x.pem",
    ],
)
def test_ambiguous_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_resp_url(url)


def test_an_empty_password_is_no_password() -> None:
    assert parse_resp_url("redis://:@h/0").password is None


def test_an_unknown_type_byte_fails_before_its_line_ends() -> None:
    parser = ReplyParser()
    parser.feed(b"!bogus")  # no CRLF: waiting for one would hang the caller
    with pytest.raises(RespProtocolError, match="unknown RESP type byte"):
        parser.next_reply()
