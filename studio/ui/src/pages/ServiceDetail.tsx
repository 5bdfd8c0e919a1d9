// One service: actions, health, metrics, pods, live recent activity, logs.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useMemo, useState } from "react";
import { Link, useNavigate, useParams } from "react-router-dom";
import { useApi, useAuth, useCan } from "../auth";
import { LogView } from "../components/LogView";
import { MetricsPanel } from "../components/MetricsPanel";
import { Async, Badge, ConfirmDialog, ErrorNote, KeyValues, RelTime, Section } from "../components/ui";
import { healthReasons, overallOf } from "../health";
import { followStream, type StreamState } from "../sse";
import type { ControlPlaneEvent, Page, RegistryStatus } from "../types";

type Pending = { kind: "status"; status: RegistryStatus; label: string } | { kind: "delete" };

export default function ServiceDetail() {
  const { serviceId = "" } = useParams();
  const api = useApi();
  const canOperate = useCan("operator");
  const canAdmin = useCan("admin");
  const navigate = useNavigate();
  const client = useQueryClient();
  const service = useQuery({ queryKey: ["service", serviceId], queryFn: () => api.getService(serviceId), refetchInterval: 30_000 });
  const [pending, setPending] = useState<Pending | null>(null);
  const done = () => {
    void client.invalidateQueries({ queryKey: ["service", serviceId] });
    void client.invalidateQueries({ queryKey: ["services"] });
  };
  const refresh = useMutation({ mutationFn: () => api.refreshService(serviceId), onSuccess: done });
  const check = useMutation({ mutationFn: () => api.refreshHealth(serviceId), onSuccess: done });
  const setStatus = useMutation({ mutationFn: (status: RegistryStatus) => api.updateService(serviceId, { status }), onSuccess: () => { setPending(null); done(); } });
  const remove = useMutation({ mutationFn: () => api.deleteService(serviceId), onSuccess: () => { done(); navigate("/services"); } });
  const sid = encodeURIComponent(serviceId);
  return (
    <>
      <div className="page-head">
        <div>
          <p className="crumbs">
            <Link to="/services">Services</Link> / {serviceId}
          </p>
          <h1>{service.data?.name ?? serviceId}</h1>
        </div>
        <nav className="row-actions" aria-label="Service pages">
          <Link to={`/services/${sid}/topology`}>Topology</Link>
          <Link to={`/services/${sid}/dlq`}>DLQ</Link>
          <Link to={`/tasks/search?service_id=${sid}`}>Tasks</Link>
        </nav>
      </div>
      <div className="row-actions toolbar">
        {canAdmin ? (
          <>
            <button type="button" onClick={() => refresh.mutate()} disabled={refresh.isPending}>
              {refresh.isPending ? "Refreshing…" : "Refresh capabilities"}
            </button>
            <button type="button" onClick={() => check.mutate()} disabled={check.isPending}>
              {check.isPending ? "Checking…" : "Run health check"}
            </button>
            {service.data?.status === "disabled" || service.data?.status === "unavailable" ? (
              <button type="button" onClick={() => setStatus.mutate("registered")}>
                Enable
              </button>
            ) : null}
            <button type="button" onClick={() => setPending({ kind: "status", status: "unavailable", label: "Mark unavailable" })}>
              Mark unavailable
            </button>
            <button type="button" onClick={() => setPending({ kind: "status", status: "disabled", label: "Disable" })}>
              Disable
            </button>
            <button type="button" className="danger" onClick={() => setPending({ kind: "delete" })}>
              Delete
            </button>
          </>
        ) : canOperate ? (
          <button type="button" onClick={() => check.mutate()} disabled={check.isPending}>
            Run health check
          </button>
        ) : null}
      </div>
      {refresh.isError ? <ErrorNote error={refresh.error} title="Capability refresh failed" /> : null}
      {check.isError ? <ErrorNote error={check.error} title="Health check failed" /> : null}
      <Section title="Health">
        <Async query={service} what="the service">
          {(s) => (
            <KeyValues
              items={[
                ["Overall", <Badge key="o" status={overallOf(s)} />],
                ["Registry", <Badge key="r" status={s.status} />],
                ["Why", healthReasons(s.health).join("; ") || null],
                ["Checked", <RelTime key="c" value={s.health?.last_checked_at} />],
                ["Last seen", <RelTime key="l" value={s.last_seen_at} />],
                ["Base URL", <span key="b" className="mono">{s.base_url}</span>],
                ["Environment", s.environment],
                ["Workers", s.health?.worker_health?.workers?.length ? `${s.health.worker_health.workers.filter((w) => w.running).length} running of ${s.health.worker_health.workers.length}` : null],
                ["Events skipped", s.health?.events_skipped ? String(s.health.events_skipped) : null],
              ]}
            />
          )}
        </Async>
      </Section>
      <RecentActivity serviceId={serviceId} />
      <Pods serviceId={serviceId} />
      <Section title="Logs">
        <LogView queryKey={["service-logs", serviceId]} fetchPage={(q) => api.serviceLogs(serviceId, q)} />
      </Section>
      {pending?.kind === "status" ? (
        <ConfirmDialog
          title={`${pending.label} ${serviceId}?`}
          confirmLabel={pending.label}
          danger
          busy={setStatus.isPending}
          error={setStatus.error}
          onCancel={() => setPending(null)}
          onConfirm={() => setStatus.mutate(pending.status)}
        >
          <p>Studio stops reading from the service until it is enabled again.</p>
        </ConfirmDialog>
      ) : null}
      {pending?.kind === "delete" ? (
        <ConfirmDialog title={`Delete ${serviceId}?`} confirmLabel="Delete service" challenge={serviceId} danger busy={remove.isPending} error={remove.error} onCancel={() => setPending(null)} onConfirm={() => remove.mutate()}>
          <p>This removes the service and its task search entries from Studio.</p>
        </ConfirmDialog>
      ) : null}
    </>
  );
}

/** Merge events by dedupe key, newest first; returns `current` when nothing is new. */
export function mergeActivity(current: ControlPlaneEvent[], incoming: ControlPlaneEvent[], max = 200): ControlPlaneEvent[] {
  const key = (e: ControlPlaneEvent) => e.dedupe_key ?? `${e.event_type}|${e.task_id}|${e.timestamp}`;
  const seen = new Set(current.map(key));
  const fresh = incoming.filter((e) => !seen.has(key(e)) && (seen.add(key(e)), true));
  if (fresh.length === 0) return current;
  return [...fresh.reverse(), ...current].slice(0, max);
}

function RecentActivity({ serviceId }: { serviceId: string }) {
  const { api } = useAuth();
  const client = useQueryClient();
  const key = useMemo(() => ["service-events", serviceId] as const, [serviceId]);
  const events = useQuery({ queryKey: key, queryFn: () => api.serviceEvents(serviceId, { limit: 50 }) });
  const [state, setState] = useState<StreamState>("connecting");
  useEffect(() => {
    if (!events.isSuccess) return undefined;
    const controller = new AbortController();
    void followStream({
      url: api.serviceEventsStreamUrl(serviceId),
      token: api.token,
      fetch: api.fetch,
      signal: controller.signal,
      onState: setState,
      onMessage: (m) => {
        if (m.event !== "event") return;
        let e: ControlPlaneEvent;
        try {
          e = JSON.parse(m.data) as ControlPlaneEvent;
        } catch {
          return;
        }
        if (!e.dedupe_key && m.id) e.dedupe_key = m.id;
        client.setQueryData<Page<ControlPlaneEvent>>(key, (old) => {
          const items = old?.items ?? [];
          const merged = mergeActivity(items, [e]);
          return merged === items && old ? old : { ...old, items: merged };
        });
      },
    });
    return () => controller.abort();
  }, [api, client, key, serviceId, events.isSuccess]);
  return (
    <Section title="Recent activity" actions={<span className={`live-state live-${state}`}>{state === "open" ? "live" : state}</span>}>
      <Async query={events} what="recent activity" isEmpty={(d) => d.items.length === 0} empty="No activity yet; new events appear here live.">
        {(d) => (
          <ol className="activity">
            {d.items.map((e, i) => (
              <li key={e.dedupe_key ?? i}>
                <RelTime value={e.timestamp ?? e.ingested_at} /> <span className="tag">{e.event_type ?? e.source_kind ?? "event"}</span>{" "}
                {e.task_id ? (
                  <Link className="mono" to={`/tasks/${encodeURIComponent(serviceId)}/${encodeURIComponent(e.task_id)}`}>
                    {e.task_id}
                  </Link>
                ) : null}
                {typeof e.payload?.status === "string" ? <Badge status={e.payload.status} /> : null}
              </li>
            ))}
          </ol>
        )}
      </Async>
    </Section>
  );
}

function Pods({ serviceId }: { serviceId: string }) {
  const api = useApi();
  const pods = useQuery({ queryKey: ["pods", serviceId], queryFn: () => api.servicePods(serviceId), refetchInterval: 10_000, retry: false });
  // null = every pod (the default); an explicit empty set means "no pods".
  const [chosen, setChosen] = useState<Set<string> | null>(null);
  const names = pods.data?.pods.map((p) => p.name) ?? [];
  const selected = chosen ?? new Set(names);
  const toggle = (name: string) => {
    const next = new Set(selected);
    if (next.has(name)) next.delete(name);
    else next.add(name);
    setChosen(next);
  };
  return (
    <>
      <Section title="Metrics">
        {chosen !== null && chosen.size === 0 ? (
          <p className="empty">No pods selected.</p>
        ) : (
          <MetricsPanel
            queryKey={["service-metrics", serviceId]}
            fetchMetrics={(q) => api.serviceMetrics(serviceId, q)}
            extra={chosen === null ? undefined : { pod: [...chosen], split_by_pod: true }}
          />
        )}
      </Section>
      <Section
        title="Pods"
        actions={
          <>
            <button type="button" onClick={() => setChosen(null)}>
              Select all
            </button>
            <button type="button" onClick={() => setChosen(new Set())}>
              Deselect all
            </button>
          </>
        }
      >
        <Async query={pods} what="pods" isEmpty={(d) => d.pods.length === 0} empty="No pods found for this service.">
          {(d) => (
            <ul className="pods">
              {d.pods.map((p) => (
                <li key={p.name}>
                  <label>
                    <input type="checkbox" checked={selected.has(p.name)} onChange={() => toggle(p.name)} /> <span className="mono">{p.name}</span>
                  </label>{" "}
                  <Badge status={p.phase === "Running" ? "healthy" : p.phase ?? "unknown"} label={p.phase ?? "unknown"} />
                </li>
              ))}
            </ul>
          )}
        </Async>
      </Section>
    </>
  );
}
