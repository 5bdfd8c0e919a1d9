// Filters that live in the URL (so every search is a deep link), the form that
// edits them, and the other pieces every list page shares.
import type { UseInfiniteQueryResult } from "@tanstack/react-query";
import type { FormEvent } from "react";
import { useSearchParams } from "react-router-dom";

export interface FilterField {
  name: string;
  label?: string;
  kind?: "text" | "number" | "datetime" | "select";
  options?: string[];
  /** A value that is the default: not written to the URL. */
  defaultValue?: string;
}

/** datetime-local text <-> ISO UTC for the URL and the API. */
export function localToIso(value: string): string {
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

export function isoToLocal(value: string): string {
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** The current values of `fields` from the URL ("" when absent, else the default). */
export function useUrlFilters(fields: FilterField[]): [Record<string, string>, (next: Record<string, string>) => void] {
  const [params, setParams] = useSearchParams();
  const values = Object.fromEntries(fields.map((f) => [f.name, params.get(f.name) ?? f.defaultValue ?? ""]));
  return [values, (next) => setParams(next)];
}

/** A form's values as URL parameters: blanks and defaults left out, times as ISO. */
export function formValues(form: HTMLFormElement, fields: FilterField[]): Record<string, string> {
  const data = new FormData(form);
  const out: Record<string, string> = {};
  for (const f of fields) {
    let v = String(data.get(f.name) ?? "").trim();
    if (v && f.kind === "datetime") v = localToIso(v);
    if (v && v !== f.defaultValue) out[f.name] = v;
  }
  return out;
}

interface FormProps {
  label: string;
  fields: FilterField[];
  values: Record<string, string>;
  onApply: (values: Record<string, string>) => void;
  submitLabel?: string;
  onClear?: () => void;
}

export function FilterForm({ label, fields, values, onApply, submitLabel = "Apply", onClear }: FormProps) {
  const submit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    onApply(formValues(e.currentTarget, fields));
  };
  // Keyed by the values: going back in history refills the form.
  return (
    <form className="filters" onSubmit={submit} key={JSON.stringify(values)} aria-label={label}>
      {fields.map((f) => {
        const value = values[f.name] ?? "";
        const text = f.label ?? f.name.replace(/_/g, " ");
        return (
          <label key={f.name}>
            {text}
            {f.kind === "select" ? (
              <select name={f.name} defaultValue={value}>
                <option value="">any</option>
                {(f.options ?? []).map((o) => (
                  <option key={o} value={o}>
                    {o}
                  </option>
                ))}
              </select>
            ) : f.kind === "datetime" ? (
              <input name={f.name} type="datetime-local" defaultValue={value ? isoToLocal(value) : ""} />
            ) : f.kind === "number" ? (
              <input name={f.name} type="number" min={1} max={200} defaultValue={value} />
            ) : (
              <input name={f.name} defaultValue={value} />
            )}
          </label>
        );
      })}
      <button type="submit">{submitLabel}</button>
      {onClear ? (
        <button type="button" className="link" onClick={onClear}>
          Clear
        </button>
      ) : null}
    </form>
  );
}

/** Column headings; an empty heading is an actions column (named for screen readers). */
export function TableHead({ columns }: { columns: string[] }) {
  return (
    <thead>
      <tr>
        {columns.map((c, i) => (
          <th key={i} scope="col">
            {c || <span className="sr-only">Actions</span>}
          </th>
        ))}
      </tr>
    </thead>
  );
}

/** "Load next page" for a cursor-paged list. */
export function LoadMore({ query, label = "Load next page" }: { query: UseInfiniteQueryResult<unknown>; label?: string }) {
  if (!query.hasNextPage) return null;
  return (
    <button type="button" onClick={() => void query.fetchNextPage()} disabled={query.isFetchingNextPage}>
      {query.isFetchingNextPage ? "Loading…" : label}
    </button>
  );
}
