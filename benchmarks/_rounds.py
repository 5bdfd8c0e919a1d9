"""Interleaved rounds: every case once per round, the order rotating between rounds,
so drift on a shared machine hits every case alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

__all__ = ["rotated"]

T = TypeVar("T")


def rotated(items: Sequence[T], shift: int) -> list[T]:
    """``items`` starting at position ``shift`` (modulo their count), wrapping around."""
    if not items:
        return []
    k = shift % len(items)
    return [*items[k:], *items[:k]]
