// The registry: overview cards, gateway import, search, the table, create/edit and delete.
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { Link, useNavigate } from "react-router-dom";
import { useApi, useCan } from "../auth";
import { FilterForm, TableHead, useUrlFilters, type FilterField } from "../components/filters";
import { ServiceFormView } from "../components/ServiceFormView";
import { Async, Badge, ConfirmDialog, CopyButton, Modal, RelTime, Section } from "../components/ui";
import { countHealth, overallOf } from "../health";
import type { ServiceRecord } from "../types";

const FILTERS: FilterField[] = [
  { name: "query", label: "Keyword" },
  { name: "environment", label: "Environment" },
  { name: "status", label: "Registry status" },
  { name: "health", label: "Runtime health" },
  { name: "tag", label: "Tag" },
];

export default function Services() {
  const api = useApi();
  const canAdmin = useCan("admin");
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [editing, setEditing] = useState<ServiceRecord | "new" | null>(null);
  const [deleting, setDeleting] = useState<ServiceRecord | null>(null);
  const [filters, setFilters] = useUrlFilters(FILTERS);
  const searching = FILTERS.some((f) => filters[f.name]);
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
        <FilterForm label="Search services" fields={FILTERS} values={filters} onApply={setFilters} submitLabel="Search" onClear={searching ? () => setFilters({}) : undefined} />
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
      <TableHead columns={["Service", "Environment", "Base URL", "Registry", "Health", "Last seen", ""]} />
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
            <td>
              <div className="row-actions">
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
              </div>
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
                <TableHead columns={["Gateway name", "Studio id", "Route pattern", "Status"]} />
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
