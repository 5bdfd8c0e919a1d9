"""Process resource samples for :class:`TaskResourceSampled` observations."""

from __future__ import annotations

import os
import resource
import sys
import time

__all__ = ["sample_process_resources"]

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


#: ``(pid, fd)`` of this process's open ``/proc/self/statm``: sampled twice per
#: task, a ``pread`` on a kept descriptor costs ~1 µs where open/read/close
#: cost ~17. The pid check reopens it in a forked child (the inherited
#: descriptor describes the parent).
_statm: tuple[int, int] | None = None


def _statm_fd() -> int:
    global _statm
    pid = os.getpid()
    if _statm is None or _statm[0] != pid:
        _statm = (pid, os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC))
    return _statm[1]


def _rss_bytes() -> int | None:
    """Current RSS (``/proc/self/statm`` on Linux), else the peak RSS from getrusage."""
    try:
        return int(os.pread(_statm_fd(), 128, 0).split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (OSError, ValueError):  # pragma: no cover - platform specific
        return None
    return peak if sys.platform == "darwin" else peak * 1024


def sample_process_resources() -> tuple[float, int | None]:
    """``(process CPU seconds, RSS bytes or None)`` of this process, right now."""
    return time.process_time(), _rss_bytes()
