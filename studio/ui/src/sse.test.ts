import { describe, expect, it } from "vitest";
import { followStream, SseParser, type SseMessage, type StreamState } from "./sse";
import { FakeStudio, json } from "./test/server";

const FRAMES = "id: a1\nevent: status\ndata: {\"status\":\"queued\"}\n\n: keepalive\n\nevent: ready\ndata: {}\n\nid: a2\r\nevent: status\r\ndata: line1\r\ndata: line2\r\n\r\n";
const EXPECTED: SseMessage[] = [
  { id: "a1", event: "status", data: '{"status":"queued"}' },
  { id: "a1", event: "ready", data: "{}" },
  { id: "a2", event: "status", data: "line1\nline2" },
];

describe("SseParser", () => {
  it("parses ids, events, multi-line data and skips comments", () => {
    expect(new SseParser().feed(FRAMES)).toEqual(EXPECTED);
  });

  it("gives the same messages however the bytes are split", () => {
    for (let a = 0; a <= FRAMES.length; a += 1) {
      for (let b = a; b <= FRAMES.length; b += 7) {
        const p = new SseParser();
        const out = [...p.feed(FRAMES.slice(0, a)), ...p.feed(FRAMES.slice(a, b)), ...p.feed(FRAMES.slice(b))];
        expect(out).toEqual(EXPECTED);
      }
    }
  });

  it("keeps a message that is not finished yet until its blank line", () => {
    const p = new SseParser();
    expect(p.feed("id: x\ndata: 1\n")).toEqual([]);
    expect(p.feed("\n")).toEqual([{ id: "x", event: "message", data: "1" }]);
  });

  it("reads retry and ignores an id with NUL", () => {
    const p = new SseParser();
    p.feed("retry: 1500\nid: a\0b\ndata: x\n\n");
    expect(p.retryMs).toBe(1500);
    expect(p.feed("data: y\n\n")[0]?.id).toBeNull();
  });
});

async function run(studio: FakeStudio, lastEventId: string | null = null) {
  const states: StreamState[] = [];
  const messages: SseMessage[] = [];
  const errors: string[] = [];
  const controller = new AbortController();
  const done = followStream({
    url: "/s",
    token: "tok",
    lastEventId,
    signal: controller.signal,
    fetch: studio.fetch,
    onState: (s) => states.push(s),
    onMessage: (m) => messages.push(m),
    onError: (e) => errors.push(e),
    sleep: async () => undefined,
  });
  return { states, messages, errors, controller, done };
}

describe("followStream", () => {
  it("resumes with Last-Event-ID after a lost connection and ends after a terminal status", async () => {
    const studio = new FakeStudio();
    let n = 0;
    studio.on("GET", "/s", () => {
      n += 1;
      const body = n === 1 ? 'id: e1\nevent: status\ndata: {"status":"processing"}\n\n' : 'id: e2\nevent: status\ndata: {"status":"completed"}\n\n';
      return new Response(body, { status: 200 });
    });
    const r = await run(studio);
    await r.done;
    const calls = studio.requests("GET", "/s");
    expect(calls).toHaveLength(2);
    expect(calls[0]?.headers["last-event-id"]).toBeUndefined();
    expect(calls[0]?.headers.authorization).toBe("Bearer tok");
    expect(calls[1]?.headers["last-event-id"]).toBe("e1");
    expect(r.messages.map((m) => m.id)).toEqual(["e1", "e2"]);
    expect(r.states).toEqual(["connecting", "open", "reconnecting", "open", "closed"]);
  });

  it("stops on a refusal instead of retrying forever", async () => {
    const studio = new FakeStudio().on("GET", "/s", { status: 404, body: { detail: "unknown service" } });
    const r = await run(studio);
    await r.done;
    expect(studio.requests("GET", "/s")).toHaveLength(1);
    expect(r.errors[0]).toContain("404");
  });

  it("stops when resuming after the terminal event (204)", async () => {
    const studio = new FakeStudio().on("GET", "/s", () => json(204, null));
    const r = await run(studio, "last");
    await r.done;
    expect(studio.requests("GET", "/s")).toHaveLength(1);
    expect(r.states.at(-1)).toBe("closed");
  });

  it("retries after a server error, then stops when aborted", async () => {
    const studio = new FakeStudio();
    let calls = 0;
    studio.on("GET", "/s", () => {
      calls += 1;
      if (calls === 3) r.controller.abort();
      return json(502, { detail: "upstream down" });
    });
    const r = await run(studio);
    await r.done;
    expect(calls).toBe(3);
    expect(r.states.at(-1)).toBe("closed");
  });
});
