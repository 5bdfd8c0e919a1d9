"""Sans-IO AMQP core: fed bytes, no event loop."""

from __future__ import annotations

import struct

import pytest
from pamqp import commands, header
from pamqp import frame as pamqp_frame

from relayna._supervise import Backoff, backoff_delay
from relayna.errors import ConfigurationError
from relayna.transport.amqp import _events as ev
from relayna.transport.amqp import parse_amqp_url
from relayna.transport.amqp._core import NEED_DATA, ConnectionCore, ConnState
from relayna.transport.amqp._frames import (
    PROTOCOL_HEADER,
    FrameError,
    FrameReader,
    encode_ack,
    encode_content,
)


def m(ch: int, method: object) -> bytes:
    return pamqp_frame.marshal(method, ch)  # type: ignore[arg-type]


def header_body(ch: int, body: bytes, **props: object) -> bytes:
    return encode_content(
        ch, None, commands.Basic.Properties(**props), body, 131072, method_bytes=b""
    )  # type: ignore[arg-type]


def events(core: ConnectionCore, data: bytes = b"") -> list[object]:
    if data:
        core.receive_data(data, 0.0)
    out = []
    while (e := core.next_event()) is not NEED_DATA:
        out.append(e)
    return out


def decode_all(data: bytes) -> list[object]:
    reader = FrameReader(0)
    reader.feed(data)
    frames = []
    while (f := reader.next_frame()) is not NEED_DATA:
        frames.append(f[2])
    return frames


def open_core(frame_max: int = 131072, heartbeat: int = 60) -> ConnectionCore:
    core = ConnectionCore(
        username="u", password="p", vhost="v", heartbeat=heartbeat, frame_max=frame_max
    )
    assert core.initiate(0.0) == PROTOCOL_HEADER
    start = commands.Connection.Start(
        server_properties={"product": "x"}, mechanisms="AMQPLAIN PLAIN", locales="en_US"
    )
    assert events(core, m(0, start)) == []
    (start_ok,) = decode_all(core.data_to_send())
    assert isinstance(start_ok, commands.Connection.StartOk)
    assert start_ok.response == "\0u\0p"
    caps = start_ok.client_properties["capabilities"]
    for cap in (
        "consumer_cancel_notify",
        "publisher_confirms",
        "connection.blocked",
        "basic.nack",
        "authentication_failure_close",
    ):
        assert caps[cap] is True
    events(core, m(0, commands.Connection.Tune(channel_max=100, frame_max=frame_max, heartbeat=30)))
    tune_ok, open_ = decode_all(core.data_to_send())
    assert isinstance(tune_ok, commands.Connection.TuneOk)
    assert tune_ok.heartbeat == min(30, heartbeat)
    assert isinstance(open_, commands.Connection.Open)
    assert open_.virtual_host == "v"
    (done,) = events(core, m(0, commands.Connection.OpenOk()))
    assert isinstance(done, ev.HandshakeComplete)
    assert done.channel_max == 100
    assert core.state is ConnState.OPEN
    return core


def open_channel(core: ConnectionCore, confirm: bool = False) -> int:
    ch, data = core.open_channel()
    assert isinstance(decode_all(data)[0], commands.Channel.Open)
    (reply,) = events(core, m(ch.id, commands.Channel.OpenOk()))
    assert isinstance(reply, ev.MethodReply)
    if confirm:
        events(core, m(ch.id, commands.Confirm.SelectOk()))
        assert ch.confirm_mode
    return ch.id


def test_handshake_and_partial_frames_byte_by_byte() -> None:
    core = open_core()
    cid = open_channel(core)
    data = m(
        cid, commands.Basic.Deliver(consumer_tag="c", delivery_tag=1, exchange="", routing_key="q")
    ) + header_body(cid, b"hello", content_type="text/plain")
    got: list[object] = []
    for i in range(len(data)):
        got += events(core, data[i : i + 1])
    (delivery,) = got
    assert isinstance(delivery, ev.DeliveryReady)
    assert delivery.body == b"hello"
    assert delivery.properties.content_type == "text/plain"


def test_frame_reader_need_data_and_errors() -> None:
    reader = FrameReader(4096)
    reader.feed(b"\x01\x00")
    assert reader.next_frame() is NEED_DATA
    reader = FrameReader(4096)
    reader.feed(struct.pack(">BHI", 3, 1, 10_000))
    with pytest.raises(FrameError, match="frame-max"):
        reader.next_frame()
    reader = FrameReader(4096)
    reader.feed(struct.pack(">BHI", 3, 1, 2) + b"ab\x00")
    with pytest.raises(FrameError, match="frame-end"):
        reader.next_frame()
    reader = FrameReader(4096)
    reader.feed(b"HTTP/1.1 400")
    with pytest.raises(FrameError):
        reader.next_frame()
    reader = FrameReader(4096)
    reader.feed(b"AMQP\x00\x00\x09\x01")
    with pytest.raises(FrameError, match="protocol"):
        reader.next_frame()


def test_auth_failure_close_during_handshake() -> None:
    core = ConnectionCore(username="u", password="bad")
    core.initiate()
    events(core, m(0, commands.Connection.Start(mechanisms="PLAIN")))
    core.data_to_send()
    (closed,) = events(
        core,
        m(
            0,
            commands.Connection.Close(
                reply_code=403, reply_text="ACCESS_REFUSED", class_id=0, method_id=0
            ),
        ),
    )
    assert isinstance(closed, ev.ConnectionClosedByPeer)
    assert closed.during_handshake
    assert closed.reply_code == 403
    assert isinstance(decode_all(core.data_to_send())[0], commands.Connection.CloseOk)


def test_no_plain_mechanism() -> None:
    core = ConnectionCore(username="u", password="p")
    with pytest.raises(FrameError, match="PLAIN"):
        events(core, m(0, commands.Connection.Start(mechanisms="EXTERNAL")))


def test_confirms_single_multiple_and_nack() -> None:
    core = open_core()
    cid = open_channel(core, confirm=True)
    tags = [
        core.send_publish(cid, "", "q", False, commands.Basic.Properties(), b"x")[0]
        for _ in range(5)
    ]
    assert tags == [1, 2, 3, 4, 5]
    (e,) = events(core, m(cid, commands.Basic.Ack(delivery_tag=2)))
    assert isinstance(e, ev.Confirmed)
    assert (e.delivery_tag, e.outcome) == (2, "ack")
    got = events(core, m(cid, commands.Basic.Ack(delivery_tag=4, multiple=True)))
    assert [(x.delivery_tag, x.outcome) for x in got] == [(1, "ack"), (3, "ack"), (4, "ack")]  # type: ignore[attr-defined]
    (n,) = events(core, m(cid, commands.Basic.Nack(delivery_tag=5)))
    assert isinstance(n, ev.Confirmed)
    assert n.outcome == "nack"
    assert events(core, m(cid, commands.Basic.Ack(delivery_tag=5))) == []  # unknown tag ignored


def test_basic_return_matches_publish() -> None:
    core = open_core()
    cid = open_channel(core, confirm=True)
    for rk in ("routed", "nowhere", "routed"):
        core.send_publish(cid, "", rk, True, commands.Basic.Properties(), rk.encode())
    ret = m(
        cid,
        commands.Basic.Return(
            reply_code=312, reply_text="NO_ROUTE", exchange="", routing_key="nowhere"
        ),
    )
    ret += header_body(cid, b"nowhere")
    assert events(core, ret) == []
    got = events(core, m(cid, commands.Basic.Ack(delivery_tag=3, multiple=True)))
    assert [x.outcome for x in got] == ["ack", "returned", "ack"]  # type: ignore[attr-defined]
    assert got[1].returned.reply_code == 312  # type: ignore[attr-defined]


def test_content_split_at_frame_max() -> None:
    body = bytes(range(256)) * 40  # 10240 bytes
    data = encode_content(
        1,
        commands.Basic.Publish(exchange="", routing_key="q"),
        commands.Basic.Properties(),
        body,
        4096,
    )
    frames = decode_all(data)
    assert isinstance(frames[0], commands.Basic.Publish)
    assert isinstance(frames[1], header.ContentHeader)
    assert frames[1].body_size == len(body)
    chunks = frames[2:]
    assert [len(c) for c in chunks] == [4088, 4088, 2064]  # type: ignore[arg-type]
    assert b"".join(chunks) == body  # type: ignore[arg-type]
    # reassembly on the receiving side
    core = open_core(frame_max=4096)
    cid = open_channel(core)
    deliver = commands.Basic.Deliver(consumer_tag="c", delivery_tag=7, exchange="", routing_key="q")
    (d,) = events(core, encode_content(cid, deliver, commands.Basic.Properties(), body, 4096))
    assert isinstance(d, ev.DeliveryReady)
    assert d.body == body


def test_empty_body_and_interleaving_error() -> None:
    core = open_core()
    cid = open_channel(core)
    deliver = commands.Basic.Deliver(consumer_tag="c", delivery_tag=1, exchange="", routing_key="q")
    (d,) = events(core, encode_content(cid, deliver, commands.Basic.Properties(), b"", 4096))
    assert isinstance(d, ev.DeliveryReady)
    assert d.body == b""
    with pytest.raises(FrameError):
        events(core, m(cid, deliver) + m(cid, commands.Basic.Ack(delivery_tag=1)))


def test_server_channel_close_and_cancel() -> None:
    core = open_core()
    cid = open_channel(core, confirm=True)
    (c,) = events(core, m(cid, commands.Basic.Cancel(consumer_tag="ctag")))
    assert isinstance(c, ev.ConsumerCancelledByPeer)
    assert c.consumer_tag == "ctag"
    assert isinstance(decode_all(core.data_to_send())[0], commands.Basic.CancelOk)
    close = commands.Channel.Close(
        reply_code=406, reply_text="PRECONDITION_FAILED", class_id=50, method_id=10
    )
    (e,) = events(core, m(cid, close))
    assert isinstance(e, ev.ChannelClosedByPeer)
    assert (e.reply_code, e.reply_text) == (
        406,
        "PRECONDITION_FAILED",
    )
    assert isinstance(decode_all(core.data_to_send())[0], commands.Channel.CloseOk)
    core.release_channel(cid)
    assert core.state is ConnState.OPEN  # the connection stays usable
    assert core.open_channel()[0].id == cid  # the id is reusable


def test_server_connection_close_and_blocked() -> None:
    core = open_core()
    (b,) = events(core, m(0, commands.Connection.Blocked(reason="low memory")))
    assert isinstance(b, ev.Blocked)
    assert core.blocked
    (u,) = events(core, m(0, commands.Connection.Unblocked()))
    assert isinstance(u, ev.Unblocked)
    assert not core.blocked
    close = commands.Connection.Close(
        reply_code=320, reply_text="CONNECTION_FORCED", class_id=0, method_id=0
    )
    (e,) = events(core, m(0, close))
    assert isinstance(e, ev.ConnectionClosedByPeer)
    assert e.reply_code == 320
    assert not e.during_handshake
    assert core.state is ConnState.CLOSED


def test_heartbeat_due_logic() -> None:
    core = open_core(heartbeat=10)
    assert core.heartbeat == 10
    assert core.heartbeat_check(1.0) == "ok"
    assert core.heartbeat_check(5.0) == "send"
    assert core.heartbeat_frame(5.0) == b"\x08\x00\x00\x00\x00\x00\x00\xce"
    assert core.heartbeat_check(6.0) == "ok"
    core.receive_data(b"\x08\x00\x00\x00\x00\x00\x00\xce", 15.0)
    assert events(core) == []
    assert core.heartbeat_check(34.0) == "send"
    assert core.heartbeat_check(36.0) == "dead"


def test_encode_ack_matches_pamqp() -> None:
    assert encode_ack(3, 12345) == m(3, commands.Basic.Ack(delivery_tag=12345))


def test_url_parsing() -> None:
    p = parse_amqp_url(
        "amqp://user:p%40ss@host:1234/%2F?heartbeat=5&frame_max=8192&connection_name=svc"
    )
    assert (p.host, p.port, p.username, p.password, p.vhost) == ("host", 1234, "user", "p@ss", "/")
    assert (p.heartbeat, p.frame_max, p.connection_name, p.tls) == (5, 8192, "svc", False)
    assert "p%40ss" not in p.url
    assert "***" in p.url
    assert parse_amqp_url("amqp://h").vhost == "/"
    assert parse_amqp_url("amqp://h/").vhost == "/"
    assert parse_amqp_url("amqp://h/prod%2Feu").vhost == "prod/eu"
    s = parse_amqp_url("amqps://h/")
    assert s.tls
    assert s.port == 5671
    assert (s.username, s.password) == ("guest", "guest")
    assert s.publish_timeout == 60.0
    assert parse_amqp_url("amqp://h/?publish_timeout=2.5").publish_timeout == 2.5
    for bad in (
        "amqp://h/?publish_timeout=x",
        "amqp://h/?publish_timeout=0",
        "amqp://h/?publish_timeout=-1",
        "amqp://h/?publish_timeout=inf",
        "http://h/",
        "amqp://h/?heartbeat=x",
        "amqp://h/?frame_max=10",
        "amqp://h/?bogus=1",
        "amqp://h/a/b",
    ):
        with pytest.raises(ConfigurationError):
            parse_amqp_url(bad)


def test_backoff_is_pure_and_bounded() -> None:
    policy = Backoff(initial=0.1, maximum=10, multiplier=2, jitter=0.2)
    assert [backoff_delay(policy, n) for n in range(4)] == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert backoff_delay(policy, 100) == 10
    assert backoff_delay(policy, 10_000) == 10
    assert backoff_delay(policy, 0, rand=0.0) == pytest.approx(0.08)
    assert backoff_delay(policy, 0, rand=1.0) == pytest.approx(0.12)
    for n in range(50):
        for r in (0.0, 0.3, 0.99):
            assert 0 <= backoff_delay(policy, n, r) <= 12
    with pytest.raises(ValueError, match="attempt"):
        backoff_delay(policy, -1)
