// Cancel a task from its page, through Studio (relayna's POST /tasks/{task_id}/cancel).
// Shown to operators, for a service that advertises the route, while the task has not
// ended; the live timeline then shows `cancelled`.
import { useMutation, useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { useApi, useCan } from "../auth";
import { TERMINAL_STATUSES } from "../sse";
import { ConfirmDialog } from "./ui";

/** The capability id a service advertises for `POST /tasks/{task_id}/cancel`. */
export const CANCEL_ROUTE = "tasks.cancel";

export function CancelTask({ serviceId, taskId, status }: { serviceId: string; taskId: string; status: string | null | undefined }) {
  const api = useApi();
  const canOperate = useCan("operator");
  const service = useQuery({
    queryKey: ["service", serviceId],
    queryFn: () => api.getService(serviceId),
    enabled: canOperate,
    // a service registered a moment ago has no capability document until Studio reads it
    refetchInterval: (q) => (q.state.data && !q.state.data.capabilities ? 2_000 : false),
  });
  const offered = (service.data?.capabilities?.supported_routes ?? []).includes(CANCEL_ROUTE);
  const [asking, setAsking] = useState(false);
  const cancel = useMutation({
    mutationFn: () => api.cancelTask(serviceId, taskId, "cancelled from Studio"),
    onSuccess: () => setAsking(false),
  });
  const ended = status ? TERMINAL_STATUSES.has(status) : false;
  if (!canOperate || !offered || ended) return null;
  const requested = cancel.isSuccess;
  return (
    <>
      <button type="button" className="danger" disabled={requested} onClick={() => { cancel.reset(); setAsking(true); }}>
        {requested ? "Cancel requested…" : "Cancel task"}
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
          <p>
            A queued task never starts; a running handler is interrupted (its cleanup runs) and the task ends <code>cancelled</code>. It is not
            retried.
          </p>
        </ConfirmDialog>
      ) : null}
    </>
  );
}
