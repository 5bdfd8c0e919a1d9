// The one place the browser talks to the Studio backend. Every call is typed;
// every path is under /studio (the browser never calls a service directly).
import type {
  ApiToken,
  AuditEntry,
  BrokerDlqMessage,
  CancelResult,
  ControlPlaneEvent,
  CreatedToken,
  DlqMessageSummary,
  EmailSettings,
  ExecutionGraph,
  FailedTaskDetail,
  FailedTaskPage,
  GatewayServiceExport,
  Identity,
  LogEntry,
  MetricsResponse,
  Page,
  Pod,
  ReplayResult,
  RetryRequest,
  RetryResult,
  Role,
  ServiceHealth,
  ServiceInput,
  ServiceList,
  ServiceRecord,
  ServiceSearchItem,
  ServiceUpdate,
  StatusEvent,
  SubmitTaskRequest,
  SubmitTaskResult,
  TaskDetail,
  TaskDetailWire,
  TaskRef,
  TaskSearchDocument,
  TracesResponse,
  WorkflowRun,
  WorkflowTopology,
} from "./types";

/** An error answered by the backend (or the network), with its message for people. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string | null;
  readonly retryable: boolean;
  readonly serviceId: string | null;

  constructor(status: number, message: string, extra: { code?: string | null; retryable?: boolean; serviceId?: string | null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = extra.code ?? null;
    this.retryable = extra.retryable ?? status >= 500;
    this.serviceId = extra.serviceId ?? null;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A readable message from any of the backend's error bodies. */
export function errorMessage(status: number, body: unknown): string {
  if (isRecord(body)) {
    const detail = body.detail ?? body.message ?? body.error;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      const parts = detail.map((item) => {
        if (!isRecord(item)) return String(item);
        const loc = Array.isArray(item.loc) ? item.loc.filter((p) => p !== "body").join(".") : "";
        const msg = typeof item.msg === "string" ? item.msg : JSON.stringify(item);
        return loc ? `${loc}: ${msg}` : msg;
      });
      if (parts.length > 0) return parts.join("; ");
    }
  }
  if (typeof body === "string" && body.trim()) return body.trim().slice(0, 300);
  return `request failed (HTTP ${status})`;
}

export type Query = Record<string, string | number | boolean | null | undefined | string[]>;

/** `?a=1&b=x` from a record; empty and undefined values are left out, arrays repeat. */
export function queryString(query: Query | undefined): string {
  if (!query) return "";
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) value.forEach((v) => params.append(key, v));
    else params.append(key, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

const enc = encodeURIComponent;

/**
 * Checks that an answer has the list a panel reads (an older or partial
 * backend may answer another route's shape); a clear error otherwise.
 */
export function expectList<T>(value: T, key: string, what: string): T {
  const list = isRecord(value) ? value[key] : undefined;
  if (!Array.isArray(list)) throw new ApiError(0, `the backend did not answer ${what} (no "${key}" list): it may not offer this yet`, { retryable: false });
  return value;
}

function toRef(ref: TaskRef | string, fallbackService: string): TaskRef {
  if (typeof ref !== "string") return ref;
  const colon = ref.indexOf(":");
  return colon > 0 ? { service_id: ref.slice(0, colon), task_id: ref.slice(colon + 1) } : { service_id: fallbackService, task_id: ref };
}

/** One shape for the task detail, whichever of the accepted wire shapes came. */
export function normalizeTaskDetail(wire: TaskDetailWire): TaskDetail {
  const latest = wire.latest_status;
  let latestEvent: StatusEvent | null = null;
  if (latest && "status" in latest && typeof latest.status === "string") latestEvent = latest as StatusEvent;
  else if (latest && "event" in latest && latest.event) latestEvent = latest.event as StatusEvent;
  const history = Array.isArray(wire.history) ? wire.history : (wire.history?.events ?? []);
  const dlq = Array.isArray(wire.dlq_messages) ? wire.dlq_messages : (wire.dlq_messages?.items ?? []);
  return {
    service: wire.service ?? null,
    service_id: wire.service_id,
    task_id: wire.task_id,
    task_ref: wire.task_ref ? toRef(wire.task_ref, wire.service_id) : { service_id: wire.service_id, task_id: wire.task_id },
    latest_status: latestEvent,
    history,
    dlq_messages: dlq,
    execution_graph: wire.execution_graph ?? null,
    joined_refs: (wire.joined_refs ?? []).map((r) => toRef(r, wire.service_id)),
    join_warnings: (wire.join_warnings ?? []).map((w) => (typeof w === "string" ? w : (w.detail ?? w.message ?? JSON.stringify(w)))),
    errors: wire.errors ?? [],
  };
}

export interface ApiOptions {
  token: string | null;
  fetch?: typeof fetch;
}

export type Api = ReturnType<typeof createApi>;

export function createApi({ token, fetch: fetchImpl }: ApiOptions) {
  const doFetch = fetchImpl ?? ((input: RequestInfo | URL, init?: RequestInit) => fetch(input, init));

  async function request<T>(method: string, path: string, opts: { query?: Query; body?: unknown; signal?: AbortSignal } = {}): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (token) headers.authorization = `Bearer ${token}`;
    let body: string | undefined;
    if (opts.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(opts.body);
    }
    let response: Response;
    try {
      response = await doFetch(`${path}${queryString(opts.query)}`, { method, headers, body, signal: opts.signal });
    } catch (err) {
      if (err instanceof DOMException && err.name === "AbortError") throw err;
      throw new ApiError(0, "the Studio backend cannot be reached", { retryable: true });
    }
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    let parsed: unknown = text;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    if (!response.ok) {
      const rec = isRecord(parsed) ? parsed : {};
      throw new ApiError(response.status, errorMessage(response.status, parsed), {
        code: typeof rec.code === "string" ? rec.code : typeof rec.error === "string" ? rec.error : null,
        retryable: typeof rec.retryable === "boolean" ? rec.retryable : undefined,
        serviceId: typeof rec.service_id === "string" ? rec.service_id : null,
      });
    }
    return parsed as T;
  }

  const get = <T>(path: string, query?: Query, signal?: AbortSignal) => request<T>("GET", path, { query, signal });

  return {
    token,
    /** The fetch this client uses (the live streams use it too). */
    fetch: doFetch,
    // identity and auth
    whoami: () => get<Identity>("/studio/auth/whoami"),
    // registry
    listServices: () => get<ServiceList>("/studio/services"),
    getService: (id: string) => get<ServiceRecord>(`/studio/services/${enc(id)}`),
    searchServices: (q: Query) => get<Page<ServiceSearchItem>>("/studio/services/search", q),
    createService: (input: ServiceInput) => request<ServiceRecord>("POST", "/studio/services", { body: input }),
    updateService: (id: string, update: ServiceUpdate) => request<ServiceRecord>("PATCH", `/studio/services/${enc(id)}`, { body: update }),
    deleteService: (id: string) => request<void>("DELETE", `/studio/services/${enc(id)}`),
    refreshService: (id: string) => request<ServiceRecord>("POST", `/studio/services/${enc(id)}/refresh`),
    getHealth: (id: string) => get<ServiceHealth>(`/studio/services/${enc(id)}/health`),
    refreshHealth: (id: string) => request<ServiceHealth>("POST", `/studio/services/${enc(id)}/health/refresh`),
    gatewayServices: () => get<{ count: number; services: GatewayServiceExport[] }>("/studio/gateway/services"),
    // tasks
    searchTasks: (q: Query) => get<Page<TaskSearchDocument>>("/studio/tasks/search", q),
    cancelTask: (sid: string, tid: string, reason?: string) =>
      request<CancelResult>("POST", `/studio/services/${enc(sid)}/tasks/${enc(tid)}/cancel`, { body: reason ? { reason } : undefined }),
    cancelWorkflowRun: (sid: string, tid: string, reason?: string) =>
      request<CancelResult>("POST", `/studio/services/${enc(sid)}/workflow/runs/${enc(tid)}/cancel`, { body: reason ? { reason } : undefined }),
    submitTask: (sid: string, body: SubmitTaskRequest) => request<SubmitTaskResult>("POST", `/studio/services/${enc(sid)}/tasks`, { body }),
    taskDetail: async (sid: string, tid: string) => normalizeTaskDetail(await get<TaskDetailWire>(`/studio/tasks/${enc(sid)}/${enc(tid)}`, { join: "all" })),
    taskGraph: (sid: string, tid: string) => get<ExecutionGraph>(`/studio/services/${enc(sid)}/executions/${enc(tid)}/graph`),
    taskEvents: (sid: string, tid: string, q?: Query) => get<Page<ControlPlaneEvent>>(`/studio/tasks/${enc(sid)}/${enc(tid)}/events`, q),
    taskLogs: async (sid: string, tid: string, q: Query) => expectList(await get<Page<LogEntry>>(`/studio/tasks/${enc(sid)}/${enc(tid)}/logs`, q), "items", "log lines"),
    taskMetrics: async (sid: string, tid: string, q: Query) =>
      expectList(await get<MetricsResponse>(`/studio/tasks/${enc(sid)}/${enc(tid)}/metrics`, q), "series", "metrics"),
    taskTraces: async (sid: string, tid: string) => expectList(await get<TracesResponse>(`/studio/tasks/${enc(sid)}/${enc(tid)}/traces`), "spans", "traces"),
    taskStreamUrl: (sid: string, tid: string) => `/studio/tasks/${enc(sid)}/${enc(tid)}/stream`,
    // service observability
    serviceEvents: (sid: string, q?: Query) => get<Page<ControlPlaneEvent>>(`/studio/services/${enc(sid)}/events`, q),
    serviceEventsStreamUrl: (sid: string) => `/studio/services/${enc(sid)}/events/stream`,
    serviceLogs: async (sid: string, q: Query) => expectList(await get<Page<LogEntry>>(`/studio/services/${enc(sid)}/logs`, q), "items", "log lines"),
    serviceMetrics: async (sid: string, q: Query) => expectList(await get<MetricsResponse>(`/studio/services/${enc(sid)}/metrics`, q), "series", "metrics"),
    servicePods: async (sid: string) => expectList(await get<{ service_id: string; count: number; pods: Pod[] }>(`/studio/services/${enc(sid)}/pods`), "pods", "pods"),
    workflowTopology: (sid: string) => get<WorkflowTopology>(`/studio/services/${enc(sid)}/workflow/topology`),
    workflowRun: (sid: string, tid: string) => get<WorkflowRun>(`/studio/services/${enc(sid)}/workflow/runs/${enc(tid)}`),
    // DLQ
    dlqMessages: (sid: string, q: Query) => get<Page<DlqMessageSummary>>(`/studio/services/${enc(sid)}/dlq/messages`, q),
    brokerDlqMessages: (sid: string, q: Query) => get<{ service_id: string; items: BrokerDlqMessage[] }>(`/studio/services/${enc(sid)}/broker/dlq/messages`, q),
    replayDlq: (sid: string, dlqId: string, force = false) =>
      request<ReplayResult>("POST", `/studio/services/${enc(sid)}/dlq/messages/${enc(dlqId)}/replay`, { query: { force: force || undefined } }),
    // failed tasks
    failedTasks: (q: Query) => get<FailedTaskPage>("/studio/failed-tasks", q),
    failedTask: (sid: string, fid: string) => get<FailedTaskDetail>(`/studio/failed-tasks/${enc(sid)}/${enc(fid)}`),
    markInvestigated: (sid: string, fid: string, note: string) =>
      request<FailedTaskDetail>("POST", `/studio/failed-tasks/${enc(sid)}/${enc(fid)}/mark-investigated`, { body: note ? { note } : {} }),
    markUninvestigated: (sid: string, fid: string) => request<FailedTaskDetail>("POST", `/studio/failed-tasks/${enc(sid)}/${enc(fid)}/mark-uninvestigated`),
    retryFailedTask: (sid: string, fid: string, body: RetryRequest) => request<RetryResult>("POST", `/studio/failed-tasks/${enc(sid)}/${enc(fid)}/retry`, { body }),
    deleteFailedTask: (sid: string, fid: string) => request<{ deleted: boolean }>("DELETE", `/studio/failed-tasks/${enc(sid)}/${enc(fid)}`),
    emailSettings: () => get<EmailSettings>("/studio/failed-task-email-settings"),
    updateEmailSettings: (body: { enabled?: boolean; batch_wait_seconds?: number }) =>
      request<EmailSettings>("PATCH", "/studio/failed-task-email-settings", { body }),
    // admin
    audit: (q: Query) => get<Page<AuditEntry>>("/studio/audit", q),
    tokens: () => get<{ count: number; tokens: ApiToken[] }>("/studio/auth/tokens"),
    createToken: (body: { name: string; role: Role }) => request<CreatedToken>("POST", "/studio/auth/tokens", { body }),
    revokeToken: (tokenId: string) => request<void>("DELETE", `/studio/auth/tokens/${enc(tokenId)}`),
  };
}
