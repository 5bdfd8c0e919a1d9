"""The hot-path AMQP codec produces exactly pamqp's bytes and objects.

Seeded random properties, headers, methods and content (plus truncated and
extended payloads, which the fast path must refuse or decode exactly as
pamqp does). pamqp stays the authority on everything unusual.
"""

from __future__ import annotations

import datetime
import random
import struct
from typing import Any

from pamqp import body as pbody
from pamqp import commands, header
from pamqp import frame as pf

from relayna.transport.amqp import _frames
from relayna.transport.amqp._fastcodec import decode_header, decode_method, encode_header

rnd = random.Random(1)
N = 3000


def rstr(maxlen: int = 20) -> str:
    return "".join(rnd.choice("abcü€xyz-_.") for _ in range(rnd.randint(0, maxlen)))


def rval() -> Any:
    c = rnd.random()
    if c < 0.5:
        return rstr()
    if c < 0.6:
        return rnd.randint(-(2**40), 2**40)
    if c < 0.7:
        return rnd.choice([True, False])
    if c < 0.75:
        return {"a": rstr()}
    if c < 0.8:
        return 1.5
    if c < 0.85:
        return None
    return rnd.randint(-200, 70000)


def rprops() -> Any:
    kw = {}
    for name in [
        "content_type",
        "content_encoding",
        "correlation_id",
        "reply_to",
        "expiration",
        "message_id",
        "message_type",
        "user_id",
        "app_id",
    ]:
        if rnd.random() < 0.4:
            kw[name] = rstr(30) if rnd.random() < 0.9 else ""
    if rnd.random() < 0.5:
        kw["delivery_mode"] = rnd.choice([1, 2])
    if rnd.random() < 0.3:
        kw["priority"] = rnd.randint(0, 255)
    if rnd.random() < 0.6:
        kw["headers"] = {rstr(10) or "k": rval() for _ in range(rnd.randint(0, 4))}
    if rnd.random() < 0.1:
        kw["timestamp"] = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    return commands.Basic.Properties(**kw)


def same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and all(
        getattr(a, k, "MISSING") == getattr(b, k, "MISSING") for k in a.__slots__
    )


def test_headers_match_pamqp() -> None:
    n_fast_enc = n_fast_dec = 0
    for _i in range(N):
        p = rprops()
        size = rnd.randint(0, 10**6)
        ch = rnd.randint(1, 65535)
        ref = pf.marshal(header.ContentHeader(0, size, p), ch)
        fast = encode_header(ch, size, p)
        if fast is not None:
            n_fast_enc += 1
            assert fast == ref, (p, fast, ref)
        payload = ref[7:-1]
        h1 = header.ContentHeader()
        h1.unmarshal(payload)
        h2 = decode_header(payload)
        if h2 is not None:
            n_fast_dec += 1
            assert (h1.class_id, h1.weight, h1.body_size) == (h2.class_id, h2.weight, h2.body_size)
            assert same(h1.properties, h2.properties), (vars(h1), p)
            assert h1.properties == h2.properties
        # truncated / extended payloads must not be accepted differently
        for bad in (payload[:-1], payload + b"x", payload[: rnd.randint(0, len(payload))]):
            h3 = decode_header(bad)
            if h3 is not None:
                h4 = header.ContentHeader()
                h4.unmarshal(bad)
                assert same(h3.properties, h4.properties)
                assert h3.body_size == h4.body_size
    assert n_fast_enc > N // 2
    assert n_fast_dec > N // 2


def test_methods_match_pamqp() -> None:
    nm = 0
    nm = 0
    for _i in range(N):
        c = rnd.random()
        if c < 0.4:
            m = commands.Basic.Deliver(
                consumer_tag=rstr(40),
                delivery_tag=rnd.randint(-(2**63), 2**63 - 1),
                redelivered=rnd.random() < 0.5,
                exchange=rnd.choice(["", "ex", "a.b-c"]),
                routing_key=rstr(),
            )
        elif c < 0.7:
            m = commands.Basic.Ack(
                delivery_tag=rnd.randint(-(2**63), 2**63 - 1), multiple=rnd.random() < 0.5
            )
        else:
            m = commands.Basic.Nack(
                delivery_tag=rnd.randint(-(2**63), 2**63 - 1),
                multiple=rnd.random() < 0.5,
                requeue=rnd.random() < 0.5,
            )
        raw = pf.marshal(m, 1)[7:-1]
        idx = struct.unpack(">I", raw[:4])[0]
        ref = type(m)()
        ref.unmarshal(raw[4:])
        got = decode_method(idx, raw[4:])
        assert got is not None
        assert same(ref, got), (m, got)
        nm += 1
        for bad in (raw[4:-1], raw[4:] + b"\x00", raw[4 : 4 + rnd.randint(0, len(raw) - 4)]):
            g = decode_method(idx, bad)
            if g is not None:
                r2 = type(m)()
                r2.unmarshal(bad)
                assert same(r2, g)
    assert nm == N


def test_content_frames_match_pamqp() -> None:
    for _i in range(N // 3):
        p = rprops()
        body = bytes(rnd.randint(0, 255) for _ in range(rnd.randint(0, 300)))
        fm = rnd.choice([0, 4096, 20, 100, 131072])
        mb = pf.marshal(commands.Basic.Publish(exchange="e", routing_key="r"), 3)
        parts = [mb, pf.marshal(header.ContentHeader(0, len(body), p), 3)]
        chunk = (fm - 8) if fm else len(body) or 1
        for s in range(0, len(body), chunk):
            parts.append(pf.marshal(pbody.ContentBody(body[s : s + chunk]), 3))
        assert _frames.encode_content(3, None, p, body, fm, method_bytes=mb) == b"".join(parts)
    print("content ok")
    from relayna.transport.amqp._fastcodec import encode_publish

    cnt = 0
    for _i in range(20000):
        ex = rnd.choice(["", "ex", "a.b-c:d_e", "bad ex", "x" * 127, "x" * 128, "é"])
        rk = rstr(rnd.choice([5, 300]))
        md = rnd.random() < 0.5
        ch = rnd.randint(1, 65535)
        try:
            ref = pf.marshal(commands.Basic.Publish(exchange=ex, routing_key=rk, mandatory=md), ch)
        except (ValueError, TypeError):
            ref = None
        got = encode_publish(ch, ex, rk, md)
        if got is not None:
            cnt += 1
            assert got == ref, (ex, rk, md)
    print("publish fast", cnt)
