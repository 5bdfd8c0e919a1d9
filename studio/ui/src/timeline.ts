// The task timeline: history plus live events, merged without duplicates.
import type { StatusEvent } from "./types";

/** The identity of one status event: its event_id, else its content. */
export function eventKey(event: StatusEvent): string {
  if (event.event_id) return `id:${event.event_id}`;
  return `c:${event.status}|${event.timestamp ?? ""}|${event.message ?? ""}`;
}

/**
 * Add `incoming` to `current`, keeping rows already shown where they are.
 * Rows are in time order; an event older than the last row (a late replay)
 * is inserted in its place, a duplicate is dropped. Returns `current` itself
 * when nothing is new, so React renders nothing.
 */
export function mergeEvents(current: StatusEvent[], incoming: StatusEvent[]): StatusEvent[] {
  const seen = new Set(current.map(eventKey));
  const fresh = incoming.filter((e) => {
    const key = eventKey(e);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  if (fresh.length === 0) return current;
  const out = current.slice();
  for (const event of fresh) {
    const t = timeOf(event);
    let at = out.length;
    while (at > 0 && timeOf(out[at - 1] as StatusEvent) > t) at -= 1;
    out.splice(at, 0, event);
  }
  return out;
}

function timeOf(event: StatusEvent): number {
  const t = event.timestamp ? Date.parse(event.timestamp) : Number.NaN;
  return Number.isNaN(t) ? Number.POSITIVE_INFINITY : t;
}

/** The colour class of a status or node state. */
export function stateTone(status: string | null | undefined): "ok" | "bad" | "warn" | "live" | "idle" {
  const s = (status ?? "").toLowerCase();
  if (["completed", "succeeded", "healthy", "replayed", "acked"].includes(s)) return "ok";
  if (["failed", "dead_lettered", "dlq", "error", "unreachable", "rejected"].includes(s)) return "bad";
  if (["retrying", "retry", "degraded", "stale", "manual_retrying", "reconnecting"].includes(s)) return "warn";
  if (["processing", "running", "queued", "received", "started", "pending", "open"].includes(s)) return "live";
  return "idle";
}
