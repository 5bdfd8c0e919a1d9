// Find tasks across services; every filter lives in the URL, so a search can be shared.
import { useInfiniteQuery } from "@tanstack/react-query";
import type { FormEvent } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { useApi } from "../auth";
import { Async, Badge, RelTime, Section } from "../components/ui";

export const TASK_FILTERS = ["task_id", "service_id", "correlation_id", "status", "stage", "from", "to"] as const;

/** datetime-local text <-> ISO UTC for the URL and the API. */
export function localToIso(value: string): string {
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

export function isoToLocal(value: string): string {
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export default function TaskSearch() {
  const api = useApi();
  const [params, setParams] = useSearchParams();
  const filters = Object.fromEntries(TASK_FILTERS.map((k) => [k, params.get(k) ?? ""]));
  const limit = Number(params.get("limit") ?? "50") || 50;
  const active = TASK_FILTERS.some((k) => filters[k]);
  const results = useInfiniteQuery({
    queryKey: ["task-search", filters, limit],
    queryFn: ({ pageParam }) => api.searchTasks({ ...filters, limit, cursor: pageParam ?? undefined }),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor ?? null,
    enabled: active,
  });
  const apply = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const d = new FormData(e.currentTarget);
    const next: Record<string, string> = {};
    for (const k of TASK_FILTERS) {
      let v = String(d.get(k) ?? "").trim();
      if (v && (k === "from" || k === "to")) v = localToIso(v);
      if (v) next[k] = v;
    }
    const l = String(d.get("limit") ?? "");
    if (l && l !== "50") next.limit = l;
    setParams(next);
  };
  return (
    <>
      <div className="page-head">
        <h1>Task search</h1>
      </div>
      <Section title="Filters">
        <form className="filters" onSubmit={apply} key={params.toString()} aria-label="Search tasks">
          {TASK_FILTERS.map((k) => (
            <label key={k}>
              {k.replace(/_/g, " ")}
              {k === "from" || k === "to" ? (
                <input name={k} type="datetime-local" defaultValue={filters[k] ? isoToLocal(filters[k] ?? "") : ""} />
              ) : (
                <input name={k} defaultValue={filters[k]} />
              )}
            </label>
          ))}
          <label>
            limit
            <input name="limit" type="number" min={1} max={200} defaultValue={limit} />
          </label>
          <button type="submit">Search</button>
        </form>
      </Section>
      <Section title="Tasks">
        {!active ? (
          <p className="empty">Give a task id, a service, a status or a time range to search.</p>
        ) : (
          <Async query={results} what="tasks" isEmpty={(d) => d.pages.every((p) => p.items.length === 0)} empty="No task matches.">
            {(d) => (
              <>
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Task</th>
                      <th scope="col">Service</th>
                      <th scope="col">Status</th>
                      <th scope="col">Stage</th>
                      <th scope="col">Correlation</th>
                      <th scope="col">Updated</th>
                    </tr>
                  </thead>
                  <tbody>
                    {d.pages.flatMap((p) => p.items).map((t) => (
                      <tr key={`${t.service_id}/${t.task_id}`}>
                        <td>
                          <Link className="mono" to={`/tasks/${encodeURIComponent(t.service_id)}/${encodeURIComponent(t.task_id)}`}>
                            {t.task_id}
                          </Link>
                        </td>
                        <td>{t.service_id}</td>
                        <td>
                          <Badge status={t.status} />
                        </td>
                        <td>{t.stage ?? "—"}</td>
                        <td className="mono">{t.correlation_id ?? "—"}</td>
                        <td>
                          <RelTime value={t.updated_at ?? t.created_at} />
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
                {results.hasNextPage ? (
                  <button type="button" onClick={() => void results.fetchNextPage()} disabled={results.isFetchingNextPage}>
                    {results.isFetchingNextPage ? "Loading…" : "Load next page"}
                  </button>
                ) : null}
              </>
            )}
          </Async>
        )}
      </Section>
    </>
  );
}
