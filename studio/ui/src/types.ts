// Wire shapes of the Studio backend's /studio/* routes (ANCHOR §2.2, seed 004).
// Times are ISO-8601 UTC strings on the wire; the UI renders them locally.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export type Role = "reader" | "operator" | "admin";

export type RegistryStatus = "registered" | "healthy" | "unavailable" | "disabled";
export type OverallHealth = "healthy" | "degraded" | "stale" | "unreachable" | "unknown" | "disabled";

export interface LokiLogConfig {
  provider: "loki";
  base_url: string;
  tenant_id?: string | null;
  service_selector_labels: Record<string, string>;
  source_label?: string | null;
  pod_label?: string;
  pod_match_mode?: "exact" | "regex";
  pod_value_template?: string;
  task_id_label?: string | null;
  correlation_id_label?: string | null;
  level_label?: string | null;
  task_match_mode?: "label" | "contains" | "regex" | "structured_metadata";
  task_match_template?: string | null;
}

export interface PrometheusMetricsConfig {
  provider: "prometheus";
  base_url: string;
  namespace?: string | null;
  service_selector_labels: Record<string, string>;
  runtime_service_label_value?: string | null;
  namespace_label?: string;
  pod_label?: string;
  container_label?: string;
  step_seconds?: number;
  task_window_padding_seconds?: number;
}

export interface TempoTraceConfig {
  provider: "tempo";
  base_url: string;
  public_base_url?: string | null;
  tenant_id?: string | null;
  query_path?: string;
}

export interface HealthPart {
  state: string;
  checked_at?: string | null;
  error_detail?: string | null;
  detail?: string | null;
}

/** Studio's health document (overall status plus the parts it is made of). */
export interface ServiceHealth {
  service_id?: string;
  overall_status: OverallHealth;
  registry_status?: RegistryStatus;
  last_checked_at?: string | null;
  http_status?: HealthPart | null;
  capability_status?: HealthPart | null;
  observation_freshness?: HealthPart | null;
  worker_health?: (HealthPart & { workers?: WorkerHealth[]; latest_heartbeat_at?: string | null }) | null;
  events_skipped?: number;
}

export interface WorkerHealth {
  worker_name: string;
  running: boolean;
  last_heartbeat_at?: string | null;
  active_leases?: string[];
}

export interface ServiceRecord {
  service_id: string;
  name: string;
  environment: string;
  auth_mode: string;
  base_url: string;
  tags: string[];
  status: RegistryStatus;
  capabilities?: CapabilityDocument | null;
  last_seen_at?: string | null;
  log_config?: LokiLogConfig | null;
  metrics_config?: PrometheusMetricsConfig | null;
  trace_config?: TempoTraceConfig | null;
  health?: ServiceHealth | null;
}

export interface CapabilityDocument {
  supported_routes?: string[];
  feature_flags?: string[];
  [key: string]: Json | undefined;
}

export interface ServiceInput {
  service_id: string;
  name: string;
  base_url: string;
  environment: string;
  tags: string[];
  auth_mode: string;
  log_config: LokiLogConfig | null;
  metrics_config: PrometheusMetricsConfig | null;
  trace_config: TempoTraceConfig | null;
}

export type ServiceUpdate = Partial<Omit<ServiceInput, "service_id">> & { status?: RegistryStatus };

export interface ServiceList {
  count: number;
  services: ServiceRecord[];
}

export interface ServiceSearchItem extends ServiceRecord {
  matched_fields?: string[];
}

export interface Page<T> {
  count?: number;
  items: T[];
  next_cursor?: string | null;
}

export interface GatewayServiceExport {
  studio_service_id: string;
  name: string;
  display_name: string;
  base_url: string;
  environment: string;
  tags: string[];
  auth_mode: string;
  status: string;
  capabilities: CapabilityDocument;
  default_route_pattern: string;
}

export interface StatusEvent {
  task_id: string;
  status: string;
  timestamp?: string | null;
  message?: string | null;
  meta?: JsonObject;
  result?: JsonObject | null;
  correlation_id?: string | null;
  event_id?: string | null;
  service?: string | null;
  [key: string]: Json | undefined;
}

export interface TaskSearchDocument {
  service_id: string;
  task_id: string;
  correlation_id?: string | null;
  status?: string | null;
  stage?: string | null;
  updated_at?: string | null;
  created_at?: string | null;
  task_ref?: string | null;
}

export interface GraphNode {
  id: string;
  kind: string;
  task_id?: string | null;
  label: string;
  timestamp?: string | null;
  annotations?: JsonObject;
  service_id?: string;
  task_ref?: string;
}

export interface GraphEdge {
  source: string;
  target: string;
  kind: string;
  timestamp?: string | null;
  annotations?: JsonObject;
}

export interface ExecutionGraph {
  task_id: string;
  topology_kind?: string;
  summary?: {
    status?: string | null;
    started_at?: string | null;
    ended_at?: string | null;
    duration_ms?: number | null;
    graph_completeness?: "full" | "partial";
  };
  nodes: GraphNode[];
  edges: GraphEdge[];
  annotations?: JsonObject;
  related_task_ids?: string[];
  service_id?: string;
  task_ref?: string;
}

export interface SectionError {
  section?: string;
  detail: string;
  code?: string;
  service_id?: string;
  upstream_status?: number | null;
  retryable?: boolean;
}

export interface DlqMessageSummary {
  dlq_id: string;
  queue_name: string;
  source_queue_name?: string | null;
  task_id?: string | null;
  reason?: string | null;
  state: "dead_lettered" | "replayed" | string;
  dead_lettered_at?: string | null;
  replay_count?: number;
  replayed_at?: string | null;
  service_id?: string;
  task_ref?: string;
  [key: string]: Json | undefined;
}

export interface BrokerDlqMessage {
  queue_name: string;
  task_id?: string | null;
  reason?: string | null;
  headers?: JsonObject;
  body?: Json;
  [key: string]: Json | undefined;
}

/** Studio's answer to a task cancel (relayna's 202 body). */
export interface CancelResult {
  service_id: string;
  task_id: string;
  state: "requested" | "pending";
  reason: string | null;
  status: null;
}

export interface ReplayResult {
  dlq_id: string;
  target_queue_name: string;
  state: string;
  replayed_at: string;
  replay_count: number;
  forced: boolean;
}

export interface TaskRef {
  service_id: string;
  task_id: string;
  correlation_id?: string | null;
  parent_refs?: TaskRef[];
  child_refs?: TaskRef[];
}

/** The task detail as Studio answers it (several shapes are accepted on the wire). */
export interface TaskDetailWire {
  service?: ServiceRecord | null;
  service_id: string;
  task_id: string;
  task_ref?: TaskRef | string | null;
  latest_status?: { event?: StatusEvent } | StatusEvent | null;
  history?: StatusEvent[] | { count?: number; events: StatusEvent[] } | null;
  dlq_messages?: DlqMessageSummary[] | { items: DlqMessageSummary[] } | null;
  execution_graph?: ExecutionGraph | null;
  joined_refs?: (TaskRef | string)[];
  join_warnings?: (string | { detail?: string; message?: string })[];
  errors?: SectionError[];
}

/** The task detail the pages use: one shape. */
export interface TaskDetail {
  service?: ServiceRecord | null;
  service_id: string;
  task_id: string;
  task_ref: TaskRef;
  latest_status: StatusEvent | null;
  history: StatusEvent[];
  dlq_messages: DlqMessageSummary[];
  execution_graph: ExecutionGraph | null;
  joined_refs: TaskRef[];
  join_warnings: string[];
  errors: SectionError[];
}

export interface FailedTaskSummary {
  failure_id: string;
  service_id: string;
  service_name?: string | null;
  task_id: string;
  correlation_id?: string | null;
  queue_name?: string | null;
  source_queue_name?: string | null;
  retry_queue_name?: string | null;
  dlq_name?: string | null;
  status?: string | null;
  attempt?: number | null;
  max_attempts?: number | null;
  failed_at?: string | null;
  error_type?: string | null;
  error_message?: string | null;
  worker_id?: string | null;
  investigation_status?: string | null;
  investigated_by?: string | null;
  investigation_note?: string | null;
  retry_status?: string | null;
  payload_available?: boolean;
  task_ref?: string;
  [key: string]: Json | undefined;
}

export interface FailedTaskDetail extends FailedTaskSummary {
  payload?: Json;
  traceback?: string | null;
}

export interface FailedTaskPage {
  items: FailedTaskSummary[];
  next_cursor?: string | null;
  errors?: SectionError[];
  scanned_services?: string[];
}

export interface RetryRequest {
  target_queue?: string;
  override_payload?: Json;
  note?: string;
}

export interface RetryResult {
  failure_id: string;
  target_queue: string;
  retry_status: string;
  retried_at: string;
  retried_by?: string | null;
  retried_task_id?: string | null;
}

export interface EmailSettings {
  configured: boolean;
  enabled: boolean;
  batch_wait_seconds: number;
  max_batch_wait_seconds: number;
  receivers: string[];
}

export interface ControlPlaneEvent {
  service_id: string;
  task_id?: string | null;
  source_kind?: string;
  event_type?: string;
  dedupe_key?: string;
  timestamp?: string | null;
  ingested_at?: string | null;
  payload?: JsonObject;
  [key: string]: Json | undefined;
}

export interface LogEntry {
  service_id: string;
  task_id?: string | null;
  correlation_id?: string | null;
  timestamp: string;
  level?: string | null;
  source: string;
  message: string;
  fields?: JsonObject;
}

export interface MetricPoint {
  timestamp: string;
  value: number | null;
}

export interface MetricSeries {
  metric: string;
  unit: string;
  labels: Record<string, string>;
  points: MetricPoint[];
}

export interface MetricsResponse {
  service_id: string;
  task_id?: string | null;
  from: string;
  to: string;
  step_seconds: number;
  approximate: boolean;
  warnings: string[];
  series: MetricSeries[];
}

export interface Pod {
  name: string;
  namespace?: string | null;
  phase?: string | null;
  labels?: Record<string, string>;
}

export interface TraceSpan {
  trace_id: string;
  span_id: string;
  parent_span_id?: string | null;
  name: string;
  service_name?: string | null;
  start_time?: string | null;
  end_time?: string | null;
  duration_ms?: number | null;
  status?: string | null;
  attributes?: JsonObject;
}

export interface TracesResponse {
  service_id: string;
  task_id: string;
  trace_ids: string[];
  spans: TraceSpan[];
  warnings: string[];
  backend_url?: string | null;
}

export interface WorkflowTopology {
  service_id?: string;
  workflow_exchange?: string;
  status_queue?: string;
  stages: WorkflowStage[];
  entry_routes: { route?: string; stage?: string; routing_key?: string; [key: string]: Json | undefined }[];
  edges: { source: string; target: string; [key: string]: Json | undefined }[];
}

/** A workflow run as the service describes it (`GET /studio/services/{id}/workflow/runs/{task_id}`). */
export interface WorkflowRun {
  service_id?: string;
  run: {
    task_id: string;
    status: string;
    stages: { stage: string; status: string; attempts?: number; deliveries?: number; last_error?: Json }[];
  };
  messages?: Json;
  lineage?: Json;
}

export interface WorkflowStage {
  name: string;
  queue?: string | null;
  publish_routing_key?: string | null;
  next_stages?: string[];
  terminal?: boolean;
  [key: string]: Json | undefined;
}

export interface AuditEntry {
  id: number;
  at: string;
  actor: string;
  token_id?: string | null;
  role?: Role | null;
  action: string;
  target?: string | null;
  outcome: "success" | "failure" | "denied" | string;
  status_code?: number | null;
}

export interface ApiToken {
  token_id: string;
  name?: string | null;
  role: Role;
  service_id?: string | null;
  created_at?: string | null;
  created_by?: string | null;
  last_used_at?: string | null;
}

export interface CreatedToken extends ApiToken {
  token: string;
}

export interface Identity {
  auth_enabled: boolean;
  actor: string;
  role: Role;
  token_id?: string | null;
  service_id?: string | null;
}

/** `POST /studio/services/{id}/tasks` (the service's own `POST /tasks` body). */
export interface SubmitTaskRequest {
  task_type?: string;
  payload: Json;
}

export interface SubmitTaskResult {
  service_id: string;
  task_id: string;
  task_type?: string;
  status_url?: string;
  events_url?: string;
  graph_url?: string;
}
