// Server-Sent Events over fetch: a sans-IO parser plus a small reconnecting
// reader. fetch (not EventSource) so that the bearer token can be sent and
// the resume cursor (Last-Event-ID) is ours to keep: after a lost connection
// the stream resumes after the last event this page has seen, and the page
// drops anything it already has by event id.

export interface SseMessage {
  id: string | null;
  event: string;
  data: string;
}

/** Feeds text chunks in, gets complete messages out (the WHATWG parsing rules). */
export class SseParser {
  private buffer = "";
  private data: string[] = [];
  private event = "";
  private id: string | null = null;
  private sawField = false;
  /** The `retry:` value last announced by the server, in ms. */
  retryMs: number | null = null;

  feed(chunk: string): SseMessage[] {
    this.buffer += chunk;
    const out: SseMessage[] = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      if (!match) break;
      // A lone \r at the very end may be the first half of \r\n: wait for more.
      if (match[0] === "\r" && match.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const message = this.line(line);
      if (message) out.push(message);
    }
    return out;
  }

  private line(line: string): SseMessage | null {
    if (line === "") {
      if (!this.sawField) return null;
      const message = { id: this.id, event: this.event || "message", data: this.data.join("\n") };
      this.data = [];
      this.event = "";
      this.sawField = false;
      return message;
    }
    if (line.startsWith(":")) return null; // comment / keepalive
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "data":
        this.data.push(value);
        this.sawField = true;
        break;
      case "event":
        this.event = value;
        this.sawField = true;
        break;
      case "id":
        if (!value.includes("\0")) this.id = value;
        this.sawField = true;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retryMs = Number(value);
        break;
      default:
        break;
    }
    return null;
  }
}

export type StreamState = "connecting" | "open" | "reconnecting" | "closed";

export interface StreamOptions {
  url: string;
  token: string | null;
  /** Resume after this id on the first connection (e.g. the last event already shown). */
  lastEventId?: string | null;
  onMessage: (message: SseMessage) => void;
  onState: (state: StreamState) => void;
  onError?: (message: string) => void;
  signal: AbortSignal;
  fetch?: typeof fetch;
  /** Backoff between reconnects, ms; doubled up to `maxDelayMs`. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** Called to wait between attempts (a test passes a deterministic one). */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

export function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Statuses that end a task: the server closes the stream after one. */
export const TERMINAL_STATUSES = new Set(["completed", "failed", "cancelled", "expired"]);

/**
 * Follow an SSE URL until `signal` aborts or the server ends the stream after a
 * terminal event. Lost connections are retried with backoff, sending
 * Last-Event-ID so the server replays only what was missed.
 */
export async function followStream(opts: StreamOptions): Promise<void> {
  const doFetch = opts.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => fetch(input, init));
  const sleep = opts.sleep ?? defaultSleep;
  let lastId = opts.lastEventId ?? null;
  let delay = opts.initialDelayMs ?? 250;
  const maxDelay = opts.maxDelayMs ?? 5000;
  let first = true;
  let ended = false;
  while (!opts.signal.aborted && !ended) {
    if (first) opts.onState("connecting");
    const headers: Record<string, string> = { accept: "text/event-stream" };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (lastId) headers["last-event-id"] = lastId;
    const parser = new SseParser();
    let sawTerminal = false;
    try {
      const response = await doFetch(opts.url, { headers, signal: opts.signal, cache: "no-store" });
      // 204: we resumed after the terminal event, nothing more will come.
      if (response.status === 204) {
        ended = true;
        break;
      }
      // A refusal (unknown task or service, no permission) will not change by retrying.
      if (response.status >= 400 && response.status < 500 && response.status !== 408 && response.status !== 429) {
        opts.onError?.(`live updates refused (HTTP ${response.status})`);
        ended = true;
        break;
      }
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      opts.onState("open");
      delay = opts.initialDelayMs ?? 250;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const message of parser.feed(value)) {
          if (message.id) lastId = message.id;
          if (message.event === "status" && isTerminal(message.data)) sawTerminal = true;
          opts.onMessage(message);
        }
      }
      // The server closes the stream after a terminal status: that is the end.
      if (sawTerminal) ended = true;
    } catch (err) {
      if (opts.signal.aborted) break;
      void err;
    }
    first = false;
    if (ended || opts.signal.aborted) break;
    if (parser.retryMs !== null) delay = parser.retryMs;
    opts.onState("reconnecting");
    await sleep(delay, opts.signal);
    delay = Math.min(delay * 2, maxDelay);
  }
  opts.onState("closed");
}

function isTerminal(data: string): boolean {
  try {
    const parsed: unknown = JSON.parse(data);
    if (typeof parsed === "object" && parsed !== null && "status" in parsed) {
      const status = (parsed as { status: unknown }).status;
      return typeof status === "string" && TERMINAL_STATUSES.has(status);
    }
  } catch {
    return false;
  }
  return false;
}
