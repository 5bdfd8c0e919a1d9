import "@testing-library/jest-dom/vitest";
import { cleanup, configure } from "@testing-library/react";
import { afterEach, vi } from "vitest";

// jsdom has no canvas: uPlot is replaced by a recorder of what it was asked to draw.
vi.mock("uplot", () => {
  class FakePlot {
    static instances: { data: unknown }[] = [];
    constructor(_opts: unknown, data: unknown) {
      FakePlot.instances.push({ data });
    }
    destroy(): void {}
  }
  return { default: FakePlot };
});

vi.mock("@xyflow/react", () => import("./xyflow"));
vi.mock("@xyflow/react/dist/style.css", () => ({}));

// Lazy pages are compiled on first import; on a busy machine that takes a while.
configure({ asyncUtilTimeout: 5000 });

class NoResizeObserver {
  observe(): void {}
  unobserve(): void {}
  disconnect(): void {}
}
globalThis.ResizeObserver ??= NoResizeObserver as unknown as typeof ResizeObserver;

afterEach(() => {
  cleanup();
  sessionStorage.clear();
  localStorage.clear();
});
