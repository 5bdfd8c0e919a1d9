// The service form's data: flat text fields <-> the registry's nested JSON.
import type { LokiLogConfig, PrometheusMetricsConfig, ServiceInput, ServiceRecord, TempoTraceConfig } from "../types";

export interface ServiceForm {
  service_id: string;
  name: string;
  base_url: string;
  environment: string;
  tags: string;
  auth_mode: string;
  loki_enabled: boolean;
  loki_base_url: string;
  loki_tenant_id: string;
  loki_labels: string;
  loki_source_label: string;
  loki_pod_label: string;
  loki_pod_match_mode: "exact" | "regex";
  loki_pod_value_template: string;
  loki_task_match_mode: "label" | "contains" | "regex" | "structured_metadata";
  loki_task_id_label: string;
  loki_task_match_template: string;
  prom_enabled: boolean;
  prom_base_url: string;
  prom_namespace: string;
  prom_labels: string;
  prom_runtime_service: string;
  prom_step_seconds: string;
  tempo_enabled: boolean;
  tempo_base_url: string;
  tempo_public_base_url: string;
  tempo_tenant_id: string;
  tempo_query_path: string;
}

export const EMPTY_FORM: ServiceForm = {
  service_id: "",
  name: "",
  base_url: "",
  environment: "dev",
  tags: "",
  auth_mode: "internal_network",
  loki_enabled: false,
  loki_base_url: "",
  loki_tenant_id: "",
  loki_labels: "",
  loki_source_label: "",
  loki_pod_label: "pod",
  loki_pod_match_mode: "exact",
  loki_pod_value_template: "{pod}",
  loki_task_match_mode: "label",
  loki_task_id_label: "",
  loki_task_match_template: "",
  prom_enabled: false,
  prom_base_url: "",
  prom_namespace: "",
  prom_labels: "",
  prom_runtime_service: "",
  prom_step_seconds: "30",
  tempo_enabled: false,
  tempo_base_url: "",
  tempo_public_base_url: "",
  tempo_tenant_id: "",
  tempo_query_path: "/api/traces/{trace_id}",
};

export class FormError extends Error {
  readonly field: keyof ServiceForm;
  constructor(field: keyof ServiceForm, message: string) {
    super(message);
    this.field = field;
  }
}

/** `service=checker, app=api` (commas or new lines) -> {service: "checker", app: "api"}. */
export function parseLabels(text: string, field: keyof ServiceForm): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split(/[,\n]/)) {
    const part = raw.trim();
    if (!part) continue;
    const eq = part.indexOf("=");
    if (eq <= 0 || eq === part.length - 1) throw new FormError(field, `"${part}" is not key=value`);
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim().replace(/^"(.*)"$/, "$1");
    if (!key || !value) throw new FormError(field, `"${part}" is not key=value`);
    out[key] = value;
  }
  return out;
}

export function formatLabels(labels: Record<string, string> | undefined | null): string {
  return Object.entries(labels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");
}

const optional = (text: string): string | null => (text.trim() ? text.trim() : null);

function required(form: ServiceForm, field: keyof ServiceForm, what: string): string {
  const value = String(form[field]).trim();
  if (!value) throw new FormError(field, `${what} is required`);
  return value;
}

/** The request body for the form, or a FormError naming the field. */
export function formToInput(form: ServiceForm): ServiceInput {
  const tags = [...new Set(form.tags.split(",").map((t) => t.trim()).filter(Boolean))];
  let log_config: LokiLogConfig | null = null;
  if (form.loki_enabled) {
    const labels = parseLabels(form.loki_labels, "loki_labels");
    if (Object.keys(labels).length === 0) throw new FormError("loki_labels", "Loki needs at least one service selector label");
    log_config = {
      provider: "loki",
      base_url: required(form, "loki_base_url", "Loki URL"),
      tenant_id: optional(form.loki_tenant_id),
      service_selector_labels: labels,
      source_label: optional(form.loki_source_label),
      pod_label: form.loki_pod_label.trim() || "pod",
      pod_match_mode: form.loki_pod_match_mode,
      pod_value_template: form.loki_pod_value_template.trim() || "{pod}",
      task_match_mode: form.loki_task_match_mode,
      task_id_label: optional(form.loki_task_id_label),
      task_match_template: optional(form.loki_task_match_template),
    };
  }
  let metrics_config: PrometheusMetricsConfig | null = null;
  if (form.prom_enabled) {
    const labels = parseLabels(form.prom_labels, "prom_labels");
    if (Object.keys(labels).length === 0) throw new FormError("prom_labels", "Prometheus needs at least one service selector label");
    const step = Number(form.prom_step_seconds || "30");
    if (!Number.isInteger(step) || step < 5 || step > 3600) throw new FormError("prom_step_seconds", "step must be a whole number of seconds, 5 to 3600");
    metrics_config = {
      provider: "prometheus",
      base_url: required(form, "prom_base_url", "Prometheus URL"),
      namespace: optional(form.prom_namespace),
      service_selector_labels: labels,
      runtime_service_label_value: optional(form.prom_runtime_service),
      step_seconds: step,
    };
  }
  let trace_config: TempoTraceConfig | null = null;
  if (form.tempo_enabled) {
    const path = form.tempo_query_path.trim() || "/api/traces/{trace_id}";
    if (!path.includes("{trace_id}")) throw new FormError("tempo_query_path", "the query path must contain {trace_id}");
    trace_config = {
      provider: "tempo",
      base_url: required(form, "tempo_base_url", "Tempo URL"),
      public_base_url: optional(form.tempo_public_base_url),
      tenant_id: optional(form.tempo_tenant_id),
      query_path: path,
    };
  }
  return {
    service_id: required(form, "service_id", "Service id"),
    name: required(form, "name", "Name"),
    base_url: required(form, "base_url", "Base URL"),
    environment: required(form, "environment", "Environment"),
    auth_mode: required(form, "auth_mode", "Auth mode"),
    tags,
    log_config,
    metrics_config,
    trace_config,
  };
}

export function recordToForm(s: ServiceRecord): ServiceForm {
  const l = s.log_config;
  const m = s.metrics_config;
  const t = s.trace_config;
  return {
    ...EMPTY_FORM,
    service_id: s.service_id,
    name: s.name,
    base_url: s.base_url,
    environment: s.environment,
    tags: s.tags.join(", "),
    auth_mode: s.auth_mode,
    loki_enabled: Boolean(l),
    loki_base_url: l?.base_url ?? "",
    loki_tenant_id: l?.tenant_id ?? "",
    loki_labels: formatLabels(l?.service_selector_labels),
    loki_source_label: l?.source_label ?? "",
    loki_pod_label: l?.pod_label ?? "pod",
    loki_pod_match_mode: l?.pod_match_mode ?? "exact",
    loki_pod_value_template: l?.pod_value_template ?? "{pod}",
    loki_task_match_mode: l?.task_match_mode ?? "label",
    loki_task_id_label: l?.task_id_label ?? "",
    loki_task_match_template: l?.task_match_template ?? "",
    prom_enabled: Boolean(m),
    prom_base_url: m?.base_url ?? "",
    prom_namespace: m?.namespace ?? "",
    prom_labels: formatLabels(m?.service_selector_labels),
    prom_runtime_service: m?.runtime_service_label_value ?? "",
    prom_step_seconds: String(m?.step_seconds ?? 30),
    tempo_enabled: Boolean(t),
    tempo_base_url: t?.base_url ?? "",
    tempo_public_base_url: t?.public_base_url ?? "",
    tempo_tenant_id: t?.tenant_id ?? "",
    tempo_query_path: t?.query_path ?? "/api/traces/{trace_id}",
  };
}
