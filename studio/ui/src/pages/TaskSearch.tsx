// Find tasks across services; every filter lives in the URL, so a search can be shared.
import { useInfiniteQuery } from "@tanstack/react-query";
import { Link } from "react-router-dom";
import { useApi } from "../auth";
import { SubmitTask } from "../components/SubmitTask";
import { FilterForm, LoadMore, TableHead, useUrlFilters, type FilterField } from "../components/filters";
import { Async, Badge, RelTime, Section } from "../components/ui";

export const TASK_FILTERS: FilterField[] = [
  ...["task_id", "service_id", "correlation_id", "status", "stage"].map((name) => ({ name })),
  { name: "from", kind: "datetime" },
  { name: "to", kind: "datetime" },
  { name: "limit", kind: "number", defaultValue: "50" },
];

export default function TaskSearch() {
  const api = useApi();
  const [filters, setFilters] = useUrlFilters(TASK_FILTERS);
  const limit = Number(filters.limit) || 50;
  const active = TASK_FILTERS.some((f) => f.name !== "limit" && filters[f.name]);
  const results = useInfiniteQuery({
    queryKey: ["task-search", filters, limit],
    queryFn: ({ pageParam }) => api.searchTasks({ ...filters, limit, cursor: pageParam ?? undefined }),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor ?? null,
    enabled: active,
    refetchInterval: 3_000, // the list follows new tasks (Studio's index fills as they run)
  });
  return (
    <>
      <div className="page-head">
        <h1>Task search</h1>
      </div>
      {filters.service_id ? <SubmitTask serviceId={filters.service_id} /> : null}
      <Section title="Filters">
        <FilterForm label="Search tasks" fields={TASK_FILTERS} values={filters} onApply={setFilters} submitLabel="Search" />
      </Section>
      <Section title="Tasks">
        {!active ? (
          <p className="empty">Give a task id, a service, a status or a time range to search.</p>
        ) : (
          <Async query={results} what="tasks" isEmpty={(d) => d.pages.every((p) => p.items.length === 0)} empty="No task matches.">
            {(d) => (
              <>
                <table>
                  <TableHead columns={["Task", "Service", "Status", "Stage", "Correlation", "Updated"]} />
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
                <LoadMore query={results} />
              </>
            )}
          </Async>
        )}
      </Section>
    </>
  );
}
