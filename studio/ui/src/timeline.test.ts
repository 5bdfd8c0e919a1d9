import { describe, expect, it } from "vitest";
import { eventKey, mergeEvents, stateTone } from "./timeline";
import type { StatusEvent } from "./types";

const ev = (id: string, status: string, t: string): StatusEvent => ({ task_id: "t", status, timestamp: t, event_id: id });

describe("mergeEvents", () => {
  it("appends new events in time order and drops duplicates", () => {
    const a = [ev("1", "queued", "2026-01-01T00:00:00Z"), ev("2", "processing", "2026-01-01T00:00:01Z")];
    const merged = mergeEvents(a, [ev("2", "processing", "2026-01-01T00:00:01Z"), ev("3", "completed", "2026-01-01T00:00:02Z")]);
    expect(merged.map((e) => e.event_id)).toEqual(["1", "2", "3"]);
  });

  it("returns the same array when nothing is new (no re-render)", () => {
    const a = [ev("1", "queued", "2026-01-01T00:00:00Z")];
    expect(mergeEvents(a, [ev("1", "queued", "2026-01-01T00:00:00Z")])).toBe(a);
  });

  it("puts a late event in its place without moving the rows before it", () => {
    const a = [ev("1", "queued", "2026-01-01T00:00:00Z"), ev("3", "completed", "2026-01-01T00:00:05Z")];
    const merged = mergeEvents(a, [ev("2", "processing", "2026-01-01T00:00:02Z")]);
    expect(merged.map((e) => e.event_id)).toEqual(["1", "2", "3"]);
    expect(merged[0]).toBe(a[0]);
  });

  it("never duplicates, whatever the replay order (every permutation of 4 events)", () => {
    const all = [0, 1, 2, 3].map((i) => ev(String(i), "s", `2026-01-01T00:00:0${i}Z`));
    const perms = (xs: StatusEvent[]): StatusEvent[][] =>
      xs.length <= 1 ? [xs] : xs.flatMap((x, i) => perms([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
    for (const p of perms(all)) {
      let state: StatusEvent[] = [];
      for (const e of [...p, ...p]) state = mergeEvents(state, [e]);
      expect(state.map((e) => e.event_id)).toEqual(["0", "1", "2", "3"]);
    }
  });

  it("identifies events without an id by their content", () => {
    const e = { task_id: "t", status: "x", timestamp: "2026-01-01T00:00:00Z" };
    expect(eventKey(e)).toBe(eventKey({ ...e }));
  });
});

describe("stateTone", () => {
  it("colours states by meaning", () => {
    expect(stateTone("completed")).toBe("ok");
    expect(stateTone("failed")).toBe("bad");
    expect(stateTone("dead_lettered")).toBe("bad");
    expect(stateTone("retrying")).toBe("warn");
    expect(stateTone("processing")).toBe("live");
    expect(stateTone(undefined)).toBe("idle");
  });
});
