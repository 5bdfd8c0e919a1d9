// Metrics charts for a service or a task window (Prometheus, through Studio).
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import type { Query } from "../api";
import type { MetricSeries, MetricsResponse } from "../types";
import { Chart } from "./Chart";
import { Async } from "./ui";

const WINDOWS: [string, number][] = [
  ["15m", 15 * 60],
  ["1h", 3600],
  ["24h", 24 * 3600],
];

export function groupByMetric(series: MetricSeries[]): [string, MetricSeries[]][] {
  const groups = new Map<string, MetricSeries[]>();
  for (const s of series) groups.set(s.metric, [...(groups.get(s.metric) ?? []), s]);
  return [...groups.entries()];
}

interface Props {
  queryKey: readonly unknown[];
  fetchMetrics: (q: Query) => Promise<MetricsResponse>;
  /** A task's window comes from its lifecycle: no window picker. */
  automaticWindow?: boolean;
  extra?: Query;
}

export function MetricsPanel({ queryKey, fetchMetrics, automaticWindow, extra }: Props) {
  const [windowSeconds, setWindowSeconds] = useState<number | null>(automaticWindow ? null : 3600);
  const metrics = useQuery({
    queryKey: [...queryKey, windowSeconds, extra],
    queryFn: () => {
      const q: Query = { ...extra };
      if (windowSeconds) {
        const to = new Date();
        q.from = new Date(to.getTime() - windowSeconds * 1000).toISOString();
        q.to = to.toISOString();
      }
      return fetchMetrics(q);
    },
  });
  return (
    <div>
      <div className="segmented" role="group" aria-label="Time window">
        {automaticWindow ? (
          <button type="button" aria-pressed={windowSeconds === null} onClick={() => setWindowSeconds(null)}>
            task window
          </button>
        ) : null}
        {WINDOWS.map(([label, s]) => (
          <button key={label} type="button" aria-pressed={windowSeconds === s} onClick={() => setWindowSeconds(s)}>
            {label}
          </button>
        ))}
      </div>
      <Async query={metrics} what="metrics" isEmpty={(d) => d.series.length === 0} empty="No series in this window.">
        {(d) => (
          <>
            {d.approximate || d.warnings.length ? (
              <ul className="warnings">
                {d.warnings.map((w) => (
                  <li key={w}>{w}</li>
                ))}
              </ul>
            ) : null}
            <div className="charts">
              {groupByMetric(d.series).map(([metric, series]) => (
                <Chart key={metric} title={metric.replace(/_/g, " ")} unit={series[0]?.unit ?? ""} series={series} />
              ))}
            </div>
          </>
        )}
      </Async>
    </div>
  );
}
