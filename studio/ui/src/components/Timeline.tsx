// The status timeline: oldest first; live rows are appended, nothing moves.
import { absoluteTime } from "../format";
import { eventKey } from "../timeline";
import type { StatusEvent } from "../types";
import { Badge, RelTime } from "./ui";

export function Timeline({ events }: { events: StatusEvent[] }) {
  return (
    <ol className="timeline" aria-label="Status timeline" data-testid="timeline">
      {events.map((e) => (
        <li key={eventKey(e)} data-status={e.status}>
          <Badge status={e.status} />
          <span className="tl-time" title={absoluteTime(e.timestamp)}>
            <RelTime value={e.timestamp} />
          </span>
          {e.message ? <span className="tl-msg">{e.message}</span> : null}
          {e.meta && Object.keys(e.meta).length ? (
            <details>
              <summary>meta</summary>
              <pre className="json">{JSON.stringify(e.meta, null, 2)}</pre>
            </details>
          ) : null}
        </li>
      ))}
    </ol>
  );
}
