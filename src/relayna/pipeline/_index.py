"""Item positions: the public :class:`Index` and the tuple keys used inside.

Inside a run every item travels as ``(key, value)`` where ``key`` is a tuple of
ints: ``(i,)`` for the i-th input item, ``(i, j)`` for the j-th output FlatMap
made from it, and so on. Tuples compare exactly like :class:`Index` does (a
shorter prefix sorts first) and cost far less than an object per item, so the
public class is only built where a user can see it (errors, ``indexed()``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Index", "Key"]

Key = tuple[int, ...]


class Index:
    """Logical position of an item: ``index`` plus an optional nested ``sub_index``.

    ``Index(1) < Index(1, Index(0)) < Index(2)``: an item sorts before what
    FlatMap produced from it, and sub-indices order the expansion.
    """

    __slots__ = ("index", "sub_index")

    index: int
    sub_index: Index | None

    def __init__(self, index: int, sub_index: Index | None = None) -> None:
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(f"Index must be an integer, got {type(index).__name__}")
        if index < 0:
            raise ValueError(f"Index must be >= 0, got {index}")
        self.index = index
        self.sub_index = sub_index

    @classmethod
    def from_key(cls, key: Key) -> Index:
        sub: Index | None = None
        for part in reversed(key[1:]):
            sub = cls(part, sub)
        return cls(key[0], sub)

    def to_key(self) -> Key:
        parts = [self.index]
        sub = self.sub_index
        while sub is not None:
            parts.append(sub.index)
            sub = sub.sub_index
        return tuple(parts)

    def with_sub_index(self, sub_index: int) -> Index:
        """The position of the ``sub_index``-th item expanded from this one."""
        return Index.from_key((*self.to_key(), sub_index))

    def __lt__(self, other: Index) -> bool:
        return self.to_key() < other.to_key()

    def __le__(self, other: Index) -> bool:
        return self.to_key() <= other.to_key()

    def __gt__(self, other: Index) -> bool:
        return self.to_key() > other.to_key()

    def __ge__(self, other: Index) -> bool:
        return self.to_key() >= other.to_key()

    def __eq__(self, other: Any) -> bool:
        if not isinstance(other, Index):
            return NotImplemented
        return self.to_key() == other.to_key()

    def __hash__(self) -> int:
        return hash(self.to_key())

    def __repr__(self) -> str:
        if self.sub_index is None:
            return f"Index({self.index})"
        return f"Index({self.index}, {self.sub_index!r})"
