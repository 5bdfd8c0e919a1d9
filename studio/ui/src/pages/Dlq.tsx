// A service's dead letters: the indexed records (replayable) and the broker's own queues.
import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { Link, useParams, useSearchParams } from "react-router-dom";
import { useApi, useCan } from "../auth";
import { Async, Badge, ConfirmDialog, JsonBlock, RelTime, Section } from "../components/ui";
import type { DlqMessageSummary } from "../types";

const INDEXED = ["queue_name", "reason", "source_queue_name", "state", "task_id"] as const;

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
  const [params, setParams] = useSearchParams();
  const filters = Object.fromEntries(INDEXED.map((k) => [k, params.get(k) ?? ""]));
  const limit = Number(params.get("limit") ?? "50") || 50;
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
  const apply = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const d = new FormData(e.currentTarget);
    const next: Record<string, string> = {};
    for (const k of [...INDEXED, "limit"]) {
      const v = String(d.get(k) ?? "").trim();
      if (v && !(k === "limit" && v === "50")) next[k] = v;
    }
    setParams(next);
  };
  return (
    <>
      <Section title="Filters">
        <form className="filters" onSubmit={apply} key={params.toString()} aria-label="Filter dead letters">
          {INDEXED.map((k) =>
            k === "state" ? (
              <label key={k}>
                state
                <select name={k} defaultValue={filters[k]}>
                  <option value="">any</option>
                  <option value="dead_lettered">dead_lettered</option>
                  <option value="replayed">replayed</option>
                </select>
              </label>
            ) : (
              <label key={k}>
                {k.replace(/_/g, " ")}
                <input name={k} defaultValue={filters[k]} />
              </label>
            ),
          )}
          <label>
            limit
            <input name="limit" type="number" min={1} max={200} defaultValue={limit} />
          </label>
          <button type="submit">Apply</button>
        </form>
      </Section>
      <Section title="Indexed dead letters">
        <Async query={list} what="dead letters" isEmpty={(d) => d.pages.every((p) => p.items.length === 0)} empty="No dead letters match.">
          {(d) => (
            <>
              <table>
                <thead>
                  <tr>
                    <th scope="col">Dead-lettered</th>
                    <th scope="col">Task</th>
                    <th scope="col">Queue</th>
                    <th scope="col">Reason</th>
                    <th scope="col">State</th>
                    <th scope="col">
                      <span className="sr-only">Actions</span>
                    </th>
                  </tr>
                </thead>
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
              {list.hasNextPage ? (
                <button type="button" onClick={() => void list.fetchNextPage()} disabled={list.isFetchingNextPage}>
                  {list.isFetchingNextPage ? "Loading…" : "Load next page"}
                </button>
              ) : null}
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
