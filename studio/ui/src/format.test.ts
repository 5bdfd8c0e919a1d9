import { describe, expect, it } from "vitest";
import { absoluteTime, formatBytes, formatDuration, relativeTime } from "./format";

describe("times", () => {
  const now = Date.parse("2026-06-01T12:00:00Z");
  it("says how long ago, and handles bad input", () => {
    expect(relativeTime("2026-06-01T11:57:00Z", now)).toBe("3 minutes ago");
    expect(relativeTime("2026-06-01T12:00:02Z", now)).toBe("just now");
    expect(relativeTime("2026-05-30T12:00:00Z", now)).toBe("2 days ago");
    expect(relativeTime("not a time", now)).toBe("—");
    expect(relativeTime(null, now)).toBe("—");
  });
  it("gives the absolute local time with milliseconds", () => {
    expect(absoluteTime("2026-06-01T12:00:00.123Z")).toMatch(/^2026-06-0[12] \d\d:\d\d:00\.123$/);
  });
});

describe("sizes", () => {
  it("formats durations and bytes", () => {
    expect(formatDuration(350)).toBe("350 ms");
    expect(formatDuration(2500)).toBe("2.50 s");
    expect(formatDuration(125_000)).toBe("2 min 5 s");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatBytes(-2 * 1024 * 1024)).toBe("-2.0 MiB");
  });
});
