"""The ``bit`` library (LuaBitOp) that Redis offers scripts, for the memory store.

LuaBitOp works on 32-bit integers: arguments are normalised with
``tobit`` (modulo 2**32, as a signed int32) and results are signed int32.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["BIT_FUNCTIONS"]


def _tobit(x: Any) -> int:
    n = round(float(x)) & 0xFFFFFFFF  # LuaBitOp rounds to nearest, ties to even
    return n - 0x1_0000_0000 if n & 0x8000_0000 else n


def _fold(op: Callable[[int, int], int]) -> Callable[..., int]:
    def apply(first: Any, *rest: Any) -> int:
        value = _tobit(first)
        for other in rest:
            value = _tobit(op(value, _tobit(other)))
        return value

    return apply


def _tohex(x: Any, n: Any = 8) -> bytes:
    width = int(n)
    digits = "%08x" % (_tobit(x) & 0xFFFFFFFF)
    text = digits[-min(abs(width), 8) :] if width else ""
    return (text.upper() if width < 0 else text).encode()


def _shift(x: Any, n: Any) -> tuple[int, int]:
    return _tobit(x) & 0xFFFFFFFF, round(float(n)) & 31


def _lshift(x: Any, n: Any) -> int:
    value, k = _shift(x, n)
    return _tobit(value << k)


def _rshift(x: Any, n: Any) -> int:
    value, k = _shift(x, n)
    return _tobit(value >> k)


def _arshift(x: Any, n: Any) -> int:
    return _tobit(_tobit(x) >> (round(float(n)) & 31))


def _rol(x: Any, n: Any) -> int:
    value, k = _shift(x, n)
    return _tobit((value << k) | (value >> (32 - k)))


def _ror(x: Any, n: Any) -> int:
    value, k = _shift(x, n)
    return _tobit((value >> k) | (value << (32 - k)))


def _bswap(x: Any) -> int:
    return _tobit(int.from_bytes((_tobit(x) & 0xFFFFFFFF).to_bytes(4, "big"), "little"))


BIT_FUNCTIONS: dict[bytes, Callable[..., Any]] = {
    b"tobit": _tobit,
    b"tohex": _tohex,
    b"bnot": lambda x: _tobit(~_tobit(x)),
    b"band": _fold(lambda a, b: a & b),
    b"bor": _fold(lambda a, b: a | b),
    b"bxor": _fold(lambda a, b: a ^ b),
    b"lshift": _lshift,
    b"rshift": _rshift,
    b"arshift": _arshift,
    b"rol": _rol,
    b"ror": _ror,
    b"bswap": _bswap,
}
