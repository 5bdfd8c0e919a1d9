// One uPlot line chart for one metric (all its series, e.g. one per pod).
import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { formatUnit } from "../format";
import type { MetricSeries } from "../types";

/** Aligned columns for uPlot: shared x (unix seconds), one y column per series. */
export function toColumns(series: MetricSeries[]): [number[], ...(number | null)[][]] {
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => Date.parse(p.timestamp) / 1000)))].filter(Number.isFinite).sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const ys = series.map((s) => {
    const col: (number | null)[] = new Array<number | null>(xs.length).fill(null);
    for (const p of s.points) {
      const i = index.get(Date.parse(p.timestamp) / 1000);
      if (i !== undefined) col[i] = p.value;
    }
    return col;
  });
  return [xs, ...ys];
}

const PALETTE = ["#2563eb", "#16a34a", "#d97706", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d"];

export function Chart({ title, unit, series }: { title: string; unit: string; series: MetricSeries[] }) {
  const host = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = host.current;
    if (!el) return undefined;
    const data = toColumns(series);
    const plot = new uPlot(
      {
        width: Math.max(280, el.clientWidth || 420),
        height: 180,
        legend: { show: series.length > 1 },
        axes: [{}, { values: (_u, ticks) => ticks.map((t) => formatUnit(t, unit)), size: 80 }],
        series: [
          {},
          ...series.map((s, i) => ({
            label: Object.values(s.labels).join(" ") || s.metric,
            stroke: PALETTE[i % PALETTE.length],
            width: 1.5,
            value: (_u: uPlot, v: number | null) => formatUnit(v, unit),
          })),
        ],
      },
      data as uPlot.AlignedData,
      el,
    );
    return () => plot.destroy();
  }, [series, unit]);
  return (
    <figure className="chart">
      <figcaption>
        {title} <span className="muted">({unit})</span>
      </figcaption>
      <div ref={host} role="img" aria-label={`${title} chart, ${series.length} series`} />
    </figure>
  );
}
