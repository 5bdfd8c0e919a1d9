// Cancel a task from its page, through Studio (relayna's POST /tasks/{task_id}/cancel),
// or, for a workflow task, its run (POST /workflow/runs/{task_id}/cancel). Shown to
// operators, for a service that advertises the route, while the task has not ended; the
// live timeline then shows `cancelled`.
import { useMutation, useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { useApi, useCan } from "../auth";
import { TERMINAL_STATUSES } from "../sse";
import { ConfirmDialog } from "./ui";

/** The capability id a service advertises for `POST /tasks/{task_id}/cancel`. */
export const CANCEL_ROUTE = "tasks.cancel";
/** The capability id a service advertises for `POST /workflow/runs/{task_id}/cancel`. */
export const RUN_CANCEL_ROUTE = "workflow.cancel";

export function CancelTask({
  serviceId,
  taskId,
  status,
  workflow = false,
}: {
  serviceId: string;
  taskId: string;
  status: string | null | undefined;
  /** The task is a workflow run: cancel the run (no further stage is entered). */
  workflow?: boolean;
}) {
  const api = useApi();
  const canOperate = useCan("operator");
  const service = useQuery({
    queryKey: ["service", serviceId],
    queryFn: () => api.getService(serviceId),
    enabled: canOperate,
    // a service registered a moment ago has no capability document until Studio reads it
    refetchInterval: (q) => (q.state.data && !q.state.data.capabilities ? 2_000 : false),
  });
  const offered = (service.data?.capabilities?.supported_routes ?? []).includes(workflow ? RUN_CANCEL_ROUTE : CANCEL_ROUTE);
  const [asking, setAsking] = useState(false);
  const cancel = useMutation({
    mutationFn: () =>
      workflow ? api.cancelWorkflowRun(serviceId, taskId, "cancelled from Studio") : api.cancelTask(serviceId, taskId, "cancelled from Studio"),
    onSuccess: () => setAsking(false),
  });
  const ended = status ? TERMINAL_STATUSES.has(status) : false;
  if (!canOperate || !offered || ended) return null;
  const requested = cancel.isSuccess;
  return (
    <>
      <button type="button" className="danger" disabled={requested} onClick={() => { cancel.reset(); setAsking(true); }}>
        {requested ? "Cancel requested…" : workflow ? "Cancel run" : "Cancel task"}
      </button>
      {asking ? (
        <ConfirmDialog
          title={`Cancel ${taskId}?`}
          confirmLabel="Yes, cancel it"
          danger
          busy={cancel.isPending}
          error={cancel.error}
          onCancel={() => setAsking(false)}
          onConfirm={() => cancel.mutate()}
        >
          {workflow ? (
            <p>
              No further stage of the run is entered; a running stage handler is interrupted (its cleanup runs) and the run ends{" "}
              <code>cancelled</code>.
            </p>
          ) : (
            <p>
              A queued task never starts; a running handler is interrupted (its cleanup runs) and the task ends <code>cancelled</code>. It is not
              retried.
            </p>
          )}
        </ConfirmDialog>
      ) : null}
    </>
  );
}
