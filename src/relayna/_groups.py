"""Moved to :mod:`relayna.errors` (``sole_exception``, ``unwrap_groups``); kept for imports."""

from relayna.errors import sole_exception, unwrap_groups

__all__ = ["sole_exception", "unwrap_groups"]
