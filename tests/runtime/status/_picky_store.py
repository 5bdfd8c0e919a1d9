"""A store wrapper whose status writes for one task fail: a parked task, a stuck event."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relayna.errors import StoreError
from relayna.transport import Script, Store

__all__ = ["PickyStore"]


class PickyStore:
    """Script calls touching ``bad``'s history fail (per call) while ``failing``."""

    def __init__(self, store: Store, bad: str) -> None:
        self._store = store
        self.needle = f":history:{bad}"
        self.failing = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _fails(self, keys: Sequence[str]) -> bool:
        return self.failing and any(self.needle in k for k in keys)

    async def run_script(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        if self._fails(keys):
            raise StoreError("injected: WRONGTYPE")
        return await self._store.run_script(script, keys, args)

    async def run_script_many(self, script: Script, calls: Sequence[Any]) -> list[Any]:
        out: list[Any] = []
        for keys, args in calls:
            if self._fails(keys):
                out.append(StoreError("injected: WRONGTYPE"))
            else:
                out.append(await self._store.run_script(script, keys, args))
        return out
