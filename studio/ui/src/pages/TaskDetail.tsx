// One task on one page: metadata, the live timeline and execution graph side
// by side, Mermaid export, resources, logs, metrics and traces. Each panel
// loads and fails on its own.
import { useQuery } from "@tanstack/react-query";
import { lazy, type ReactNode, Suspense, useMemo, useState } from "react";
import { Link, useParams } from "react-router-dom";
import { CancelTask } from "../components/CancelTask";
import { TableHead } from "../components/filters";
import { useApi } from "../auth";
import { LogView } from "../components/LogView";
import { MetricsPanel } from "../components/MetricsPanel";
import { Timeline } from "../components/Timeline";
import { TracePanel } from "../components/TracePanel";
import { Async, Badge, CopyButton, ErrorNote, JsonBlock, KeyValues, Loading, Modal, RelTime, Section } from "../components/ui";
import { formatDuration } from "../format";
import { graphToMermaid } from "../graph/mermaid";
import { resourceDeltas } from "../graph/resources";
import { graphKey, historyOf, latestOf, taskKey, useTaskLive } from "../live";
import { ApiError, type Query } from "../api";
import { TERMINAL_STATUSES } from "../sse";
import type { ExecutionGraph, GraphNode, StatusEvent, TaskRef } from "../types";

const GraphView = lazy(() => import("../graph/GraphView"));

export default function TaskDetail() {
  const { serviceId = "", taskId = "" } = useParams();
  const api = useApi();
  const detail = useQuery({ queryKey: taskKey(serviceId, taskId), queryFn: () => api.taskDetail(serviceId, taskId), staleTime: Infinity });
  const graph = useQuery({
    queryKey: graphKey(serviceId, taskId),
    queryFn: () => api.taskGraph(serviceId, taskId),
    enabled: detail.isSuccess,
    placeholderData: (prev) => prev ?? detail.data?.execution_graph ?? undefined,
    retry: false,
  });
  const live = useTaskLive(serviceId, taskId, detail.isSuccess);
  const latest = latestOf(detail.data);
  const [selected, setSelected] = useState<GraphNode | null>(null);

  return (
    <>
      <div className="page-head">
        <div>
          <p className="crumbs">
            <Link to={`/services/${encodeURIComponent(serviceId)}`}>{serviceId}</Link> / task
          </p>
          <h1 className="mono">{taskId}</h1>
        </div>
        <div className="head-status">
          <Badge status={latest?.status ?? "unknown"} />
          {detail.isSuccess ? (
            <CancelTask serviceId={serviceId} taskId={taskId} status={latest?.status} workflow={workflowStages(graph.data).length > 0} />
          ) : null}
          <span className={`live-state live-${live.state}`} role="status" aria-live="polite">
            {live.state === "open" ? "live" : live.state === "reconnecting" ? "reconnecting…" : live.state === "closed" ? "stream ended" : "connecting…"}
          </span>
        </div>
      </div>
      {live.error ? <ErrorNote error={new Error(live.error)} /> : null}
      <Section title="Task">
        <Async query={detail} what="the task">
          {(d) => (
            <>
              <KeyValues
                items={[
                  ["Service", <Link key="s" to={`/services/${encodeURIComponent(d.service_id)}`}>{d.service?.name ?? d.service_id}</Link>],
                  ["Task ref", <span key="r" className="mono">{`${d.task_ref.service_id}:${d.task_ref.task_id}`}</span>],
                  ["Latest status", latest ? <Badge status={latest.status} /> : null],
                  ["Updated", <RelTime key="u" value={latest?.timestamp} />],
                  ["Correlation id", latest?.correlation_id ?? null],
                  ["Duration", formatDuration(graph.data?.summary?.duration_ms ?? null)],
                  ["Graph", graph.data?.summary?.graph_completeness ?? null],
                  ...workflowRow(serviceId, graph.data),
                ]}
              />
              <RelatedTasks refs={[...(d.task_ref.parent_refs ?? []), ...(d.task_ref.child_refs ?? []), ...d.joined_refs]} />
              {d.join_warnings.map((w) => (
                <p key={w} className="warnings">
                  {w}
                </p>
              ))}
              {d.errors.map((e, i) =>
                e.code === "unsupported_route" ? (
                  <p key={i} className="muted">
                    {e.section ?? "A section"}: not offered by this service.
                  </p>
                ) : (
                  <ErrorNote key={i} error={new Error(e.detail)} title={e.section ?? e.code ?? "section"} />
                ),
              )}
            </>
          )}
        </Async>
      </Section>
      <div className="split">
        <Section title="Timeline">
          <Async query={detail} what="the timeline" isEmpty={(d) => historyOf(d).length === 0} empty="No status yet; new events appear here live.">
            {(d) => <Timeline events={historyOf(d)} />}
          </Async>
        </Section>
        <Section title="Execution graph" actions={graph.isFetching ? <span className="muted">updating…</span> : null}>
          {graph.isError && !graph.data && graph.error instanceof ApiError && graph.error.code === "unsupported_route" ? (
            <p className="empty">This service does not offer execution graphs.</p>
          ) : graph.isError && !graph.data ? (
            <ErrorNote error={graph.error} title="Could not load the execution graph" />
          ) : !graph.data ? (
            detail.isPending ? <Loading what="the graph" /> : <p className="empty">No execution graph for this task (yet).</p>
          ) : (
            <Suspense fallback={<Loading what="the graph view" />}>
              <GraphView graph={graph.data} rootStatus={latest?.status ?? graph.data.summary?.status ?? null} onSelect={setSelected} />
            </Suspense>
          )}
        </Section>
      </div>
      {workflowStages(graph.data).length > 0 ? <WorkflowRunSection serviceId={serviceId} taskId={taskId} status={latest?.status ?? null} /> : null}
      {graph.data ? <GraphExtras graph={graph.data} taskId={taskId} /> : null}
      <Section title="Logs">
        {/* Logs wait for the task: their default window is its lifecycle. */}
        {detail.isPending ? (
          <Loading what="logs" />
        ) : (
          <LogView queryKey={["task-logs", serviceId, taskId]} fetchPage={(q) => api.taskLogs(serviceId, taskId, q)} baseQuery={lifecycleWindow(historyOf(detail.data))} />
        )}
      </Section>
      <Section title="Kubernetes metrics (task window, pod level)">
        <MetricsPanel queryKey={["task-metrics", serviceId, taskId]} fetchMetrics={(q) => api.taskMetrics(serviceId, taskId, q)} automaticWindow />
      </Section>
      <Section title="Trace">
        <TracePanel serviceId={serviceId} taskId={taskId} />
      </Section>
      {selected ? (
        <Modal title={`${selected.kind}: ${selected.label}`} onClose={() => setSelected(null)}>
          <KeyValues
            items={[
              ["Node id", <span key="i" className="mono">{selected.id}</span>],
              ["Task", selected.task_id ?? null],
              ["Time", <RelTime key="t" value={selected.timestamp} />],
            ]}
          />
          <JsonBlock value={selected.annotations ?? {}} />
        </Modal>
      ) : null}
    </>
  );
}

/** The task's lifecycle, padded a minute each side: the default window of its logs. */
export function lifecycleWindow(events: StatusEvent[]): Query | undefined {
  const times = events.map((e) => Date.parse(e.timestamp ?? "")).filter(Number.isFinite);
  if (times.length === 0) return undefined;
  const pad = 60_000;
  const last = events[events.length - 1];
  const ended = last ? TERMINAL_STATUSES.has(last.status) : false;
  return {
    from: new Date(Math.min(...times) - pad).toISOString(),
    to: ended ? new Date(Math.max(...times) + pad).toISOString() : undefined,
  };
}

function RelatedTasks({ refs }: { refs: TaskRef[] }) {
  const seen = new Set<string>();
  const unique = refs.filter((r) => {
    const key = `${r.service_id}:${r.task_id}`;
    return !seen.has(key) && (seen.add(key), true);
  });
  if (unique.length === 0) return null;
  return (
    <p>
      Related:{" "}
      {unique.map((r) => (
        <Link key={`${r.service_id}:${r.task_id}`} className="tag" to={`/tasks/${encodeURIComponent(r.service_id)}/${encodeURIComponent(r.task_id)}`}>
          {r.service_id}:{r.task_id}
        </Link>
      ))}
    </p>
  );
}

/** The workflow stages a task went through, in order of their first attempt (none for a plain task). */
export function workflowStages(graph: ExecutionGraph | undefined): string[] {
  const stages: string[] = [];
  for (const node of graph?.nodes ?? []) {
    const stage = node.annotations?.stage;
    if (node.kind === "stage_attempt" && typeof stage === "string" && !stages.includes(stage)) stages.push(stage);
  }
  return stages;
}

function workflowRow(serviceId: string, graph: ExecutionGraph | undefined): Array<[string, ReactNode]> {
  const stages = workflowStages(graph);
  if (stages.length === 0) return [];
  return [
    [
      "Workflow stages",
      <span key="w" data-testid="workflow-stages">
        {stages.join(" → ")} (<Link to={`/services/${encodeURIComponent(serviceId)}/topology`}>topology</Link>)
      </span>,
    ],
  ];
}

/** The run state of a workflow task, read through Studio's federated run route (re-read on each new status). */
function WorkflowRunSection({ serviceId, taskId, status }: { serviceId: string; taskId: string; status: string | null }) {
  const api = useApi();
  const run = useQuery({
    queryKey: ["workflow-run", serviceId, taskId, status],
    queryFn: () => api.workflowRun(serviceId, taskId),
    placeholderData: (prev) => prev,
    retry: false,
  });
  return (
    <Section title="Workflow run">
      <Async query={run} what="the workflow run">
        {(r) => (
          <>
            <KeyValues items={[["Run status", <Badge key="s" status={r.run.status} />]]} />
            <table data-testid="workflow-run">
              <TableHead columns={["Stage", "Status", "Attempts", "Deliveries"]} />
              <tbody>
                {r.run.stages.map((s) => (
                  <tr key={s.stage} data-stage={s.stage} data-status={s.status}>
                    <td>{s.stage}</td>
                    <td>
                      <Badge status={s.status} />
                    </td>
                    <td>{s.attempts ?? "—"}</td>
                    <td>{s.deliveries ?? "—"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </>
        )}
      </Async>
    </Section>
  );
}

function GraphExtras({ graph, taskId }: { graph: ExecutionGraph; taskId: string }) {
  const mermaid = useMemo(() => graphToMermaid(graph), [graph]);
  const resources = useMemo(() => resourceDeltas(graph, taskId), [graph, taskId]);
  const [showMermaid, setShowMermaid] = useState(false);
  return (
    <div className="split">
      <Section
        title="Mermaid export"
        actions={
          <>
            <CopyButton text={mermaid} label="Copy Mermaid" />
            <button type="button" onClick={() => setShowMermaid((s) => !s)} aria-expanded={showMermaid}>
              {showMermaid ? "Hide" : "Show"}
            </button>
          </>
        }
      >
        {showMermaid ? <pre className="json">{mermaid}</pre> : <p className="muted">{graph.nodes.length} nodes, {graph.edges.length} edges.</p>}
      </Section>
      <Section title="Exact task resources">
        {resources.length === 0 ? (
          <p className="empty">No resource samples for this task (workers record them when resource sampling is on).</p>
        ) : (
          <table>
            <TableHead columns={["Measure", "First", "Last", "Change"]} />
            <tbody>
              {resources.map((r) => (
                <tr key={r.name}>
                  <td>{r.name}</td>
                  <td>{r.first}</td>
                  <td>{r.last}</td>
                  <td>{r.delta}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>
    </div>
  );
}
