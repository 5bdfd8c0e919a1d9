// Create or edit a registered service, with its Loki, Prometheus and Tempo settings.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useId, useState, type FormEvent, type ReactNode } from "react";
import { useApi } from "../auth";
import type { ServiceRecord } from "../types";
import { EMPTY_FORM, FormError, formToInput, recordToForm, type ServiceForm } from "./serviceForm";
import { ErrorNote } from "./ui";

interface Props {
  existing: ServiceRecord | null;
  onDone: (service: ServiceRecord) => void;
  onCancel: () => void;
}

export function ServiceFormView({ existing, onDone, onCancel }: Props) {
  const api = useApi();
  const queryClient = useQueryClient();
  const [form, setForm] = useState<ServiceForm>(() => (existing ? recordToForm(existing) : EMPTY_FORM));
  const [invalid, setInvalid] = useState<FormError | null>(null);
  const save = useMutation({
    mutationFn: (f: ServiceForm) => {
      const input = formToInput(f);
      if (!existing) return api.createService(input);
      const { service_id: _id, ...update } = input;
      void _id;
      return api.updateService(existing.service_id, update);
    },
    onSuccess: (service) => {
      void queryClient.invalidateQueries({ queryKey: ["services"] });
      void queryClient.invalidateQueries({ queryKey: ["service", service.service_id] });
      onDone(service);
    },
  });
  const set = <K extends keyof ServiceForm>(key: K, value: ServiceForm[K]) => setForm((f) => ({ ...f, [key]: value }));
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setInvalid(null);
    try {
      formToInput(form);
    } catch (err) {
      if (err instanceof FormError) {
        setInvalid(err);
        return;
      }
      throw err;
    }
    save.mutate(form);
  };
  const text = (key: keyof ServiceForm, label: string, props: { hint?: string; disabled?: boolean; placeholder?: string } = {}) => (
    <Text
      label={label}
      value={String(form[key])}
      onChange={(v) => set(key, v as never)}
      invalid={invalid?.field === key ? invalid.message : null}
      {...props}
    />
  );
  return (
    <form onSubmit={submit} className="service-form" aria-label={existing ? `Edit ${existing.service_id}` : "Register a service"}>
      <fieldset>
        <legend>Identity</legend>
        {text("service_id", "Service id", { disabled: Boolean(existing), hint: "stable across deploys" })}
        {text("name", "Name")}
        {text("base_url", "Base URL", { placeholder: "http://checker.default.svc.cluster.local:8000" })}
        {text("environment", "Environment")}
        {text("tags", "Tags", { hint: "comma separated" })}
        {text("auth_mode", "Auth mode")}
      </fieldset>
      <Toggle label="Logs (Loki)" checked={form.loki_enabled} onChange={(v) => set("loki_enabled", v)}>
        {text("loki_base_url", "Loki URL")}
        {text("loki_tenant_id", "Tenant id")}
        {text("loki_labels", "Service selector labels", { hint: "key=value, e.g. service=checker" })}
        {text("loki_source_label", "Source label", { hint: "e.g. app" })}
        {text("loki_pod_label", "Pod label")}
        <Choice label="Pod match" value={form.loki_pod_match_mode} options={["exact", "regex"]} onChange={(v) => set("loki_pod_match_mode", v)} />
        {text("loki_pod_value_template", "Pod value template", { hint: "{pod}, {namespace}, {service_id}" })}
        <Choice
          label="Task match"
          value={form.loki_task_match_mode}
          options={["label", "contains", "regex", "structured_metadata"]}
          onChange={(v) => set("loki_task_match_mode", v)}
        />
        {text("loki_task_id_label", "Task id label")}
        {text("loki_task_match_template", "Task match template", { hint: "{task_id}" })}
      </Toggle>
      <Toggle label="Metrics (Prometheus)" checked={form.prom_enabled} onChange={(v) => set("prom_enabled", v)}>
        {text("prom_base_url", "Prometheus URL")}
        {text("prom_namespace", "Namespace")}
        {text("prom_labels", "Service selector labels", { hint: "low-cardinality pod labels, key=value" })}
        {text("prom_runtime_service", "Runtime service label value")}
        {text("prom_step_seconds", "Step (seconds)")}
      </Toggle>
      <Toggle label="Traces (Tempo)" checked={form.tempo_enabled} onChange={(v) => set("tempo_enabled", v)}>
        {text("tempo_base_url", "Tempo URL")}
        {text("tempo_public_base_url", "Public Tempo URL")}
        {text("tempo_tenant_id", "Tenant id")}
        {text("tempo_query_path", "Query path", { hint: "must contain {trace_id}" })}
      </Toggle>
      {save.isError ? <ErrorNote error={save.error} title="The backend refused the service" /> : null}
      <div className="dialog-actions">
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="primary" disabled={save.isPending}>
          {save.isPending ? "Saving…" : existing ? "Save changes" : "Register service"}
        </button>
      </div>
    </form>
  );
}

function Text(props: { label: string; value: string; onChange: (v: string) => void; hint?: string; disabled?: boolean; placeholder?: string; invalid: string | null }) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{props.label}</label>
      <input
        id={id}
        value={props.value}
        disabled={props.disabled}
        placeholder={props.placeholder}
        onChange={(e) => props.onChange(e.target.value)}
        aria-invalid={props.invalid ? true : undefined}
        aria-describedby={props.invalid || props.hint ? `${id}-note` : undefined}
      />
      {props.invalid ? (
        <span id={`${id}-note`} className="field-error" role="alert">
          {props.invalid}
        </span>
      ) : props.hint ? (
        <span id={`${id}-note`} className="hint">
          {props.hint}
        </span>
      ) : null}
    </div>
  );
}

function Choice<T extends string>({ label, value, options, onChange }: { label: string; value: T; options: T[]; onChange: (v: T) => void }) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <select id={id} value={value} onChange={(e) => onChange(e.target.value as T)}>
        {options.map((o) => (
          <option key={o}>{o}</option>
        ))}
      </select>
    </div>
  );
}

function Toggle({ label, checked, onChange, children }: { label: string; checked: boolean; onChange: (v: boolean) => void; children: ReactNode }) {
  return (
    <fieldset>
      <legend>
        <label>
          <input type="checkbox" checked={checked} onChange={(e) => onChange(e.target.checked)} /> {label}
        </label>
      </legend>
      {checked ? children : null}
    </fieldset>
  );
}
