// Failed tasks across services: filters in the URL, cursor paging, a detail
// dialog (investigate, retry with a validated override, delete), notifications.
import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { Link } from "react-router-dom";
import { useApi, useCan } from "../auth";
import { FailedTaskDialog } from "../components/FailedTaskDialog";
import { FilterForm, LoadMore, TableHead, useUrlFilters, type FilterField } from "../components/filters";
import { Async, Badge, ErrorNote, RelTime, Section } from "../components/ui";
import type { FailedTaskSummary } from "../types";

export const FAILED_FILTERS: FilterField[] = [
  ...["service_id", "queue_name", "dlq_name", "error_type", "status", "task_id", "worker_id"].map((name) => ({ name })),
  { name: "investigation_status", label: "Investigation", kind: "select", options: ["unreviewed", "investigated"] },
];

export default function FailedTasks() {
  const api = useApi();
  const [filters, setFilters] = useUrlFilters(FAILED_FILTERS);
  const [open, setOpen] = useState<FailedTaskSummary | null>(null);
  const list = useInfiniteQuery({
    queryKey: ["failed-tasks", filters],
    queryFn: ({ pageParam }) => api.failedTasks({ ...filters, cursor: pageParam ?? undefined, limit: 50 }),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor ?? null,
  });
  return (
    <>
      <div className="page-head">
        <h1>Failed tasks</h1>
      </div>
      <EmailSettingsCard />
      <Section title="Filters">
        <FilterForm label="Filter failed tasks" fields={FAILED_FILTERS} values={filters} onApply={setFilters} onClear={() => setFilters({})} />
      </Section>
      <Section title="Failures">
        <Async query={list} what="failed tasks" isEmpty={(d) => d.pages.every((p) => p.items.length === 0 && !p.errors?.length)} empty="No failed tasks match.">
          {(d) => (
            <>
              {d.pages.flatMap((p) => p.errors ?? []).map((e, i) => (
                <ErrorNote key={i} error={new Error(e.detail)} title={`Service ${e.service_id ?? "?"} could not be read`} />
              ))}
              <table>
                <TableHead columns={["Failed", "Service", "Task", "Error", "Attempt", "Investigation", ""]} />
                <tbody>
                  {d.pages.flatMap((p) => p.items).map((f) => (
                    <tr key={`${f.service_id}/${f.failure_id}`}>
                      <td>
                        <RelTime value={f.failed_at} />
                      </td>
                      <td>{f.service_name ?? f.service_id}</td>
                      <td>
                        <Link className="mono" to={`/tasks/${encodeURIComponent(f.service_id)}/${encodeURIComponent(f.task_id)}`}>
                          {f.task_id}
                        </Link>
                      </td>
                      <td>
                        <strong>{f.error_type ?? "error"}</strong> {f.error_message ?? ""}
                      </td>
                      <td>
                        {f.attempt ?? "?"}/{f.max_attempts ?? "?"}
                      </td>
                      <td>
                        <Badge status={f.investigation_status === "investigated" ? "completed" : "pending"} label={f.investigation_status ?? "unreviewed"} />
                      </td>
                      <td>
                        <button type="button" onClick={() => setOpen(f)} aria-label={`Open failure ${f.failure_id}`}>
                          Open
                        </button>
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
      {open ? <FailedTaskDialog summary={open} onClose={() => setOpen(null)} /> : null}
    </>
  );
}

function EmailSettingsCard() {
  const api = useApi();
  const canAdmin = useCan("admin");
  const client = useQueryClient();
  const settings = useQuery({ queryKey: ["email-settings"], queryFn: api.emailSettings });
  const update = useMutation({
    mutationFn: api.updateEmailSettings,
    onSuccess: (data) => client.setQueryData(["email-settings"], data),
  });
  const [wait, setWait] = useState<string | null>(null);
  return (
    <Section title="Notifications">
      <Async query={settings} what="notification settings">
        {(s) => (
          <div className="email">
            <p>
              Failed-task emails are <Badge status={s.enabled ? "healthy" : "idle"} label={s.enabled ? "on" : "off"} />
              {s.configured ? ` to ${s.receivers.length} receiver(s).` : " — not configured on this Studio (set the RELAYNA_STUDIO_FAILED_TASK_EMAIL_* variables)."}
            </p>
            {canAdmin && s.configured ? (
              <form
                className="filters"
                aria-label="Notification settings"
                onSubmit={(e) => {
                  e.preventDefault();
                  const seconds = Number(wait ?? s.batch_wait_seconds);
                  update.mutate({ batch_wait_seconds: seconds });
                }}
              >
                <label>
                  <input type="checkbox" checked={s.enabled} onChange={(e) => update.mutate({ enabled: e.target.checked })} /> Send emails
                </label>
                <label>
                  Batch wait (seconds)
                  <input type="number" min={0} max={s.max_batch_wait_seconds} value={wait ?? String(s.batch_wait_seconds)} onChange={(e) => setWait(e.target.value)} />
                </label>
                <button type="submit" disabled={update.isPending}>
                  Save
                </button>
              </form>
            ) : null}
            {update.isError ? <ErrorNote error={update.error} /> : null}
          </div>
        )}
      </Async>
    </Section>
  );
}
