// "What needs attention now": health across the registry, incidents first.
import { useQuery } from "@tanstack/react-query";
import { Link, useSearchParams } from "react-router-dom";
import { TableHead } from "../components/filters";
import { useApi } from "../auth";
import { Async, Badge, RelTime, Section } from "../components/ui";
import { countHealth, healthReasons, incidents, overallOf } from "../health";

export default function Overview() {
  const api = useApi();
  const [params, setParams] = useSearchParams();
  const environment = params.get("environment") ?? "";
  const services = useQuery({ queryKey: ["services"], queryFn: api.listServices, refetchInterval: 30_000 });
  return (
    <>
      <div className="page-head">
        <h1>What needs attention now</h1>
        <label className="inline">
          Environment{" "}
          <select value={environment} onChange={(e) => setParams(e.target.value ? { environment: e.target.value } : {})}>
            <option value="">all</option>
            {[...new Set((services.data?.services ?? []).map((s) => s.environment))].sort().map((env) => (
              <option key={env} value={env}>
                {env}
              </option>
            ))}
          </select>
        </label>
      </div>
      <Async query={services} what="services">
        {(data) => {
          const scoped = data.services.filter((s) => !environment || s.environment === environment);
          const counts = countHealth(scoped);
          const list = incidents(scoped);
          return (
            <>
              <div className="cards">
                <Card label="Services in scope" value={counts.total} to="/services" />
                <Card label="Need attention" value={counts.attention} tone={counts.attention ? "bad" : "ok"} />
                <Card label="Healthy" value={counts.healthy} tone="ok" />
                <Card label="Unknown" value={counts.unknown} />
              </div>
              <Section title="Incidents" actions={<Link to="/failed-tasks">Failed tasks →</Link>}>
                {scoped.length === 0 ? (
                  <p className="empty">
                    No services registered yet. <Link to="/services">Register one</Link>.
                  </p>
                ) : list.length === 0 ? (
                  <p className="empty">Nothing needs attention: every service in scope is healthy or not yet checked.</p>
                ) : (
                  <table>
                    <TableHead columns={["Service", "Environment", "Health", "Why", "Last checked"]} />
                    <tbody>
                      {list.map((s) => (
                        <tr key={s.service_id}>
                          <td>
                            <Link to={`/services/${encodeURIComponent(s.service_id)}`}>{s.name}</Link>
                          </td>
                          <td>{s.environment}</td>
                          <td>
                            <Badge status={overallOf(s)} />
                          </td>
                          <td>{healthReasons(s.health).join("; ") || "—"}</td>
                          <td>
                            <RelTime value={s.health?.last_checked_at} />
                          </td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                )}
              </Section>
            </>
          );
        }}
      </Async>
    </>
  );
}

function Card({ label, value, to, tone }: { label: string; value: number; to?: string; tone?: string }) {
  const body = (
    <>
      <span className="card-value">{value}</span>
      <span className="card-label">{label}</span>
    </>
  );
  return <div className={`card${tone ? ` tone-${tone}` : ""}`}>{to ? <Link to={to}>{body}</Link> : body}</div>;
}
