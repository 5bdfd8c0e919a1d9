// A service's dead letters: the indexed records (replayable) and the broker's own queues.
import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { Link, useParams, useSearchParams } from "react-router-dom";
import { useApi, useCan } from "../auth";
import { FilterForm, LoadMore, TableHead, useUrlFilters, type FilterField } from "../components/filters";
import { Async, Badge, ConfirmDialog, JsonBlock, RelTime, Section } from "../components/ui";
import type { DlqMessageSummary } from "../types";

const INDEXED: FilterField[] = [
  { name: "queue_name" },
  { name: "reason" },
  { name: "source_queue_name" },
  { name: "state", kind: "select", options: ["dead_lettered", "replayed"] },
  { name: "task_id" },
  { name: "limit", kind: "number", defaultValue: "50" },
];

export default function Dlq() {
  const { serviceId = "" } = useParams();
  const api = useApi();
  const [params, setParams] = useSearchParams();
  const mode = params.get("mode") === "broker" ? "broker" : "indexed";
  const service = useQuery({ queryKey: ["service", serviceId], queryFn: () => api.getService(serviceId) });
  const brokerAvailable = (service.data?.capabilities?.supported_routes ?? []).includes("broker.dlq.messages");
  const setMode = (m: string) => setParams(m === "broker" ? { mode: "broker" } : {});
  return (
    <>
      <div className="page-head">
        <div>
          <p className="crumbs">
            <Link to={`/services/${encodeURIComponent(serviceId)}`}>{serviceId}</Link> / DLQ
          </p>
          <h1>Dead letters</h1>
        </div>
        <div className="segmented" role="group" aria-label="DLQ mode">
          <button type="button" aria-pressed={mode === "indexed"} onClick={() => setMode("indexed")}>
            Indexed
          </button>
          <button
            type="button"
            aria-pressed={mode === "broker"}
            onClick={() => setMode("broker")}
            disabled={!brokerAvailable}
            title={brokerAvailable ? undefined : "this service does not offer broker DLQ inspection"}
          >
            Broker
          </button>
        </div>
      </div>
      {mode === "indexed" ? <Indexed serviceId={serviceId} /> : <Broker serviceId={serviceId} />}
    </>
  );
}

function Indexed({ serviceId }: { serviceId: string }) {
  const api = useApi();
  const canOperate = useCan("operator");
  const client = useQueryClient();
  const [filters, setFilters] = useUrlFilters(INDEXED);
  const limit = Number(filters.limit) || 50;
  const [replaying, setReplaying] = useState<DlqMessageSummary | null>(null);
  const list = useInfiniteQuery({
    queryKey: ["dlq", serviceId, filters, limit],
    queryFn: ({ pageParam }) => api.dlqMessages(serviceId, { ...filters, limit, cursor: pageParam ?? undefined }),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor ?? null,
  });
  const replay = useMutation({
    mutationFn: (m: DlqMessageSummary) => api.replayDlq(serviceId, m.dlq_id, m.state === "replayed"),
    onSuccess: () => {
      setReplaying(null);
      void client.invalidateQueries({ queryKey: ["dlq", serviceId] });
    },
  });
  return (
    <>
      <Section title="Filters">
        <FilterForm label="Filter dead letters" fields={INDEXED} values={filters} onApply={setFilters} />
      </Section>
      <Section title="Indexed dead letters">
        <Async query={list} what="dead letters" isEmpty={(d) => d.pages.every((p) => p.items.length === 0)} empty="No dead letters match.">
          {(d) => (
            <>
              <table>
                <TableHead columns={["Dead-lettered", "Task", "Queue", "Reason", "State", ""]} />
                <tbody>
                  {d.pages.flatMap((p) => p.items).map((m) => (
                    <tr key={m.dlq_id}>
                      <td>
                        <RelTime value={m.dead_lettered_at} />
                      </td>
                      <td>
                        {m.task_id ? (
                          <Link className="mono" to={`/tasks/${encodeURIComponent(serviceId)}/${encodeURIComponent(m.task_id)}`}>
                            {m.task_id}
                          </Link>
                        ) : (
                          "—"
                        )}
                      </td>
                      <td className="mono">{m.source_queue_name ?? m.queue_name}</td>
                      <td>{m.reason ?? "—"}</td>
                      <td>
                        <Badge status={m.state} />
                        {m.replay_count ? <span className="muted"> ×{m.replay_count}</span> : null}
                      </td>
                      <td>
                        {canOperate ? (
                          <button type="button" onClick={() => { replay.reset(); setReplaying(m); }} aria-label={`Replay ${m.dlq_id}`}>
                            {m.state === "replayed" ? "Replay again" : "Replay"}
                          </button>
                        ) : null}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
              <LoadMore query={list} />
            </>
          )}
        </Async>
      </Section>
      {replaying ? (
        <ConfirmDialog
          title={`Replay ${replaying.task_id ?? replaying.dlq_id}?`}
          confirmLabel={replaying.state === "replayed" ? "Replay again (force)" : "Replay"}
          busy={replay.isPending}
          error={replay.error}
          onCancel={() => setReplaying(null)}
          onConfirm={() => replay.mutate(replaying)}
        >
          <p>
            The message goes back to <code>{replaying.source_queue_name ?? "its source queue"}</code> and the worker runs it again.
            {replaying.state === "replayed" ? " It was replayed before: this forces another replay." : ""}
          </p>
        </ConfirmDialog>
      ) : null}
    </>
  );
}

function Broker({ serviceId }: { serviceId: string }) {
  const api = useApi();
  const [params] = useSearchParams();
  const [queue, setQueue] = useState(params.get("queue_name") ?? "");
  const [submitted, setSubmitted] = useState(queue);
  const messages = useQuery({
    queryKey: ["broker-dlq", serviceId, submitted],
    queryFn: () => api.brokerDlqMessages(serviceId, { queue_name: submitted, limit: 50 }),
    enabled: Boolean(submitted),
  });
  return (
    <Section title="Broker dead-letter queue (read only)">
      <form className="filters" aria-label="Broker queue" onSubmit={(e) => { e.preventDefault(); setSubmitted(queue.trim()); }}>
        <label>
          queue name
          <input value={queue} onChange={(e) => setQueue(e.target.value)} />
        </label>
        <button type="submit">Read</button>
      </form>
      {!submitted ? (
        <p className="empty">Name a DLQ queue to read its messages from the broker.</p>
      ) : (
        <Async query={messages} what="broker messages" isEmpty={(d) => d.items.length === 0} empty="The queue is empty.">
          {(d) => (
            <ol className="plain">
              {d.items.map((m, i) => (
                <li key={i}>
                  <strong className="mono">{m.task_id ?? "(no task id)"}</strong> {m.reason ?? ""}
                  <details>
                    <summary>message</summary>
                    <JsonBlock value={m} />
                  </details>
                </li>
              ))}
            </ol>
          )}
        </Async>
      )}
    </Section>
  );
}
