// A labelled textarea for JSON an operator types, with the client-side check's message.
import { useId } from "react";

export function JsonField({ label, value, onChange, invalid, rows }: { label: string; value: string; onChange: (text: string) => void; invalid: string | null; rows: number }) {
  const ids = { box: useId(), err: useId() };
  return (
    <p>
      <label htmlFor={ids.box}>{label}</label>
      <textarea
        id={ids.box}
        rows={rows}
        className="mono"
        value={value}
        onChange={(e) => onChange(e.target.value)}
        aria-invalid={invalid ? true : undefined}
        aria-describedby={invalid ? ids.err : undefined}
      />
      {invalid ? (
        <span id={ids.err} className="field-error" role="alert">
          {invalid}
        </span>
      ) : null}
    </p>
  );
}
