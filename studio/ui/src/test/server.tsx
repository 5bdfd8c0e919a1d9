// A scripted Studio backend for component tests: routes by method and path,
// records every request, and can hold SSE streams open to push events live.
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render } from "@testing-library/react";
import { MemoryRouter, useLocation } from "react-router-dom";
import { App } from "../App";
import { AuthProvider } from "../auth";

export interface Call {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: Record<string, string>;
  body: unknown;
}

type Reply = { status?: number; body?: unknown } | ((call: Call) => { status?: number; body?: unknown } | Response);

export class StreamHandle {
  private controller: ReadableStreamDefaultController<Uint8Array> | null = null;
  readonly response: Response;
  constructor() {
    const stream = new ReadableStream<Uint8Array>({ start: (c) => void (this.controller = c) });
    this.response = new Response(stream, { status: 200, headers: { "content-type": "text/event-stream" } });
  }
  send(text: string): void {
    this.controller?.enqueue(new TextEncoder().encode(text));
  }
  status(id: string, event: Record<string, unknown>): void {
    this.send(`id: ${id}\nevent: status\ndata: ${JSON.stringify(event)}\n\n`);
  }
  close(): void {
    this.controller?.close();
  }
  fail(): void {
    this.controller?.error(new TypeError("network error"));
  }
}

export class FakeStudio {
  readonly calls: Call[] = [];
  private routes: [string, RegExp, Reply][] = [];
  readonly streams: StreamHandle[] = [];

  on(method: string, path: string | RegExp, reply: Reply): this {
    const re = typeof path === "string" ? new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`) : path;
    this.routes.unshift([method, re, reply]);
    return this;
  }

  /** Each request to `path` opens a new held-open stream (see `streams`). */
  stream(path: string | RegExp): this {
    return this.on("GET", path, () => {
      const handle = new StreamHandle();
      this.streams.push(handle);
      return handle.response;
    });
  }

  requests(method: string, path: string | RegExp): Call[] {
    return this.calls.filter((c) => c.method === method && (typeof path === "string" ? c.path === path : path.test(c.path)));
  }

  readonly fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const url = new URL(String(input), "http://studio.test");
    const method = (init?.method ?? "GET").toUpperCase();
    const headers = Object.fromEntries(Object.entries((init?.headers as Record<string, string>) ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
    const call: Call = { method, path: url.pathname, query: url.searchParams, headers, body: init?.body ? JSON.parse(String(init.body)) : undefined };
    this.calls.push(call);
    const route = this.routes.find(([m, re]) => m === method && re.test(url.pathname));
    if (!route) return json(404, { detail: `no route ${method} ${url.pathname}` });
    const reply = typeof route[2] === "function" ? route[2](call) : route[2];
    if (reply instanceof Response) return reply;
    return json(reply.status ?? 200, reply.body);
  };
}

export function json(status: number, body: unknown): Response {
  if (status === 204) return new Response(null, { status });
  return new Response(JSON.stringify(body ?? null), { status, headers: { "content-type": "application/json" } });
}

let lastLocation = "";
function LocationProbe() {
  const loc = useLocation();
  lastLocation = `${loc.pathname}${loc.search}`;
  return null;
}
export const currentLocation = () => lastLocation;

export function renderApp(studio: FakeStudio, url: string) {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false, staleTime: 0 } } });
  return render(
    <QueryClientProvider client={client}>
      <MemoryRouter initialEntries={[url]}>
        <AuthProvider fetchImpl={studio.fetch}>
          <App />
          <LocationProbe />
        </AuthProvider>
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

export function asRole(studio: FakeStudio, role: "reader" | "operator" | "admin", authEnabled = true): FakeStudio {
  return studio.on("GET", "/studio/auth/whoami", { body: { auth_enabled: authEnabled, actor: `${role}-bot`, role } });
}
