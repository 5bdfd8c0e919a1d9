"""Redis commands over the memory store's core, for scripts run in the memory store.

Theory of operation: a script's ``redis.call('CMD', ...)`` arrives here as a
list of byte strings; :func:`execute` looks the command up, checks its arity,
and its handler parses the arguments the way Redis does (strict integers,
floats, options) and returns a reply: ``int``, ``bytes``, ``None`` (nil), a
``list`` of replies, or :class:`Status` (``+OK``). Errors raise
:class:`ReplyError` with Redis's error text (``WRONGTYPE ...``, ``ERR ...``).
Pure and synchronous: no I/O, nothing awaits, so a script runs atomically.

The semantics are those of Redis 7.0 (what the differential test in
``tests/conformance/test_store_scripts.py`` runs against). Commands that need
the wall clock as an absolute time (``EXPIREAT``, ``SET ... PXAT``) are not
offered: the memory store's clock is ``anyio.current_time``. A command that
is not in :data:`COMMANDS` fails the script with Redis's "Unknown Redis
command called from script" error, so a script never silently does less.
"""

from __future__ import annotations

from collections.abc import Sequence

from relayna.errors import StoreError
from relayna.transport._store_cmd_base import (
    NOT_INTEGER,
    WRONGTYPE,
    CommandTable,
    Reply,
    ReplyError,
    Status,
)
from relayna.transport._store_cmd_coll import COLLECTION_COMMANDS
from relayna.transport._store_cmd_keys import KEY_COMMANDS
from relayna.transport._store_cmd_zset import ZSET_COMMANDS
from relayna.transport._store_memory_core import MemoryCore

__all__ = ["COMMANDS", "Reply", "ReplyError", "Status", "execute"]

#: Every command a script may call in the memory store.
COMMANDS = CommandTable({**KEY_COMMANDS, **COLLECTION_COMMANDS, **ZSET_COMMANDS})


def execute(core: MemoryCore, words: Sequence[bytes]) -> Reply:
    """Run one command (``words[0]`` is its name) against ``core``.

    Raises:
        ReplyError: Redis's error reply for this command (unknown command,
            wrong arity, wrong type, bad argument).
    """
    if not words:
        raise ReplyError("ERR Please specify at least one argument for this redis lib call")
    cmd = COMMANDS.get(words[0]) or COMMANDS.get(words[0].upper())
    if cmd is None:
        raise ReplyError("ERR Unknown Redis command called from script")
    n = len(words)
    if (cmd.arity >= 0 and n != cmd.arity) or (cmd.arity < 0 and n < -cmd.arity):
        raise ReplyError(f"ERR wrong number of arguments for '{cmd.name}' command")
    try:
        return cmd.handler(core, words[1:])
    except StoreError as exc:  # the core's own WRONGTYPE / not-an-integer checks
        raise ReplyError(WRONGTYPE if "WRONGTYPE" in str(exc) else NOT_INTEGER) from None
