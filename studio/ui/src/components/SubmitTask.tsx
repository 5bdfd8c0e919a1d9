// Submit a task to a service that offers it (relayna dev's POST /tasks), through Studio.
import { useMutation, useQuery } from "@tanstack/react-query";
import { useId, useState } from "react";
import { useNavigate } from "react-router-dom";
import { useApi, useCan } from "../auth";
import { checkJsonObject } from "../jsonInput";
import type { SubmitTaskRequest } from "../types";
import { JsonField } from "./JsonField";
import { ErrorNote, Section } from "./ui";

/** The capability id a service advertises for `POST /tasks`. */
export const SUBMIT_ROUTE = "tasks.submit";

/** Examples for relayna dev's demo, one per kind of run it can show: [label, payload, task type ("" = the default)]. */
const FIRST_PAYLOAD = '{"mode": "ok", "steps": 3}';
export const DEMO_PAYLOADS: Array<[string, string, string]> = [
  ["succeeds", FIRST_PAYLOAD, ""],
  ["fails once, retried", '{"mode": "fail_once", "steps": 3}', ""],
  ["dead-lettered until replayed", '{"mode": "fail_until_replayed", "steps": 2}', ""],
  ["aggregation fan-out, 3 children", '{"mode": "fanout", "steps": 3}', ""],
  ["two-stage workflow", '{"text": "plan then work", "steps": 3}', "demo.workflow"],
];

export function SubmitTask({ serviceId }: { serviceId: string }) {
  const api = useApi();
  const canOperate = useCan("operator");
  const navigate = useNavigate();
  const service = useQuery({ queryKey: ["service", serviceId], queryFn: () => api.getService(serviceId) });
  const offered = (service.data?.capabilities?.supported_routes ?? []).includes(SUBMIT_ROUTE);
  const [taskType, setTaskType] = useState("");
  const [payload, setPayload] = useState(FIRST_PAYLOAD);
  const [invalid, setInvalid] = useState<string | null>(null);
  const typeId = useId();
  const submit = useMutation({
    mutationFn: (body: SubmitTaskRequest) => api.submitTask(serviceId, body),
    onSuccess: (r) => navigate(`/tasks/${encodeURIComponent(serviceId)}/${encodeURIComponent(r.task_id)}`),
  });
  if (!canOperate || !offered) return null;
  return (
    <Section title="Submit a task">
      <form
        aria-label="Submit a task"
        className="submit-task"
        onSubmit={(e) => {
          e.preventDefault();
          const check = checkJsonObject(payload, "the payload");
          if (!check.ok) {
            setInvalid(check.message);
            return;
          }
          setInvalid(null);
          submit.mutate({ task_type: taskType.trim() || undefined, payload: check.value ?? {} });
        }}
      >
        <p>
          <label htmlFor={typeId}>Task type (empty: the service's default)</label>
          <input id={typeId} value={taskType} onChange={(e) => setTaskType(e.target.value)} />
        </p>
        <JsonField label="Payload (JSON object)" rows={3} value={payload} onChange={setPayload} invalid={invalid} />
        <div className="row-actions" role="group" aria-label="Example payloads">
          {DEMO_PAYLOADS.map(([label, text, type]) => (
            <button key={label} type="button" onClick={() => { setPayload(text); setTaskType(type); setInvalid(null); }}>
              {label}
            </button>
          ))}
        </div>
        <button type="submit" className="primary" disabled={submit.isPending}>
          {submit.isPending ? "Submitting…" : "Submit task"}
        </button>
        {submit.isError ? <ErrorNote error={submit.error} title="Submit refused" /> : null}
      </form>
    </Section>
  );
}
