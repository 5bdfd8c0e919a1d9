// One failed task: what failed, and what an operator can do about it.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useId, useState } from "react";
import { useApi, useCan } from "../auth";
import { checkJsonObject } from "../jsonInput";
import { JsonField } from "./JsonField";
import type { FailedTaskDetail, FailedTaskSummary } from "../types";
import { Async, Badge, ConfirmDialog, CopyButton, ErrorNote, JsonBlock, KeyValues, Modal, RelTime } from "./ui";

function download(name: string, value: unknown): void {
  const blob = new Blob([JSON.stringify(value, null, 2)], { type: "application/json" });
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.click();
  URL.revokeObjectURL(url);
}

export function FailedTaskDialog({ summary, onClose }: { summary: FailedTaskSummary; onClose: () => void }) {
  const api = useApi();
  const sid = summary.service_id;
  const fid = summary.failure_id;
  const detail = useQuery({ queryKey: ["failed-task", sid, fid], queryFn: () => api.failedTask(sid, fid) });
  return (
    <Modal title={`Failure ${fid}`} onClose={onClose} wide>
      <Async query={detail} what="the failure">
        {(d) => <FailureBody detail={d} onGone={onClose} />}
      </Async>
    </Modal>
  );
}

function FailureBody({ detail, onGone }: { detail: FailedTaskDetail; onGone: () => void }) {
  const api = useApi();
  const canOperate = useCan("operator");
  const client = useQueryClient();
  const sid = detail.service_id;
  const fid = detail.failure_id;
  const refresh = (d?: FailedTaskDetail) => {
    if (d) client.setQueryData(["failed-task", sid, fid], d);
    void client.invalidateQueries({ queryKey: ["failed-tasks"] });
  };
  const [note, setNote] = useState("");
  const investigate = useMutation({
    mutationFn: (done: boolean) => (done ? api.markInvestigated(sid, fid, note) : api.markUninvestigated(sid, fid)),
    onSuccess: refresh,
  });
  const [confirmDelete, setConfirmDelete] = useState(false);
  const remove = useMutation({
    mutationFn: () => api.deleteFailedTask(sid, fid),
    onSuccess: () => {
      refresh();
      onGone();
    },
  });
  const investigated = detail.investigation_status === "investigated";
  const noteId = useId();
  return (
    <>
      <KeyValues
        items={[
          ["Service", detail.service_name ?? sid],
          ["Task", <span key="t" className="mono">{detail.task_id}</span>],
          ["Failed", <RelTime key="f" value={detail.failed_at} />],
          ["Error", `${detail.error_type ?? ""} ${detail.error_message ?? ""}`.trim() || null],
          ["Queue", detail.queue_name ?? null],
          ["DLQ", detail.dlq_name ?? null],
          ["Attempt", `${detail.attempt ?? "?"} of ${detail.max_attempts ?? "?"}`],
          ["Worker", detail.worker_id ?? null],
          ["Investigation", <Badge key="i" status={investigated ? "completed" : "pending"} label={detail.investigation_status ?? "unreviewed"} />],
          ["Retry", detail.retry_status ?? null],
        ]}
      />
      <div className="row-actions">
        <CopyButton text={JSON.stringify(detail.payload ?? null, null, 2)} label="Copy payload" />
        <CopyButton text={`${detail.error_type ?? ""}: ${detail.error_message ?? ""}\n${detail.traceback ?? ""}`} label="Copy error" />
        <button type="button" onClick={() => download(`failure-${fid}.json`, detail)}>
          Download JSON
        </button>
      </div>
      {detail.payload !== undefined ? (
        <details>
          <summary>Payload</summary>
          <JsonBlock value={detail.payload} />
        </details>
      ) : null}
      {canOperate ? (
        <>
          <h3>Investigation</h3>
          {investigated ? null : (
            <p>
              <label htmlFor={noteId}>Note</label>
              <input id={noteId} value={note} onChange={(e) => setNote(e.target.value)} />
            </p>
          )}
          <button type="button" onClick={() => investigate.mutate(!investigated)} disabled={investigate.isPending}>
            {investigated ? "Mark unreviewed" : "Mark investigated"}
          </button>
          {investigate.isError ? <ErrorNote error={investigate.error} /> : null}
          <RetryForm detail={detail} onRetried={() => refresh()} />
          <h3>Delete</h3>
          <button type="button" className="danger" onClick={() => setConfirmDelete(true)}>
            Delete failure record
          </button>
        </>
      ) : (
        <p className="muted">Operators can investigate, retry and delete failures.</p>
      )}
      {confirmDelete ? (
        <ConfirmDialog
          title="Delete this failure record?"
          confirmLabel="Delete"
          danger
          busy={remove.isPending}
          error={remove.error}
          onCancel={() => setConfirmDelete(false)}
          onConfirm={() => remove.mutate()}
        >
          <p>The record goes; the task itself and its DLQ copy are not touched.</p>
        </ConfirmDialog>
      ) : null}
    </>
  );
}

/** Retry to a queue, optionally with a new payload (checked before sending). */
export function RetryForm({ detail, onRetried }: { detail: FailedTaskDetail; onRetried: () => void }) {
  const api = useApi();
  const [target, setTarget] = useState(detail.source_queue_name ?? detail.queue_name ?? "");
  const [override, setOverride] = useState("");
  const [note, setNote] = useState("");
  const [invalid, setInvalid] = useState<string | null>(null);
  const ids = { target: useId(), note: useId() };
  const retry = useMutation({
    mutationFn: (body: Parameters<typeof api.retryFailedTask>[2]) => api.retryFailedTask(detail.service_id, detail.failure_id, body),
    onSuccess: onRetried,
  });
  return (
    <form
      aria-label="Retry"
      onSubmit={(e) => {
        e.preventDefault();
        const check = checkJsonObject(override);
        if (!check.ok) {
          setInvalid(check.message);
          return;
        }
        setInvalid(null);
        retry.mutate({
          target_queue: target.trim() || undefined,
          override_payload: check.value,
          note: note.trim() || undefined,
        });
      }}
    >
      <h3>Retry</h3>
      <p>
        <label htmlFor={ids.target}>Target queue</label>
        <input id={ids.target} value={target} onChange={(e) => setTarget(e.target.value)} />
      </p>
      <JsonField label="Override payload (JSON object, optional)" rows={5} value={override} onChange={setOverride} invalid={invalid} />
      <p>
        <label htmlFor={ids.note}>Note</label>
        <input id={ids.note} value={note} onChange={(e) => setNote(e.target.value)} />
      </p>
      <button type="submit" className="primary" disabled={retry.isPending}>
        {retry.isPending ? "Retrying…" : "Retry task"}
      </button>
      {retry.isSuccess ? (
        <p role="status">
          Retried to <code>{retry.data.target_queue}</code>
          {retry.data.retried_task_id ? ` as ${retry.data.retried_task_id}` : ""}: {retry.data.retry_status}.
        </p>
      ) : null}
      {retry.isError ? <ErrorNote error={retry.error} title="Retry refused" /> : null}
    </form>
  );
}
