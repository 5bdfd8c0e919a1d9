// Small shared pieces: sections with loading/empty/error states, badges,
// relative times, confirmation dialogs.
import type { UseQueryResult } from "@tanstack/react-query";
import { Component, createContext, useContext, useEffect, useId, useRef, useState, type ErrorInfo, type ReactNode } from "react";
import { ApiError } from "../api";
import { absoluteTime, relativeTime } from "../format";
import { stateTone } from "../timeline";

const NowContext = createContext<number>(0);

/** One clock for every relative time on the page (ticks every 15 s). */
export function NowProvider({ children, intervalMs = 15000 }: { children: ReactNode; intervalMs?: number }) {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs]);
  return <NowContext.Provider value={now}>{children}</NowContext.Provider>;
}

export function RelTime({ value }: { value: string | null | undefined }) {
  const now = useContext(NowContext) || Date.now();
  if (!value) return <span className="muted">—</span>;
  return (
    <time dateTime={value} title={absoluteTime(value)}>
      {relativeTime(value, now)}
    </time>
  );
}

export function Badge({ status, label }: { status: string | null | undefined; label?: string }) {
  const text = label ?? status ?? "unknown";
  return <span className={`badge tone-${stateTone(status)}`}>{text}</span>;
}

export function errorText(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}

export function ErrorNote({ error, title }: { error: unknown; title?: string }) {
  const status = error instanceof ApiError && error.status ? ` (HTTP ${error.status})` : "";
  return (
    <div className="error-note" role="alert">
      {title ? <strong>{title}: </strong> : null}
      {errorText(error)}
      {status}
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p className="loading" role="status" aria-live="polite">
      Loading {what}…
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>;
}

/** A render failure inside one panel stays in that panel (the page keeps working). */
export class PanelBoundary extends Component<{ children: ReactNode; what: string }, { error: unknown }> {
  override state: { error: unknown } = { error: null };

  static getDerivedStateFromError(error: unknown): { error: unknown } {
    return { error };
  }

  override componentDidCatch(error: unknown, info: ErrorInfo): void {
    console.error(`panel "${this.props.what}" failed`, error, info.componentStack);
  }

  override render(): ReactNode {
    if (this.state.error) {
      return (
        <div>
          <ErrorNote error={this.state.error} title={`${this.props.what} could not be shown`} />
          <button type="button" className="link" onClick={() => this.setState({ error: null })}>
            Try again
          </button>
        </div>
      );
    }
    return this.props.children;
  }
}

interface SectionProps {
  title: string;
  actions?: ReactNode;
  children: ReactNode;
  id?: string;
}

/** A titled panel; a failure inside shows here only, never blanks the page. */
export function Section({ title, actions, children, id }: SectionProps) {
  const headingId = useId();
  return (
    <section className="panel" aria-labelledby={headingId} id={id}>
      <header className="panel-head">
        <h2 id={headingId}>{title}</h2>
        {actions ? <div className="panel-actions">{actions}</div> : null}
      </header>
      <div className="panel-body">
        <PanelBoundary what={title}>{children}</PanelBoundary>
      </div>
    </section>
  );
}

interface AsyncProps<T> {
  query: UseQueryResult<T>;
  what: string;
  isEmpty?: (data: T) => boolean;
  empty?: ReactNode;
  children: (data: T) => ReactNode;
}

/** Loading, error, empty or the data: one of the four, always. */
export function Async<T>({ query, what, isEmpty, empty, children }: AsyncProps<T>) {
  if (query.isPending) return <Loading what={what} />;
  // 501 (no log/metrics/trace configuration) or a route the service does not
  // offer: a fact about the service, not a failure.
  if (query.isError && query.error instanceof ApiError && query.error.status === 501) {
    return <Empty>Not configured: {query.error.message}</Empty>;
  }
  if (query.isError && query.error instanceof ApiError && query.error.code === "unsupported_route") {
    return <Empty>Not offered by this service.</Empty>;
  }
  if (query.isError) {
    return (
      <div>
        <ErrorNote error={query.error} title={`Could not load ${what}`} />
        <button type="button" className="link" onClick={() => void query.refetch()}>
          Try again
        </button>
      </div>
    );
  }
  if (isEmpty?.(query.data)) return <Empty>{empty ?? `No ${what}.`}</Empty>;
  return <>{children(query.data)}</>;
}

interface ConfirmProps {
  title: string;
  children: ReactNode;
  confirmLabel: string;
  /** When set, the operator must type this exact text to enable the button. */
  challenge?: string;
  danger?: boolean;
  busy?: boolean;
  error?: unknown;
  onConfirm: () => void;
  onCancel: () => void;
}

export function ConfirmDialog({ title, children, confirmLabel, challenge, danger, busy, error, onConfirm, onCancel }: ConfirmProps) {
  const [typed, setTyped] = useState("");
  const titleId = useId();
  const inputId = useId();
  const first = useRef<HTMLInputElement & HTMLButtonElement>(null);
  useEffect(() => {
    first.current?.focus();
  }, []);
  const blocked = Boolean(busy) || (challenge !== undefined && typed !== challenge);
  return (
    <div className="overlay" onKeyDown={(e) => e.key === "Escape" && onCancel()}>
      <div className="dialog" role="dialog" aria-modal="true" aria-labelledby={titleId}>
        <h2 id={titleId}>{title}</h2>
        <div className="dialog-body">{children}</div>
        {challenge !== undefined ? (
          <p>
            <label htmlFor={inputId}>
              Type <code>{challenge}</code> to confirm
            </label>
            <input id={inputId} ref={first} value={typed} onChange={(e) => setTyped(e.target.value)} autoComplete="off" />
          </p>
        ) : null}
        {error ? <ErrorNote error={error} /> : null}
        <div className="dialog-actions">
          <button type="button" onClick={onCancel} ref={challenge === undefined ? first : undefined}>
            Cancel
          </button>
          <button type="button" className={danger ? "danger" : "primary"} disabled={blocked} onClick={onConfirm}>
            {busy ? "Working…" : confirmLabel}
          </button>
        </div>
      </div>
    </div>
  );
}

/** A modal for content (details, forms); Escape or the button closes it. */
export function Modal({ title, children, onClose, wide }: { title: string; children: ReactNode; onClose: () => void; wide?: boolean }) {
  const titleId = useId();
  const closeRef = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    closeRef.current?.focus();
  }, []);
  return (
    <div className="overlay" onKeyDown={(e) => e.key === "Escape" && onClose()}>
      <div className={`dialog${wide ? " wide" : ""}`} role="dialog" aria-modal="true" aria-labelledby={titleId}>
        <header className="panel-head">
          <h2 id={titleId}>{title}</h2>
          <button type="button" ref={closeRef} onClick={onClose}>
            Close
          </button>
        </header>
        <div className="dialog-body">{children}</div>
      </div>
    </div>
  );
}

export function CopyButton({ text, label }: { text: string; label: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      onClick={() => {
        void navigator.clipboard?.writeText(text).then(() => setDone(true));
      }}
    >
      {done ? "Copied" : label}
    </button>
  );
}

export function JsonBlock({ value }: { value: unknown }) {
  return <pre className="json">{JSON.stringify(value, null, 2)}</pre>;
}

export function KeyValues({ items }: { items: [string, ReactNode][] }) {
  return (
    <dl className="kv">
      {items.map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd>{v ?? <span className="muted">—</span>}</dd>
        </div>
      ))}
    </dl>
  );
}
