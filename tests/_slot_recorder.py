"""A Store wrapper that records the keys of every script call and multi-key
command, for the cluster key layout's proof ("each call touches one slot").

Import as ``from _slot_recorder import SlotRecorder`` (tests/ is on sys.path).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relayna.transport import Script, Store, Value, key_slot

__all__ = ["SlotRecorder"]


class SlotRecorder:
    """Delegates everything to ``store``; records ``(name, keys)`` of each
    ``run_script`` / ``run_script_many`` call and of ``delete`` / ``mget``."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def run_script(self, script: Script, keys: Sequence[str], args: Sequence[Value]) -> Any:
        self.calls.append((script.name, tuple(keys)))
        return await self._store.run_script(script, keys, args)

    async def run_script_many(
        self, script: Script, calls: Sequence[tuple[Sequence[str], Sequence[Value]]]
    ) -> list[Any]:
        self.calls.extend((script.name, tuple(keys)) for keys, _ in calls)
        many = self._store.run_script_many
        return list(await many(script, calls))

    async def delete(self, *keys: str) -> int:
        self.calls.append(("DEL", keys))
        return await self._store.delete(*keys)

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        self.calls.append(("MGET", tuple(keys)))
        return await self._store.mget(keys)

    def cross_slot(self) -> list[tuple[str, tuple[str, ...], set[int]]]:
        """The recorded calls whose keys span more than one slot."""
        out = []
        for name, keys in self.calls:
            slots = {key_slot(k) for k in keys}
            if len(slots) > 1:
                out.append((name, keys, slots))
        return out

    def names(self) -> set[str]:
        return {name for name, _ in self.calls}
