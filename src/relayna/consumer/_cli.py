"""``main_worker`` moved to :mod:`relayna.cli` (``relayna worker``); this name stays."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main_worker"]


def main_worker(argv: Sequence[str] | None = None, **_ignored: object) -> int:
    """``relayna worker ARGV...`` (kept for callers of ``relayna.consumer.main_worker``)."""
    import importlib

    # Imported by name at call time: the CLI sits above the consumer in the layers.
    cli = importlib.import_module("relayna.cli")
    return int(cli.main_worker(argv))
