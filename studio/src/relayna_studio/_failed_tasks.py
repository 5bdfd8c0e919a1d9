"""Failed tasks across services, with a merged cursor that neither misses nor repeats items.

The original asked every service for one page and sliced the merge by an
offset, so deeper pages missed items. Here the cursor remembers, per
service, the upstream cursor of the page being read and how many of its
items were already returned (``{"v": 1, "s": {sid: [cursor, taken, done]}}``,
URL-safe base64 JSON). A page is a k-way merge by the heads of each
service's remaining items (newest ``failed_at`` first, then service id), so
the items taken from one service are always a prefix of what it has left:
every item appears exactly once across pages, whatever the page size.
A service that fails is reported in ``errors[]`` and keeps its position
while other services still have items; when only failing services are
left, the listing ends (``next_cursor: null``) with them in ``errors[]``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import anyio
import orjson

from relayna_studio._errors import UpstreamError
from relayna_studio._federation import Federation, payload_aliases
from relayna_studio._http import HTTPProblem
from relayna_studio._task_ref import enrich_item

__all__ = ["decode_cursor", "encode_cursor", "merged_failed_tasks"]

UPSTREAM_LIMIT = 200


class _Lane:
    def __init__(self, sid: str, cursor: str | None, taken: int, done: bool) -> None:
        self.sid = sid
        self.cursor = cursor  # upstream cursor of the page being read (None = first page)
        self.taken = taken  # items of that page already returned
        self.done = done
        self.items: list[dict[str, Any]] = []  # remaining items, upstream order
        self.pages: list[tuple[str | None, int]] = []  # (page cursor, page size) loaded
        self.next: str | None = None
        self.exhausted = False


def encode_cursor(lanes: Mapping[str, tuple[str | None, int, bool]]) -> str:
    raw = orjson.dumps({"v": 1, "s": {k: list(v) for k, v in sorted(lanes.items())}})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> dict[str, tuple[str | None, int, bool]]:
    """Raises HTTPProblem 400 ``invalid_cursor`` for anything not made by :func:`encode_cursor`."""
    problem = HTTPProblem(400, "invalid cursor", code="invalid_cursor")
    if len(text) > 65536:
        raise problem
    try:
        data = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise problem from None
    if not isinstance(data, dict) or data.get("v") != 1 or not isinstance(data.get("s"), dict):
        raise problem
    out: dict[str, tuple[str | None, int, bool]] = {}
    for sid, lane in data["s"].items():
        if (
            not isinstance(lane, list)
            or len(lane) != 3
            or not (lane[0] is None or isinstance(lane[0], str))
            or type(lane[1]) is not int
            or lane[1] < 0
            or not isinstance(lane[2], bool)
        ):
            raise problem
        out[str(sid)] = (lane[0], lane[1], lane[2])
    return out


def _order(item: Mapping[str, Any], sid: str) -> tuple[str, str]:
    return (str(item.get("failed_at") or ""), sid)


async def merged_failed_tasks(
    fed: Federation, params: Mapping[str, Any], limit: int, cursor: str | None
) -> dict[str, Any]:
    state = decode_cursor(cursor) if cursor else {}
    records = [r for r in await fed.runtime.registry.list() if r["status"] != "disabled"]
    lanes = [
        _Lane(str(r["service_id"]), *state.get(str(r["service_id"]), (None, 0, False)))
        for r in records
    ]
    errors: list[dict[str, Any]] = []
    scanned: list[str] = []
    by_id = {str(r["service_id"]): r for r in records}

    async def fill(lane: _Lane) -> None:
        """Load pages until the lane holds ``limit`` remaining items or is exhausted."""
        page_cursor, skip = lane.cursor, lane.taken
        while len(lane.items) < limit:
            query = {**params, "limit": UPSTREAM_LIMIT, "cursor": page_cursor}
            body = await fed.call(
                lane.sid,
                "failed_tasks.list",
                "GET",
                "/failed-tasks",
                params=query,
                record=by_id[lane.sid],
            )
            items = body.get("items")
            items = [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
            lane.pages.append((page_cursor, len(items)))
            lane.items.extend(items[skip:])
            skip = 0
            nxt = body.get("next_cursor")
            if not isinstance(nxt, str) or not nxt or not items:
                lane.exhausted = True
                return
            page_cursor = nxt
        lane.next = page_cursor

    async def run(lane: _Lane) -> None:
        try:
            await fill(lane)
            scanned.append(lane.sid)
        except UpstreamError as exc:
            lane.items = []
            lane.pages = []
            errors.append(exc.to_json())

    async with anyio.create_task_group() as tg:
        for lane in lanes:
            if not lane.done:
                tg.start_soon(run, lane)
    out: list[dict[str, Any]] = []
    heads = {lane.sid: 0 for lane in lanes}
    while len(out) < limit:
        best: _Lane | None = None
        for lane in lanes:
            i = heads[lane.sid]
            if i < len(lane.items) and (
                best is None
                or _order(lane.items[i], lane.sid) > _order(best.items[heads[best.sid]], best.sid)
            ):
                best = lane
        if best is None:
            break
        item = dict(best.items[heads[best.sid]])
        heads[best.sid] += 1
        enrich_item(item, best.sid, payload_aliases(by_id[best.sid].get("capabilities")))
        item.setdefault("service_name", by_id[best.sid]["name"])
        out.append(item)
    new_state: dict[str, tuple[str | None, int, bool]] = {}
    more = False
    for lane in lanes:
        if lane.done or not lane.pages:  # finished before, or failed now: keep its position
            # (a failing service alone does not keep the paging going: it is in errors[])
            new_state[lane.sid] = (lane.cursor, lane.taken, lane.done)
            continue
        consumed = heads[lane.sid] + lane.taken
        position: tuple[str | None, int, bool] | None = None
        for page_cursor, size in lane.pages:
            if consumed < size:
                position = (page_cursor, consumed, False)
                break
            consumed -= size
        if position is None:
            position = (lane.next, 0, False) if not lane.exhausted else (None, 0, True)
        new_state[lane.sid] = position
        more = more or not position[2]
    return {
        "items": out,
        "next_cursor": encode_cursor(new_state) if more else None,
        "errors": errors,
        "scanned_services": sorted(scanned),
    }
