"""Process resource samples for :class:`TaskResourceSampled` observations."""

from __future__ import annotations

import os
import resource
import sys
import time

__all__ = ["sample_process_resources"]

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss_bytes() -> int | None:
    """Current RSS (``/proc/self/statm`` on Linux), else the peak RSS from getrusage."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        pass
    try:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (OSError, ValueError):  # pragma: no cover - platform specific
        return None
    return peak if sys.platform == "darwin" else peak * 1024


def sample_process_resources() -> tuple[float, int | None]:
    """``(process CPU seconds, RSS bytes or None)`` of this process, right now."""
    return time.process_time(), _rss_bytes()
