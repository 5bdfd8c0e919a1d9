// The task's spans (Tempo, through Studio): one row per span, details on click.
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { TableHead } from "./filters";
import { useApi } from "../auth";
import { formatDuration } from "../format";
import type { TraceSpan } from "../types";
import { Async, JsonBlock, KeyValues, Modal, RelTime } from "./ui";

export function TracePanel({ serviceId, taskId }: { serviceId: string; taskId: string }) {
  const api = useApi();
  const traces = useQuery({ queryKey: ["task-traces", serviceId, taskId], queryFn: () => api.taskTraces(serviceId, taskId) });
  const [span, setSpan] = useState<TraceSpan | null>(null);
  return (
    <Async query={traces} what="traces" isEmpty={(d) => d.spans.length === 0 && d.warnings.length === 0} empty="No trace found for this task.">
      {(d) => (
        <>
          {d.warnings.map((w) => (
            <p key={w} className="warnings">
              {w}
            </p>
          ))}
          {d.trace_ids.length ? (
            <p>
              Trace ids: <span className="mono">{d.trace_ids.join(", ")}</span>
            </p>
          ) : null}
          {d.spans.length ? (
            <table>
              <TableHead columns={["Span", "Service", "Started", "Duration", "Status"]} />
              <tbody>
                {d.spans.map((s) => (
                  <tr key={s.span_id}>
                    <td>
                      <button type="button" className="link" onClick={() => setSpan(s)}>
                        {s.name}
                      </button>
                    </td>
                    <td>{s.service_name ?? "—"}</td>
                    <td>
                      <RelTime value={s.start_time} />
                    </td>
                    <td>{formatDuration(s.duration_ms)}</td>
                    <td>{s.status ?? "—"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : null}
          {span ? (
            <Modal title={`Span ${span.name}`} onClose={() => setSpan(null)}>
              <KeyValues
                items={[
                  ["Trace id", <span key="t" className="mono">{span.trace_id}</span>],
                  ["Span id", <span key="s" className="mono">{span.span_id}</span>],
                  ["Parent", span.parent_span_id ?? null],
                  ["Duration", formatDuration(span.duration_ms)],
                ]}
              />
              <JsonBlock value={span.attributes ?? {}} />
            </Modal>
          ) : null}
        </>
      )}
    </Async>
  );
}
