"""Deprecation aliases: a name that moved keeps resolving, with a DeprecationWarning.

A package or a retired module sets its module-level ``__getattr__`` (PEP 562)
to :func:`moved_names`; the old import then works, warns once per access, and
says where the name lives now. Nothing is imported until the old name is used.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping

__all__ = ["moved_names"]


def moved_names(module: str, moved: Mapping[str, tuple[str, str]]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``module`` that resolves the names in ``moved``.

    Args:
        module: the module's ``__name__`` (for the messages).
        moved: old attribute name -> (``"package.module:attribute"`` it
            resolves to, the advice the warning gives).
    """

    def __getattr__(name: str) -> object:
        try:
            target, advice = moved[name]
        except KeyError:
            raise AttributeError(f"module {module!r} has no attribute {name!r}") from None
        warnings.warn(f"{module}.{name} is deprecated: {advice}", DeprecationWarning, stacklevel=2)
        where, _, attribute = target.partition(":")
        return getattr(importlib.import_module(where), attribute)

    return __getattr__
