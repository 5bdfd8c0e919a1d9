"""Import a user's ``package.module:attribute`` target (CLI entry points)."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from relayna.errors import ConfigurationError

__all__ = ["load_target"]


def load_target(spec: str, *, what: str = "object") -> Any:
    """Import ``package.module:attribute`` (the attribute may be dotted).

    The current directory is importable, as for ``python -m``.

    Raises:
        ConfigurationError: a malformed spec, a module that cannot be
            imported (or raises while importing), a missing attribute; the
            message is one line naming what failed.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigurationError(f"expected MODULE:ATTRIBUTE for the {what}, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import module {module_name!r}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - user code: report it in one line
        raise ConfigurationError(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigurationError(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj
