// The registry: overview cards, gateway import, search, the table, create/edit and delete.
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { Link, useNavigate, useSearchParams } from "react-router-dom";
import { useApi, useCan } from "../auth";
import { ServiceFormView } from "../components/ServiceFormView";
import { Async, Badge, ConfirmDialog, CopyButton, Modal, RelTime, Section } from "../components/ui";
import { countHealth, overallOf } from "../health";
import type { ServiceRecord } from "../types";

const FILTERS = ["query", "environment", "status", "health", "tag"] as const;

export default function Services() {
  const api = useApi();
  const canAdmin = useCan("admin");
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [params, setParams] = useSearchParams();
  const [editing, setEditing] = useState<ServiceRecord | "new" | null>(null);
  const [deleting, setDeleting] = useState<ServiceRecord | null>(null);
  const filters = Object.fromEntries(FILTERS.map((k) => [k, params.get(k) ?? ""]));
  const searching = FILTERS.some((k) => filters[k]);
  const services = useQuery({ queryKey: ["services"], queryFn: api.listServices, refetchInterval: 60_000 });
  const search = useQuery({
    queryKey: ["service-search", filters],
    queryFn: () => api.searchServices({ ...filters, limit: 200 }),
    enabled: searching,
    placeholderData: keepPreviousData,
  });
  const remove = useMutation({
    mutationFn: (id: string) => api.deleteService(id),
    onSuccess: () => {
      setDeleting(null);
      void queryClient.invalidateQueries({ queryKey: ["services"] });
      void queryClient.invalidateQueries({ queryKey: ["service-search"] });
    },
  });
  const applySearch = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const data = new FormData(e.currentTarget);
    const next: Record<string, string> = {};
    for (const k of FILTERS) {
      const v = String(data.get(k) ?? "").trim();
      if (v) next[k] = v;
    }
    setParams(next);
  };
  const askDelete = (s: ServiceRecord) => {
    remove.reset();
    setDeleting(s);
  };
  return (
    <>
      <div className="page-head">
        <h1>Services</h1>
        {canAdmin ? (
          <button type="button" className="primary" onClick={() => setEditing("new")}>
            Register service
          </button>
        ) : null}
      </div>
      <Async query={services} what="the registry">
        {(data) => {
          const c = countHealth(data.services);
          return (
            <div className="cards">
              <div className="card">
                <span className="card-value">{c.total}</span>
                <span className="card-label">Services</span>
              </div>
              <div className={`card${c.attention ? " tone-warn" : ""}`}>
                <span className="card-value">{c.attention - c.unreachable}</span>
                <span className="card-label">Stale or degraded</span>
              </div>
              <div className={`card${c.unreachable ? " tone-bad" : ""}`}>
                <span className="card-value">{c.unreachable}</span>
                <span className="card-label">Unreachable</span>
              </div>
              <div className="card">
                <span className="card-value">{c.disabled}</span>
                <span className="card-label">Disabled</span>
              </div>
            </div>
          );
        }}
      </Async>
      <GatewayPanel />
      <Section title="Search">
        <form className="filters" onSubmit={applySearch} key={params.toString()} aria-label="Search services">
          {FILTERS.map((k) => (
            <label key={k}>
              {k === "query" ? "Keyword" : k === "status" ? "Registry status" : k === "health" ? "Runtime health" : k[0]?.toUpperCase() + k.slice(1)}
              <input name={k} defaultValue={filters[k]} />
            </label>
          ))}
          <button type="submit">Search</button>
          {searching ? (
            <button type="button" className="link" onClick={() => setParams({})}>
              Clear
            </button>
          ) : null}
        </form>
      </Section>
      <Section title={searching ? "Matching services" : "Registered services"}>
        {searching ? (
          <Async query={search} what="services" isEmpty={(d) => d.items.length === 0} empty="No service matches these filters.">
            {(d) => <ServiceTable services={d.items} canAdmin={canAdmin} onEdit={setEditing} onDelete={askDelete} />}
          </Async>
        ) : (
          <Async query={services} what="services" isEmpty={(d) => d.services.length === 0} empty="No services registered yet.">
            {(d) => <ServiceTable services={d.services} canAdmin={canAdmin} onEdit={setEditing} onDelete={askDelete} />}
          </Async>
        )}
      </Section>
      {editing ? (
        <Modal title={editing === "new" ? "Register a service" : `Edit ${editing.service_id}`} onClose={() => setEditing(null)} wide>
          <ServiceFormView
            existing={editing === "new" ? null : editing}
            onCancel={() => setEditing(null)}
            onDone={(s) => {
              setEditing(null);
              if (editing === "new") navigate(`/services/${encodeURIComponent(s.service_id)}`);
            }}
          />
        </Modal>
      ) : null}
      {deleting ? (
        <ConfirmDialog
          title={`Delete ${deleting.service_id}?`}
          confirmLabel="Delete service"
          challenge={deleting.service_id}
          danger
          busy={remove.isPending}
          error={remove.error}
          onCancel={() => setDeleting(null)}
          onConfirm={() => remove.mutate(deleting.service_id)}
        >
          <p>This removes the service from the registry and drops its task search entries. The service itself is not touched.</p>
        </ConfirmDialog>
      ) : null}
    </>
  );
}

function ServiceTable({ services, canAdmin, onEdit, onDelete }: { services: ServiceRecord[]; canAdmin: boolean; onEdit: (s: ServiceRecord) => void; onDelete: (s: ServiceRecord) => void }) {
  return (
    <table>
      <thead>
        <tr>
          <th scope="col">Service</th>
          <th scope="col">Environment</th>
          <th scope="col">Base URL</th>
          <th scope="col">Registry</th>
          <th scope="col">Health</th>
          <th scope="col">Last seen</th>
          <th scope="col">
            <span className="sr-only">Actions</span>
          </th>
        </tr>
      </thead>
      <tbody>
        {services.map((s) => (
          <tr key={s.service_id}>
            <td>
              <Link to={`/services/${encodeURIComponent(s.service_id)}`}>{s.name}</Link>
              <div className="muted mono">{s.service_id}</div>
              {s.tags.length ? <div className="tags">{s.tags.map((t) => <span key={t} className="tag">{t}</span>)}</div> : null}
            </td>
            <td>{s.environment}</td>
            <td className="mono">{s.base_url}</td>
            <td>
              <Badge status={s.status} />
            </td>
            <td>
              <Badge status={overallOf(s)} />
            </td>
            <td>
              <RelTime value={s.last_seen_at} />
            </td>
            <td className="row-actions">
              <Link to={`/services/${encodeURIComponent(s.service_id)}`}>View</Link>
              {canAdmin ? (
                <>
                  <button type="button" onClick={() => onEdit(s)} aria-label={`Edit ${s.service_id}`}>
                    Edit
                  </button>
                  <button type="button" className="danger" onClick={() => onDelete(s)} aria-label={`Delete ${s.service_id}`}>
                    Delete
                  </button>
                </>
              ) : null}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** What a gateway would import from /studio/gateway/services. */
function GatewayPanel() {
  const api = useApi();
  const [open, setOpen] = useState(false);
  const catalog = useQuery({ queryKey: ["gateway"], queryFn: api.gatewayServices, enabled: open });
  return (
    <Section
      title="Gateway import"
      actions={
        <button type="button" onClick={() => setOpen((o) => !o)} aria-expanded={open}>
          {open ? "Hide catalog" : "Show catalog"}
        </button>
      }
    >
      <p>
        A gateway imports the registry from <a href="/studio/gateway/services">/studio/gateway/services</a>: names, base URLs and route patterns; never
        log, metric or trace settings or credentials.
      </p>
      {open ? (
        <Async query={catalog} what="the gateway catalog" isEmpty={(d) => d.services.length === 0} empty="Nothing to export yet.">
          {(d) => (
            <>
              <CopyButton text={JSON.stringify(d, null, 2)} label="Copy catalog JSON" />
              <table>
                <thead>
                  <tr>
                    <th scope="col">Gateway name</th>
                    <th scope="col">Studio id</th>
                    <th scope="col">Route pattern</th>
                    <th scope="col">Status</th>
                  </tr>
                </thead>
                <tbody>
                  {d.services.map((g) => (
                    <tr key={g.studio_service_id}>
                      <td className="mono">{g.name}</td>
                      <td>{g.studio_service_id}</td>
                      <td className="mono">{g.default_route_pattern}</td>
                      <td>
                        <Badge status={g.status} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          )}
        </Async>
      ) : null}
    </Section>
  );
}
